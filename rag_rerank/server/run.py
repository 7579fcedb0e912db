"""Run the app under uvicorn with a draining shutdown.

On SIGTERM (or the first Ctrl-C): ``/ready`` turns 503 at once and new rerank requests get 503
with ``Retry-After`` (a load balancer moves them elsewhere); requests in flight finish, waiting
at most ``drain_timeout`` seconds; then uvicorn shuts down and the process exits 0. A second
signal stops waiting.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI

from .registry import ServiceRegistry

__all__ = ["DrainingServer", "run_server"]

logger = logging.getLogger("rag_rerank.server")


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM/SIGINT drains the service before shutting down."""

    def __init__(self, config: uvicorn.Config, service: ServiceRegistry, drain_timeout: float):
        super().__init__(config)
        self.service = service
        self.drain_timeout = drain_timeout
        self._drain_started: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Never re-raise the signal after shutdown (uvicorn does): a drained exit is a clean 0.
        if self._drain_started is None:
            self._drain_started = time.monotonic()
            self.service.start_draining()
            logger.info(
                "%s: not ready; draining requests in flight (at most %.0f s)",
                signal.Signals(sig).name,
                self.drain_timeout,
            )
            threading.Thread(target=self._drain, name="rag-rerank-drain", daemon=True).start()
        elif self.should_exit:
            self.force_exit = True
        else:
            logger.info("second signal: shutting down without waiting")
            self.should_exit = True

    def _drain(self) -> None:
        assert self._drain_started is not None
        deadline = self._drain_started + self.drain_timeout
        while self.service.busy and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.service.busy:
            logger.warning("drain timeout: shutting down with requests still in flight")
        self.should_exit = True


def run_server(
    app: FastAPI,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    drain_timeout: float = 30.0,
    log_level: str = "info",
) -> int:
    """Serve ``app`` (from :func:`create_app`) until SIGTERM or Ctrl-C; return the exit code."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,  # the app logs each request itself, with sizes and timings only
        timeout_graceful_shutdown=max(1, int(drain_timeout)),
        lifespan="off",
    )
    server = DrainingServer(config, app.state.service, drain_timeout)
    server.run()
    return 0 if server.started else 1
