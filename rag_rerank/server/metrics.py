"""Prometheus metrics in the text exposition format (no client library needed).

Request counts by route and status, a latency histogram by route, requests in flight, the
engine's queue depth and batch counters, and the score distribution of what the service returns
(top-1 and all returned scores, documents kept, requests where nothing passed the threshold).
Every label is bounded by the code, never taken from the request as sent: the method is one of
:data:`METHODS` or ``other``, the route a route template or ``unmatched``, the status a number;
so no client can grow the label set (or the log lines, which use the same labels).
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from ..api import CacheStats, Health, RerankerStats

__all__ = [
    "KEPT_BUCKETS",
    "LATENCY_BUCKETS",
    "METHODS",
    "SCORE_BUCKETS",
    "UNMATCHED",
    "EngineState",
    "Metrics",
    "method_label",
]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds (seconds) of the request latency histogram."""

SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
"""Upper bounds of the score histograms: 0.05, 0.1, ... 1.0."""

KEPT_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)
"""Upper bounds of the documents-kept-per-request histogram."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS"})
"""HTTP methods counted by name; any other is counted (and logged) as ``other``."""

UNMATCHED = "unmatched"
"""The route label of a request whose path matches no route."""


def method_label(method: str) -> str:
    """``method`` when it is one of :data:`METHODS`, else ``"other"`` (a client may send any
    token as its method, 20 kB long)."""
    return method if method in METHODS else "other"


class Metrics:
    """Counters the HTTP layer updates; :meth:`render` adds the engine's own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._latency_counts: dict[str, list[int]] = {}
        self._latency_sum: dict[str, float] = defaultdict(float)
        self.in_flight = 0
        self._scores: dict[str, _ScoreSeries] = {}
        self._model_requests: dict[str, int] = defaultdict(int)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request; ``route`` is a route template or :data:`UNMATCHED`."""
        method = method_label(method)
        with self._lock:
            self._requests[(method, route, status)] += 1
            counts = self._latency_counts.setdefault(route, [0] * (len(LATENCY_BUCKETS) + 1))
            counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self._latency_sum[route] += seconds

    def observe_results(
        self, scores: Sequence[float], *, threshold: float | str | None, model: str = ""
    ) -> None:
        """Record what one rerank request returned: its scores (best first) and its threshold,
        and which model served it."""
        with self._lock:
            self._scores.setdefault(model, _ScoreSeries()).observe(scores, threshold=threshold)
            self._model_requests[model] += 1

    def render(self, engines: Mapping[str, EngineState], *, ready: bool) -> str:
        """All metrics as Prometheus text, with each model's ``stats()``, ``health()`` and
        ``cache_stats()``. With several models, their series carry a ``model`` label."""
        labelled = len(engines) > 1
        lines: list[str] = []
        with self._lock:
            lines += _header("rag_rerank_requests_total", "counter", "HTTP requests by status.")
            for (method, route, status), count in sorted(self._requests.items()):
                labels = f'method="{method}",route="{route}",status="{status}"'
                lines.append(f"rag_rerank_requests_total{{{labels}}} {count}")
            lines += _header(
                "rag_rerank_request_duration_seconds", "histogram", "Request latency by route."
            )
            for route, counts in sorted(self._latency_counts.items()):
                lines += _histogram(
                    "rag_rerank_request_duration_seconds",
                    f'route="{route}"',
                    counts,
                    self._latency_sum[route],
                )
            in_flight = self.in_flight
            name = "rag_rerank_model_requests_total"
            lines += _header(name, "counter", "Rerank requests answered, by the model that served.")
            for model, count in sorted(self._model_requests.items()):
                lines.append(f"{name}{{{_model_label(model)}}} {count}")
            series = {m: self._scores.setdefault(m, _ScoreSeries()) for m in engines}
            lines += _ScoreSeries.render_all(
                {(_model_label(m) if labelled else ""): s for m, s in series.items()}
            )
        lines += _header("rag_rerank_requests_in_flight", "gauge", "HTTP requests being served.")
        lines.append(f"rag_rerank_requests_in_flight {in_flight}")
        lines += _header("rag_rerank_ready", "gauge", "1 while /ready answers 200.")
        lines.append(f"rag_rerank_ready {int(ready)}")
        by_labels = {(_model_label(m) if labelled else ""): state for m, state in engines.items()}
        lines += _engine_lines(by_labels)
        lines += _cache_lines({labels: state.cache for labels, state in by_labels.items()})
        return "\n".join(lines) + "\n"


class EngineState(NamedTuple):
    """One model's engine as :meth:`Metrics.render` reads it."""

    stats: RerankerStats
    health: Health
    cache: CacheStats | None


def _model_label(model: str) -> str:
    return f'model="{_escape(model)}"'


