"""``rag-rerank index`` and ``rag-rerank ask``: a persistent Chroma folder, filled from files and
queried with retrieve -> rerank."""

from __future__ import annotations

import argparse
import codecs
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..rag.splitting import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
from ..rag.store import BINARY_FILE, DEFAULT_COLLECTION
from .option_flags import (
    add_model_options,
    add_prune_options,
    load_reranker,
    prune_from,
    reranker_options,
)
from .options import add_selection_options, existing_path, non_empty, non_negative_int, positive_int
from .output import console, error, model_line

if TYPE_CHECKING:
    from .options import Subparsers

__all__ = ["DEFAULT_COLLECTION", "add_ask", "add_index"]

"""The Chroma collection ``index`` and ``ask`` use unless ``--collection`` names another."""


def _add_db_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, help="folder of the persistent Chroma index")
    parser.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"collection (default: {DEFAULT_COLLECTION})",
    )


# -- index --------------------------------------------------------------------------------------


def add_index(subparsers: Subparsers) -> None:
    """Register ``index``."""
    parser = subparsers.add_parser(
        "index",
        help="chunk text and Markdown files into a persistent Chroma folder",
        description="Chunk files (and the .txt/.md files in folders) and index them into a "
        "persistent Chroma folder. Re-indexing a file updates it instead of duplicating it. "
        "Indexing only embeds: the cross-encoder options are accepted so one set of flags works "
        "for every command.",
    )
    parser.add_argument(
        "paths", nargs="+", type=existing_path, metavar="PATH", help="files or folders to index"
    )
    _add_db_options(parser)
    parser.add_argument(
        "--chunk-size",
        type=positive_int,
        default=DEFAULT_CHUNK_SIZE,
        help="characters per chunk (default: %(default)s)",
    )
    parser.add_argument(
        "--chunk-overlap",
        type=non_negative_int,
        default=DEFAULT_CHUNK_OVERLAP,
        help="characters shared by consecutive chunks (default: %(default)s)",
    )
    parser.add_argument(
        "--encoding",
        type=_encoding,
        default="utf-8",
        help="text encoding of the files (default: utf-8); files not in it are skipped with a "
        "warning",
    )
    add_model_options(parser)
    parser.set_defaults(handler=index)


def _encoding(text: str) -> str:
    try:
        return codecs.lookup(text).name
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown text encoding {text!r}") from None


def index(args: argparse.Namespace) -> int:
    """Chunk and embed the files into the collection and print what changed."""
    from ..rag import RerankPipeline

    reranker_options(args)  # checked like every command's, though indexing loads no reranker
    pipeline = RerankPipeline(
        args.db,
        collection=args.collection,
        chunk_size=args.chunk_size,
        chunk_overlap=args.chunk_overlap,
        show_progress=True,
    )
    try:
        summary = pipeline.add([Path(p) for p in args.paths], encoding=args.encoding)
    except KeyboardInterrupt:
        # What was written stays in the index; unchanged chunks are not embedded again.
        print(
            f"stopped; {pipeline.chunks_written} chunks indexed, run again to continue",
            file=sys.stderr,
        )
        return 130
    for file, why in summary.unreadable:
        print(f"rag-rerank: warning: skipped {file}: {why}", file=sys.stderr)
    print(
        f"indexed {summary.documents} document{'s' if summary.documents != 1 else ''} into "
        f"{args.db} (collection {args.collection}): {summary.added} chunks added, "
        f"{summary.unchanged} unchanged, {summary.removed} removed; "
        f"{pipeline.count()} chunks in the index"
    )
    for skipped in summary.skipped:
        print(f"skipped (not a .txt/.md file, or no text): {skipped}")
    binary = sum(why == BINARY_FILE for _, why in summary.unreadable)
    if binary:
        print(f"{_files(binary)} skipped as binary (not text; see the warnings above)")
    if len(summary.unreadable) > binary:
        print(
            f"{_files(len(summary.unreadable) - binary)} not read as {args.encoding} text "
            "(see the warnings above; --encoding ENCODING reads them in another encoding)"
        )
    return 0


def _files(count: int) -> str:
    return f"{count} file{'s' if count != 1 else ''}"


# -- ask ----------------------------------------------------------------------------------------


def add_ask(subparsers: Subparsers) -> None:
    """Register ``ask``."""
    parser = subparsers.add_parser(
        "ask",
        help="retrieve k candidates from an index, rerank them and show the best",
        description="Retrieve k candidates for a question from a folder made by `rag-rerank "
        "index`, rerank them with the cross-encoder and show the top results with how far each "
        "moved from its retrieval rank.",
    )
    parser.add_argument("question", type=non_empty, help="the question")
    _add_db_options(parser)
    add_selection_options(parser, k=50, top_n=5)
    add_prune_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_model_options(parser)
    parser.set_defaults(handler=ask)


def ask(args: argparse.Namespace) -> int:
    """Retrieve, rerank and print the kept results as JSON or a table."""
    from ..rag import RerankPipeline

    if not Path(args.db).is_dir():
        error(f"no index at {args.db}; create one with `rag-rerank index PATH... --db {args.db}`")
        return 1
    prune = prune_from(args)
    reranker = load_reranker(reranker_options(args))  # a bad model fails before embeddings load
    pipeline = RerankPipeline(args.db, collection=args.collection, reranker=reranker)
    if pipeline.count() == 0:
        error(
            f"the index at {args.db} (collection {args.collection}) is empty; "
            f"add files with `rag-rerank index PATH... --db {args.db}`"
        )
        return 1
    results = pipeline.query(
        args.question, k=args.k, top_n=args.top_n, threshold=args.threshold, prune=prune
    )
    if args.json:
        print(json.dumps({"model": reranker.model_name, **results.to_dict()}, ensure_ascii=False))
        return 0
    out = console()
    out.print(model_line(reranker))
    out.print(results)  # PipelineResults draws itself through render.render_table
    return 0
