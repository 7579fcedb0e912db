"""Run the app under uvicorn with connection timeouts and a draining shutdown.

On SIGTERM (or the first Ctrl-C): ``/ready`` turns 503 at once and new rerank requests get 503
with ``Retry-After`` (a load balancer moves them elsewhere); requests in flight finish, waiting
at most ``drain_timeout`` seconds in all; then the process exits 0. A second signal exits at once.

Connections are guarded (the connection settings of :class:`~rag_rerank.ServerOptions`):
request headers must arrive within ``header_timeout`` seconds, a body at ``body_min_rate`` bytes
per second at least, an idle keep-alive connection closes after ``keep_alive_timeout``, and past
``max_connections`` open connections a new one gets an immediate JSON 503 and is closed. A
response must be read: a connection whose answer waits unread longer than ``write_timeout``, or
drains slower than ``write_min_rate``, is cut (its buffered answer dropped, its request counted
as disconnected), and while the answers waiting to be written on all connections hold more than
``max_pending_write_bytes``, a new request gets a JSON 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import resource
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..api import ServerOptions
from .errors import RETRY_AFTER_SECONDS
from .middleware import DELIVERED_KEY
from .registry import ServiceRegistry

__all__ = [
    "DrainingServer",
    "default_max_connections",
    "run_server",
]

logger = logging.getLogger("rag_rerank.server")

_CHECK_EVERY = 0.5  # seconds between a connection's timeout checks
_PENDING_FRESH = 0.05  # seconds the total of bytes waiting to be written is reused


def default_max_connections() -> int:
    """Open connections allowed: the file-descriptor limit less room for the model's files and
    logs (at least 16, at most 4,096)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(16, min(4096, soft - 128))


def _unavailable(message: str, error_type: str = "unavailable") -> bytes:
    """A whole JSON 503 response that closes the connection, written without the app."""
    body = json.dumps({"error": message, "error_type": error_type}).encode()
    return (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        + f"retry-after: {RETRY_AFTER_SECONDS}\r\ncontent-length: {len(body)}\r\n".encode()
        + b"connection: close\r\n\r\n"
        + body
    )


_BUSY_RESPONSE = _unavailable("too many connections; retry later")
_BACKLOG_RESPONSE = _unavailable("too many responses waiting to be read; retry later")
_SHUTDOWN_RESPONSE = _unavailable(
    "the server shut down before this request finished; retry on another instance",
    "shutting_down",
)

_EXIT_RESERVE = 1.0
"""Seconds of ``drain_timeout`` kept for the exit itself (uvicorn's shutdown, the engines' stop):
requests still in flight are answered 503 this long before the budget ends."""


