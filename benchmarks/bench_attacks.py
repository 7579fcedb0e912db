"""What the attacks of issue 25 cost a live server, and how long a small request waits meanwhile.

Starts ``rag-rerank serve`` (a tiny model, ``--clean html``, an API key, default limits) in a
fresh process, runs a prober beside it (``GET /health`` every 0.2 s on its own connection) and,
one after the other:

- ``flood``: 2,000 unauthenticated requests, each with a random 8 kB method name (401s); the
  size of ``/metrics`` and of the server's log after them;
- ``unread``: 4 clients each ask ``/clean`` to echo just under 8 MiB and never read; the
  server's RSS while they wait and 40 s later (past ``--write-timeout``), and how many of
  them the server cut (counted 499);
- ``html``: ``/clean`` of one 40 kB document of ``<a `` repeated (``--clean html``);
- ``unknown_keys``: an 8 MiB body of 700,000 unknown keys (422);
- ``long_query``: ``/rerank`` with a 7 MB query and 1,000 short documents, score cache on;
- ``drain``: ``--drain-timeout 3``, a request that needs minutes, SIGTERM: the seconds to the
  process's exit and what the cut request got.

Each line is JSON: the case, its figures, and ``prober_worst_s``, the longest a prober request
waited while the case ran. ``--code DIR`` runs another checkout of the package (e.g. the
commit before a fix, unpacked with ``git archive``) with the same script.

Examples:
    python -m rag_rerank.testing /tmp/tiny
    python benchmarks/bench_attacks.py --model /tmp/tiny/bert
    python benchmarks/bench_attacks.py --model /tmp/tiny/bert --case html --case drain
    python benchmarks/bench_attacks.py --model /tmp/tiny/bert --case unread \
        --serve-args "--max-echo-bytes 16777216"    # the write timeout, not the echo limit
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
from http_load import free_port

KEY = "bench-key"
CASES = ("flood", "unread", "html", "unknown_keys", "long_query", "drain")
AUTH = {"Authorization": f"Bearer {KEY}"}


class Server:
    """``rag-rerank serve`` in a fresh process; its log goes to a file."""

    def __init__(self, model: str, code: str, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": code}
        command = [
            sys.executable, "-m", "rag_rerank.cli", "serve", "--model", model,
            "--port", str(self.port), "--api-key", KEY, "--clean", "html",
            "--cache", "memory", *extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=code
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def prober(base: str) -> Iterator[Callable[[], float]]:
    """GET /health every 0.2 s; yields a function giving the worst wait so far, in seconds
    (a request that has not come back yet counts with its wait up to now)."""
    worst = [0.0]
    started = [0.0]
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(base_url=base, timeout=600) as client:
            while not stop.is_set():
                started[0] = time.monotonic()
                with suppress(httpx.TransportError):
                    client.get("/health")
                worst[0] = max(worst[0], time.monotonic() - started[0])
                started[0] = 0.0
                stop.wait(0.2)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def worst_wait() -> float:
        waiting = time.monotonic() - started[0] if started[0] else 0.0
        return round(max(worst[0], waiting), 2)

    try:
        yield worst_wait
    finally:
        stop.set()
        thread.join(600)


def post(base: str, route: str, body: bytes, timeout: float = 600) -> tuple[int, float]:
    start = time.perf_counter()
    response = httpx.post(
        f"{base}{route}",
        content=body,
        headers={**AUTH, "content-type": "application/json"},
        timeout=timeout,
    )
    return response.status_code, round(time.perf_counter() - start, 2)


def case_flood(server: Server) -> dict[str, object]:
    before = len(httpx.get(f"{server.base}/metrics", headers=AUTH).content)
    log_before = server.log.stat().st_size
    rng = random.Random(0)
    start = time.perf_counter()
    statuses: dict[int, int] = {}
    for _ in range(2000):
        method = "".join(rng.choices(string.ascii_uppercase, k=8000)).encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
            head = b" /rerank HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            conn.sendall(method + head)
            answer = conn.recv(64)
        status = int(answer.split()[1]) if answer.startswith(b"HTTP/") else 0
        statuses[status] = statuses.get(status, 0) + 1
    seconds = round(time.perf_counter() - start, 1)
    after = len(httpx.get(f"{server.base}/metrics", headers=AUTH).content)
    return {
        "statuses": statuses,
        "seconds": seconds,
        "metrics_bytes": [before, after],
        "log_growth_bytes": server.log.stat().st_size - log_before,
    }


def case_unread(server: Server) -> dict[str, object]:
    before = server.rss_mb()
    body = json.dumps({"texts": ["a" * (2 * 1024 * 1024 - 100)] * 4}).encode()  # 8 MiB echo
    request = (
        b"POST /clean HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    clients = []
    for _ in range(4):
        conn = socket.socket()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.connect(("127.0.0.1", server.port))
        conn.sendall(request)
        clients.append(conn)
    time.sleep(4)
    held = server.rss_mb()
    time.sleep(40)  # cleaning 32 MB takes a while on a small CPU, then --write-timeout
    later = server.rss_mb()
    for conn in clients:
        conn.close()
    series = 'rag_rerank_requests_total{method="POST",route="/clean",status="499"} '
    metrics = httpx.get(f"{server.base}/metrics", headers=AUTH).text
    cut = sum(int(line.split()[-1]) for line in metrics.splitlines() if line.startswith(series))
    return {
        "clients": len(clients),
        "rss_mb": round(before),
        "rss_growth_mb_after_4s": round(held - before),
        "rss_growth_mb_after_44s": round(later - before),
        "cut_and_counted_499": cut,
    }


def case_html(server: Server) -> dict[str, object]:
    body = json.dumps({"texts": ["<a " * 13_333]}).encode()  # 40 kB
    status, seconds = post(server.base, "/clean", body)
    return {"document_bytes": 3 * 13_333, "status": status, "seconds": seconds}


def case_unknown_keys(server: Server) -> dict[str, object]:
    keys = b",".join(b'"k%d":0' % i for i in range(700_000))
    body = b'{"query":"q","texts":["a"],' + keys + b"}"
    before = server.rss_mb()
    status, seconds = post(server.base, "/rerank", body)
    return {
        "body_bytes": len(body),
        "status": status,
        "seconds": seconds,
        "rss_growth_mb": round(server.rss_mb() - before),
    }


def case_long_query(server: Server) -> dict[str, object]:
    texts = [f"passage number {i} about rivers and banks" for i in range(1000)]
    body = json.dumps({"query": "river " * 1_200_000, "texts": texts}).encode()  # 7.2 MB query
    status, seconds = post(server.base, "/rerank", body)
    return {"query_bytes": 6 * 1_200_000, "documents": 1000, "status": status, "seconds": seconds}


def case_drain(model: str, code: str, log: Path) -> dict[str, object]:
    server = Server(model, code, log, "--drain-timeout", "3")
    words = " ".join(["river bank money loan water stream fish boat interest account"] * 300)
    body = json.dumps({"query": "drain", "texts": [f"{i} {words}" for i in range(200)]})
    got: dict[str, object] = {}

    def send() -> None:
        try:
            response = httpx.post(
                f"{server.base}/rerank",
                content=body,
                headers={**AUTH, "content-type": "application/json"},
                timeout=300,
            )
            got.update(status=response.status_code, type=response.headers.get("content-type"))
        except httpx.TransportError as exc:
            got.update(error=type(exc).__name__)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    deadline = time.monotonic() + 60
    while (
        "rag_rerank_requests_in_flight 2"
        not in httpx.get(f"{server.base}/metrics", headers=AUTH).text
    ):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    start = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code_ = server.process.wait(120)
    seconds = round(time.monotonic() - start, 2)
    sender.join(30)
    return {"drain_timeout_s": 3, "exit_status": code_, "exit_after_s": seconds, "cut_request": got}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a cross-encoder folder (default: a tiny random one)")
    parser.add_argument("--code", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--case", action="append", choices=CASES, help="default: all")
    parser.add_argument(
        "--serve-args", default="", help="more flags for rag-rerank serve, e.g. a higher limit"
    )
    args = parser.parse_args()
    model = args.model
    if model is None:
        import tempfile

        from rag_rerank.testing import build_all

        model = str(build_all(Path(tempfile.mkdtemp()))["bert"])
    log = Path(f"/tmp/bench_attacks_{os.getpid()}.log")
    cases = args.case or list(CASES)
    served = [c for c in cases if c != "drain"]
    if served:
        server = Server(model, args.code, log, *args.serve_args.split())
        try:
            for case in served:
                with prober(server.base) as worst:
                    figures = globals()[f"case_{case}"](server)
                    print(json.dumps({"case": case, **figures, "prober_worst_s": worst()}))
        finally:
            server.stop()
    if "drain" in cases:
        print(json.dumps({"case": "drain", **case_drain(model, args.code, log)}))


if __name__ == "__main__":
    main()
