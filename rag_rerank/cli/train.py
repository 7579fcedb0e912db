"""``rag-rerank train``: fine-tune or distil a cross-encoder on a corpus
(:func:`rag_rerank.training.train`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .options import device_value, non_empty, non_negative_int, positive_float, positive_int

if TYPE_CHECKING:
    from . import Subparsers

__all__ = ["add_train"]

_LOSSES = ("bce", "mse", "margin-mse")  # rag_rerank.training.LOSSES, without importing torch


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


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
    parser.add_argument(
        "--loss",
        choices=_LOSSES,
        default=None,
        help="bce (default), or with --teacher margin-mse (default) or mse",
    )
    parser.add_argument(
        "--steps",
        type=non_negative_int,
        default=300,
        help="default: %(default)s; 0 with --prune: only add a pruning head to --base",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=32, help="pairs per step (default: %(default)s)"
    )
    parser.add_argument(
        "--max-length", type=positive_int, default=128, help="tokens per pair (default: 128)"
    )
    parser.add_argument(
        "--learning-rate", type=positive_float, default=5e-5, help="default: %(default)s"
    )
    parser.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    parser.add_argument(
        "--device", type=device_value, default=None, help="cpu, cuda, cuda:1 (default: cuda if any)"
    )
    parser.add_argument(
        "--held-out",
        type=_share,
        default=0.1,
        help="share of passages whose queries are kept for the evaluation (default: 0.1)",
    )
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
            loss=args.loss,
            steps=args.steps,
            batch_size=args.batch_size,
            max_length=args.max_length,
            learning_rate=args.learning_rate,
            seed=args.seed,
            device=args.device,
            held_out=args.held_out,
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
