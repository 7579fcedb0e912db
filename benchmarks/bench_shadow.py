"""What shadow scoring costs the answer: p50/p95 latency of ``POST /rerank`` served by the
primary model alone, and with a shadow model scoring every request in the background.

In-process (httpx's ASGI transport, no sockets), one client sending requests one after another,
so the figures isolate the work the shadow adds on the same machine: on a CPU box the shadow's
forward passes compete with the primary's for the cores; on a GPU box they queue on the GPU.
Example (tiny random models, CPU):

    python -m rag_rerank.testing /tmp/tiny
    python benchmarks/bench_shadow.py --primary /tmp/tiny/bert --shadow /tmp/tiny/xlmr
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import httpx
import numpy as np

from rag_rerank import Reranker
from rag_rerank.server import create_app

WORDS = ["bank", "river", "money", "loan", "interest", "account", "water", "boat", "panda"]


def _docs(rng: random.Random, count: int, words: int) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(count)]


async def _latencies(app, requests: int, docs: int, words: int) -> list[float]:
    rng = random.Random(0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        seconds = []
        for _ in range(requests):
            body = {"query": "which bank pays interest?", "texts": _docs(rng, docs, words)}
            start = time.perf_counter()
            response = await client.post("/rerank", json=body)
            seconds.append(time.perf_counter() - start)
            response.raise_for_status()
        shadow = app.state.service.shadow
        if shadow is not None:
            await shadow.wait()
            print("  shadow:", shadow.summary()[0])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--primary", required=True, help="model folder or hub id")
    parser.add_argument("--shadow", required=True, help="model folder or hub id")
    parser.add_argument("--device", default=None)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--docs", type=int, default=50, help="documents per request")
    parser.add_argument("--words", type=int, default=60, help="words per document")
    args = parser.parse_args()
    with (
        Reranker(args.primary, device=args.device, show_progress=False) as primary,
        Reranker(args.shadow, device=args.device, show_progress=False) as shadow,
    ):
        for label, app in (
            ("primary alone", create_app({"primary": primary})),
            ("with shadow", create_app({"primary": primary, "shadow": shadow}, shadow="shadow")),
        ):
            asyncio.run(_latencies(app, 10, args.docs, args.words))  # warm-up
            ms = 1000 * np.asarray(
                asyncio.run(_latencies(app, args.requests, args.docs, args.words))
            )
            p50, p95 = np.percentile(ms, [50, 95])
            print(
                f"{label:>14}: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
                f"({args.requests} requests of {args.docs} documents, {primary.device})"
            )


if __name__ == "__main__":
    main()
