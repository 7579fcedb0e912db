"""What bounds one request's work before it is queued, and the readiness probe after a failure."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence

from ..api import check_documents
from ..core import Reranker
from ..core.engine import estimated_windows
from .errors import ServiceError

__all__ = [
    "PROBE_INTERVAL_SECONDS",
    "UNHEALTHY_AFTER_FAILURES",
    "ReadinessProbe",
    "check_echo",
    "check_queue_wait",
    "check_request_work",
]

logger = logging.getLogger("rag_rerank.server")

UNHEALTHY_AFTER_FAILURES = 3
"""``/health`` turns 503 after this many rounds of forward passes failed in a row."""

PROBE_INTERVAL_SECONDS = 1.0
"""After a failed forward pass, ``/ready`` probes the model at most this often."""


def check_request_work(
    query: str,
    texts: Sequence[str],
    field: str,
    *,
    max_length: int,
    max_request_windows: int,
    max_queue_pairs: int | None,
) -> int:
    """Refuse, before any tokenizing, texts the tokenizer cannot take (422 naming the item,
    via :class:`~rag_rerank.InvalidInputError`) and more text than one request may send or the
    queue could ever hold (413 naming the limit). Returns the request's work in windows (the
    query's included; :func:`~rag_rerank.core.engine.estimated_windows`)."""
    check_documents(texts, field)
    windows = estimated_windows(texts, max_length, queries=(query,))
    for most, name in ((max_request_windows, "max_request_windows"), (max_queue_pairs, "queue")):
        if most is not None and windows > most:
            raise ServiceError(
                413,
                "too_much_text",
                f"{field}: about {windows} windows of text, the limit is {most} "
                f"({name}; a window is {max_length} tokens: ~{max_length * 4} characters of "
                "English text, fewer of punctuation or CJK)",
                field=field,
            )
    return windows


def check_echo(texts: Iterable[str], limit: int, field: str) -> None:
    """413 naming ``field`` when ``texts`` hold more than ``limit`` UTF-8 bytes to send back
    (an answer the client may never read stays in memory until it is cut)."""
    size = 0
    for text in texts:
        size += len(text.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise ServiceError(
                413,
                "too_much_echo",
                f"{field}: more than {limit} bytes of text to send back (max_echo_bytes)",
                field=field,
            )


def check_queue_wait(reranker: Reranker, windows: int, max_queue_wait: float | None) -> None:
    """Refuse at once (429 with ``Retry-After``) a request that would wait longer than
    ``max_queue_wait`` seconds: the work queued and running plus its own ``windows``, over the
    engine's measured throughput. Shedding early beats answering after 25 s."""
    if max_queue_wait is None:
        return
    wait = reranker.estimated_wait(windows)
    if wait is None or wait <= max_queue_wait:
        return
    retry = max(1, math.ceil(wait - max_queue_wait))
    raise ServiceError(
        429,
        "overloaded",
        f"overloaded: about {wait:.1f} s of work is waiting, the limit is {max_queue_wait:g} s; "
        f"retry after {retry} s",
        headers={"Retry-After": str(retry)},
    )


class ReadinessProbe:
    """Scores one tiny pair after a failed forward pass (at most every
    :data:`PROBE_INTERVAL_SECONDS`), so the service becomes ready again by itself rather than
    waiting for a user's request to succeed."""

    def __init__(self, reranker: Reranker) -> None:
        self.reranker = reranker
        self._probed_at = -math.inf

    @property
    def healthy(self) -> bool:
        """The worker runs and its recent rounds of forward passes did not all fail."""
        health = self.reranker.health()
        return health.alive and health.failed_rounds < UNHEALTHY_AFTER_FAILURES

    async def __call__(self) -> None:
        health = self.reranker.health()
        now = time.monotonic()
        if not health.alive or health.last_forward_ok is not False:
            return
        if now - self._probed_at < PROBE_INTERVAL_SECONDS:
            return
        self._probed_at = now
        try:
            await self.reranker.aprobe()
        except Exception as exc:
            logger.warning("readiness probe failed: %s", type(exc).__name__)
