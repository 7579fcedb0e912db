"""One served model's share of the HTTP service: :class:`RerankService` holds its reranker, its
limits, its readiness probe and its draining flag, and runs a request's ranking (cancelled when
the client goes away)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Coroutine
from typing import Any

from fastapi import Request
from starlette.types import Receive

from .. import __version__
from ..api import RerankResult, ServerOptions, cut_ranked, prune_options, resolve_threshold
from ..core import Reranker
from ..errors import NonFiniteScoreError
from .errors import RETRY_AFTER_SECONDS, ClientDisconnected, ServiceError
from .guards import ReadinessProbe, check_queue_wait, check_request_work
from .metrics import Metrics
from .middleware import ARRIVED_KEY
from .shadow import ShadowScorer
from .status import InfoResponse

__all__ = ["RerankService"]

logger = logging.getLogger("rag_rerank.server")


class RerankService:
    """What the routes share for one model: the reranker, the limits, the metrics, the draining
    flag and, when another model shadows it, the shadow scorer.

    One per served model, in the :class:`~rag_rerank.server.registry.ServiceRegistry` that is
    ``app.state.service``.
    """

    def __init__(
        self,
        reranker: Reranker,
        options: ServerOptions | None = None,
        *,
        name: str | None = None,
        metrics: Metrics | None = None,
        shadow: ShadowScorer | None = None,
    ) -> None:
        self.reranker = reranker
        self.name = reranker.model_name if name is None else name
        self.settings = options or ServerOptions()
        self.metrics = Metrics() if metrics is None else metrics
        self.shadow = shadow
        self.draining = False
        self._drain_started = float("inf")
        self.probe = ReadinessProbe(reranker)  # awaited by /ready
        # TEI's truncate=true: a view on the same model that scores only the first window.
        self._truncating = reranker.with_options(long_documents="truncate", show_progress=False)
        self._windows: dict[int, Reranker] = {}  # v2's max_tokens_per_doc, one view per size

    @property
    def alive(self) -> bool:
        """The reranker's worker runs and its recent forward passes did not all fail."""
        return self.probe.healthy

    @property
    def ready(self) -> bool:
        """Alive, not shutting down, and the last forward pass (if any) succeeded."""
        return self.reranker.health().ready and not self.draining

    def not_ready_reason(self) -> str | None:
        """Why /ready answers 503, in words; ``None`` when it answers 200."""
        reason = self.reranker.health().reason
        if reason is None and self.draining:
            return "shutting down"
        return reason

    @property
    def busy(self) -> bool:
        """Requests are being served or pairs are queued."""
        return self.metrics.in_flight > 0 or self.reranker.stats().queued_pairs > 0

    def start_draining(self) -> None:
        """Turn /ready to 503 and refuse new work with 503; requests already in go on."""
        self._drain_started = min(self._drain_started, time.monotonic())
        self.draining = True

    async def rerank(
        self,
        request: Request,
        query: str,
        texts: list[str],
        *,
        field: str,
        truncate: bool | int | None,
        top_n: int | None,
        threshold: float | str | None,
        prune: object = None,
    ) -> list[RerankResult]:
        """Rank ``texts``; cancel the queued pairs if the client disconnects first.

        ``truncate``: ``True`` scores only each document's first window; a number, only its
        first window of that many tokens. ``prune``: as :meth:`Reranker.rerank`'s. With a shadow
        scorer, the full ranking also goes to it.
        """
        if request.scope.get(ARRIVED_KEY, math.inf) >= self._drain_started:
            raise ServiceError(
                503,
                "shutting_down",
                "the server is shutting down; retry on another instance",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        limit = self.settings.max_documents
        capacity = self.reranker.options.max_queue_pairs
        if len(texts) > limit:
            raise ServiceError(
                413,
                "too_many_documents",
                f"{field}: {len(texts)} documents, the limit is {limit} per request",
                field=field,
            )
        windows = check_request_work(
            query,
            texts,
            field,
            max_length=self.reranker.max_length,
            max_request_windows=self.settings.max_request_windows,
            max_queue_pairs=capacity,
        )
        check_queue_wait(self.reranker, windows, self.settings.max_queue_wait)
        reranker = self._view(truncate)
        pruning = prune_options(prune)  # a bad one fails before any work
        start = time.perf_counter()
        try:
            if self.shadow is None:
                results = await self._within_deadline(
                    request.receive,
                    reranker.arerank(query, texts, top_n=top_n, threshold=threshold, prune=pruning),
                )
            else:  # the shadow compares full rankings: select here rather than in the core
                cutoff = resolve_threshold(threshold, reranker.calibration)
                ranked = await self._within_deadline(
                    request.receive, reranker.arerank(query, texts)
                )
                results = cut_ranked(ranked, top_n, cutoff)
                if pruning is not None:
                    pruned = reranker.aprune(query, results, pruning)
                    results = await _unless_disconnected(request.receive, pruned)
        except NonFiniteScoreError as exc:
            logger.error("non-finite score for document %d of a request", exc.pair_index)
            raise ServiceError(
                500,
                "non_finite_score",
                f"{field}[{exc.pair_index}]: the model returned a non-finite score ({exc.value})",
                field=f"{field}[{exc.pair_index}]",
            ) from exc
        if self.shadow is not None:
            order = [r.index for r in ranked]
            self.shadow.submit(self.name, query, texts, order, time.perf_counter() - start)
        scores = [r.score for r in results]
        self.metrics.observe_results(scores, threshold=threshold, model=self.name)
        return results

    async def _within_deadline(
        self, receive: Receive, work: Coroutine[Any, Any, list[RerankResult]]
    ) -> list[RerankResult]:
        """``work``'s results, or 504 after ``request_timeout`` seconds: cancelling it drops the
        request's queued and remaining batches from the engine."""
        try:
            return await asyncio.wait_for(
                _unless_disconnected(receive, work), timeout=self.settings.request_timeout
            )
        except TimeoutError:
            raise ServiceError(
                504,
                "timeout",
                f"the request took longer than {self.settings.request_timeout:g} s "
                "(request_timeout); its work was cancelled",
            ) from None

    def _view(self, truncate: bool | int | None) -> Reranker:
        if truncate is True:
            return self._truncating
        if not truncate:
            return self.reranker
        # A window holds the query and the special tokens too: 16 tokens at the least.
        window = max(16, min(truncate, self.reranker.max_length))
        if window not in self._windows:
            self._windows[window] = self._truncating.with_options(max_length=window)
        return self._windows[window]

    def info(self) -> InfoResponse:
        """The model and the limits."""
        reranker = self.reranker
        stats = reranker.stats()
        return InfoResponse(
            model_id=reranker.model_name,
            device=str(reranker.device),
            model_dtype=str(reranker.dtype).removeprefix("torch."),
            precision=reranker.precision,
            max_input_length=reranker.max_length,
            max_batch_tokens=stats.batch_tokens,
            max_client_batch_size=min(
                self.settings.max_documents, stats.max_queue_pairs or 1 << 62
            ),
            max_body_bytes=self.settings.max_body_bytes,
            max_queue_pairs=stats.max_queue_pairs,
            long_documents=reranker.long_documents,
            version=__version__,
            cache=None if reranker.cache is None else reranker.cache.description,
            clean=reranker.options.clean,
        )


async def _until_disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _unless_disconnected(
    receive: Receive, work: Coroutine[Any, Any, list[RerankResult]]
) -> list[RerankResult]:
    # Cancelling the task cancels the engine future, so pairs not yet started leave the queue.
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_disconnected(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
        watcher.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    logger.info("client disconnected; its queued pairs were cancelled")
    raise ClientDisconnected
