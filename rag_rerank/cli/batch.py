"""``rag-rerank batch``: score a JSONL or Parquet file of queries and documents on Ray Data."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .option_flags import add_model_options, reranker_options
from .options import add_ray_address, non_negative_float, positive_int
from .output import error

if TYPE_CHECKING:
    from ..api import RerankerOptions
    from ..cluster.files import Rows, ShardStore
    from .options import Subparsers

__all__ = ["add_batch"]


def add_batch(subparsers: Subparsers) -> None:
    """Register ``batch``."""
    parser = subparsers.add_parser(
        "batch",
        help="score a JSONL/Parquet file of queries and documents on Ray Data",
        description="Score every row of INPUT ({query, documents: [...]} or {query, document}; "
        "JSONL or Parquet) and write OUTPUT (JSONL or Parquet, by suffix): each row keeps its "
        "fields and gains 'scores' (aligned with 'documents') or 'score', in [0, 1]. Output is "
        "written in shards (OUTPUT.parts/) so that a rerun after a crash skips the finished "
        "ones. Needs the 'ray' extra.",
    )
    parser.add_argument(
        "input", type=Path, metavar="INPUT", help="rows to score (.jsonl, .parquet)"
    )
    parser.add_argument(
        "output", type=Path, metavar="OUTPUT", help="where to write (.jsonl, .parquet)"
    )
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="workers, one model each (default: 1)"
    )
    add_ray_address(parser)
    parser.add_argument(
        "--gpus-per-worker",
        type=non_negative_float,
        default=None,
        metavar="N",
        help="GPUs per worker, fractions allowed (default: 1 when the cluster has GPUs, else 0)",
    )
    parser.add_argument(
        "--cpus-per-worker",
        type=non_negative_float,
        default=1.0,
        metavar="N",
        help="CPUs per worker, fractions allowed (default: 1)",
    )
    parser.add_argument(
        "--shard-rows",
        type=positive_int,
        default=10_000,
        metavar="N",
        help="rows per output shard, the unit a rerun skips (default: 10000)",
    )
    parser.add_argument(
        "--on-error",
        choices=("stop", "skip"),
        default="stop",
        help="a malformed row: stop with its file and row number, or skip it and write it to "
        "the rejects file (default: stop)",
    )
    parser.add_argument(
        "--rejects",
        type=Path,
        default=None,
        metavar="PATH",
        help="rejects file for --on-error skip (default: OUTPUT.rejects.jsonl)",
    )
    add_model_options(parser)
    parser.set_defaults(handler=batch)


def batch(args: argparse.Namespace) -> int:
    """Score INPUT into OUTPUT; returns the exit code."""
    try:
        from ..cluster.data import rerank_dataset
        from ..cluster.runtime import connect, ray
    except ImportError as exc:
        error(str(exc))
        return 2
    from ..cluster.files import ShardStore, read_rows

    options = reranker_options(args)
    rejects = None
    if args.on_error == "skip":
        rejects = args.rejects or args.output.with_name(args.output.name + ".rejects.jsonl")
    rows = read_rows(args.input, rejects=rejects)
    stat = args.input.stat()
    job = {
        "input": str(args.input.resolve()),
        "input_bytes": stat.st_size,
        "input_mtime_ns": stat.st_mtime_ns,
        "rows": len(rows.rows),
        "options": {k: v for k, v in options.to_dict().items() if k != "show_progress"},
    }
    store = ShardStore(args.output, args.shard_rows, job)
    shards = store.shards(len(rows.rows))
    pending = [s for s in range(len(shards)) if not store.done(s)]
    if len(pending) < len(shards):
        print(
            f"resuming: {len(shards) - len(pending)} of {len(shards)} shards finished before",
            file=sys.stderr,
        )
    if pending:
        if not args.verbose:
            logging.getLogger("ray").setLevel(logging.WARNING)
        started = connect(args.ray_address, log_to_driver=args.verbose)
        try:
            ray.data.DataContext.get_current().enable_progress_bars = False
            gpus = args.gpus_per_worker
            if gpus is None:
                gpus = 1.0 if ray.cluster_resources().get("GPU", 0) else 0.0
            scored = rerank_dataset(
                ray.data.from_items(_items(rows, shards, pending)),
                options=options,
                documents_column="documents" if rows.kind == "documents" else None,
                document_column="document" if rows.kind == "document" else None,
                concurrency=args.workers,
                gpus_per_worker=gpus,
                cpus_per_worker=args.cpus_per_worker,
            )
            _write_shards(scored, rows, store, shards, pending, options)
        finally:
            if started:
                ray.shutdown()
    store.merge(len(shards))
    rejected = f", {rows.rejected} rejected (see {rejects})" if rows.rejected else ""
    print(
        f"scored {len(rows.rows)} rows ({rows.pairs} pairs) in {len(shards)} shards, "
        f"{len(shards) - len(pending)} finished before{rejected} -> {args.output}",
        file=sys.stderr,
    )
    return 0


def _items(rows: Rows, shards: list[range], pending: list[int]) -> list[dict[str, Any]]:
    # Only what the workers need travels; the driver keeps every other field of each row.
    return [
        {"row": i, "query": rows.rows[i]["query"], rows.kind: rows.rows[i][rows.kind]}
        for shard in pending
        for i in shards[shard]
    ]


def _write_shards(
    scored: Any,
    rows: Rows,
    store: ShardStore,
    shards: list[range],
    pending: list[int],
    options: RerankerOptions,
) -> None:
    """Put each score into its row and write every shard as soon as all its rows are in."""
    from tqdm.auto import tqdm

    column = "score" if rows.kind == "document" else "scores"
    left = {shard: len(shards[shard]) for shard in pending}
    quiet = options.show_progress is False or (
        options.show_progress is None and not sys.stderr.isatty()
    )
    with tqdm(total=sum(left.values()), unit="row", disable=quiet) as bar:
        for part in scored.iter_batches(batch_format="pyarrow", batch_size=None):
            indices = part.column("row").to_pylist()
            for i, value in zip(indices, part.column(column).to_pylist(), strict=True):
                rows.rows[i][column] = value
                shard = i // store.shard_rows
                left[shard] -= 1
                if left[shard] == 0:
                    store.write(shard, [rows.rows[j] for j in shards[shard]])
            bar.update(len(indices))
