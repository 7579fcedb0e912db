"""Scale out on Ray (``pip install "rag-rerank[ray]"``): Ray Serve replicas for the HTTP service
and Ray Data for batch reranking.

- :func:`serve_app`: a Ray Serve application whose HTTP ingress is the same FastAPI app as
  ``rag-rerank serve`` (one reranker per replica); its deployment handle has ``rerank``,
  ``score`` and ``rerank_many``.
- :func:`rerank_dataset`: scores for every row of a Ray Dataset, one model load per worker.
- :func:`connect`: start a local Ray instance or join a cluster, failing fast when the address
  cannot be reached.

Importing this package loads no Ray; the names load on first use and raise ``ImportError``
naming the extra when Ray is not installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data import rerank_dataset
    from .runtime import connect
    from .serve import RerankDeployment, serve_app

__all__ = ["RerankDeployment", "connect", "rerank_dataset", "serve_app"]

_WHERE = {
    "connect": ".runtime",
    "rerank_dataset": ".data",
    "RerankDeployment": ".serve",
    "serve_app": ".serve",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name], __name__), name)
