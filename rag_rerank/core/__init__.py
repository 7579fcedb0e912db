"""The reranker core: where torch lives.

``device`` picks device and precision; ``loading`` holds the steps every model kind shares and
``kinds`` picks the kind a name loads as (``model``: encoder cross-encoders, ``llm``: LLM
rerankers, ``head``: a pruning head); ``batching`` plans forward passes (pure), ``windows`` cuts
long documents into token windows; ``engine`` micro-batches concurrent callers on one worker
(with ``admission``: what a request costs, ``jobs``, ``passes``: the forward passes, ``stalls``:
the watchdog); ``reranker`` is the public :class:`Reranker` on top of them (with ``scoring``:
cache and submission, ``setup``, ``shared``: the process-wide instances). ``hub`` probes whether
the model hub can be reached.

Importing this package loads no torch: :class:`Reranker` is loaded on first use (PEP 562), so
torch-free modules of the core (``hub``) import fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .reranker import Reranker

__all__ = ["Reranker"]


def __getattr__(name: str) -> Any:
    if name != "Reranker":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = importlib.import_module(".reranker", __name__).Reranker
    globals()[name] = value  # later lookups skip this function
    return value
