"""Ray benchmark, in one run: batch pairs/s on Ray Data with 1 and 2 workers, and requests/s at
1, 8 and 64 clients against the single-process server and Ray Serve with 1 and 2 replicas.

Starts one local Ray instance (``--num-cpus``), scores ``--pairs`` (query, passage) pairs with
:func:`rag_rerank.cluster.rerank_dataset` (wall time from submit to the last row, worker start-up
and model loads included), then drives ``POST /rerank`` from asyncio + httpx clients in this
process (the same load generator as ``bench_server.py``) against ``rag-rerank serve`` started as a
subprocess, then against Serve apps of 1 and 2 replicas. Example (tiny random model, CPU):

    python -m rag_rerank.testing /tmp/tiny
    python benchmarks/bench_ray.py --model /tmp/tiny/bert --device cpu --pairs 10000 \\
        --requests 300

On a 2-core machine the replicas, the Serve proxy and the load generator share the same cores:
the figures show the overhead of the Ray path, not its scaling, which needs one GPU per replica.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_load import WORDS, drive, free_port, rerank_bodies

REPO = Path(__file__).resolve().parents[1]


def _batch(ray: object, args: argparse.Namespace, workers: int) -> dict[str, float]:
    import random

    from rag_rerank.cluster import rerank_dataset

    rng = random.Random(workers)
    rows = [
        {
            "query": " ".join(rng.choices(WORDS, k=6)),
            "document": " ".join(rng.choices(WORDS, k=rng.randint(args.words // 2, args.words))),
        }
        for _ in range(args.pairs)
    ]
    start = time.perf_counter()
    ds = ray.data.from_items(rows)  # type: ignore[attr-defined]
    scored = rerank_dataset(
        ds,
        args.model,
        document_column="document",
        concurrency=workers,
        cpus_per_worker=args.num_cpus / workers,
        device=args.device,
        dtype=args.dtype,
        cache=None,
    )
    count = sum(len(b["score"]) for b in scored.iter_batches(batch_format="numpy"))
    seconds = time.perf_counter() - start
    return {"workers": workers, "pairs": count, "seconds": seconds, "pairs_per_s": count / seconds}


def _wait_ready(url: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not become ready")


def _load(url: str, args: argparse.Namespace, label: str) -> list[dict[str, object]]:
    rows = []
    for clients in args.clients:
        asyncio.run(drive(url, rerank_bodies(min(50, args.requests), args.docs, args.words, 9), 4))
        bodies = rerank_bodies(args.requests, args.docs, args.words)
        result = asyncio.run(drive(url, bodies, clients))
        rows.append({"server": label, **result})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder or hub id")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--pairs", type=int, default=10_000, help="pairs for the batch runs")
    parser.add_argument("--requests", type=int, default=300, help="requests per client count")
    parser.add_argument(
        "--clients", type=lambda t: [int(c) for c in t.split(",")], default=[1, 8, 64]
    )
    parser.add_argument("--docs", type=int, default=4, help="documents per request")
    parser.add_argument("--words", type=int, default=20, help="words per document, at most")
    parser.add_argument("--gpus-per-replica", type=float, default=0.0)
    args = parser.parse_args()

    import ray
    from ray import serve

    from rag_rerank.cluster import connect, serve_app

    connect(num_cpus=args.num_cpus, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    results: dict[str, list] = {"batch": [], "http": []}
    for workers in (1, 2):
        results["batch"].append(_batch(ray, args, workers))
        print(json.dumps(results["batch"][-1]), flush=True)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rag_rerank.cli",
            "serve",
            "--model",
            args.model,
            "--port",
            str(port),
            "--device",
            args.device,
            "--dtype",
            args.dtype,
            "--log-level",
            "warning",
        ],
        cwd=REPO,
    )
    try:
        _wait_ready(url)
        results["http"] += _load(url, args, "single process")
    finally:
        server.terminate()
        server.wait(60)

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}"
    for replicas in (1, 2):
        app = serve_app(
            args.model,
            replicas=replicas,
            cpus_per_replica=min(1.0, args.num_cpus / 4),
            gpus_per_replica=args.gpus_per_replica,
            device=args.device,
            dtype=args.dtype,
        )
        serve.run(app, name="bench", route_prefix="/")
        _wait_ready(url)
        results["http"] += _load(url, args, f"Ray Serve, {replicas} replica(s)")
        serve.delete("bench")
    serve.shutdown()
    ray.shutdown()

    print("\n| workers | pairs | s | pairs/s |\n|---:|---:|---:|---:|")
    for r in results["batch"]:
        print(f"| {r['workers']} | {r['pairs']} | {r['seconds']:.1f} | {r['pairs_per_s']:.0f} |")
    print(
        "\n| server | clients | req/s | p50 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|"
    )
    for r in results["http"]:
        print(
            f"| {r['server']} | {r['concurrency']} | {r['requests_per_s']:.1f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
