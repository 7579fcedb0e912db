"""Shadow scoring: a second model scores each request off its critical path, to compare.

The answer goes back as soon as the primary model has ranked; the shadow model's ranking is
awaited in a background task and compared with the primary's (top-1 agreement, top-5 overlap,
Kendall tau, from :mod:`rag_rerank.evaluation.agreement`). At most ``max_pending`` shadow requests
wait or run at once: past that, shadow work is dropped and counted, never queued without bound,
so a slow shadow model never delays an answer.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..api import RerankerLike
from ..evaluation.agreement import AgreementSummary, agreement

__all__ = ["ShadowScorer"]

logger = logging.getLogger("rag_rerank.server")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class _PairStats:
    """What one (primary, shadow) pair has seen."""

    summary: AgreementSummary = field(default_factory=AgreementSummary)
    latency: dict[str, list[float]] = field(default_factory=dict)  # role -> seconds
    dropped: int = 0
    failed: int = 0

    def observe_latency(self, role: str, seconds: float) -> None:
        self.latency.setdefault(role, []).append(seconds)
        if len(self.latency[role]) > 10_000:  # the summary needs recent values only
            del self.latency[role][:5_000]


class ShadowScorer:
    """Scores requests with the shadow model in the background and keeps the agreement figures.

    Args:
        name: The shadow model's name.
        reranker: The shadow model.
        max_pending: Shadow requests waiting or running at once; more are dropped (counted).
    """

    def __init__(self, name: str, reranker: RerankerLike, *, max_pending: int) -> None:
        self.name = name
        self.reranker = reranker
        self.max_pending = max_pending
        self.pending = 0
        self._lock = threading.Lock()
        self._pairs: dict[str, _PairStats] = {}
        self._histograms: dict[tuple[str, str], list[int]] = {}
        self._sums: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(
        self,
        primary: str,
        query: str,
        texts: Sequence[str],
        ranking: Sequence[int],
        primary_seconds: float,
    ) -> bool:
        """Score ``texts`` with the shadow model later and compare with ``ranking`` (the
        primary's full order, best first). Returns ``False`` when the work was dropped."""
        with self._lock:
            stats = self._pairs.setdefault(primary, _PairStats())
            self._observe(primary, "primary", primary_seconds)
            if self.pending >= self.max_pending:
                stats.dropped += 1
                return False
            self.pending += 1
        task = asyncio.get_running_loop().create_task(
            self._score(primary, query, list(texts), list(ranking))
        )
        self._tasks.add(task)  # a reference, or the task may be collected mid-flight
        task.add_done_callback(self._tasks.discard)
        return True

    async def _score(self, primary: str, query: str, texts: list[str], ranking: list[int]) -> None:
        start = time.perf_counter()
        try:
            results = await self.reranker.arerank(query, texts)
            seconds = time.perf_counter() - start
            value = agreement(ranking, [r.index for r in results])
        except Exception as exc:  # a shadow failure is counted and logged, never raised
            logger.warning("shadow model %s failed on a request: %s", self.name, exc)
            with self._lock:
                self._pairs[primary].failed += 1
            return
        finally:
            with self._lock:
                self.pending -= 1
        with self._lock:
            self._pairs[primary].summary.add(value)
            self._observe(primary, "shadow", seconds)

    def _observe(self, primary: str, role: str, seconds: float) -> None:
        counts = self._histograms.setdefault((primary, role), [0] * (len(_LATENCY_BUCKETS) + 1))
        counts[bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        self._sums[(primary, role)] = self._sums.get((primary, role), 0.0) + seconds
        self._pairs[primary].observe_latency(role, seconds)

    async def wait(self) -> None:
        """Wait until the shadow work started so far has finished (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def summary(self) -> list[dict[str, Any]]:
        """Per (primary, shadow) pair: queries compared, mean agreement figures, median latency of
        each side in milliseconds, dropped and failed shadow requests (``/info``)."""
        rows = []
        with self._lock:
            for primary, stats in self._pairs.items():
                mean = stats.summary.mean()
                rows.append(
                    {
                        "primary": primary,
                        "shadow": self.name,
                        "compared": stats.summary.count,
                        "top1_agreement": None if mean is None else mean.top1,
                        "top5_overlap": None if mean is None else mean.top5_overlap,
                        "kendall_tau": None if mean is None else mean.kendall_tau,
                        "primary_p50_ms": _median_ms(stats.latency.get("primary")),
                        "shadow_p50_ms": _median_ms(stats.latency.get("shadow")),
                        "dropped": stats.dropped,
                        "failed": stats.failed,
                    }
                )
        return rows

    def render(self) -> list[str]:
        """Prometheus lines: agreement means, compared/dropped/failed counters, latency per side."""
        lines: list[str] = []
        rows = self.summary()
        series = (
            (
                "rag_rerank_shadow_top1_agreement",
                "gauge",
                "Mean top-1 agreement.",
                "top1_agreement",
            ),
            ("rag_rerank_shadow_top5_overlap", "gauge", "Mean top-5 overlap.", "top5_overlap"),
            ("rag_rerank_shadow_kendall_tau", "gauge", "Mean Kendall tau.", "kendall_tau"),
            ("rag_rerank_shadow_compared_total", "counter", "Requests compared.", "compared"),
            ("rag_rerank_shadow_dropped_total", "counter", "Shadow work dropped.", "dropped"),
            ("rag_rerank_shadow_failed_total", "counter", "Shadow work that failed.", "failed"),
        )
        for name, kind, help_text, key in series:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            for row in rows:
                if row[key] is not None:
                    lines.append(f"{name}{{{_pair(row['primary'], self.name)}}} {row[key]}")
        name = "rag_rerank_shadow_duration_seconds"
        lines += [
            f"# HELP {name} Scoring latency of each side of a (primary, shadow) pair.",
            f"# TYPE {name} histogram",
        ]
        with self._lock:
            histograms = sorted((key, list(counts)) for key, counts in self._histograms.items())
            sums = dict(self._sums)
        for (primary, role), counts in histograms:
            labels = f'{_pair(primary, self.name)},role="{role}"'
            cumulative = 0
            for bound, count in zip([*map(str, _LATENCY_BUCKETS), "+Inf"], counts, strict=True):
                cumulative += count
                lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {cumulative}')
            lines.append(f"{name}_sum{{{labels}}} {sums.get((primary, role), 0.0)}")
            lines.append(f"{name}_count{{{labels}}} {cumulative}")
        return lines


def _pair(primary: str, shadow: str) -> str:
    return f'primary="{_escape(primary)}",shadow="{_escape(shadow)}"'


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _median_ms(values: list[float] | None) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return 1000.0 * ordered[len(ordered) // 2]
