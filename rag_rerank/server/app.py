"""The FastAPI application: TEI- and Cohere-shaped /rerank over one or several rerankers, each
with its own engine (several models: :mod:`.registry`, :mod:`.models`, :mod:`.shadow`)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.types import Receive

from .. import __version__
from ..api import RerankResult, check_positive_int, resolve_threshold
from ..core import Reranker
from ..errors import InvalidInputError, NonFiniteScoreError
from .errors import RETRY_AFTER_SECONDS, ClientDisconnected, ServiceError, install_error_handlers
from .metrics import CONTENT_TYPE, Metrics
from .middleware import ARRIVED_KEY, AuthMiddleware, BodyLimitMiddleware, MetricsMiddleware
from .models import MODEL_HEADER, ModelRouter
from .registry import ServiceRegistry
from .schemas import (
    CleanRequest,
    CleanResponse,
    CohereRerankRequest,
    CohereRerankResponse,
    CohereV2RerankRequest,
    CohereV2RerankResponse,
    ErrorResponse,
    InfoResponse,
    StatusResponse,
    TEIRank,
    TEIRerankRequest,
)
from .shadow import DEFAULT_SHADOW_QUEUE, ShadowScorer

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_DOCUMENTS", "RerankService", "create_app"]

logger = logging.getLogger("rag_rerank.server")

DEFAULT_MAX_DOCUMENTS = 1000
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        401: "Missing or wrong API key.",
        404: "The request names a model the server does not serve (the message lists them).",
        413: "Body over the byte limit, or more documents than allowed.",
        422: "Bad JSON, empty query or document list, non-string items, unknown fields.",
        429: "Queue full; retry after Retry-After seconds.",
        500: "The model returned a non-finite score for a document of this request.",
        503: "The worker is not running, or the server is shutting down.",
    }.items()
}


class RerankService:
    """What the routes share for one model: the reranker, the limits, the metrics, the draining
    flag and, when another model shadows it, the shadow scorer.

    One per served model, in the :class:`~rag_rerank.server.registry.ServiceRegistry` that is
    ``app.state.service``.
    """

    def __init__(
        self,
        reranker: Reranker,
        *,
        max_documents: int,
        max_body_bytes: int,
        name: str | None = None,
        metrics: Metrics | None = None,
        shadow: ShadowScorer | None = None,
    ) -> None:
        self.reranker = reranker
        self.name = reranker.model_name if name is None else name
        self.max_documents = max_documents
        self.max_body_bytes = max_body_bytes
        self.metrics = Metrics() if metrics is None else metrics
        self.shadow = shadow
        self.draining = False
        self._drain_started = float("inf")
        # TEI's truncate=true: a view on the same model that scores only the first window.
        self._truncating = reranker.with_options(long_documents="truncate", show_progress=False)
        self._windows: dict[int, Reranker] = {}  # v2's max_tokens_per_doc, one view per size

    @property
    def alive(self) -> bool:
        """The reranker's worker runs."""
        return self.reranker.health().alive

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
    ) -> list[RerankResult]:
        """Rank ``texts``; cancel the queued pairs if the client disconnects first.

        ``truncate``: ``True`` scores only each document's first window; a number, only its
        first window of that many tokens. With a shadow scorer, the full ranking also goes to it.
        """
        if request.scope.get(ARRIVED_KEY, math.inf) >= self._drain_started:
            raise ServiceError(
                503,
                "shutting_down",
                "the server is shutting down; retry on another instance",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        limit = self.max_documents
        capacity = self.reranker.options.max_queue_pairs
        if len(texts) > limit:
            raise ServiceError(
                413,
                "too_many_documents",
                f"{field}: {len(texts)} documents, the limit is {limit} per request",
                field=field,
            )
        if capacity is not None and len(texts) > capacity:
            raise ServiceError(
                413,
                "too_many_documents",
                f"{field}: {len(texts)} documents, the queue holds at most {capacity} pairs",
                field=field,
            )
        reranker = self._view(truncate)
        start = time.perf_counter()
        try:
            if self.shadow is None:
                results = await _unless_disconnected(
                    request.receive,
                    reranker.arerank(query, texts, top_n=top_n, threshold=threshold),
                )
            else:  # the shadow compares full rankings: select here rather than in the core
                cutoff = resolve_threshold(threshold, reranker.calibration)
                ranked = await _unless_disconnected(request.receive, reranker.arerank(query, texts))
                results = [r for r in ranked if cutoff is None or r.score >= cutoff][:top_n]
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
            max_input_length=reranker.max_length,
            max_batch_tokens=stats.batch_tokens,
            max_client_batch_size=min(self.max_documents, stats.max_queue_pairs or 1 << 62),
            max_body_bytes=self.max_body_bytes,
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


def create_app(
    reranker: Reranker | Mapping[str, Reranker],
    *,
    api_key: str | None = None,
    max_documents: int = DEFAULT_MAX_DOCUMENTS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    cors_origins: Sequence[str] | None = None,
    split: Mapping[str, float] | None = None,
    shadow: str | None = None,
    shadow_queue: int = DEFAULT_SHADOW_QUEUE,
) -> FastAPI:
    """Build the HTTP service around in-process :class:`~rag_rerank.Reranker` s.

    Args:
        reranker: The reranker to serve, or several by name (``{"default": rr, "candidate":
            rr2}``; the first is the default model). Each engine batches concurrent requests
            together; its ``max_queue_pairs`` bounds its queue (429 when full). The caller keeps
            ownership: the app never closes them.
        api_key: When set, every route but ``/health`` needs ``Authorization: Bearer <key>``
            (or HTTP Basic with the key as the password, for browsers).
        max_documents: Most documents in one request (413 above it).
        max_body_bytes: Largest request body in bytes (413 before parsing above it).
        cors_origins: Origins allowed to call the API from browsers; ``None`` disables CORS.
        split: Weights by model name for requests that name no model (``{"default": 90,
            "candidate": 10}``): sticky per ``X-Rerank-Key`` header, random without one.
        shadow: A model name: it also scores every request another model serves, off the
            request's path; ``/metrics`` and ``/info`` compare the rankings.
        shadow_queue: Shadow requests waiting or running at once; more are dropped (counted).

    Returns:
        The FastAPI app; its :class:`~rag_rerank.server.registry.ServiceRegistry` is
        ``app.state.service``.

    Raises:
        InvalidInputError: A bad argument, or a ``split`` name or ``shadow`` that is not served.

    Example:
        >>> app = create_app(Reranker("BAAI/bge-reranker-v2-m3"))  # doctest: +SKIP
        >>> uvicorn.run(app, host="127.0.0.1", port=8080)  # doctest: +SKIP
    """
    models = {reranker.model_name: reranker} if isinstance(reranker, Reranker) else reranker
    if not isinstance(models, Mapping) or not models:
        raise InvalidInputError("reranker", "must be a Reranker or a mapping of names to them")
    for name, served in models.items():
        if not isinstance(served, Reranker):
            raise InvalidInputError(
                f"reranker[{name!r}]", f"must be a Reranker, got {type(served).__name__}"
            )
    check_positive_int(shadow_queue, "shadow_queue")
    check_positive_int(max_documents, "max_documents")
    check_positive_int(max_body_bytes, "max_body_bytes")
    if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
        raise InvalidInputError("api_key", "must be a non-empty string or None")
    if cors_origins is not None and (
        isinstance(cors_origins, str) or not all(isinstance(o, str) for o in cors_origins)
    ):
        raise InvalidInputError("cors_origins", "must be a list of origin strings or None")

    router = ModelRouter(models, split=split, shadow=shadow)  # every name checked first
    shared_metrics = Metrics()
    scorer = (
        None if shadow is None else ShadowScorer(shadow, models[shadow], max_pending=shadow_queue)
    )
    services = {
        name: RerankService(
            served,
            max_documents=max_documents,
            max_body_bytes=max_body_bytes,
            name=name,
            metrics=shared_metrics,
            shadow=None if name == shadow else scorer,
        )
        for name, served in models.items()
    }
    service = ServiceRegistry(services, router, shared_metrics, scorer)
    page = resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")
    app = FastAPI(
        title="rag-rerank",
        version=__version__,
        description="Cross-encoder reranking: TEI-compatible `/rerank` and Cohere/Jina-compatible "
        "`/v1/rerank` and `/v2/rerank`, micro-batched across clients, one engine per model.",
    )
    app.state.service = service
    install_error_handlers(app)
    expose = {"Access-Control-Expose-Headers": MODEL_HEADER}

    def served_by(model: RerankService) -> dict[str, str]:
        return {**expose, MODEL_HEADER: model.name}

    @app.post(
        "/rerank",
        response_model=list[TEIRank],
        response_model_exclude_none=True,
        responses=_ERRORS,
        summary="Rerank texts (text-embeddings-inference shape)",
    )
    async def rerank_tei(body: TEIRerankRequest, request: Request) -> JSONResponse:
        model = service.service(body.model, request)
        results = await model.rerank(
            request,
            body.query,
            body.texts,
            field="texts",
            truncate=body.truncate,
            top_n=None,
            threshold=body.score_threshold,
        )
        ranks = []
        for r in results:
            rank: dict[str, Any] = {
                "index": r.index,
                "score": r.raw_score if body.raw_scores else r.score,
            }
            if body.return_text:
                rank["text"] = r.document
            ranks.append(rank)
        return JSONResponse(ranks, headers=served_by(model))

    @app.post(
        "/v1/rerank",
        response_model=CohereRerankResponse,
        response_model_exclude_none=True,
        responses=_ERRORS,
        summary="Rerank documents (Cohere / Jina shape)",
    )
    async def rerank_cohere(body: CohereRerankRequest, request: Request) -> JSONResponse:
        texts = body.texts()
        model = service.service(body.model, request)
        results = await model.rerank(
            request,
            body.query,
            texts,
            field="documents",
            truncate=None,
            top_n=body.top_n,
            threshold=body.score_threshold,
        )
        items = []
        for r in results:
            item: dict[str, Any] = {"index": r.index, "relevance_score": r.score}
            if body.return_documents:
                item["document"] = {"text": r.document}
            items.append(item)
        return JSONResponse(
            {
                "id": uuid.uuid4().hex,
                "results": items,
                "model": model.name,
                "usage": {"documents": len(texts), "search_units": 1},
                "meta": {"billed_units": {"search_units": 1}},
            },
            headers=served_by(model),
        )

    @app.post(
        "/v2/rerank",
        response_model=CohereV2RerankResponse,
        responses=_ERRORS,
        summary="Rerank documents (Cohere API v2 shape, as cohere.ClientV2 sends it)",
    )
    async def rerank_cohere_v2(body: CohereV2RerankRequest, request: Request) -> JSONResponse:
        model = service.service(body.model, request)
        results = await model.rerank(
            request,
            body.query,
            body.documents,
            field="documents",
            truncate=body.max_tokens_per_doc,
            top_n=body.top_n,
            threshold=None,
        )
        return JSONResponse(
            {
                "id": uuid.uuid4().hex,
                "results": [{"index": r.index, "relevance_score": r.score} for r in results],
                "model": model.name,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
            },
            headers=served_by(model),
        )

    @app.get("/health", response_model=StatusResponse, responses={503: {"model": ErrorResponse}})
    async def health() -> JSONResponse:
        """200 while the engine's worker runs; 503 once it stopped or died."""
        if service.alive:
            return JSONResponse({"status": "ok"})
        return JSONResponse(
            {"error": "the reranker worker is not running", "error_type": "unavailable"},
            status_code=503,
        )

    @app.get("/ready", response_model=StatusResponse, responses={503: {"model": ErrorResponse}})
    async def ready() -> JSONResponse:
        """200 when the model is loaded, its last forward pass succeeded and no shutdown began."""
        reason = service.not_ready_reason()
        if reason is None:
            return JSONResponse({"status": "ready"})
        return JSONResponse(
            {"error": reason, "error_type": "unavailable"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    @app.get("/info", response_model=InfoResponse)
    async def info() -> InfoResponse:
        """The model, device, precision, window length and limits."""
        return service.info()

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Prometheus metrics."""
        return PlainTextResponse(service.render_metrics(), media_type=CONTENT_TYPE)

    @app.post(
        "/clean",
        response_model=CleanResponse,
        responses={k: v for k, v in _ERRORS.items() if k in (401, 413, 422)},
        summary="The texts as the server scores them (after its --clean)",
    )
    async def clean(body: CleanRequest) -> CleanResponse:
        """Each text after the server's cleaning (``--clean html``); unchanged without it. The web
        page uses it to show what the model read."""
        if len(body.texts) > max_documents:
            raise ServiceError(
                413,
                "too_many_documents",
                f"texts: {len(body.texts)} documents, the limit is {max_documents}",
                field="texts",
            )
        default = service.reranker
        return CleanResponse(texts=default.cleaned(body.texts), clean=default.options.clean)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def console() -> HTMLResponse:
        return HTMLResponse(page)

    # add_middleware wraps: the last one added runs first.
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    if api_key is not None:
        app.add_middleware(AuthMiddleware, api_key=api_key)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    known = frozenset(getattr(route, "path", "") for route in app.routes)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics, known_paths=known)
    return app
