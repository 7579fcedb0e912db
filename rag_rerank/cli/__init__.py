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
from typing import Any

from ..api import DEFAULT_MODEL
from ..errors import InvalidInputError, ModelLoadError, RerankError
from ..rag.splitting import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE

DEFAULT_COLLECTION = "rag_rerank"

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
    from ..core import Reranker

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


def _add_index(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "index",
        help="chunk text and Markdown files into a persistent Chroma folder",
        description="Chunk files (and the .txt/.md files in folders) and index them into a "
        "persistent Chroma folder. Re-indexing a file updates it instead of duplicating it. "
        "Indexing only embeds: the cross-encoder options are accepted so one set of flags works "
        "for every command.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to index")
    _add_db_options(parser)
    parser.add_argument(
        "--chunk-size", type=_positive_int, default=DEFAULT_CHUNK_SIZE, help="characters per chunk"
    )
    parser.add_argument(
        "--chunk-overlap",
        type=_non_negative_int,
        default=DEFAULT_CHUNK_OVERLAP,
        help="characters shared by consecutive chunks",
    )
    add_model_options(parser)
    parser.set_defaults(handler=_index)


def _index(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..rag import RerankPipeline

    pipeline = RerankPipeline(
        args.db,
        collection=args.collection,
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        chunk_size=args.chunk_size,
        chunk_overlap=args.chunk_overlap,
        show_progress=True,
    )
    summary = pipeline.add([Path(p) for p in args.paths])
    print(
        f"indexed {summary.documents} document{'s' if summary.documents != 1 else ''} into "
        f"{args.db} (collection {args.collection}): {summary.added} chunks added, "
        f"{summary.unchanged} unchanged, {summary.removed} removed; "
        f"{pipeline.count()} chunks in the index"
    )
    for skipped in summary.skipped:
        print(f"skipped (not a .txt/.md file, or no text): {skipped}")
    return 0


def _add_ask(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "ask",
        help="retrieve k candidates from an index, rerank them and show the best",
        description="Retrieve k candidates for a question from a folder made by `rag-rerank "
        "index`, rerank them with the cross-encoder and show the top results with how far each "
        "moved from its retrieval rank.",
    )
    parser.add_argument("question", help="the question")
    _add_db_options(parser)
    _add_selection_options(parser, k=True)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_model_options(parser)
    parser.set_defaults(handler=_ask)


def _ask(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..rag import RerankPipeline

    if not Path(args.db).is_dir():
        print(
            f"rag-rerank: error: no index at {args.db}; create one with "
            f"`rag-rerank index PATH... --db {args.db}`",
            file=sys.stderr,
        )
        return 1
    reranker = load_reranker(args)  # fail fast on a bad model, before the embedding model loads
    pipeline = RerankPipeline(args.db, collection=args.collection, reranker=reranker)
    if pipeline.count() == 0:
        print(
            f"rag-rerank: error: the index at {args.db} (collection {args.collection}) is empty; "
            f"add files with `rag-rerank index PATH... --db {args.db}`",
            file=sys.stderr,
        )
        return 1
    results = pipeline.query(args.question, k=args.k, top_n=args.top_n, threshold=args.threshold)
    if args.json:
        print(json.dumps({"model": reranker.model_name, **results.to_dict()}, ensure_ascii=False))
        return 0
    console = _console()
    console.print(f"model: {reranker.model_name} on {reranker.device} ({reranker.dtype})")
    console.print(results)
    return 0


def _add_rerank(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "rerank",
        help="rerank candidates read from a file or stdin (no vector store)",
        description="Rerank candidates against a query: one candidate per line, or JSON Lines "
        '(each line a JSON string or an object with "text" and optionally "id"). Blank lines are '
        "not candidates; each result reports the line it came from.",
    )
    parser.add_argument("--query", "-q", required=True, help="the query")
    parser.add_argument(
        "--file", "-f", default=None, help="file of candidates (default: read stdin)"
    )
    parser.add_argument(
        "--jsonl",
        action="store_true",
        help="read JSON Lines (the default for a --file ending in .jsonl)",
    )
    _add_selection_options(parser, k=False)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_model_options(parser)
    parser.set_defaults(handler=_rerank)


def _rerank(args: argparse.Namespace) -> int:
    if args.file is None:
        if sys.stdin.isatty():
            print(
                "rag-rerank rerank: error: give --file FILE or pipe candidates on stdin",
                file=sys.stderr,
            )
            return 2
        source = sys.stdin.read()
    else:
        try:
            with open(args.file, encoding="utf-8") as handle:
                source = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"rag-rerank: error: cannot read {args.file}: {exc}", file=sys.stderr)
            return 1
    jsonl = args.jsonl or (args.file is not None and args.file.endswith(".jsonl"))
    candidates = _read_candidates(source, jsonl)
    reranker = load_reranker(args)
    ranked = reranker.rerank(
        args.query, [c["text"] for c in candidates], top_n=args.top_n, threshold=args.threshold
    )
    rows = [
        {
            "rank": rank,
            "index": r.index,
            "line": candidates[r.index]["line"],
            **({"id": candidates[r.index]["id"]} if "id" in candidates[r.index] else {}),
            "score": r.score,
            "raw_score": r.raw_score,
            "document": r.document,
        }
        for rank, r in enumerate(ranked, 1)
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"Query: {args.query}",
        caption=f"{len(rows)} of {len(candidates)} candidates"
        + (f", threshold {args.threshold:.4f}" if args.threshold is not None else ""),
    )
    for name, justify in (("#", "right"), ("score", "right"), ("raw", "right"), ("line", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("text", ratio=1)
    for row in rows:
        table.add_row(
            str(row["rank"]),
            Text(f"{row['score']:.4f}", style="green"),
            f"{row['raw_score']:+.3f}",
            str(row["line"]),
            row["document"],
        )
    console = _console()
    console.print(f"model: {reranker.model_name} on {reranker.device} ({reranker.dtype})")
    console.print(table)
    return 0


def _read_candidates(source: str, jsonl: bool) -> list[dict[str, Any]]:
    candidates: list[dict[str, Any]] = []
    for number, line in enumerate(source.splitlines(), 1):
        if not line.strip():
            continue
        if not jsonl:
            candidates.append({"line": number, "text": line})
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"line {number}", f"is not valid JSON ({exc.msg})") from exc
        if isinstance(value, str):
            candidates.append({"line": number, "text": value})
        elif isinstance(value, dict) and isinstance(value.get("text"), str):
            candidate = {"line": number, "text": value["text"]}
            if "id" in value:
                candidate["id"] = value["id"]
            candidates.append(candidate)
        else:
            raise InvalidInputError(
                f"line {number}", 'must be a JSON string or an object with a string "text"'
            )
    return candidates


def _add_demo(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "demo",
        help="index the shipped demo corpus and compare retrieval order with reranked order",
        description="Index the demo corpus shipped with the package (250-odd passages with "
        "keyword traps such as Apple the company vs apples the fruit), ask its questions, and "
        "show the vector store's order next to the reranked order.",
    )
    parser.add_argument(
        "--db",
        default=None,
        help="persistent Chroma folder to index into (default: in memory, gone after the run)",
    )
    parser.add_argument(
        "--question",
        action="append",
        default=None,
        help="ask this instead of the built-in questions (repeatable)",
    )
    _add_selection_options(parser, k=True)
    add_model_options(parser)
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..demo import (
        DEMO_COLLECTION,
        index_demo_corpus,
        load_demo_corpus,
        load_demo_questions,
        parameter_count,
        print_comparison,
        tiny_model_note,
    )
    from ..rag import RerankPipeline

    console = _console()
    reranker = load_reranker(args)  # first: a model that cannot load fails before any indexing
    parameters = parameter_count(reranker.engine.model.model)
    console.print(
        f"model: {reranker.model_name} ({parameters:,} parameters) on {reranker.device} "
        f"({reranker.dtype})"
    )
    note = tiny_model_note(parameters)
    if note:
        console.print(f"[yellow]{note}[/yellow]")
    pipeline = RerankPipeline(
        args.db, collection=DEMO_COLLECTION, reranker=reranker, show_progress=True
    )
    added = index_demo_corpus(pipeline)
    console.print(
        f"demo corpus: {len(load_demo_corpus())} passages, {added} newly embedded, "
        f"{pipeline.count()} chunks in {args.db or 'memory'}\n"
    )
    questions: list[tuple[str, tuple[str, ...]]]
    if args.question:
        questions = [(q, ()) for q in args.question]
    else:
        questions = [(q.question, q.relevant) for q in load_demo_questions()]
    summary = []
    for question, relevant in questions:
        results = pipeline.query(question, k=args.k, top_n=args.top_n, threshold=args.threshold)
        before, after = print_comparison(console, results, relevant, args.top_n or 5)
        summary.append((question, before, after))
    if any(relevant for _, relevant in questions):
        table = Table(title="Where the answering passage landed (1 = first)")
        table.add_column("question", ratio=1)
        table.add_column("vector store", justify="right")
        table.add_column("reranked", justify="right")
        for question, before, after in summary:
            table.add_row(question, str(before or "-"), str(after or "-"))
        console.print(table)
        n = len(summary)
        first_before = sum(1 for _, b, _ in summary if b == 1)
        first_after = sum(1 for _, _, a in summary if a == 1)
        console.print(
            f"answering passage ranked first: vector store {first_before}/{n}, "
            f"reranked {first_after}/{n}"
        )
    return 0


def _add_db_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, help="folder of the persistent Chroma index")
    parser.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"collection (default: {DEFAULT_COLLECTION})",
    )


def _add_selection_options(parser: argparse.ArgumentParser, *, k: bool) -> None:
    if k:
        parser.add_argument(
            "-k", type=_positive_int, default=50, help="candidates to retrieve (default: 50)"
        )
    parser.add_argument(
        "--top-n",
        type=_positive_int,
        default=5 if k else None,
        help="results to keep (default: 5)" if k else "results to keep (default: all)",
    )
    parser.add_argument(
        "--threshold",
        type=_unit_float,
        default=None,
        help="drop results whose score in [0, 1] is below this (default: none)",
    )


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
    from ..evaluation import evaluate, load_beir

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
        from ..server import create_app
        from ..server.run import run_server
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


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


_COMMANDS = [
    _add_score,
    _add_index,
    _add_ask,
    _add_rerank,
    _add_demo,
    _add_eval,
    _add_serve,
]


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
