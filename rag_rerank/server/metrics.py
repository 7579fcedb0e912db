"""Prometheus metrics in the text exposition format (no client library needed).

Request counts by route and status, a latency histogram by route, requests in flight, the
engine's queue depth and batch counters, and the score distribution of what the service returns
(top-1 and all returned scores, documents kept, requests where nothing passed the threshold).
Labels are route templates, never raw paths, so an attacker cannot grow the label set.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence

from ..api import CacheStats, Health, RerankerStats

__all__ = ["KEPT_BUCKETS", "LATENCY_BUCKETS", "SCORE_BUCKETS", "Metrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Upper bounds (seconds) of the request latency histogram."""

SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
"""Upper bounds of the score histograms: 0.05, 0.1, ... 1.0."""

KEPT_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)
"""Upper bounds of the documents-kept-per-request histogram."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Counters the HTTP layer updates; :meth:`render` adds the engine's own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._latency_counts: dict[str, list[int]] = {}
        self._latency_sum: dict[str, float] = defaultdict(float)
        self.in_flight = 0
        self._scores = _ScoreSeries()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        with self._lock:
            self._requests[(method, route, status)] += 1
            counts = self._latency_counts.setdefault(route, [0] * (len(LATENCY_BUCKETS) + 1))
            counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self._latency_sum[route] += seconds

    def observe_results(self, scores: Sequence[float], *, threshold: float | str | None) -> None:
        """Record what one rerank request returned: its scores (best first) and its threshold."""
        with self._lock:
            self._scores.observe(scores, threshold=threshold)

    def render(
        self,
        stats: RerankerStats,
        health: Health,
        *,
        ready: bool,
        cache: CacheStats | None = None,
    ) -> str:
        """All metrics as Prometheus text, from the reranker's ``stats()``, ``health()`` and
        ``cache_stats()``."""
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
            lines += self._scores.render()
        gauges = [
            ("rag_rerank_requests_in_flight", "HTTP requests being served.", in_flight),
            ("rag_rerank_queue_pairs", "Work queued, not yet started (windows).", stats.queued_pairs),
            ("rag_rerank_worker_alive", "1 while the engine worker runs.", int(health.alive)),
            ("rag_rerank_ready", "1 while /ready answers 200.", int(ready)),
            ("rag_rerank_batch_tokens_budget", "Tokens per batch.", stats.batch_tokens),
        ]
        if stats.max_queue_pairs is not None:
            gauges.append(
                ("rag_rerank_queue_capacity_pairs", "Queue limit.", stats.max_queue_pairs)
            )
        for name, help_text, value in gauges:
            lines += _header(name, "gauge", help_text)
            lines.append(f"{name} {value}")
        counters = [
            ("rag_rerank_batches_total", "Forward passes run.", stats.batches),
            ("rag_rerank_pairs_total", "Pairs scored.", stats.pairs),
            ("rag_rerank_batch_pairs_total", "Windows (rows) in all batches.", stats.windows),
            ("rag_rerank_batch_tokens_total", "Real tokens in all batches.", stats.real_tokens),
            ("rag_rerank_batch_padded_tokens_total", "Padded tokens.", stats.padded_tokens),
            ("rag_rerank_oom_splits_total", "Batches split after out of memory.", stats.oom_splits),
        ]
        for name, help_text, value in counters:
            lines += _header(name, "counter", help_text)
            lines.append(f"{name} {value}")
        lines += _cache_lines(cache)
        return "\n".join(lines) + "\n"


# -- score cache (issue 17) ---------------------------------------------------------------------


def _cache_lines(cache: CacheStats | None) -> list[str]:
    """Score-cache counters, labelled with the cache ("memory" or the Redis URL without its
    password); nothing when the cache is off."""
    if cache is None:
        return []
    label = 'cache="{}"'.format(cache.cache.replace("\\", "\\\\").replace('"', '\\"'))
    lines: list[str] = []
    for name, help_text, value in (
        ("rag_rerank_cache_hits_total", "Pairs answered from the score cache.", cache.hits),
        ("rag_rerank_cache_misses_total", "Pairs the model scored on a cache miss.", cache.misses),
        (
            "rag_rerank_cache_errors_total",
            "Cache operations failed or skipped while it was unreachable (served uncached).",
            cache.errors,
        ),
    ):
        lines += _header(name, "counter", help_text)
        lines.append(f"{name}{{{label}}} {value}")
    if cache.entries is not None:
        lines += _header("rag_rerank_cache_entries", "gauge", "Entries in the in-process cache.")
        lines.append(f"rag_rerank_cache_entries{{{label}}} {cache.entries}")
    return lines


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

    def render(self) -> list[str]:
        lines: list[str] = []
        histograms = (
            ("rag_rerank_top_score", "Score of the best result of each request.", self.top),
            ("rag_rerank_returned_score", "Score of every returned result.", self.returned),
            ("rag_rerank_documents_kept", "Results returned per request.", self.kept),
        )
        for name, help_text, histogram in histograms:
            lines += _header(name, "histogram", help_text)
            lines += _histogram(name, "", histogram.counts, histogram.total, histogram.bounds)
        name = "rag_rerank_nothing_passed_total"
        lines += _header(name, "counter", "Requests where no result passed the threshold.")
        lines.append(f"{name} {self.nothing_passed}")
        return lines
