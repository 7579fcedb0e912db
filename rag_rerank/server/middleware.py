"""Pure ASGI middleware: request metrics, allowed hosts, API-key auth and the request-body limit.

Order, outermost first: metrics (counts every answer, 400, 401 and 413 included), allowed hosts
(only when asked for), CORS (only when asked for; preflights carry no key), auth (before any body
is read), body limit (before parsing).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import UNMATCHED, Metrics, method_label

__all__ = [
    "ARRIVED_KEY",
    "DELIVERED_KEY",
    "AuthMiddleware",
    "BodyLimitMiddleware",
    "HostMiddleware",
    "JSONBodyMiddleware",
    "MetricsMiddleware",
    "page_headers",
    "route_label",
]

logger = logging.getLogger("rag_rerank.server")

DELIVERED_KEY = "rag_rerank.delivered"
"""Scope key: an async function, set by the guarded protocol of
:func:`~rag_rerank.server.run.run_server`, that waits until the response is written out and
returns ``False`` when the connection was cut first because the client did not read it."""

ARRIVED_KEY = "rag_rerank.arrived"
"""Scope key: ``time.monotonic()`` when the request reached the app."""

PUBLIC_PATHS = frozenset({"/health"})
"""Paths served without the API key."""


async def _send_error(
    send: Send, status: int, error_type: str, message: str, headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps({"error": message, "error_type": error_type}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    """Counts requests by method, route template and status, times them, tracks requests in
    flight.

    Logs one line per request with the same bounded labels, sizes and timings only: request
    texts, raw paths and raw methods are never logged.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, known_paths: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.known_paths = known_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        scope[ARRIVED_KEY] = time.monotonic()  # requests that arrived before a drain are served
        status = 500
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def status_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight += 1
        try:
            await self.app(scope, counting_receive, status_send)
            delivered = scope.get(DELIVERED_KEY)  # set by the guarded protocol of run_server
            if delivered is not None and not await delivered():
                status = 499  # the client never read the answer: cut, like a disconnect
        finally:
            self.metrics.in_flight -= 1
            seconds = time.perf_counter() - start
            template = route_label(scope, self.known_paths)
            method = method_label(scope["method"])
            self.metrics.observe(method, template, status, seconds)
            logger.info(
                "%s %s -> %d in %.1f ms (%d body bytes)",
                method,
                template,
                status,
                seconds * 1000,
                received,
            )


def route_label(scope: Scope, known_paths: frozenset[str]) -> str:
    """The request's route template; answered before routing (401, 413), the path when it is
    one of ``known_paths``; else :data:`~rag_rerank.server.metrics.UNMATCHED`."""
    template = getattr(scope.get("route"), "path", None)
    if isinstance(template, str):
        return template
    return scope["path"] if scope["path"] in known_paths else UNMATCHED


class AuthMiddleware:
    """Requires the API key on every path but ``/health``.

    Accepts ``Authorization: Bearer <key>`` (API clients) and HTTP Basic with the key as the
    password (so a browser can open the web page). Compared in constant time.
    """

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._key = api_key.strip().encode()  # a pasted key's spaces could never match

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        if self._authorized(scope):
            await self.app(scope, receive, send)
            return
        # Pages (the console, /docs and what it loads) get a Basic challenge so the browser asks
        # for the key, and then sends it with the page's API calls too; APIs get Bearer.
        challenge = b'Basic realm="rag-rerank"' if _for_browsers(scope["path"]) else b"Bearer"
        await _send_error(
            send,
            401,
            "unauthorized",
            "missing or invalid API key (send 'Authorization: Bearer <key>')",
            [(b"www-authenticate", challenge)],
        )

    def _authorized(self, scope: Scope) -> bool:
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        scheme, _, credentials = header.strip().partition(b" ")
        scheme = scheme.lower()
        if scheme == b"bearer":
            return hmac.compare_digest(credentials.strip(), self._key)
        if scheme == b"basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True)
            except (binascii.Error, ValueError):
                return False
            _, _, password = decoded.partition(b":")
            return hmac.compare_digest(password, self._key)
        return False


def _for_browsers(path: str) -> bool:
    return path in ("/", "/docs", "/openapi.json") or path.startswith("/docs/")


class BodyLimitMiddleware:
    """Answers 413 for a body over ``max_bytes`` before the app parses any of it.

    A declared ``Content-Length`` over the limit is refused without reading the body; a chunked
    body is read into memory up to the limit and refused as soon as it passes it. The app then
    gets the buffered body, followed by the connection's own messages (so it still hears a
    disconnect).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, declared)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(send, size)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            if buffered:
                return buffered.pop(0)
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, size: int) -> None:
        logger.info("refused a request body of %d bytes (limit %d)", size, self.max_bytes)
        await _send_error(
            send,
            413,
            "payload_too_large",
            f"request body over the limit of {self.max_bytes} bytes",
            [],
        )


def _content_length(scope: Scope) -> int | None:
    headers: Any = scope["headers"]
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class HostMiddleware:
    """Answers 400 unless the ``Host`` header names an allowed host (any port).

    A browser page on another site can reach a server on localhost by rebinding its own DNS name
    to 127.0.0.1; its requests then carry that name as ``Host``, which is refused here.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(_bare_host(h.encode()) for h in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = b""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
                break
        if _bare_host(host) in self.allowed:
            await self.app(scope, receive, send)
            return
        await _send_error(
            send, 400, "invalid_host", "Host header not allowed (--allowed-hosts)", []
        )


def _bare_host(host: bytes) -> str:
    """``b"LocalHost:8080"`` -> ``"localhost"``; ``b"[::1]:80"`` -> ``"::1"``."""
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    if text.count(":") == 1:
        return text.partition(":")[0]
    return text


def page_headers(page: str) -> dict[str, str]:
    """Security headers for the web page: a CSP that runs only the page's own inline scripts
    (by hash) and lets it call only this server, and no framing or MIME sniffing."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(code.encode()).digest()).decode() + "'"
        for code in re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.DOTALL)
    )
    script_src = hashes or "'none'"
    policy = (
        "default-src 'none'; "
        f"script-src {script_src}; "
        "style-src 'unsafe-inline'; "  # the result bars are sized with style attributes
        "img-src data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


class JSONBodyMiddleware:
    """Reads every POST body as JSON, whatever its ``Content-Type`` says: ``curl -d`` sends
    ``application/x-www-form-urlencoded``, some clients send none, and the API takes only JSON
    (a body that is not JSON gets the usual 422 naming the JSON error)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            if len(headers) == len(scope["headers"]) or not _json_type(scope["headers"]):
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


def _json_type(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    kind = next((v for k, v in headers if k == b"content-type"), b"").split(b";")[0]
    kind = kind.strip().lower()
    return kind == b"application/json" or kind.endswith(b"+json")
