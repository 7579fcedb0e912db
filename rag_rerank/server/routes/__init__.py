"""The routes, one router per API shape: :mod:`.tei` (``POST /rerank``), :mod:`.cohere`
(``POST /v1/rerank`` and ``/v2/rerank``) and :mod:`.operations` (``/health``, ``/ready``,
``/info``, ``/metrics``, ``/clean`` and the page at ``/``).

Each route is a few lines: it finds the served model (:class:`~..registry.ServiceRegistry`), lets
its :class:`~..service.RerankService` rank, and builds the body with the response schema's
``from_results``. Request bodies are parsed off the event loop (:class:`~..bodies.OffLoopRoute`).
"""

from __future__ import annotations

from .cohere import router as cohere
from .operations import router as operations
from .tei import router as tei

__all__ = ["ROUTERS"]

ROUTERS = (tei, cohere, operations)
"""Every router, in the order of the OpenAPI document."""
