"""What bounds one request's work before it is queued, and the readiness probe after a failure."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence

from ..api import check_documents
from ..core import Reranker
from ..core.engine import estimated_windows
from .errors import ServiceError

__all__ = [
    "DEFAULT_MAX_ECHO_BYTES",
    "DEFAULT_MAX_REQUEST_WINDOWS",
    "PROBE_INTERVAL_SECONDS",
    "UNHEALTHY_AFTER_FAILURES",
    "ReadinessProbe",
    "check_request_work",
]

logger = logging.getLogger("rag_rerank.server")

DEFAULT_MAX_REQUEST_WINDOWS = 2048
"""Most text one request may send, in windows (:func:`~rag_rerank.core.engine.estimated_windows`
for 512-token windows: 1,000 documents of up to 4 KB, or about 4 MB in one document)."""

DEFAULT_MAX_ECHO_BYTES = 2 * 1024 * 1024
"""Most text one response sends back, in UTF-8 bytes (``/clean``, ``return_text``,
``return_documents``): an answer a client never reads stays in memory until it is cut."""

UNHEALTHY_AFTER_FAILURES = 3
"""``/health`` turns 503 after this many rounds of forward passes failed in a row."""

PROBE_INTERVAL_SECONDS = 1.0
"""After a failed forward pass, ``/ready`` probes the model at most this often."""


def check_request_work(
    texts: Sequence[str],
    field: str,
    *,
    max_length: int,
    max_request_windows: int,
    max_queue_pairs: int | None,
) -> None:
    """Refuse, before any tokenizing, texts the tokenizer cannot take (422 naming the item,
    via :class:`~rag_rerank.InvalidInputError`) and more text than one request may send or the
    queue could ever hold (413 naming the limit)."""
    check_documents(texts, field)
    windows = estimated_windows(texts, max_length)
    for most, name in ((max_request_windows, "max_request_windows"), (max_queue_pairs, "queue")):
        if most is not None and windows > most:
            raise ServiceError(
                413,
                "too_much_text",
                f"{field}: about {windows} windows of text, the limit is {most} "
                f"({name}; a window is ~{max_length * 4} characters)",
                field=field,
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
        engine = self.reranker.engine
        return engine.alive and engine.stats.failed_rounds_in_a_row < UNHEALTHY_AFTER_FAILURES

    async def __call__(self) -> None:
        health = self.reranker.health()
        now = time.monotonic()
        if not health.alive or health.last_forward_ok is not False:
            return
        if now - self._probed_at < PROBE_INTERVAL_SECONDS:
            return
        self._probed_at = now
        engine = self.reranker.engine
        try:  # straight to the engine: a cached score would prove nothing
            await asyncio.wrap_future(
                engine.submit(["probe"], ["a probe passage"], max_length=self.reranker.max_length)
            )
        except Exception as exc:
            logger.warning("readiness probe failed: %s", type(exc).__name__)
