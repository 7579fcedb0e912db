"""Fine-tune or distil a cross-encoder reranker on your own corpus, offline.

:func:`train` builds training pairs from a corpus (or reads labelled pairs, or a teacher's
logits), trains with sentence-transformers' CrossEncoderTrainer and its losses, checkpoints as it
goes, and compares the vector store's order with the trained reranker's on held-out queries.
Needs the ``train`` extra: ``pip install 'rag-rerank[train]'``.

Example::

    from rag_rerank import Reranker
    from rag_rerank.training import TrainingOptions, train

    report = train("corpus.jsonl", base="./all-MiniLM-L6-v2", out="./my-reranker", steps=300)
    # or: train(..., options=TrainingOptions(steps=300, seed=1))
    print(report.summary())
    reranker = Reranker("./my-reranker")
"""

from __future__ import annotations

from ..api.training import LOSSES, TrainingOptions
from .corpus import Passage, load_passages
from .pairs import TrainingQuery, make_queries
from .report import HeldOutEvaluation, TrainingReport
from .trainer import last_checkpoint, train

__all__ = [
    "LOSSES",
    "HeldOutEvaluation",
    "Passage",
    "TrainingOptions",
    "TrainingQuery",
    "TrainingReport",
    "last_checkpoint",
    "load_passages",
    "make_queries",
    "train",
]
