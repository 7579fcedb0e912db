"""The ``rag-rerank`` command line.

Each sub-command is one ``_add_<name>`` function that registers its parser and a handler; the
handler gets the parsed arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from .errors import ModelLoadError, RerankError
from .model import DEFAULT_MODEL

__all__ = ["main"]

MODEL_ENV = "RAG_RERANK_MODEL"

Handler = Callable[[argparse.Namespace], int]

_SAMPLE_QUERY = "What is the capital of France?"
_SAMPLE_DOCUMENTS = [
    "Paris is the capital and most populous city of France.",
    "France is famous for its wine and cheese.",
    "Berlin is the capital of Germany.",
    "The Eiffel Tower stands in Paris, on the Champ de Mars.",
    "Capital gains tax applies when you sell an asset for a profit.",
]


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--device`` and ``--dtype``, shared by every command that loads a model."""
    parser.add_argument(
        "--model",
        default=os.environ.get(MODEL_ENV, DEFAULT_MODEL),
        help=f"hub id or local folder of the cross-encoder (default: ${MODEL_ENV} or "
        f"{DEFAULT_MODEL})",
    )
    parser.add_argument("--device", default=None, help="cuda, cuda:N, mps or cpu (default: auto)")
    parser.add_argument("--dtype", default=None, help="bf16, fp16 or fp32 (default: auto)")


def load_reranker(args: argparse.Namespace, **options: object):  # type: ignore[no-untyped-def]
    """Load the model named by the parsed model options."""
    from .reranker import Reranker

    return Reranker(args.model, device=args.device, dtype=args.dtype, **options)  # type: ignore[arg-type]


def _add_score(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "score",
        help="score documents against a query and print them best first",
        description="Score documents against a query (a built-in example when none are given).",
    )
    parser.add_argument("--query", "-q", default=None, help="the query")
    parser.add_argument("documents", nargs="*", help="candidate passages")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_model_options(parser)
    parser.set_defaults(handler=_score)


def _score(args: argparse.Namespace) -> int:
    query = args.query or _SAMPLE_QUERY
    documents = args.documents or ([] if args.query else _SAMPLE_DOCUMENTS)
    reranker = load_reranker(args)
    results = reranker.rerank(query, documents)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "index": r.index,
                        "score": r.score,
                        "raw_score": r.raw_score,
                        "document": r.document,
                    }
                    for r in results
                ],
                ensure_ascii=False,
            )
        )
        return 0
    print(f"model: {reranker.model_name} on {reranker.device} ({reranker.dtype})")
    print(f"query: {query}")
    for rank, r in enumerate(results, 1):
        print(f"{rank:>3}. {r.score:.4f}  (raw {r.raw_score:+.3f})  [{r.index}] {r.document}")
    return 0


def _add_bench(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .bench import add_arguments

    parser = subparsers.add_parser(
        "bench",
        help="time rag-rerank against sentence-transformers and plain transformers here",
        description="Side-by-side reranking speed on this machine: rag-rerank, sentence-"
        "transformers CrossEncoder, FlagEmbedding FlagReranker (CUDA, if installed) and a plain "
        "transformers forward, on the same pairs in the same precision, timed interleaved. "
        "Random-weight models in the real architectures are built offline (--shape), or pass a "
        "local --model folder. Prints a Markdown report.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_eval(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
    parser.add_argument(
        "--k", type=_positive_int, default=50, help="candidates retrieved per query (default: 50)"
    )
    parser.add_argument(
        "--top-n",
        type=_positive_int,
        default=5,
        help="passages that would go to the LLM: the cutoff of the first recall (default: 5)",
    )
    parser.add_argument(
        "--max-queries",
        type=_positive_int,
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
    parser.set_defaults(handler=_eval)


def _eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate, load_beir

    if args.top_n > args.k:
        print(
            f"rag-rerank: error: --top-n ({args.top_n}) must not exceed --k ({args.k})",
            file=sys.stderr,
        )
        return 1
    # The dataset is checked before the model loads, so a malformed file fails fast.
    dataset = load_beir(args.dataset_dir, split=args.split)
    reranker = load_reranker(args)
    try:
        report = evaluate(
            dataset,
            reranker,
            k=args.k,
            top_n=args.top_n,
            persist_directory=args.persist_dir,
            max_queries=args.max_queries,
            show_progress=not args.quiet,
        )
    except ImportError as exc:
        print(f"rag-rerank: error: {exc}", file=sys.stderr)
        return 1
    finally:
        reranker.close()
    print(
        f"dataset: {report.dataset} ({report.split}: {report.num_queries} queries, "
        f"{report.num_documents} documents), k={report.k}, top-n={report.top_n}"
    )
    print(f"model: {reranker.model_name} on {reranker.device} ({reranker.dtype})")
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


_COMMANDS = [_add_score, _add_eval, _add_bench]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="rag-rerank", description="Cross-encoder reranking for RAG."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rag-rerank`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ModelLoadError as exc:
        print(f"rag-rerank: error: {exc}", file=sys.stderr)
        return 2
    except RerankError as exc:
        print(f"rag-rerank: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