class _CountingTransport:
    """A connection's transport that counts the bytes written to it, so that the guard can
    tell how fast the client reads them (the transport only tells what is still buffered)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def guarded_protocol(timeouts: ServerOptions) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the connection settings of ``timeouts`` enforced per
    connection (``header_timeout``, ``body_min_rate``, ``max_connections``, ``write_timeout``,
    ``write_min_rate``, ``max_pending_write_bytes``)."""
    max_connections = timeouts.max_connections or default_max_connections()
    # All connections' unwritten bytes, and when they were summed (reused for _PENDING_FRESH).
    pending: dict[str, float] = {"bytes": 0, "at": -math.inf}

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            counting = _CountingTransport(transport)
            super().connection_made(counting)  # type: ignore[arg-type]
            self._output = counting
            self._cut = False
            if len(self.connections) > max_connections:
                transport.write(_BUSY_RESPONSE)  # fast and cheap: no headers read, no app
                transport.close()
                return
            self._phase_start = time.monotonic()
            self._phase_state: Any = None
            self._body_bytes = 0
            self._unwritten_since: float | None = None  # output waiting since, and its progress
            self._drained_at_start = 0
            self._last_drained = 0
            self._last_progress = 0.0
            self._timer = self.loop.call_later(_CHECK_EVERY, self._check)

        def data_received(self, data: bytes) -> None:
            self._body_bytes += len(data)
            if self.conn.their_state is h11.IDLE and self._pending_total() > (
                timeouts.max_pending_write_bytes
            ):  # a new request while unread answers fill memory: refuse it, cheaply
                logger.warning("refused a request: too many responses waiting to be read")
                self.transport.write(_BACKLOG_RESPONSE)
                self.transport.close()
                return
            super().data_received(data)

        def handle_events(self) -> None:
            cycle = self.cycle
            super().handle_events()
            if self.cycle is not cycle:  # a new request, whose app task has not started yet
                self.scope[DELIVERED_KEY] = self._delivered  # type: ignore[literal-required]

        async def _delivered(self) -> bool:
            transport = self.transport
            while transport.get_write_buffer_size() and not self._cut:
                await asyncio.sleep(0.05)  # only while a response waits: a slow reader
            return not self._cut

        def _pending_total(self) -> int:
            now = time.monotonic()
            if now - pending["at"] > _PENDING_FRESH:
                pending["at"] = now
                pending["bytes"] = sum(  # closing ones too: a close waits for its output
                    c.transport.get_write_buffer_size()
                    for c in list(self.connections)
                    if c.transport is not None
                )
            return int(pending["bytes"])

        def connection_lost(self, exc: Exception | None) -> None:
            timer = getattr(self, "_timer", None)
            if timer is not None:
                timer.cancel()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._phase_state = None  # the next request's headers get a fresh header_timeout

        def _check(self) -> None:
            now = time.monotonic()
            if self._reads_too_slowly(now):
                logger.info("cut a connection that did not read its response")
                self._cut = True
                self._disconnect()
                self.transport.abort()  # drops the unread output: its memory is freed now
                return
            if self.transport.is_closing():
                # Closing waits for its output to be read (uvicorn closes an idle keep-alive
                # connection that way): keep watching that it is.
                if self.transport.get_write_buffer_size():
                    self._timer = self.loop.call_later(_CHECK_EVERY, self._check)
                return
            state = self.conn.their_state
            if state is not self._phase_state:  # a new phase: headers, body, or waiting on us
                self._phase_state, self._phase_start, self._body_bytes = state, now, 0
            elapsed = now - self._phase_start
            # IDLE: (part of) the request line and headers. An idle keep-alive connection is
            # IDLE too, and uvicorn's own timer closes it sooner.
            too_slow = state is h11.IDLE and elapsed > timeouts.header_timeout
            if state is h11.SEND_BODY and not self.flow.read_paused:
                grace = timeouts.header_timeout
                too_slow = elapsed > grace and self._body_bytes < timeouts.body_min_rate * (
                    elapsed - grace
                )
            if too_slow:
                logger.info("closed a connection that sent its request too slowly")
                self._disconnect()
                self.transport.close()
                return
            self._timer = self.loop.call_later(_CHECK_EVERY, self._check)

        def cut_short(self) -> None:
            """At the drain's deadline: a request not yet answered gets a JSON 503 (never
            uvicorn's plain-text 500 when its task is cancelled), and the connection closes."""
            cycle = self.cycle
            if cycle is not None and not cycle.response_started and not self.transport.is_closing():
                self.transport.write(_SHUTDOWN_RESPONSE)
            if cycle is not None:  # whatever the app sends from now on goes nowhere
                cycle.response_started = cycle.disconnected = True
                cycle.message_event.set()
            self.transport.close()

        def _reads_too_slowly(self, now: float) -> bool:
            """Output waits: stalled for ``write_timeout``, or drained slower than
            ``write_min_rate`` since it began to wait (after ``write_timeout`` of grace)."""
            unwritten = self.transport.get_write_buffer_size()
            drained = self._output.written - unwritten  # bytes the client took so far
            if not unwritten:
                self._unwritten_since = None
                return False
            if self._unwritten_since is None:
                self._unwritten_since = self._last_progress = now
                self._drained_at_start = self._last_drained = drained
                return False
            if drained > self._last_drained:
                self._last_drained, self._last_progress = drained, now
            grace = timeouts.write_timeout
            elapsed = now - self._unwritten_since
            stalled = now - self._last_progress > grace
            too_slow = elapsed > grace and drained - self._drained_at_start < (
                timeouts.write_min_rate * (elapsed - grace)
            )
            return stalled or too_slow

        def _disconnect(self) -> None:
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.disconnected = True
                self.cycle.message_event.set()

    return GuardedH11Protocol


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM/SIGINT drains the service before shutting down,
    within one ``drain_timeout`` budget; a second signal exits at once."""

    def __init__(self, config: uvicorn.Config, service: ServiceRegistry, drain_timeout: float):
        super().__init__(config)
        self.service = service
        self.drain_timeout = drain_timeout
        self._drain_started: float | None = None
        self._drain_task: asyncio.Task[None] | None = None

    def seconds_left(self) -> float:
        """What is left of the drain budget (all of it while no drain began), at least 0."""
        if self._drain_started is None:
            return self.drain_timeout
        return max(0.0, self._drain_started + self.drain_timeout - time.monotonic())

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)  # a port that cannot be bound exits here, with its error
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]  # the bound port, also for --port 0
                logger.info("listening at http://%s:%d", f"[{host}]" if ":" in host else host, port)

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
            # A signal handler runs on the loop's own thread, between two of its steps.
            loop = asyncio.get_running_loop()
            self._drain_task = loop.create_task(self._drain(self._drain_started))
        else:
            logger.info("second signal: exiting without waiting")
            self.drain_timeout = 0.0  # nothing left of the budget: the engines are not waited for
            self.should_exit = True
            self.force_exit = True

    async def _drain(self, started: float) -> None:
        # The budget covers the whole exit: cut what is left early enough for uvicorn's
        # shutdown steps and the engines' stop to fit in it too.
        deadline = started + self.drain_timeout
        cut_at = deadline - min(_EXIT_RESERVE, self.drain_timeout / 4)
        while self.service.busy and time.monotonic() < cut_at:
            await asyncio.sleep(min(0.02, max(0.0, cut_at - time.monotonic())))
        if self.service.busy:
            logger.warning("drain timeout: answering the requests still in flight with 503")
            for connection in list(self.server_state.connections):
                cut_short = getattr(connection, "cut_short", None)
                if cut_short is not None:
                    cut_short()
            self.force_exit = True  # the budget is spent: no second wait for connections
        # What is left of the budget bounds uvicorn's own wait for connections to close.
        self.config.timeout_graceful_shutdown = max(0.1, cut_at - time.monotonic())  # type: ignore[assignment]
        self.should_exit = True


def run_server(
    app: FastAPI,
    options: ServerOptions | None = None,
    *,
    on_exit: Callable[[float], None] | None = None,
) -> int:
    """Serve ``app`` (from :func:`create_app`) until SIGTERM or Ctrl-C; return the exit code.

    ``options`` gives the address (``host``, ``port``), the ``log_level``, the connection limits
    and the ``drain_timeout`` budget (default: :class:`~rag_rerank.ServerOptions`' defaults).
    ``on_exit``, when given, is called once the server has stopped, with the seconds left of
    the ``drain_timeout`` budget: the time the caller has to stop its engines."""
    options = options or ServerOptions()
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level=options.log_level,
        log_config=None,  # uvicorn's lines go through the caller's logging: one format
        access_log=False,  # the app logs each request itself, with sizes and timings only
        timeout_graceful_shutdown=max(1, int(options.drain_timeout)),
        timeout_keep_alive=options.keep_alive_timeout,  # type: ignore[arg-type]
        http=guarded_protocol(options),
        lifespan="off",
    )
    server = DrainingServer(config, app.state.service, options.drain_timeout)
    try:
        server.run()
    finally:
        if on_exit is not None:
            on_exit(server.seconds_left())
    return 0 if server.started else 1
