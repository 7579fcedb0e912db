"""After training: the held-out evaluation (vector store order vs the trained reranker) and the
model card written beside the weights."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..api.training import TrainingOptions
from ..evaluation.metrics import RankingMetrics, compute_metrics
from .dataset import PassageStore
from .pairs import TrainingQuery

__all__ = ["REPORT_FILE", "HeldOutEvaluation", "TrainingReport", "evaluate_held_out", "write_card"]

REPORT_FILE = "rag_rerank_training.json"
"""The training report saved beside the weights (what the model card says, as JSON)."""


@dataclass(frozen=True, slots=True)
class HeldOutEvaluation:
    """NDCG@10 and MRR@10 on the held-out queries, before and after reranking.

    Attributes:
        queries: Held-out queries evaluated.
        depth: Candidates retrieved per query from the vector store and reranked.
        vector_store: Metrics of the vector store's order.
        reranked: Metrics of the trained reranker's order of the same candidates.
    """

    queries: int
    depth: int
    vector_store: RankingMetrics
    reranked: RankingMetrics


@dataclass(frozen=True, slots=True)
class TrainingReport:
    """What :func:`~rag_rerank.training.train` made, and how.

    Attributes:
        out: The model folder (``Reranker(out)`` loads it).
        base: The model trained from.
        data: The corpus sources, and the labels file or teacher when given.
        passages: Passages in the corpus (with labelled documents added).
        train_queries: Queries trained on; ``pairs``: rows of the training dataset.
        held_out_queries: Queries kept for the evaluation.
        options: The run's settings, its ``loss`` resolved (``bce``, ``mse`` or
            ``margin-mse``); ``loss``, ``steps``, ``batch_size``, ``max_length``,
            ``learning_rate`` and ``seed`` read them too (``report.steps``).
        resumed_from: The checkpoint's step training resumed from (0: from the start).
        seconds: Wall time of the run.
        evaluation: The held-out evaluation, or ``None`` when nothing was held out.
    """

    out: str
    base: str
    data: dict[str, Any]
    passages: int
    train_queries: int
    pairs: int
    held_out_queries: int
    options: TrainingOptions
    resumed_from: int
    seconds: float
    evaluation: HeldOutEvaluation | None

    @property
    def loss(self) -> str:
        """The loss trained with: ``bce``, ``mse`` or ``margin-mse``."""
        return self.options.resolved_loss(teacher="teacher" in self.data)

    @property
    def steps(self) -> int:
        """``options.steps``."""
        return self.options.steps

    @property
    def batch_size(self) -> int:
        """``options.batch_size``."""
        return self.options.batch_size

    @property
    def max_length(self) -> int:
        """``options.max_length``."""
        return self.options.max_length

    @property
    def learning_rate(self) -> float:
        """``options.learning_rate``."""
        return self.options.learning_rate

    @property
    def seed(self) -> int:
        """``options.seed``."""
        return self.options.seed

    def to_dict(self) -> dict[str, Any]:
        """The report as :data:`REPORT_FILE` holds it: flat, the settings beside the counts."""
        fields = asdict(self)
        options, evaluation = fields.pop("options"), fields.pop("evaluation")
        return {**fields, **options, "loss": self.loss, "evaluation": evaluation}

    def summary(self) -> str:
        """The held-out comparison in two lines (or why there is none)."""
        e = self.evaluation
        if e is None:
            return "no held-out queries: nothing evaluated"
        before, after = e.vector_store, e.reranked
        return (
            f"held-out evaluation ({e.queries} queries, top {e.depth} from the vector store):\n"
            f"  vector store  NDCG@10 {before.ndcg_at_10:.3f}  MRR@10 {before.mrr_at_10:.3f}\n"
            f"  reranked      NDCG@10 {after.ndcg_at_10:.3f}  MRR@10 {after.mrr_at_10:.3f}"
        )


def evaluate_held_out(
    model: str | Path,
    store: PassageStore,
    queries: Sequence[TrainingQuery],
    relevant: Sequence[set[int]],
    *,
    depth: int = 20,
    device: str | None = None,
) -> HeldOutEvaluation | None:
    """Retrieve ``depth`` candidates per held-out query, rerank them with ``model`` (loaded by
    :class:`~rag_rerank.Reranker` in fp32, as a user would) and compare both orders."""
    from ..core.reranker import Reranker

    if not queries:
        return None
    depth = min(depth, len(store.passages))
    nearest = store.nearest([q.query for q in queries], depth)
    qrels = {str(n): {str(i): 1 for i in rel} for n, rel in enumerate(relevant)}
    before = {str(n): [str(i) for i in near] for n, near in enumerate(nearest)}
    with Reranker(str(model), device=device or "cpu", dtype="fp32") as reranker:
        ranked = reranker.rerank_many(
            [q.query for q in queries], [[store.passages[i] for i in near] for near in nearest]
        )
    after = {
        str(n): [str(near[r.index]) for r in results]
        for n, (near, results) in enumerate(zip(nearest, ranked, strict=True))
    }
    return HeldOutEvaluation(
        queries=len(queries),
        depth=depth,
        vector_store=compute_metrics(qrels, before, n=5, k=depth),
        reranked=compute_metrics(qrels, after, n=5, k=depth),
    )


def write_card(report: TrainingReport) -> None:
    """Write ``README.md`` (the model card) and :data:`REPORT_FILE` into ``report.out``."""
    out = Path(report.out)
    (out / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    data = "\n".join(f"- {name}: {value}" for name, value in report.data.items())
    made = (
        f"distilled from the teacher's logits ({report.loss})"
        if "teacher" in report.data
        else f"fine-tuned on labelled pairs ({report.loss})"
        if "labels" in report.data
        else "fine-tuned on pairs generated from the corpus: content-word and inverse-cloze "
        "queries, the passage as positive, the vector store's nearest passages and random ones "
        f"as negatives ({report.loss})"
    )
    lines = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: text-ranking",
        "tags: [cross-encoder, reranker, rag-rerank]",
        "---",
        "",
        f"# Cross-encoder reranker trained with rag-rerank from {report.base}",
        "",
        f"A one-logit cross-encoder {made}, with sentence-transformers' CrossEncoderTrainer.",
        "",
        "## Training",
        "",
        f"- base: {report.base}",
        data,
        f"- passages: {report.passages}; training queries: {report.train_queries}; "
        f"training rows: {report.pairs}; held-out queries: {report.held_out_queries}",
        f"- steps: {report.steps} of {report.batch_size}; max length: {report.max_length} "
        f"tokens; learning rate: {report.learning_rate:g}; seed: {report.seed}",
        f"- resumed from step: {report.resumed_from}; wall time: {report.seconds:.0f} s",
        "",
        "## Evaluation",
        "",
    ]
    e = report.evaluation
    if e is None:
        lines.append("No queries were held out, so nothing was evaluated.")
    else:
        lines += [
            f"{e.queries} held-out queries (never trained on); the top {e.depth} passages from "
            "the vector store (all-MiniLM-L6-v2 in Chroma), in its order and reranked:",
            "",
            "| order | NDCG@10 | MRR@10 |",
            "|---|---|---|",
            f"| vector store | {e.vector_store.ndcg_at_10:.4f} | {e.vector_store.mrr_at_10:.4f} |",
            f"| reranked | {e.reranked.ndcg_at_10:.4f} | {e.reranked.mrr_at_10:.4f} |",
        ]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from rag_rerank import Reranker",
        "",
        f'reranker = Reranker("{out}")',
        "```",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")