def _engine_lines(engines: Mapping[str, EngineState]) -> list[str]:
    """Each engine's gauges and counters, keyed by its labels ("" for a single model)."""
    gauges = [
        ("rag_rerank_queue_pairs", "Work queued, not yet started (windows).", "queued_pairs"),
        ("rag_rerank_batch_tokens_budget", "Tokens per batch.", "batch_tokens"),
        ("rag_rerank_queue_capacity_pairs", "Queue limit.", "max_queue_pairs"),
    ]
    counters = [
        ("rag_rerank_batches_total", "Forward passes run.", "batches"),
        ("rag_rerank_pairs_total", "Pairs scored.", "pairs"),
        ("rag_rerank_batch_pairs_total", "Windows (rows) in all batches.", "windows"),
        ("rag_rerank_batch_tokens_total", "Real tokens in all batches.", "real_tokens"),
        ("rag_rerank_batch_padded_tokens_total", "Padded tokens.", "padded_tokens"),
        ("rag_rerank_oom_splits_total", "Batches split after out of memory.", "oom_splits"),
    ]
    lines: list[str] = []
    name = "rag_rerank_worker_alive"
    lines += _header(name, "gauge", "1 while the engine worker runs.")
    for labels, state in engines.items():
        lines.append(f"{name}{_braces(labels)} {int(state.health.alive)}")
    for kind, table in (("gauge", gauges), ("counter", counters)):
        for name, help_text, attribute in table:
            values = [
                (labels, getattr(state.stats, attribute)) for labels, state in engines.items()
            ]
            values = [(labels, value) for labels, value in values if value is not None]
            if values:
                lines += _header(name, kind, help_text)
                lines += [f"{name}{_braces(labels)} {value}" for labels, value in values]
    return lines


def _braces(labels: str) -> str:
    return f"{{{labels}}}" if labels else ""


# -- score cache (issue 17) ---------------------------------------------------------------------


def _cache_lines(caches: Mapping[str, CacheStats | None]) -> list[str]:
    """Score-cache counters, labelled with the cache ("memory" or the Redis URL without its
    password) and, with several models, the model (``caches`` is keyed by those labels); nothing
    for a model whose cache is off."""
    labelled = {
        ",".join(filter(None, [labels, f'cache="{_escape(cache.cache)}"'])): cache
        for labels, cache in caches.items()
        if cache is not None
    }
    if not labelled:
        return []
    lines: list[str] = []
    for name, help_text, attribute in (
        ("rag_rerank_cache_hits_total", "Pairs answered from the score cache.", "hits"),
        ("rag_rerank_cache_misses_total", "Pairs the model scored on a cache miss.", "misses"),
        (
            "rag_rerank_cache_errors_total",
            "Cache operations failed or skipped while it was unreachable (served uncached).",
            "errors",
        ),
    ):
        lines += _header(name, "counter", help_text)
        lines += [f"{name}{{{label}}} {getattr(c, attribute)}" for label, c in labelled.items()]
    entries = {label: c.entries for label, c in labelled.items() if c.entries is not None}
    if entries:
        lines += _header("rag_rerank_cache_entries", "gauge", "Entries in the in-process cache.")
        lines += [f"rag_rerank_cache_entries{{{label}}} {n}" for label, n in entries.items()]
    return lines


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _header(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _histogram(
    name: str,
    labels: str,
    counts: Iterable[int],
    total: float,
    bounds: Sequence[float] = LATENCY_BUCKETS,
) -> list[str]:
    lines = []
    cumulative = 0
    names = [*(str(b) for b in bounds), "+Inf"]
    for bound, count in zip(names, counts, strict=True):
        cumulative += count
        sep = "," if labels else ""
        lines.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {cumulative}')
    suffix = f"{{{labels}}}" if labels else ""
    lines.append(f"{name}_sum{suffix} {total}")
    lines.append(f"{name}_count{suffix} {cumulative}")
    return lines


# -- the score distribution (what the guides mean by "monitor the scores") ----------------------


class _Histogram:
    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value


class _ScoreSeries:
    """Top-1 score, every returned score, documents kept per request, and requests where
    nothing passed the threshold. Scores are the ones returned: calibrated under a calibration.
    Not thread-safe on its own: :class:`Metrics` holds its lock."""

    def __init__(self) -> None:
        self.top = _Histogram(SCORE_BUCKETS)
        self.returned = _Histogram(SCORE_BUCKETS)
        self.kept = _Histogram(KEPT_BUCKETS)
        self.nothing_passed = 0

    def observe(self, scores: Sequence[float], *, threshold: float | str | None) -> None:
        if scores:
            self.top.observe(scores[0])
        for score in scores:
            self.returned.observe(score)
        self.kept.observe(len(scores))
        if not scores and threshold is not None:
            self.nothing_passed += 1

    @staticmethod
    def render_all(series: Mapping[str, _ScoreSeries]) -> list[str]:
        """Every series' histograms and counter, keyed by its labels ("" for a single model);
        each metric's HELP and TYPE once, as the exposition format wants."""
        lines: list[str] = []
        histograms = (
            ("rag_rerank_top_score", "Score of the best result of each request.", "top"),
            ("rag_rerank_returned_score", "Score of every returned result.", "returned"),
            ("rag_rerank_documents_kept", "Results returned per request.", "kept"),
        )
        for name, help_text, attribute in histograms:
            lines += _header(name, "histogram", help_text)
            for labels, one in series.items():
                histogram = getattr(one, attribute)
                lines += _histogram(
                    name, labels, histogram.counts, histogram.total, histogram.bounds
                )
        name = "rag_rerank_nothing_passed_total"
        lines += _header(name, "counter", "Requests where no result passed the threshold.")
        for labels, one in series.items():
            lines.append(f"{name}{_braces(labels)} {one.nothing_passed}")
        return lines
