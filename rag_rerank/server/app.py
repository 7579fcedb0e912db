"""The FastAPI application: TEI- and Cohere-shaped /rerank over one or several rerankers, each
with its own engine. This module is the wiring: the services (:mod:`.service`; several models:
:mod:`.registry`, :mod:`.models`, :mod:`.shadow`), the routes (:mod:`.routes`), the error
handlers, the middleware and the docs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .. import __version__
from ..api import ServerOptions
from ..core import Reranker
from ..errors import InvalidInputError
from .docs import install_docs
from .errors import install_error_handlers
from .metrics import Metrics
from .middleware import (
    AuthMiddleware,
    BodyLimitMiddleware,
    HostMiddleware,
    JSONBodyMiddleware,
    MetricsMiddleware,
)
from .models import ModelRouter
from .registry import ServiceRegistry
from .routes import ROUTERS
from .service import RerankService
from .shadow import ShadowScorer

__all__ = ["create_app"]


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
    app = FastAPI(
        title="rag-rerank",
        version=__version__,
        description="Cross-encoder reranking: TEI-compatible `/rerank` and Cohere/Jina-compatible "
        "`/v1/rerank` and `/v2/rerank`, micro-batched across clients, one engine per model.",
        docs_url=None,  # install_docs: Swagger UI from the package, not a CDN
        redoc_url=None,
    )
    install_docs(app)
    app.state.service = service
    install_error_handlers(app)
    for routes in ROUTERS:
        app.include_router(routes)
    _add_middleware(app, options, service)
    return app


def _add_middleware(app: FastAPI, options: ServerOptions, service: ServiceRegistry) -> None:
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
    # FastAPI keeps an included router as one entry of app.routes: its paths come from ROUTERS.
    included = (route for routes in ROUTERS for route in routes.routes)
    known = frozenset(getattr(route, "path", "") for route in (*app.routes, *included))
    app.add_middleware(MetricsMiddleware, metrics=service.metrics, known_paths=known)
