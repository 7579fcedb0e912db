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


_COMMANDS = [_add_score, _add_bench]


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
