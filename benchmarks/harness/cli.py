"""The benchmark's command-line flags, and a run from them (for ``benchmarks/bench_rerank.py``)."""

from __future__ import annotations

import argparse

from .report import Options, run
from .shapes import SHAPES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's command-line options, as ``benchmarks/bench_rerank.py`` takes them."""
    d = Options()
    parser.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default=d.shape,
        help="random-weight model architecture (default: %(default)s)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="benchmark this local cross-encoder folder instead of a --shape",
    )
    parser.add_argument("--device", default=None, help="cuda, cuda:N, mps or cpu (default: auto)")
    parser.add_argument(
        "--dtype",
        default=None,
        help="bf16, fp16 or fp32 for every peer (default: bf16 on GPU, fp32 CPU)",
    )
    parser.add_argument(
        "--workload",
        action="append",
        choices=list(d.workloads),
        help="run only this workload (repeatable; default: all three)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=d.runs,
        help="timed latency runs per peer (default: %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=d.warmup,
        help="untimed latency runs first (default: %(default)s)",
    )
    parser.add_argument("--throughput-runs", type=int, default=d.throughput_runs)
    parser.add_argument("--scaling-runs", type=int, default=d.scaling_runs)
    parser.add_argument(
        "--scale",
        type=float,
        default=d.scale,
        help="fraction of the 256 throughput queries (e.g. 0.05 on a CPU)",
    )
    parser.add_argument(
        "--passages",
        default=",".join(map(str, d.passages)),
        help="passages per query for scaling (default: %(default)s)",
    )
    parser.add_argument(
        "--lengths",
        default=",".join(map(str, d.lengths)),
        help="passage lengths in tokens for scaling (default: %(default)s)",
    )
    parser.add_argument(
        "--int8", action="store_true", help="also time Reranker(quantize='int8') (CPU only)"
    )
    parser.add_argument(
        "--before",
        action="store_true",
        help="also time the core's settings before its speed work (a padded "
        "8192-token budget on CPU, 65536 on GPU, no padding limit)",
    )
    parser.add_argument(
        "--peers",
        default=",".join(d.peers),
        help="peers to run beside rag-rerank: st, flag, plain (default: all)",
    )
    parser.add_argument(
        "--workdir", default=d.workdir, help="where random-weight models are built and cached"
    )
    parser.add_argument("--output", default=None, help="also append the report to this file")


def options_from_args(args: argparse.Namespace) -> Options:
    """Build :class:`Options` from parsed :func:`add_arguments` arguments."""
    return Options(
        shape=args.shape,
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        workloads=tuple(args.workload or Options.workloads),
        runs=args.runs,
        warmup=args.warmup,
        throughput_runs=args.throughput_runs,
        scaling_runs=args.scaling_runs,
        scale=args.scale,
        passages=tuple(int(x) for x in args.passages.split(",") if x),
        lengths=tuple(int(x) for x in args.lengths.split(",") if x),
        int8=args.int8,
        before=args.before,
        workdir=args.workdir,
        peers=tuple(x.strip() for x in args.peers.split(",") if x.strip()),
    )


def main(args: argparse.Namespace) -> int:
    """Run from parsed arguments; append to ``--output`` when given. Returns the exit code."""
    report = run(options_from_args(args))
    if args.output:
        with open(args.output, "a", encoding="utf-8") as f:
            f.write(report + "\n\n")
    return 0
