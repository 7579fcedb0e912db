"""Helpers for the HTTP service tests: a real uvicorn on 127.0.0.1 in a thread, a NaN model."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import torch
import uvicorn
from fastapi import FastAPI
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rag_rerank.api import ServerOptions
from rag_rerank.server.run import guarded_protocol

REPO = Path(__file__).resolve().parents[1]

POISON_WORD = "zebra"
"""Documents containing this word score NaN with :func:`build_nan_model`."""


def client_for(app: FastAPI, **headers: str) -> httpx.AsyncClient:
    """A client of ``app`` through ASGI (no socket), sending ``headers`` with every request."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers
    )


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yield its base URL; stop it after."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def guarded_server(app: FastAPI, timeouts: ServerOptions) -> Iterator[int]:
    """Serve ``app`` with the guarded protocol of ``rag-rerank serve`` (connection timeouts and
    limits) on a free loopback port; yield the port; stop it after."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        http=guarded_protocol(timeouts),
        timeout_keep_alive=timeouts.keep_alive_timeout,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "uvicorn did not start")
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def serve_cli(model: str, drain_timeout: float) -> tuple[subprocess.Popen[str], str]:
    """``rag-rerank serve`` in a fresh process on a free port, up and healthy; returns the
    process (its output in ``stdout``) and the base URL. Stop it by PID."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    env.pop("RAG_RERANK_API_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "rag_rerank.cli", "serve", "--model", model,
         "--port", str(port), "--drain-timeout", str(drain_timeout), "--log-level", "info"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, process.communicate()[0]
        try:
            return httpx.get(f"{base}/health").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, "rag-rerank serve did not come up", timeout=90)
    return process, base


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], object], message: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` every 10 ms until true; fail the test with ``message`` after timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.01)


def build_nan_model(source: str, target: Path) -> str:
    """Copy a tiny BERT cross-encoder, with NaN as the embedding of :data:`POISON_WORD`.

    A real model whose forward pass returns NaN exactly for pairs that contain the word: attention
    masks keep the NaN inside that pair's row, so other pairs of the batch stay finite.
    """
    shutil.copytree(source, target)
    tokenizer = AutoTokenizer.from_pretrained(target)
    model = AutoModelForSequenceClassification.from_pretrained(target)
    (token_id,) = tokenizer(POISON_WORD, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        model.get_input_embeddings().weight[token_id] = float("nan")
    model.save_pretrained(target)
    return str(target)


def long_text(words: int, seed: int = 0) -> str:
    """A document of about ``words`` words (several windows: keeps the worker busy a while)."""
    vocabulary = [
        "river",
        "bank",
        "money",
        "loan",
        "water",
        "stream",
        "fish",
        "boat",
        "interest",
        "account",
    ]
    return " ".join(vocabulary[(i * 7 + seed) % len(vocabulary)] for i in range(words))


class RedisServer:
    """Debian's ``redis-server`` on a free 127.0.0.1 port, without persistence; stopped by PID.

    ``stop()`` kills it (as a crash would) and ``start()`` brings it back on the same port.
    """

    def __init__(self, *extra_args: str) -> None:
        self.port = free_port()
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            REDIS_SERVER,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(self._answers, "redis-server did not start", timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
"""Debian's redis-server (``.ci/run`` installs it when missing)."""
