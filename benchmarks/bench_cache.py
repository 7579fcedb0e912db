"""Score-cache benchmark: RAG traffic where 80% of the queries repeat, with no cache, the
in-process cache and Redis, in one run on one loaded model.

Each request is one query with the same candidates its retriever returned the last time (a
repeated query brings back the same passages, as a vector store does). Requests run one after
another; the figures are requests/s and the median latency. Redis is Debian's redis-server,
started on a free loopback port for the run (``--redis-url`` uses yours instead).

Examples:
    python benchmarks/bench_cache.py --model /tmp/tiny/bert --device cpu
    python benchmarks/bench_cache.py --shape minilm-l6 --requests 400  # random MiniLM weights
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_load import free_port

WORDS = (
    "bank loan money river water boat interest account fish stream panda bamboo city capital "
    "bear mountain rate deposit credit savings harbour sail engine ticket train station"
).split()


def _workload(requests: int, repeat: float, docs: int, words: int, seed: int) -> list[tuple]:
    """``requests`` (query, passages) pairs; a fraction ``repeat`` re-asks an earlier query."""
    rng = random.Random(seed)
    asked: list[tuple[str, list[str]]] = []
    out = []
    for i in range(requests):
        if asked and rng.random() < repeat:
            out.append(rng.choice(asked))
            continue
        query = f"question {i}: " + " ".join(rng.choice(WORDS) for _ in range(8))
        passages = [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(docs)]
        asked.append((query, passages))
        out.append(asked[-1])
    return out


def _time(rr, workload: list[tuple]) -> dict[str, float]:
    latencies = []
    start = time.perf_counter()
    for query, passages in workload:
        t0 = time.perf_counter()
        rr.rerank(query, passages, top_n=5)
        latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    return {
        "requests_per_s": len(workload) / total,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": sorted(latencies)[int(0.99 * (len(latencies) - 1))] * 1e3,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="hub id or folder of a cross-encoder")
    source.add_argument("--shape", help="a random-weight shape of benchmarks/harness (minilm-l6)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--repeat", type=float, default=0.8, help="share of repeated queries")
    parser.add_argument("--docs", type=int, default=50, help="candidates per query")
    parser.add_argument("--words", type=int, default=60, help="about this many words each")
    parser.add_argument("--redis-url", default=None, help="use this Redis instead of starting one")
    args = parser.parse_args()

    from rag_rerank import Reranker

    folder = args.model
    if args.shape:
        from harness.shapes import SHAPES, build_model

        shape = SHAPES[args.shape]
        workdir = Path("~/.cache/rag-rerank/bench").expanduser()
        folder = str(build_model(shape, workdir / shape.name))
    server = None
    url = args.redis_url
    if url is None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server not found: apt-get install redis-server, or --redis-url")
        port = free_port()
        command = [binary, "--bind", "127.0.0.1", "--port", str(port)]
        server = subprocess.Popen(
            [*command, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        time.sleep(0.5)
    base = Reranker(folder, device=args.device, show_progress=False, cache=None)
    try:
        workload = _workload(args.requests, args.repeat, args.docs, args.words, seed=0)
        distinct = len({id(item) for item in workload})
        base.rerank("warm-up", ["a warm-up passage"] * 4)
        print(
            f"model {base.model_name} on {base.device}; {args.requests} requests, "
            f"{args.repeat:.0%} repeated queries ({distinct} distinct), {args.docs} candidates "
            f"of ~{args.words} words each; one client; cpus {os.cpu_count()}"
        )
        print(f"{'cache':<28} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'hits':>7} {'misses':>7}")
        for label, cache in (("none", None), ("in-process LRU", "memory"), ("redis", url)):
            rr = base.with_options(cache=cache)  # same loaded model, another cache
            row = _time(rr, workload)
            stats = rr.cache_stats()
            hits, misses = ("-", "-") if stats is None else (stats.hits, stats.misses)
            name = label if cache in (None, "memory") else f"redis ({url})"
            print(
                f"{name:<28} {row['requests_per_s']:>9.1f} {row['p50_ms']:>9.1f} "
                f"{row['p99_ms']:>9.1f} {hits:>7} {misses:>7}"
            )
    finally:
        base.close()
        if server is not None:
            server.kill()
            server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
