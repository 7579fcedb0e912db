"""Every setting of the HTTP service, declared once (:class:`ServerOptions`): what ``create_app``,
the Ray Serve app, ``run_server`` and the ``rag-rerank serve`` flags read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from ..errors import InvalidInputError
from .checks import check_positive_int, check_positive_number
from .settings import Settings, setting

__all__ = ["LOG_LEVELS", "QUEUE_PER_REQUEST", "LogLevel", "ServerOptions"]

LogLevel = Literal["debug", "info", "warning", "error"]
LOG_LEVELS: tuple[LogLevel, ...] = ("debug", "info", "warning", "error")
"""The server's log levels."""

QUEUE_PER_REQUEST = 16
"""A served model's default queue bound (``max_queue_pairs``), in requests of ``max_documents``."""

_MIB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ServerOptions(Settings):
    """Every setting of the HTTP service, declared once.

    :func:`~rag_rerank.server.create_app` and the Ray Serve app read the request limits, the
    access settings and the several-models settings; :func:`~rag_rerank.server.run.run_server`
    reads the address, the connection limits and the drain; ``rag-rerank serve`` has one flag per
    field (``max_documents`` -> ``--max-documents``). :meth:`help` gives each field's text.

    Values are checked on construction; a bad one raises :class:`~rag_rerank.InvalidInputError`
    naming the field. Sequences are stored as tuples, the split as a dict.

    Example:
        >>> ServerOptions(max_documents=200, api_key="secret").max_body_bytes
        8388608
    """

    host: str = setting("127.0.0.1", "Address to bind.")
    port: int = setting(8080, "Port; 0 picks a free one.")
    api_key: str | None = setting(
        None,
        "Require 'Authorization: Bearer KEY' (or HTTP Basic with the key as the password) on "
        "every route but /health.",
    )
    max_documents: int = setting(1000, "Documents per request: 413 above it.")
    max_body_bytes: int = setting(
        8 * _MIB, "Largest request body in bytes: 413 before parsing above it."
    )
    cors_origins: Sequence[str] | None = setting(
        None, "Origins allowed to call the API from browsers; default none (CORS off)."
    )
    drain_timeout: float = setting(
        30.0, "On SIGTERM, seconds to let requests in flight finish (0 or more)."
    )
    request_timeout: float | None = setting(
        60.0,
        "Seconds a rerank request may take, queueing included; past it its work is cancelled "
        "and it gets 504. None: no deadline.",
    )
    max_queue_wait: float | None = setting(
        10.0,
        "Refuse a request at once with 429 and Retry-After when the work ahead of it would take "
        "longer than this many seconds at the measured throughput. None: shed on the queue's "
        "size only.",
    )
    max_request_windows: int = setting(
        2048,
        "Most text per request, in windows of the model's max_length tokens (about 2,000 "
        "characters each; an ordinary document is one): 413 above it, before any tokenizing.",
    )
    allowed_hosts: Sequence[str] | None = setting(
        None,
        "Host header names served (any port); others get 400, which guards a key-less server "
        "against DNS rebinding. None serves any host.",
    )
    header_timeout: float = setting(10.0, "Seconds a client has to send a request's headers.")
    body_min_rate: float = setting(
        10_000.0, "Slowest request body upload accepted, in bytes per second."
    )
    keep_alive_timeout: float = setting(5.0, "Seconds an idle keep-alive connection stays open.")
    max_connections: int | None = setting(
        None,
        "Open connections; past it new ones get 503. Default: below the process's "
        "file-descriptor limit, at most 4096.",
    )
    write_timeout: float = setting(
        10.0, "Seconds a response may wait unread before its connection is cut."
    )
    write_min_rate: float = setting(
        10_000.0, "Slowest reading of a response accepted, in bytes per second."
    )
    max_pending_write_bytes: int = setting(
        256 * _MIB,
        "Bytes of responses waiting to be read, over all connections, above which new requests "
        "get 503.",
    )
    max_echo_bytes: int = setting(
        2 * _MIB,
        "Most text one response sends back (/clean, return_text, return_documents), in UTF-8 "
        "bytes: 413 naming the field above it.",
    )
    log_level: LogLevel = setting("info", "Server log level.")  # noqa: RUF009 (a dataclasses.field)
    split: Mapping[str, float] | None = setting(
        None,
        "Route requests that name no model by weight, e.g. default=90,candidate=10; sticky per "
        "X-Rerank-Key header, random without one. Default: all to the first model.",
    )
    shadow: str | None = setting(
        None,
        "Also score every request served by another model with this one, off the request's "
        "path; /metrics and /info compare the rankings (top-1, top-5 overlap, Kendall tau).",
    )
    shadow_queue: int = setting(
        64, "Shadow requests waiting or running at once; more are dropped and counted."
    )
    memory_limit: int | None = setting(
        None,
        "Memory the models may use, in bytes (default: the device's free memory); the server "
        "refuses to start when the models' estimated needs exceed it.",
    )

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise in place once, at construction
        if not isinstance(self.host, str) or not self.host.strip():
            raise InvalidInputError("host", f"must be a non-empty string, got {self.host!r}")
        port = self.port
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidInputError("port", f"must be in 0-65535, got {port!r}")
        if self.api_key is not None and (
            not isinstance(self.api_key, str) or not self.api_key.strip()
        ):
            raise InvalidInputError("api_key", "must be a non-empty string or None")
        for name in (
            "max_documents",
            "max_body_bytes",
            "max_request_windows",
            "max_pending_write_bytes",
            "max_echo_bytes",
            "shadow_queue",
        ):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.max_connections, "max_connections", optional=True)
        check_positive_int(self.memory_limit, "memory_limit", optional=True)
        for name in ("header_timeout", "body_min_rate", "keep_alive_timeout", "write_timeout"):
            check_positive_number(getattr(self, name), name)
        check_positive_number(self.write_min_rate, "write_min_rate")
        check_positive_number(self.request_timeout, "request_timeout", optional=True)
        check_positive_number(self.max_queue_wait, "max_queue_wait", optional=True)
        drain = self.drain_timeout
        if isinstance(drain, bool) or not isinstance(drain, (int, float)) or not drain >= 0:
            raise InvalidInputError("drain_timeout", f"must be at least 0, got {drain!r}")
        if self.log_level not in LOG_LEVELS:
            raise InvalidInputError(
                "log_level", f"must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )
        set_(self, "allowed_hosts", _names(self.allowed_hosts, "allowed_hosts", "host names"))
        set_(self, "cors_origins", _names(self.cors_origins, "cors_origins", "origin strings"))
        if self.split is not None:
            if not isinstance(self.split, Mapping):
                raise InvalidInputError(
                    "split", f"must be a mapping of model names to weights, got {self.split!r}"
                )
            set_(self, "split", dict(self.split))
        if self.shadow is not None and not isinstance(self.shadow, str):
            raise InvalidInputError("shadow", f"must be a model name or None, got {self.shadow!r}")

    kind: ClassVar[str] = "server setting"

    @property
    def default_queue_pairs(self) -> int:
        """A served model's ``max_queue_pairs`` when its options leave it unbounded:
        :data:`QUEUE_PER_REQUEST` requests of ``max_documents``."""
        return QUEUE_PER_REQUEST * self.max_documents


def _names(value: object, name: str, what: str) -> tuple[str, ...] | None:
    """``value`` as a tuple of strings (non-empty ones for hosts), or ``None``."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidInputError(name, f"must be a list of {what} or None")
    items = tuple(value)
    if not all(isinstance(item, str) and (item or name != "allowed_hosts") for item in items):
        raise InvalidInputError(name, f"must be a list of {what} or None")
    return items
