"""The reranker core: where torch lives.

``device`` picks device and precision, ``model`` loads a cross-encoder and runs its forward pass,
``batching`` plans forward passes (pure), ``windows`` cuts long documents into token windows,
``engine`` micro-batches concurrent callers on one worker, and ``reranker`` is the public
:class:`Reranker` on top of them.

Importing this package loads no torch: :class:`Reranker` is loaded on first use (PEP 562), so
torch-free modules of the core (``hub``: whether the model hub can be reached) import fast.
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
