"""The reranker core: where torch lives.

``device`` picks device and precision, ``model`` loads a cross-encoder and runs its forward pass,
``batching`` plans forward passes (pure), ``windows`` cuts long documents into token windows,
``engine`` micro-batches concurrent callers on one worker, and ``reranker`` is the public
:class:`Reranker` on top of them.
"""

from .reranker import Reranker

__all__ = ["Reranker"]
