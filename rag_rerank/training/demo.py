"""The demo reranker ``rag-rerank demo --train`` builds when no trained reranker can be
downloaded: the offline all-MiniLM-L6-v2 encoder with a one-logit head, trained on the demo
corpus in under 3 minutes on 2 CPU cores and cached for the next run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..api.training import TrainingOptions
from ..core.folders import cache_folder
from .fixture import build_on_demo_corpus, is_built
from .report import REPORT_FILE
from .trainer import last_checkpoint

__all__ = [
    "DEMO_MINUTES",
    "DEMO_SETTINGS",
    "build_demo_reranker",
    "cache_folder",
    "demo_folder",
    "describe",
    "training_plan",
]

DEMO_SETTINGS: dict[str, Any] = {
    "steps": 120,
    "batch_size": 32,
    "max_length": 64,
    "learning_rate": 5e-5,
    "seed": 0,
    "held_out": 0.1,
    "hard_negatives": 2,
    "random_negatives": 2,
}
"""The demo reranker's :class:`~rag_rerank.training.TrainingOptions`, as keywords (the device
is the caller's): 120 steps of 32 pairs of at most 64 tokens (the demo's pairs are shorter)
from the whole MiniLM encoder, two hard and two random negatives per query: 40% of the work of
the 300 steps it took before. Measured on the demo corpus (held-out NDCG@10, vector store ->
reranked): 0.894 -> 0.965, and the answering passage first for 6 of the 7 demo questions
(vector store: 5). Tried and dropped: MiniLM's first 3 layers (150 steps) learned nothing
(0.894 -> 0.276); 100 steps with 3 hard negatives reached 0.930 but put one demo answer 9th; a
rate of 8e-5 reached 0.985 held out but put one demo answer 44th; 2e-4 stayed at the label
prior."""

DEMO_MINUTES = 3
"""What :data:`DEMO_SETTINGS` take at most on 2 CPU cores, for the opening line."""


def demo_folder() -> Path:
    """Where the demo reranker is cached: ``cache_folder()/demo-reranker``."""
    return cache_folder() / "demo-reranker"


def _options(device: str | None) -> TrainingOptions:
    return TrainingOptions.from_kwargs(**{**DEMO_SETTINGS, "device": device or "cpu"})


def training_plan(folder: str | os.PathLike[str] | None = None, device: str | None = None) -> str:
    """The line to print before :func:`build_demo_reranker` trains: what is trained, where it
    is cached, how long it takes and that Ctrl-C and a rerun resume; ``""`` when a finished
    demo reranker is already there."""
    target = Path(folder) if folder is not None else demo_folder()
    options = _options(device)
    if is_built(target, options):
        return ""
    checkpoint = last_checkpoint(target.with_name(target.name + ".building") / "model")
    resuming = f", resuming at step {checkpoint.name.split('-')[-1]}" if checkpoint else ""
    return (
        f"training the demo reranker once{resuming}: the offline all-MiniLM-L6-v2 encoder, "
        f"{options.steps} steps of {options.batch_size} pairs from the demo corpus, "
        f"up to {DEMO_MINUTES} minutes on 2 CPU cores; cached in {target}. "
        "Ctrl-C stops it, and `rag-rerank demo --train` again resumes."
    )


def build_demo_reranker(
    folder: str | os.PathLike[str] | None = None, *, device: str | None = None
) -> Path:
    """The demo reranker's folder (default: :func:`demo_folder`), trained first unless a
    finished one with :data:`DEMO_SETTINGS` is there; a run cut off by Ctrl-C resumes from its
    last checkpoint.

    Raises:
        KeyboardInterrupt: Ctrl-C while training; the checkpoints stay for the next call.
    """
    target = Path(folder) if folder is not None else demo_folder()
    return build_on_demo_corpus(target, _options(device), show_progress=True)


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
