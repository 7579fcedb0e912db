"""``rag-rerank eval``: NDCG/MRR/recall before and after reranking on a BEIR-layout dataset."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING

from .options import (
    add_model_options,
    add_selection_options,
    load_reranker,
    positive_int,
    reranker_options,
)
from .output import error, model_line

if TYPE_CHECKING:
    from . import Subparsers

__all__ = ["add_eval"]


def add_eval(subparsers: Subparsers) -> None:
    """Register ``eval``."""
    parser = subparsers.add_parser(
        "eval",
        help="measure NDCG/MRR/recall before and after reranking on a BEIR-layout dataset",
        description="Index a BEIR-layout dataset (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) "
        "in a Chroma collection (in memory unless --persist-dir), retrieve K candidates per "
        "query, rerank them, and print NDCG@10, MRR@10, Recall@TOP_N, Recall@K and per-query "
        "latency for both orders. Needs the 'eval' extra.",
    )
    parser.add_argument("dataset_dir", metavar="DATASET_DIR", help="folder in BEIR layout")
    parser.add_argument("--split", default="test", help="qrels split to evaluate (default: test)")
    # No --threshold: every candidate is reranked, so both orders rank the same k passages.
    add_selection_options(
        parser,
        k=50,
        top_n=5,
        top_n_help="passages that would go to the LLM: the cutoff of the first recall",
        threshold=False,
    )
    parser.add_argument(
        "--max-queries",
        type=positive_int,
        default=None,
        metavar="N",
        help="evaluate only the first N queries",
    )
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the report here")
    parser.add_argument(
        "--persist-dir",
        metavar="DIR",
        default=None,
        help="keep the Chroma index in DIR and reuse it while the corpus is unchanged",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_model_options(parser)
    parser.set_defaults(handler=evaluate)


def evaluate(args: argparse.Namespace) -> int:
    """Run the evaluation, print its table and optionally write its JSON report."""
    from ..evaluation import evaluate as run_evaluation
    from ..evaluation import load_beir

    if args.top_n > args.k:
        error(f"--top-n ({args.top_n}) must not exceed --k ({args.k})")
        return 1
    options = reranker_options(args)
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        error(f"--json {args.json}: no such folder: {os.path.dirname(args.json)}")
        return 1
    # The dataset is checked before the model loads, so a malformed file fails fast.
    dataset = load_beir(args.dataset_dir, split=args.split)
    reranker = load_reranker(options)
    try:
        report = run_evaluation(
            dataset,
            reranker,
            k=args.k,
            top_n=args.top_n,
            persist_directory=args.persist_dir,
            max_queries=args.max_queries,
            show_progress=not args.quiet,
        )
    except ImportError as exc:
        error(str(exc))
        return 1
    finally:
        reranker.close()
    print(
        f"dataset: {report.dataset} ({report.split}: {report.num_queries} queries, "
        f"{report.num_documents} documents), k={report.k}, top-n={report.top_n}"
    )
    print(model_line(reranker))
    if report.queries_without_relevant:
        count = report.queries_without_relevant
        print(
            f"note: {count} {'query has' if count == 1 else 'queries have'} no relevant document "
            "in the qrels (scored 0 in both orders)"
        )
    print(report.table())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report.to_dict(), handle, indent=2)
            handle.write("\n")
        print(f"report written to {args.json}")
    return 0
