"""``rag-rerank eval``: NDCG/MRR/recall before and after reranking on a BEIR-layout dataset."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

from .option_flags import add_model_options, load_reranker, reranker_options
from .options import add_selection_options, add_target_option, positive_int
from .output import error, model_line

if TYPE_CHECKING:
    from ..evaluation import BeirDataset, EvaluationReport
    from ..evaluation.calibration import ThresholdRow
    from .options import Subparsers

__all__ = ["add_eval"]


def add_eval(subparsers: Subparsers) -> None:
    """Register ``eval``."""
    parser = subparsers.add_parser(
        "eval",
        help="measure NDCG/MRR/recall before and after reranking on a BEIR-layout dataset",
        description="Index a BEIR-layout dataset (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) "
        "in a Chroma collection (in memory unless --persist-dir), retrieve K candidates per "
        "query, rerank them, and print NDCG@10, MRR@10, Recall@TOP_N, Recall@K and per-query "
        "latency for both orders, and a threshold table of the reranked scores (precision, "
        "recall and passages kept against the qrels; the recommended threshold is the "
        "--calibration file's, else the one meeting --target). Needs the 'eval' extra.",
    )
    parser.add_argument(
        "dataset_dir", metavar="DATASET_DIR", nargs="?", help="folder in BEIR layout"
    )
    parser.add_argument(
        "--prune-set",
        action="store_true",
        help="instead of a dataset: measure pruning on the multi-sentence demo set shipped with "
        "the package (62 questions, each document's answer sentence marked): share of context "
        "tokens removed, share of answer sentences kept and seconds, with pruning off, by "
        "sentence scoring and by the model's pruning head (when it has one)",
    )
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
    add_target_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_model_options(parser)
    parser.set_defaults(handler=evaluate)


def _thresholds(
    report: EvaluationReport, dataset: BeirDataset, reranker: Any, target: str
) -> tuple[list[ThresholdRow], float, str]:
    """The threshold table of every query's reranked candidates, labelled from the qrels."""
    from ..evaluation.calibration import (
        DEFAULT_THRESHOLDS,
        recommend_threshold,
        threshold_table,
    )

    scores: list[float] = []
    labels: list[int] = []
    queries: list[str] = []
    for run in report.runs:
        grades = dataset.qrels[run.query_id]
        for doc_id, score in zip(run.reranked, run.rerank_scores, strict=True):
            scores.append(score)
            labels.append(int(grades.get(doc_id, 0) >= 1))
            queries.append(run.query_id)
    calibration = getattr(reranker, "calibration", None)
    if calibration is not None and calibration.threshold is not None:
        recommended, how = calibration.threshold, f"the calibration's, {calibration.target}"
    else:
        recommended, how = recommend_threshold(scores, labels, queries, target), target
    rows = threshold_table(scores, labels, queries, [*DEFAULT_THRESHOLDS, recommended])
    return rows, recommended, how


def evaluate(args: argparse.Namespace) -> int:
    """Run the evaluation, print its table and optionally write its JSON report."""
    from ..evaluation import evaluate as run_evaluation
    from ..evaluation import load_beir
    from ..evaluation.calibration import format_threshold_table

    if args.prune_set:
        return _evaluate_pruning(args)
    if args.dataset_dir is None:
        error("give a DATASET_DIR in BEIR layout, or --prune-set")
        return 2
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
    rows, recommended, how = _thresholds(report, dataset, reranker, args.target)
    print(f"\nthresholds on the reranked score (* recommended, {how}):")
    print(format_threshold_table(rows, recommended))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            summary = report.to_dict()
            summary["thresholds"] = {
                "recommended": recommended,
                "rows": [row.as_dict() for row in rows],
            }
            json.dump(summary, handle, indent=2)
            handle.write("\n")
        print(f"report written to {args.json}")
    return 0


def _evaluate_pruning(args: argparse.Namespace) -> int:
    """Measure pruning on the shipped labelled set; print the table, optionally write JSON."""
    from ..evaluation.pruning import evaluate_pruning, load_prune_set, prune_table

    examples = load_prune_set()
    reranker = load_reranker(reranker_options(args))
    methods = ["off", "sentences"] + (["head"] if reranker.pruning_head else [])
    try:
        runs = evaluate_pruning(reranker, examples[: args.max_queries], methods)
    finally:
        reranker.close()
    documents = len({e.document_id for e in examples[: args.max_queries]})
    print(
        f"pruning on the demo set: {runs[0].measures.questions} questions, each reranked with "
        f"its document ({documents} documents of 3-5 sentences)"
    )
    print(model_line(reranker))
    print(prune_table(runs))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"prune_set": [run.to_dict() for run in runs]}, handle, indent=2)
            handle.write("\n")
        print(f"report written to {args.json}")
    return 0
