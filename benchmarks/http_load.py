"""The HTTP load the service benchmarks send, shared by ``bench_server.py``, ``bench_ray.py``,
``bench_cache.py`` and ``bench_attacks.py``: a free loopback port, request bodies of random words,
and asyncio + httpx clients that post them and time each answer."""

from __future__ import annotations

import asyncio
import random
import socket
import time

import httpx
import numpy as np

WORDS = [
    "bank",
    "river",
    "money",
    "loan",
    "interest",
    "account",
    "water",
    "boat",
    "fish",
    "stream",
    "savings",
    "credit",
    "rate",
    "deposit",
    "panda",
    "bamboo",
    "capital",
    "city",
    "france",
    "paris",
    "tower",
    "iron",
    "lattice",
    "energy",
    "light",
    "plant",
]
"""The vocabulary of :func:`rerank_bodies`' queries and passages."""


def free_port() -> int:
    """A 127.0.0.1 port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rerank_bodies(count: int, docs: int, words: int, seed: int = 0) -> list[dict]:
    """``count`` ``POST /rerank`` bodies: a 6-word query and ``docs`` passages of
    ``words // 2`` to ``words`` words each, drawn from :data:`WORDS` with ``seed``."""
    rng = random.Random(seed)
    bodies = []
    for _ in range(count):
        query = " ".join(rng.choices(WORDS, k=6))
        texts = [
            " ".join(rng.choices(WORDS, k=rng.randint(words // 2, words))) for _ in range(docs)
        ]
        bodies.append({"query": query, "texts": texts})
    return bodies


async def drive(url: str, payloads: list[dict], concurrency: int) -> dict[str, float]:
    """Post every body to ``url``/rerank from ``concurrency`` clients at once (120 s timeout
    each); return requests/s, p50/p99 latency in ms and the count of non-200 answers."""
    latencies: list[float] = []
    errors: dict[int, int] = {}
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for payload in payloads:
        queue.put_nowait(payload)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def worker() -> None:
            while True:
                try:
                    payload = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                start = time.perf_counter()
                response = await client.post("/rerank", json=payload)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    errors[response.status_code] = errors.get(response.status_code, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {
        "concurrency": concurrency,
        "requests": len(payloads),
        "seconds": elapsed,
        "requests_per_s": len(payloads) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": sum(errors.values()),
    }
