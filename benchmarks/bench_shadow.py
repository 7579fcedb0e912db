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


async def _block(app, rng: random.Random, requests: int, docs: int, words: int) -> list[float]:
    """Latencies of ``requests`` sequential requests; then waits out the shadow's backlog, so
    that it does not spill into the next block."""
    transport = httpx.ASGITransport(app=app)
    seconds = []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for _ in range(requests):
            body = {"query": "which bank pays interest?", "texts": _docs(rng, docs, words)}
            start = time.perf_counter()
            response = await client.post("/rerank", json=body)
            seconds.append(time.perf_counter() - start)
            response.raise_for_status()
    if app.state.service.shadow is not None:
        await app.state.service.shadow.wait()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--primary", required=True, help="model folder or hub id")
    parser.add_argument("--shadow", required=True, help="model folder or hub id")
    parser.add_argument("--device", default=None)
    parser.add_argument("--requests", type=int, default=200, help="per setting")
    parser.add_argument("--block", type=int, default=20, help="requests per interleaved block")
    parser.add_argument("--docs", type=int, default=50, help="documents per request")
    parser.add_argument("--words", type=int, default=60, help="words per document")
    args = parser.parse_args()
    load = {"device": args.device, "show_progress": False, "cache": None}  # every pair scored
    with Reranker(args.primary, **load) as primary, Reranker(args.shadow, **load) as shadow:
        apps = {
            "primary alone": create_app({"primary": primary}),
            "with shadow": create_app({"primary": primary, "shadow": shadow}, shadow="shadow"),
        }
        rng = random.Random(0)
        for app in apps.values():  # warm-up
            asyncio.run(_block(app, rng, 5, args.docs, args.words))
        ms: dict[str, list[float]] = {label: [] for label in apps}
        # Interleaved blocks: a machine whose load drifts weighs on both settings alike.
        for _ in range(max(1, args.requests // args.block)):
            for label, app in apps.items():
                seconds = asyncio.run(_block(app, rng, args.block, args.docs, args.words))
                ms[label] += [1000 * s for s in seconds]
        for label, values in ms.items():
            p50, p95 = np.percentile(values, [50, 95])
            print(
                f"{label:>14}: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
                f"({len(values)} requests of {args.docs} documents, {primary.device})"
            )
        shadow_app = apps["with shadow"]
        print("shadow summary:", shadow_app.state.service.shadow.summary()[0])


if __name__ == "__main__":
    main()
