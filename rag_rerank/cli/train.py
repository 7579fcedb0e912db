"""``rag-rerank train``: fine-tune or distil a cross-encoder on a corpus
(:func:`rag_rerank.training.train`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .option_flags import add_training_options, training_options
from .options import non_empty

if TYPE_CHECKING:
    from .options import Subparsers

__all__ = ["add_train"]


def add_train(subparsers: Subparsers) -> None:
    """Register ``train``."""
    parser = subparsers.add_parser(
        "train",
        help="fine-tune or distil a cross-encoder reranker on your corpus, offline",
        description="Train a one-logit cross-encoder on a corpus with sentence-transformers' "
        "trainer. Without --labels the pairs come from the corpus itself (content-word and "
        "inverse-cloze queries, the passage as positive, the vector store's nearest passages and "
        "random ones as negatives); --labels trains on labelled pairs; --teacher distils a "
        "reranker's logits. Checkpoints go to OUT/checkpoints: after Ctrl-C, the same command "
        "goes on from the last one. Prints NDCG@10 and MRR@10 of the vector store's order and of "
        "the trained reranker on held-out queries; OUT/README.md is the model card.",
    )
    parser.add_argument(
        "corpus",
        nargs="+",
        metavar="CORPUS",
        help='a JSONL of {"text": ...} rows, .txt/.md files or folders, or an index folder',
    )
    parser.add_argument(
        "--base",
        type=non_empty,
        default=None,
        help="encoder or cross-encoder to start from, hub id or folder (default: the offline "
        "all-MiniLM-L6-v2 encoder of the embeddings, with a new head)",
    )
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument(
        "--labels", default=None, help='JSONL of {"query", "document", "label": 0|1} lines'
    )
    parser.add_argument("--teacher", type=non_empty, default=None, help="a reranker to distil")
    add_training_options(parser)
    parser.add_argument(
        "--restart", action="store_true", help="ignore the checkpoints in OUT and start over"
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="then train a one-pass pruning head on the trained reranker (per-token logits "
        "from the same forward pass as the score; its ranking is unchanged): the model "
        "prunes with rerank(prune=True) at no extra pass. With --steps 0, on --base as it is",
    )
    parser.set_defaults(handler=train)


def train(args: argparse.Namespace) -> int:
    """Train, print the held-out comparison and where the model is."""
    from ..rag.embeddings import embedding_model_path
    from ..training import last_checkpoint
    from ..training import train as run

    if args.steps == 0:
        if not args.prune or not args.base:
            print(
                "error: --steps 0 only adds a pruning head: give --prune and --base",
                file=sys.stderr,
            )
            return 2
        return _prune_head(args, args.base)
    try:
        report = run(
            args.corpus,
            base=args.base or embedding_model_path(),
            out=args.out,
            labels=args.labels,
            teacher=args.teacher,
            options=training_options(args),
            resume=not args.restart,
        )
    except KeyboardInterrupt:
        checkpoint = last_checkpoint(args.out)
        where = f"the last checkpoint is {checkpoint}" if checkpoint else "no checkpoint yet"
        print(f"stopped; {where}: run the same command again to continue", file=sys.stderr)
        return 130
    resumed = f", resumed from step {report.resumed_from}" if report.resumed_from else ""
    print(
        f"trained {report.base} for {report.steps} steps of {report.batch_size} pairs "
        f"({report.loss}, seed {report.seed}{resumed}) in {report.seconds:.0f} s"
    )
    print(report.summary())
    print(f"model: {report.out} (model card: {report.out}/README.md)")
    return _prune_head(args, report.out) if args.prune else 0


def _prune_head(args: argparse.Namespace, model: str) -> int:
    """Train the pruning head on ``model`` into ``--out`` and say how it went."""
    from ..training import load_passages
    from ..training.pruning import train_pruning_head

    passages = [p.text for p in load_passages(args.corpus)]
    report = train_pruning_head(model, passages, out=args.out, seed=args.seed, device=args.device)
    print(report.summary())
    print(f"model with its pruning head: {report.out}")
    return 0
