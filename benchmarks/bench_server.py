"""HTTP service benchmark: requests/s and p50/p99 latency at 1, 8 and 64 concurrent clients, and
the server's resident memory before and after many requests (it must stay flat).

Starts ``rag-rerank serve`` as a subprocess on 127.0.0.1 (a free port), warms it up, then drives
``POST /rerank`` from asyncio + httpx clients in this process. Each request carries ``--docs``
passages of about ``--words`` words. Example (tiny random model, CPU):

    python -m rag_rerank.testing /tmp/tiny
    python benchmarks/bench_server.py --model /tmp/tiny/bert --device cpu \\
        --requests 2000 --rss-requests 20000

The clients share the machine with the server, so on a small CPU box the figures include the
load generator's own cost; on a GPU box they are closer to the server's capacity.
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
from http_load import drive, free_port, rerank_bodies

REPO = Path(__file__).resolve().parents[1]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="hub id or folder of the cross-encoder")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--concurrency", default="1,8,64", help="comma-separated client counts")
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency")
    parser.add_argument("--rss-requests", type=int, default=20000, help="requests between RSS")
    parser.add_argument("--docs", type=int, default=10, help="documents per request")
    parser.add_argument("--words", type=int, default=40, help="about this many words each")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "rag_rerank.cli", "serve", "--model", args.model]
    command += ["--port", str(port), "--log-level", "warning", "--max-queue-pairs", "100000"]
    command += ["--cache", "none"]  # the figures measure the model, not the score cache
    if args.device:
        command += ["--device", args.device]
    if args.dtype:
        command += ["--dtype", args.dtype]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(command, cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the server exited with {server.returncode}")
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        info = httpx.get(f"{url}/info").json()
        print(
            f"model {info['model_id']} on {info['device']} ({info['model_dtype']}); "
            f"{args.docs} docs x ~{args.words} words per request; cpus {os.cpu_count()}; "
            f"score cache {info.get('cache') or 'off'}"
        )
        asyncio.run(drive(url, rerank_bodies(200, args.docs, args.words, seed=99), 8))  # warm-up
        results = []
        print(
            f"{'clients':>8} {'requests':>9} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}"
        )
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            payloads = rerank_bodies(args.requests, args.docs, args.words, seed=concurrency)
            row = asyncio.run(drive(url, payloads, concurrency))
            results.append(row)
            print(
                f"{concurrency:>8} {row['requests']:>9} {row['requests_per_s']:>9.1f} "
                f"{row['p50_ms']:>9.1f} {row['p99_ms']:>9.1f} {row['errors']:>7}"
            )
        before = _rss_mib(server.pid)
        payloads = rerank_bodies(1000, args.docs, args.words, seed=7)
        done = 0
        start = time.perf_counter()
        while done < args.rss_requests:
            batch = payloads[: min(len(payloads), args.rss_requests - done)]
            asyncio.run(drive(url, batch, 16))
            done += len(batch)
        after = _rss_mib(server.pid)
        rss = {
            "requests": done,
            "seconds": time.perf_counter() - start,
            "rss_before_mib": before,
            "rss_after_mib": after,
        }
        print(
            f"RSS over {done} requests ({rss['seconds']:.0f} s): {before:.1f} MiB -> "
            f"{after:.1f} MiB ({after - before:+.1f} MiB)"
        )
        if args.json:
            args.json.write_text(json.dumps({"info": info, "runs": results, "rss": rss}, indent=2))
    finally:
        server.terminate()
        server.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
