"""Resident memory of one reranker over many requests of varying lengths (issue 25, item 8).

Prints RSS (MB) after loading and every ``--every`` requests, for the dtype asked. The CPU path
grew by ~550 MB over the first few hundred requests (one oneDNN shape per batch) until packed
batches were padded to a multiple of ``TOKEN_BUCKET`` tokens; ``--no-buckets`` turns that padding
off, to compare:

    python benchmarks/bench_memory.py --dtype bf16 --requests 2000
    python benchmarks/bench_memory.py --dtype bf16 --requests 300 --no-buckets
    python benchmarks/bench_memory.py --dtype fp32 --requests 2000

Uses a tiny random BERT cross-encoder (rag_rerank.testing) unless ``--model`` names another.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

import psutil

from rag_rerank import Reranker
from rag_rerank.testing import build_bert

WORDS = "river bank money loan water stream fish boat interest account".split()


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--model", default=None, help="model folder (default: a tiny BERT)")
    parser.add_argument(
        "--no-buckets", action="store_true", help="packed batches at their exact token count"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = args.model or str(build_bert(f"{folder}/bert"))
        rr = Reranker(model, device="cpu", dtype=args.dtype, cache=None, show_progress=False)
        encoder = rr.engine.model.packed_encoder
        if args.no_buckets and encoder is not None:
            encoder.bucket = 1
        rng = random.Random(0)
        print(f"dtype={args.dtype} loaded: {rss_mb():.0f} MB", flush=True)
        start = time.perf_counter()
        for i in range(1, args.requests + 1):
            docs = [
                " ".join(rng.choices(WORDS, k=rng.randint(5, 200)))
                for _ in range(rng.randint(1, 10))
            ]
            rr.rerank(f"query {i}", docs)
            if i % args.every == 0:
                print(
                    f"after {i} requests: {rss_mb():.0f} MB ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
        rr.close()


if __name__ == "__main__":
    main()
