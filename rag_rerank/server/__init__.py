"""The HTTP service (``pip install "rag-rerank[server]"``): ``create_app`` and ``rag-rerank serve``.

Routes: ``POST /rerank`` (text-embeddings-inference shape), ``POST /v1/rerank`` and ``POST
/v2/rerank`` (Cohere / Jina shapes), ``GET /health``, ``GET /ready``, ``GET /metrics``
(Prometheus), ``GET /info``, ``GET /`` (a reranking console page), ``/docs`` and
``/openapi.json``. One server may serve several models (``create_app({"name": reranker, ...})``).
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'rag_rerank.server needs FastAPI and uvicorn: pip install "rag-rerank[server]"'
    ) from exc

from ..api import ServerOptions
from .app import create_app
from .service import RerankService

__all__ = ["RerankService", "ServerOptions", "create_app"]
