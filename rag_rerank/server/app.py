"""The FastAPI application: TEI- and Cohere-shaped /rerank over one or several rerankers, each
with its own engine (:mod:`.service`; several models: :mod:`.registry`, :mod:`.models`,
:mod:`.shadow`)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from .. import __version__
from ..api import RerankResult, ServerOptions
from ..core import Reranker
from ..core.offload import run_off_loop
from ..errors import InvalidInputError
from .bodies import OffLoopRoute
from .docs import install_docs
from .errors import RETRY_AFTER_SECONDS, ServiceError, install_error_handlers
from .metrics import CONTENT_TYPE, Metrics
from .middleware import (
    AuthMiddleware,
    BodyLimitMiddleware,
    HostMiddleware,
    JSONBodyMiddleware,
    MetricsMiddleware,
    page_headers,
)
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
from .service import RerankService
from .shadow import ShadowScorer

__all__ = ["create_app"]

logger = logging.getLogger("rag_rerank.server")

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        401: "Missing or wrong API key.",
        400: "Host header not in the allowed hosts.",
        404: "The request names a model the server does not serve (the message lists them).",
        413: "Body over the byte limit, more documents or more windows of text than allowed, "
        "or more text to send back than max_echo_bytes.",
        422: "Bad JSON, empty query or document list, non-string items, unknown fields.",
        429: "Queue full or its estimated wait too long; retry after Retry-After seconds.",
        500: "The model failed on this request's batch or returned a non-finite score.",
        503: "The worker is not running or the model is hung, or the server is shutting down.",
        504: "The request ran past request_timeout; its work was cancelled.",
    }.items()
}


def _check_echo(texts: Iterable[str], limit: int, field: str) -> None:
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


def create_app(
    reranker: Reranker | Mapping[str, Reranker],
    options: ServerOptions | None = None,
    **settings: Any,
) -> FastAPI:
    """Build the HTTP service around in-process :class:`~rag_rerank.Reranker` s.

    Args:
        reranker: The reranker to serve, or several by name (``{"default": rr, "candidate":
            rr2}``; the first is the default model). Each engine batches concurrent requests
            together; its ``max_queue_pairs`` bounds its queue (429 when full). The caller keeps
            ownership: the app never closes them.
        options: The service's settings (default: :class:`~rag_rerank.ServerOptions`'
            defaults). The app reads ``api_key``, ``max_documents``, ``max_body_bytes``,
            ``cors_origins``, ``max_request_windows``, ``allowed_hosts``, ``split``, ``shadow``,
            ``shadow_queue``, ``max_echo_bytes``, ``request_timeout`` and ``max_queue_wait``
            (the address, the connection limits and the drain are for
            :func:`~rag_rerank.server.run.run_server`).
        **settings: :class:`~rag_rerank.ServerOptions` fields applied over ``options``
            (``create_app(rr, api_key="secret", max_documents=200)``).

    Returns:
        The FastAPI app; its :class:`~rag_rerank.server.registry.ServiceRegistry` is
        ``app.state.service``.

    Raises:
        InvalidInputTypeError: A keyword that is not a ServerOptions field (``field`` names it).
        InvalidInputError: A bad setting, or a ``split`` name or ``shadow`` that is not served.

    Example:
        >>> app = create_app(Reranker("BAAI/bge-reranker-v2-m3"))  # doctest: +SKIP
        >>> uvicorn.run(app, host="127.0.0.1", port=8080)  # doctest: +SKIP
    """
    options = ServerOptions.from_kwargs(options, **settings)
    models = {reranker.model_name: reranker} if isinstance(reranker, Reranker) else reranker
    if not isinstance(models, Mapping) or not models:
        raise InvalidInputError("reranker", "must be a Reranker or a mapping of names to them")
    for name, served in models.items():
        if not isinstance(served, Reranker):
            raise InvalidInputError(
                f"reranker[{name!r}]", f"must be a Reranker, got {type(served).__name__}"
            )
    shadow = options.shadow
    router = ModelRouter(models, split=options.split, shadow=shadow)  # every name checked first
    shared_metrics = Metrics()
    scorer = (
        None
        if shadow is None
        else ShadowScorer(shadow, models[shadow], max_pending=options.shadow_queue)
    )
    services = {
        name: RerankService(
            served,
            options,
            name=name,
            metrics=shared_metrics,
            shadow=None if name == shadow else scorer,
        )
        for name, served in models.items()
    }
    service = ServiceRegistry(services, router, shared_metrics, scorer)
    page = resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")
    security = page_headers(page)
    app = FastAPI(
        title="rag-rerank",
        version=__version__,
        description="Cross-encoder reranking: TEI-compatible `/rerank` and Cohere/Jina-compatible "
        "`/v1/rerank` and `/v2/rerank`, micro-batched across clients, one engine per model.",
        docs_url=None,  # install_docs: Swagger UI from the package, not a CDN
        redoc_url=None,
    )
    install_docs(app)
    app.router.route_class = OffLoopRoute  # large JSON bodies parsed off the event loop
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
            prune=body.prune,
        )
        if body.return_text:
            _check_echo((r.document for r in results), options.max_echo_bytes, "return_text")
        ranks = []
        for r in results:
            rank: dict[str, Any] = {
                "index": r.index,
                "score": r.raw_score if body.raw_scores else r.score,
            }
            if body.return_text:
                rank["text"] = r.document
            ranks.append({**rank, **_pruned(r)})
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
            prune=body.prune,
        )
        if body.return_documents:
            _check_echo((r.document for r in results), options.max_echo_bytes, "return_documents")
        items = []
        for r in results:
            item: dict[str, Any] = {"index": r.index, "relevance_score": r.score}
            if body.return_documents:
                item["document"] = {"text": r.document}
            items.append({**item, **_pruned(r)})
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
            prune=body.prune,
        )
        return JSONResponse(
            {
                "id": uuid.uuid4().hex,
                "results": [
                    {"index": r.index, "relevance_score": r.score, **_pruned(r)} for r in results
                ],
                "model": model.name,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
            },
            headers=served_by(model),
        )

    @app.get("/health", response_model=StatusResponse, responses={503: {"model": ErrorResponse}})
    async def health() -> JSONResponse:
        """200 while the engine's worker runs; 503 once it stopped or died, or when its last
        few rounds of forward passes all failed."""
        if service.alive:
            return JSONResponse({"status": "ok"})
        return JSONResponse(
            {
                "error": "the reranker worker is not running or keeps failing",
                "error_type": "unavailable",
            },
            status_code=503,
        )

    @app.get("/ready", response_model=StatusResponse, responses={503: {"model": ErrorResponse}})
    async def ready() -> JSONResponse:
        """200 when the model is loaded, its last forward pass succeeded and no shutdown began.
        After a failure it probes the model itself, so it recovers without user traffic."""
        await service.probe()
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
        if len(body.texts) > options.max_documents:
            raise ServiceError(
                413,
                "too_many_documents",
                f"texts: {len(body.texts)} documents, the limit is {options.max_documents}",
                field="texts",
            )
        _check_echo(body.texts, options.max_echo_bytes, "texts")  # cleaning never lengthens a text
        default = service.reranker
        size = sum(map(len, body.texts))
        texts = await run_off_loop(size, default.cleaned, body.texts, "texts")
        return CleanResponse(texts=texts, clean=default.options.clean)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def console() -> HTMLResponse:
        return HTMLResponse(page, headers=security)

    # add_middleware wraps: the last one added runs first.
    app.add_middleware(JSONBodyMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=options.max_body_bytes)
    if options.api_key is not None:
        app.add_middleware(AuthMiddleware, api_key=options.api_key)
    if options.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(options.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    if options.allowed_hosts is not None:
        app.add_middleware(HostMiddleware, allowed_hosts=list(options.allowed_hosts))
    known = frozenset(getattr(route, "path", "") for route in app.routes)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics, known_paths=known)
    return app


def _pruned(result: RerankResult) -> dict[str, Any]:
    """A result's ``pruned_text`` and ``kept_spans`` for the wire: none when not pruned."""
    data = result.to_dict()
    return {key: data[key] for key in ("pruned_text", "kept_spans") if key in data}
