"""The demo reranker ``rag-rerank demo --train`` builds when no trained reranker can be
downloaded: the offline all-MiniLM-L6-v2 encoder with a one-logit head, trained on the demo
corpus for a few minutes on a CPU and cached for the next run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .fixture import build_on_demo_corpus
from .report import REPORT_FILE

__all__ = ["DEMO_SETTINGS", "build_demo_reranker", "cache_folder", "describe"]

DEMO_SETTINGS: dict[str, Any] = {
    "steps": 300,
    "batch_size": 32,
    "max_length": 128,
    "learning_rate": 5e-5,
    "seed": 0,
    "held_out": 0.1,
    "hard_negatives": 3,
}
"""300 steps of 32 pairs of 128 tokens from the whole MiniLM encoder (about 4 minutes on 2 CPU
cores)."""


def cache_folder() -> Path:
    """``$RAG_RERANK_CACHE``, else ``$XDG_CACHE_HOME/rag-rerank``, else ``~/.cache/rag-rerank``."""
    if os.environ.get("RAG_RERANK_CACHE"):
        return Path(os.environ["RAG_RERANK_CACHE"]).expanduser()
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "rag-rerank"


def build_demo_reranker(
    folder: str | os.PathLike[str] | None = None, *, device: str | None = None
) -> Path:
    """The demo reranker's folder (default: ``cache_folder()/demo-reranker``), trained first
    unless a finished one with :data:`DEMO_SETTINGS` is there."""
    target = Path(folder) if folder is not None else cache_folder() / "demo-reranker"
    settings = {**DEMO_SETTINGS, "device": device or "cpu"}
    return build_on_demo_corpus(target, settings, show_progress=True)


def describe(folder: str | os.PathLike[str]) -> str:
    """How a model folder was made, in one line, from its training report (or ``""``)."""
    path = Path(folder) / REPORT_FILE
    if not path.is_file():
        return ""
    report = json.loads(path.read_text(encoding="utf-8"))
    line = (
        f"trained by rag-rerank from {report['base']} on "
        f"{report['passages']} passages: {report['steps']} steps of {report['batch_size']} "
        f"pairs, seed {report['seed']}"
    )
    evaluation = report.get("evaluation")
    if evaluation:
        before, after = evaluation["vector_store"], evaluation["reranked"]
        line += (
            f"; held-out NDCG@10 {before['ndcg_at_10']:.3f} (vector store) -> "
            f"{after['ndcg_at_10']:.3f} (reranked)"
        )
    return line
