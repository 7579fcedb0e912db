"""The FastAPI application: TEI- and Cohere-shaped /rerank over one or several rerankers (each
with its own engine), picked by name, by a traffic split or by default; shadow scoring beside."""

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
from .metrics import CONTENT_TYPE, EngineState, Metrics
from .middleware import ARRIVED_KEY, AuthMiddleware, BodyLimitMiddleware, MetricsMiddleware
from .models import KEY_HEADER, MODEL_HEADER, ModelRouter, UnknownModelError
from .schemas import (
    CleanRequest,
    CleanResponse,
    CohereRerankRequest,
    CohereRerankResponse,
    CohereV2RerankRequest,
    CohereV2RerankResponse,
    ErrorResponse,
    InfoResponse,
    ModelInfo,
    ShadowSummary,
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
    """What the routes share: the models, the limits, the metrics, the shadow scorer and the
    draining flag.

    Available as ``app.state.service``; ``reranker`` is the default model.
    """

    def __init__(
        self,
        models: ModelRouter[Reranker],
        *,
        max_documents: int,
        max_body_bytes: int,
        shadow_queue: int = DEFAULT_SHADOW_QUEUE,
    ) -> None:
        self.models = models
        self.reranker = models[models.default]
        self.max_documents = max_documents
        self.max_body_bytes = max_body_bytes
        self.metrics = Metrics()
        self.draining = False
        self._drain_started = float("inf")
        self.shadow = (
            None
            if models.shadow is None
            else ShadowScorer(models.shadow, models[models.shadow], max_pending=shadow_queue)
        )
        # Views of the same models (TEI's truncate=true, v2's max_tokens_per_doc), made once.
        self._views: dict[tuple[str, int | None], Reranker] = {}

    @property
    def alive(self) -> bool:
        """Every model's worker runs."""
        return all(r.health().alive for r in self.models.models.values())

    @property
    def ready(self) -> bool:
        """Alive, not shutting down, and each model's last forward pass (if any) succeeded."""
        return self.not_ready_reason() is None

    def not_ready_reason(self) -> str | None:
        """Why /ready answers 503, in words; ``None`` when it answers 200."""
        for name, reranker in self.models.models.items():
            reason = reranker.health().reason
            if reason is not None:
                return reason if len(self.models.names) == 1 else f"{name}: {reason}"
        return "shutting down" if self.draining else None

    @property
    def busy(self) -> bool:
        """Requests are being served or pairs are queued."""
        return self.metrics.in_flight > 0 or any(
            r.stats().queued_pairs > 0 for r in self.models.models.values()
        )

    def route(self, requested: str | None, request: Request) -> str:
        """The name of the model that serves ``request`` (which named ``requested``, or none).

        Raises:
            ServiceError: 404 when it names a model that is not served.
        """
        try:
            return self.models.route(requested, request.headers.get(KEY_HEADER))
        except UnknownModelError as exc:
            raise ServiceError(404, "model_not_found", str(exc), field="model") from None

    def view(self, model: str, truncate_at: int | None) -> Reranker:
        """``model``, or a view of it that scores only the first window of each document, of
        ``truncate_at`` tokens at most (``0``: the model's own window)."""
        reranker = self.models[model]
        if truncate_at is None:
            return reranker
        window = reranker.max_length
        if truncate_at:  # a window holds the query and special tokens too: 16 at the least
            window = max(16, min(truncate_at, reranker.max_length))
        key = (model, window)
        if key not in self._views:
            self._views[key] = reranker.with_options(
                long_documents="truncate", max_length=window, show_progress=False
            )
        return self._views[key]

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
        model: str,
        field: str,
        truncate: bool | int | None,
        top_n: int | None,
        threshold: float | str | None,
    ) -> list[RerankResult]:
        """Rank ``texts`` with ``model``; cancel the queued pairs if the client disconnects first.

        ``truncate``: ``True`` scores only each document's first window; a number, only its
        first window of that many tokens. With a shadow model, the full ranking is also handed
        to it (off this request's path) unless ``model`` is the shadow itself.
        """
        if request.scope.get(ARRIVED_KEY, math.inf) >= self._drain_started:
            raise ServiceError(
                503,
                "shutting_down",
                "the server is shutting down; retry on another instance",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        limit = self.max_documents
        capacity = self.models[model].options.max_queue_pairs
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
        if truncate is True:
            truncate_at: int | None = 0
        else:
            truncate_at = truncate or None
        reranker = self.view(model, truncate_at)
        shadowing = self.shadow is not None and model != self.shadow.name
        start = time.perf_counter()
        try:
            if shadowing:
                # The shadow needs the primary's full order: select here rather than in the core.
                cutoff = resolve_threshold(threshold, reranker.calibration)
                ranked = await _unless_disconnected(request.receive, reranker.arerank(query, texts))
                results = [r for r in ranked if cutoff is None or r.score >= cutoff][:top_n]
            else:
                results = await _unless_disconnected(
                    request.receive,
                    reranker.arerank(query, texts, top_n=top_n, threshold=threshold),
                )
        except NonFiniteScoreError as exc:
            logger.error("non-finite score for document %d of a request", exc.pair_index)
            raise ServiceError(
                500,
                "non_finite_score",
                f"{field}[{exc.pair_index}]: the model returned a non-finite score ({exc.value})",
                field=f"{field}[{exc.pair_index}]",
            ) from exc
        if shadowing and self.shadow is not None:
            order = [r.index for r in ranked]
            self.shadow.submit(model, query, texts, order, time.perf_counter() - start)
        self.metrics.observe_results([r.score for r in results], threshold=threshold, model=model)
        return results

    def engines(self) -> dict[str, EngineState]:
        """Each model's engine state, for ``/metrics``."""
        return {
            name: EngineState(r.stats(), r.health(), r.cache_stats())
            for name, r in self.models.models.items()
        }

    def info(self) -> InfoResponse:
        """The default model and the limits, every model, the split and the shadow summary."""
        reranker = self.reranker
        stats = reranker.stats()
        split = self.models.split
        models = []
        for name, served in self.models.models.items():
            served_stats = served.stats()
            models.append(
                ModelInfo(
                    name=name,
                    model_id=served.model_name,
                    device=str(served.device),
                    model_dtype=str(served.dtype).removeprefix("torch."),
                    max_input_length=served.max_length,
                    max_batch_tokens=served_stats.batch_tokens,
                    max_queue_pairs=served_stats.max_queue_pairs,
                    long_documents=served.long_documents,
                    default=name == self.models.default,
                    weight=None if split is None else split.weights.get(name, 0.0),
                )
            )
        return InfoResponse(
            models=models,
            split=None if split is None else split.weights,
            shadow=None
            if self.shadow is None
            else [ShadowSummary(**row) for row in self.shadow.summary()],
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
    default_model: str | None = None,
    split: Mapping[str, float] | None = None,
    shadow: str | None = None,
    shadow_queue: int = DEFAULT_SHADOW_QUEUE,
) -> FastAPI:
    """Build the HTTP service around in-process :class:`~rag_rerank.Reranker` s.

    Args:
        reranker: The reranker to serve, or several by name (``{"default": rr, "candidate":
            rr2}``, each with its own engine; the first is the default model). Each engine
            batches concurrent requests together; its ``max_queue_pairs`` bounds its queue (429
            when full). The caller keeps ownership: the app never closes them.
        api_key: When set, every route but ``/health`` needs ``Authorization: Bearer <key>``
            (or HTTP Basic with the key as the password, for browsers).
        max_documents: Most documents in one request (413 above it).
        max_body_bytes: Largest request body in bytes (413 before parsing above it).
        cors_origins: Origins allowed to call the API from browsers; ``None`` disables CORS.
        default_model: The model for requests that name none (without ``split``); default: the
            first.
        split: Weights by model name for requests that name no model (``{"default": 90,
            "candidate": 10}``): sticky per ``X-Rerank-Key`` header, random without one.
        shadow: A model name: it also scores every request another model serves, in the
            background, and ``/metrics`` and ``/info`` compare the two rankings.
        shadow_queue: Shadow requests waiting or running at once; more are dropped (counted).

    Returns:
        The FastAPI app; its :class:`RerankService` is ``app.state.service``.

    Raises:
        InvalidInputError: A bad argument, or ``default_model``, a ``split`` name or ``shadow``
            that is not a served model.

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
    check_positive_int(max_documents, "max_documents")
    check_positive_int(max_body_bytes, "max_body_bytes")
    check_positive_int(shadow_queue, "shadow_queue")
    if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
        raise InvalidInputError("api_key", "must be a non-empty string or None")
    if cors_origins is not None and (
        isinstance(cors_origins, str) or not all(isinstance(o, str) for o in cors_origins)
    ):
        raise InvalidInputError("cors_origins", "must be a list of origin strings or None")

    router = ModelRouter(models, default=default_model, split=split, shadow=shadow)
    service = RerankService(
        router,
        max_documents=max_documents,
        max_body_bytes=max_body_bytes,
        shadow_queue=shadow_queue,
    )
    page = resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")
    app = FastAPI(
        title="rag-rerank",
        version=__version__,
        description="Cross-encoder reranking: TEI-compatible `/rerank` and Cohere/Jina-compatible "
        "`/v1/rerank` and `/v2/rerank`, micro-batched across clients, one engine per model.",
    )
    app.state.service = service
    install_error_handlers(app)
    served_by = {"Access-Control-Expose-Headers": MODEL_HEADER}

    @app.post(
        "/rerank",
        response_model=list[TEIRank],
        response_model_exclude_none=True,
        responses=_ERRORS,
        summary="Rerank texts (text-embeddings-inference shape)",
    )
    async def rerank_tei(body: TEIRerankRequest, request: Request) -> JSONResponse:
        model = service.route(body.model, request)
        results = await service.rerank(
            request,
            body.query,
            body.texts,
            model=model,
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
        return JSONResponse(ranks, headers={**served_by, MODEL_HEADER: model})

    @app.post(
        "/v1/rerank",
        response_model=CohereRerankResponse,
        response_model_exclude_none=True,
        responses=_ERRORS,
        summary="Rerank documents (Cohere / Jina shape)",
    )
    async def rerank_cohere(body: CohereRerankRequest, request: Request) -> JSONResponse:
        texts = body.texts()
        model = service.route(body.model, request)
        results = await service.rerank(
            request,
            body.query,
            texts,
            model=model,
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
                "model": model,
                "usage": {"documents": len(texts), "search_units": 1},
                "meta": {"billed_units": {"search_units": 1}},
            },
            headers={**served_by, MODEL_HEADER: model},
        )

    @app.post(
        "/v2/rerank",
        response_model=CohereV2RerankResponse,
        responses=_ERRORS,
        summary="Rerank documents (Cohere API v2 shape, as cohere.ClientV2 sends it)",
    )
    async def rerank_cohere_v2(body: CohereV2RerankRequest, request: Request) -> JSONResponse:
        model = service.route(body.model, request)
        results = await service.rerank(
            request,
            body.query,
            body.documents,
            model=model,
            field="documents",
            truncate=body.max_tokens_per_doc,
            top_n=body.top_n,
            threshold=None,
        )
        return JSONResponse(
            {
                "id": uuid.uuid4().hex,
                "results": [{"index": r.index, "relevance_score": r.score} for r in results],
                "model": model,
                "meta": {
                    "api_version": {"version": "2"},
                    "billed_units": {"search_units": 1},
                },
            },
            headers={**served_by, MODEL_HEADER: model},
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
        text = service.metrics.render(service.engines(), ready=service.ready)
        if service.shadow is not None:
            text += "\n".join(service.shadow.render()) + "\n"
        return PlainTextResponse(text, media_type=CONTENT_TYPE)

    @app.post(
        "/clean",
        response_model=CleanResponse,
        responses={k: v for k, v in _ERRORS.items() if k in (401, 413, 422)},
        summary="The texts as the server scores them (after its --clean)",
    )
    async def clean(body: CleanRequest) -> CleanResponse:
        """Each text after the server's cleaning (``--clean html``); unchanged without it. The web
        page uses it to show what the model read."""
        if len(body.texts) > service.max_documents:
            raise ServiceError(
                413,
                "too_many_documents",
                f"texts: {len(body.texts)} documents, the limit is {service.max_documents}",
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
