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


API_KEY_ENV = "RAG_RERANK_API_KEY"


def _add_serve(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "serve",
        help="serve the model over HTTP (TEI- and Cohere-compatible /rerank, web page at /)",
        description="Serve the model over HTTP: POST /rerank (TEI shape), POST /v1/rerank "
        "(Cohere/Jina shape), /health, /ready, /metrics, /info, a web console at / and /docs. "
        "Needs the 'server' extra.",
    )
    add_model_options(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        help=f"require 'Authorization: Bearer KEY' on every route but /health "
        f"(default: ${API_KEY_ENV}; none)",
    )
    parser.add_argument(
        "--max-documents", type=int, default=1000, help="documents per request (default: 1000)"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=8 * 1024 * 1024,
        help="largest request body in bytes (default: 8 MiB)",
    )
    parser.add_argument(
        "--max-queue-pairs",
        type=int,
        default=None,
        help="pairs waiting before new requests get 429 (default: 16 x --max-documents)",
    )
    parser.add_argument("--max-length", type=int, default=512, help="tokens per window")
    parser.add_argument("--batch-tokens", type=int, default=None, help="padded tokens per batch")
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="allow browser calls from this origin (repeatable; default: CORS off)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="on SIGTERM, seconds to let requests in flight finish (default: 30)",
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error")
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import logging

    try:
        from .server import create_app
        from .server.run import run_server
    except ImportError as exc:
        print(f"rag-rerank: error: {exc}", file=sys.stderr)
        return 2
    for name in ("max_documents", "max_body_bytes", "port"):
        if getattr(args, name) < 1:
            print(
                f"rag-rerank: error: --{name.replace('_', '-')} must be positive", file=sys.stderr
            )
            return 2
    queue_pairs = args.max_queue_pairs or 16 * args.max_documents
    if queue_pairs < args.max_documents:
        print(
            "rag-rerank: error: --max-queue-pairs must be at least --max-documents",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log = logging.getLogger("rag_rerank.server")
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
        log.warning(
            "listening on %s without --api-key: anyone who can reach it can use it", args.host
        )
    reranker = load_reranker(
        args,
        max_length=args.max_length,
        batch_tokens=args.batch_tokens,
        max_queue_pairs=queue_pairs,
        show_progress=False,
    )
    try:
        reranker.score("warm-up", ["a warm-up passage"])  # fail now, not on the first request
        app = create_app(
            reranker,
            api_key=args.api_key,
            max_documents=args.max_documents,
            max_body_bytes=args.max_body_bytes,
            cors_origins=args.cors_origin,
        )
        log.info(
            "serving %s on %s (%s) at http://%s:%d",
            reranker.model_name,
            reranker.device,
            str(reranker.dtype).removeprefix("torch."),
            args.host,
            args.port,
        )
        return run_server(
            app,
            host=args.host,
            port=args.port,
            drain_timeout=args.drain_timeout,
            log_level=args.log_level.lower(),
        )
    finally:
        reranker.close()


_COMMANDS = [_add_score, _add_eval, _add_serve]


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
