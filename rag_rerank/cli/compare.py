"""``rag-rerank compare``: two rerankers side by side on labelled data, before switching.

The offline twin of the server's shadow scoring: the same agreement figures (top-1 agreement,
top-5 overlap, Kendall tau, from :mod:`rag_rerank.evaluation.agreement`) plus each model's
NDCG@10, MRR@10 and Recall@5 against the labels (:mod:`rag_rerank.evaluation.metrics`).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

from .models import add_models_option, model_specs
from .option_flags import add_model_options, load_reranker, reranker_options
from .options import positive_int
from .output import error

if TYPE_CHECKING:
    from ..evaluation import LabelledPair
    from .options import Subparsers

__all__ = ["add_compare", "compare_rankings"]

_RECALL_AT = 5


def add_compare(subparsers: Subparsers) -> None:
    """Register ``compare``."""
    parser = subparsers.add_parser(
        "compare",
        help="compare two rerankers on labelled data: NDCG/MRR/recall and how much they agree",
        description="Rank every query's labelled documents with each --model and print NDCG@10, "
        "MRR@10 and Recall@5 for each, and how much the later models agree with the first: "
        "top-1 agreement, top-5 overlap and Kendall tau (the figures the server's --shadow "
        "reports on live traffic). LABELS is a JSONL file of {query, document, label: 0|1} "
        "lines or a BEIR-layout folder, whose K retrieved candidates per query are labelled from "
        "the qrels. Needs the 'eval' extra.",
    )
    parser.add_argument("labels", metavar="LABELS_OR_BEIR", help="JSONL labels file or BEIR folder")
    parser.add_argument(
        "-k",
        "--k",
        dest="k",
        type=positive_int,
        default=50,
        help="with a BEIR folder: candidates retrieved per query (default: 50)",
    )
    parser.add_argument("--split", default="test", help="BEIR qrels split (default: test)")
    parser.add_argument(
        "--max-queries", type=positive_int, default=None, metavar="N", help="only the first N"
    )
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the figures here")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    group = add_model_options(parser, exclude=("model",))
    add_models_option(
        group,
        "A model to compare (hub id or local folder; NAME=PATH_OR_ID names it); give it at "
        "least twice. The others are compared with the first.",
    )
    parser.set_defaults(handler=compare)


def compare(args: argparse.Namespace) -> int:
    """Rank the labelled queries with each model; print (and optionally write) the figures."""
    specs = model_specs(args.model)
    if len(specs) < 2:
        error("--model: give at least two models to compare")
        return 2
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        error(f"--json {args.json}: no such folder: {os.path.dirname(args.json)}")
        return 1
    try:
        pairs = _labelled_pairs(args)  # checked before any model loads
    except ImportError as exc:
        error(str(exc))
        return 1
    queries: dict[str, list[tuple[str, int]]] = {}
    for pair in pairs:
        queries.setdefault(pair.query, []).append((pair.document, pair.label))
    rankings: dict[str, list[list[int]]] = {}
    for name, reference in specs.items():
        reranker = load_reranker(
            reranker_options(args, model=reference, show_progress=not args.quiet and None)
        )
        try:
            ranked = reranker.rerank_many(
                list(queries), [[doc for doc, _ in docs] for docs in queries.values()]
            )
        finally:
            reranker.close()
        rankings[name] = [[r.index for r in results] for results in ranked]
    labels = [[label for _, label in docs] for docs in queries.values()]
    report = compare_rankings(labels, rankings)
    print(f"{len(queries)} queries, {len(pairs)} labelled documents")
    print(_table(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
            handle.write("\n")
        print(f"figures written to {args.json}")
    return 0


def _labelled_pairs(args: argparse.Namespace) -> list[LabelledPair]:
    from ..evaluation import labels_from_beir, load_beir, load_labels

    if os.path.isdir(args.labels):
        dataset = load_beir(args.labels, split=args.split)
        return labels_from_beir(
            dataset, k=args.k, max_queries=args.max_queries, show_progress=not args.quiet
        )
    pairs = load_labels(args.labels)
    if args.max_queries is not None:
        kept = list(dict.fromkeys(p.query for p in pairs))[: args.max_queries]
        pairs = [p for p in pairs if p.query in set(kept)]
    return pairs


def compare_rankings(
    labels: list[list[int]], rankings: dict[str, list[list[int]]]
) -> dict[str, Any]:
    """The figures of several models' rankings of the same labelled queries.

    Args:
        labels: Per query, the 0/1 label of each document, in input order.
        rankings: Per model name, per query, the documents' input indexes, best first. The first
            model is the one the others are compared with.

    Returns:
        ``{"models": {name: {"NDCG@10", "MRR@10", "Recall@5"}}, "agreement": {name: {"top1",
        "top5_overlap", "kendall_tau"}}}`` (agreement for every model but the first, with it).
    """
    from ..evaluation import compute_metrics
    from ..evaluation.agreement import AgreementSummary, agreement

    qrels = {
        str(q): {str(i): label for i, label in enumerate(query_labels)}
        for q, query_labels in enumerate(labels)
    }
    depth = max(len(query_labels) for query_labels in labels)
    models: dict[str, dict[str, float]] = {}
    for name, ranked in rankings.items():
        metrics = compute_metrics(
            qrels,
            {str(q): [str(i) for i in order] for q, order in enumerate(ranked)},
            n=_RECALL_AT,
            k=depth,
        )
        models[name] = {
            "NDCG@10": metrics.ndcg_at_10,
            "MRR@10": metrics.mrr_at_10,
            f"Recall@{_RECALL_AT}": metrics.recall_at_n,
        }
    first, *others = rankings
    agreements: dict[str, dict[str, float]] = {}
    for name in others:
        summary = AgreementSummary()
        for a, b in zip(rankings[first], rankings[name], strict=True):
            summary.add(agreement(a, b))
        mean = summary.mean()
        assert mean is not None  # at least one query
        agreements[name] = {
            "top1": mean.top1,
            "top5_overlap": mean.top5_overlap,
            "kendall_tau": mean.kendall_tau,
        }
    return {"baseline": first, "models": models, "agreement": agreements}


def _table(report: dict[str, Any]) -> str:
    names = list(report["models"])
    width = max(12, *(len(n) for n in names))
    rows = [" " * 14 + "".join(f"{n:>{width + 2}}" for n in names)]
    for metric in next(iter(report["models"].values())):
        values = "".join(f"{report['models'][n][metric]:>{width + 2}.4f}" for n in names)
        rows.append(f"{metric:<14}{values}")
    for name, figures in report["agreement"].items():
        rows.append(
            f"\nagreement of {name} with {report['baseline']}: top-1 {figures['top1']:.1%}, "
            f"top-5 overlap {figures['top5_overlap']:.1%}, Kendall tau "
            f"{figures['kendall_tau']:.3f}"
        )
    return "\n".join(rows)
