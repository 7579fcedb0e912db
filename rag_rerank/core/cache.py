"""The score cache: the raw fp32 logit of every pair already scored, in process or in Redis.

RAG traffic repeats itself (popular questions, re-run notebook cells, retried chains), and a
cross-encoder's logit depends only on the model's weights, the window length, the long-document
mode, the query and the document. So a key is a digest of those (:func:`score_key`), under a
namespace of the model's identity (:func:`model_identity`: the hub commit, or a digest of a local
folder's files, plus precision and device type; both in :mod:`.cache_keys`), and a value is the
fp32 logit. Ranking, threshold and any activation run after the lookup, as without a cache.

- :class:`MemoryScoreCache`: an in-process LRU bounded by entries (the default).
- :class:`RedisScoreCache`: shared across processes, servers and Ray replicas; one ``MGET`` per
  request, writes queued to a background thread (one pipeline per batch of writes), a TTL. It
  never fails or hangs a request: on a timeout, a refused connection, a wrong password or a full
  server, the pairs are scored without it, the error is counted and logged at most once a
  minute, and it tries again after :data:`RETRY_SECONDS`.

Imports no torch: the caller passes what identifies the model.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import queue
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..api import CacheStats, RerankerOptions
from .cache_keys import document_key, folder_digest, model_identity, query_digest, score_key

__all__ = [
    "KEY_PREFIX",
    "RETRY_SECONDS",
    "TIMEOUT_SECONDS",
    "MemoryScoreCache",
    "RedisScoreCache",
    "ScoreCache",
    "document_key",
    "folder_digest",
    "model_identity",
    "open_cache",
    "query_digest",
    "redact",
    "score_key",
]

logger = logging.getLogger(__name__)

KEY_PREFIX = "rag-rerank:v1:"
"""Start of every Redis key, before the model identity (``rag-rerank:v1:<identity>:<digest>``)."""

TIMEOUT_SECONDS = 0.1
"""Connect and read timeout of Redis calls; a URL's ``?socket_timeout=`` overrides it."""

RETRY_SECONDS = 1.0
"""After a connection failure, Redis is left alone this long before it is tried again."""

WARN_EVERY_SECONDS = 60.0
"""A failing Redis is logged at most once per this many seconds."""

_VALUE = struct.Struct("<f")  # a cached value: the fp32 logit, 4 bytes


# -- caches -------------------------------------------------------------------------------------


class ScoreCache(abc.ABC):
    """Where logits are kept. Thread-safe; lookups and writes never raise."""

    blocking: bool = False
    """Lookups wait on the network: async callers run them off the event loop."""

    def __init__(self, description: str) -> None:
        self.description = description
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._errors = 0

    @abc.abstractmethod
    def get_many(self, keys: Sequence[bytes]) -> list[float | None]:
        """The logit of each key, ``None`` where it is not cached (or the cache is unusable)."""

    @abc.abstractmethod
    def put_many(self, items: dict[bytes, float]) -> None:
        """Keep these logits (possibly later: writes may be queued)."""

    def count(self, *, hits: int, misses: int) -> None:
        """Count pairs answered by the cache and pairs the model had to score."""
        with self._lock:
            self._hits += hits
            self._misses += misses

    def _count_error(self) -> None:
        with self._lock:
            self._errors += 1

    def entries(self) -> int | None:
        """Entries held, where the cache can tell cheaply."""
        return None

    def stats(self) -> CacheStats:
        """The counters now."""
        with self._lock:
            hits, misses, errors = self._hits, self._misses, self._errors
        return CacheStats(self.description, hits, misses, errors, self.entries())

    def flush(self, timeout: float = 10.0) -> None:  # noqa: B027 (nothing to wait for here)
        """Wait until queued writes are done (for tests and orderly shutdown)."""

    def close(self) -> None:  # noqa: B027
        """Release connections and threads."""


class MemoryScoreCache(ScoreCache):
    """An in-process LRU of at most ``size`` logits (about 150 bytes each)."""

    def __init__(self, size: int) -> None:
        super().__init__("memory")
        self.size = size
        self._entries: OrderedDict[bytes, float] = OrderedDict()

    def get_many(self, keys: Sequence[bytes]) -> list[float | None]:
        found: list[float | None] = []
        with self._lock:
            for key in keys:
                value = self._entries.get(key)
                if value is not None:
                    self._entries.move_to_end(key)
                found.append(value)
        return found

    def put_many(self, items: dict[bytes, float]) -> None:
        with self._lock:
            for key, value in items.items():
                self._entries[key] = value
                self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def entries(self) -> int:
        return len(self._entries)


class RedisScoreCache(ScoreCache):
    """Logits in Redis under ``rag-rerank:v1:<identity>:``, each expiring after ``ttl`` seconds.

    Args:
        url: ``redis://[:password@]host:port/db`` (``rediss://`` for TLS, ``unix://`` for a
            socket). Query options of redis-py apply (``?socket_timeout=0.5``).
        identity: The model identity (:func:`model_identity`), part of every key.
        ttl: Seconds each entry lives; ``None`` keeps it until Redis evicts it.

    Raises:
        ImportError: The ``redis`` package is missing (``pip install 'rag-rerank[redis]'``).
    """

    blocking = True
    _MAX_QUEUED_WRITES = 256

    def __init__(self, url: str, identity: str, ttl: int | None) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise ImportError(
                "cache='redis://...' needs the redis client: pip install 'rag-rerank[redis]'"
            ) from exc
        super().__init__(redact(url))
        self.prefix = f"{KEY_PREFIX}{identity}:".encode()
        self.ttl = ttl
        self._redis_errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._down_errors: tuple[type[BaseException], ...] = (
            redis.ConnectionError,
            redis.TimeoutError,
            OSError,
        )
        # No retries: a request must not wait for Redis longer than one short timeout.
        self._client: Any = redis.Redis.from_url(
            url,
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._down_until = 0.0
        self._last_warning = -float("inf")
        self._errors_since_warning = 0
        self._failing = False
        self._writes: queue.Queue[dict[bytes, float] | None] = queue.Queue(self._MAX_QUEUED_WRITES)
        self._writer = threading.Thread(
            target=self._write_loop, name="rag-rerank-cache", daemon=True
        )
        self._writer.start()

    def get_many(self, keys: Sequence[bytes]) -> list[float | None]:
        if not keys:
            return []
        if not self._usable():
            return [None] * len(keys)
        try:
            values = self._client.mget([self.prefix + key for key in keys])
        except self._redis_errors as exc:
            self._failed(exc)
            return [None] * len(keys)
        self._succeeded()
        return [_decode(value) for value in values]

    def put_many(self, items: dict[bytes, float]) -> None:
        if not items or not self._usable():
            return
        try:
            self._writes.put_nowait(items)
        except queue.Full:  # Redis slower than the model: drop, never block a request
            self._count_error()

    def flush(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._writes.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        with contextlib.suppress(queue.Full):
            self._writes.put(None, timeout=1.0)
        self._writer.join(2.0)
        self._client.close()

    def _write_loop(self) -> None:
        while True:
            items = self._writes.get()
            try:
                if items is None:
                    return
                if not self._usable():
                    continue
                pipe = self._client.pipeline(transaction=False)
                for key, value in items.items():
                    pipe.set(self.prefix + key, _VALUE.pack(value), ex=self.ttl)
                pipe.execute()
                self._succeeded()
            except self._redis_errors as exc:
                self._failed(exc)
            finally:
                self._writes.task_done()

    def _usable(self) -> bool:
        if time.monotonic() < self._down_until:
            self._count_error()
            return False
        return True

    def _succeeded(self) -> None:
        if self._failing:
            self._failing = False
            logger.info("score cache %s is reachable again", self.description)

    def _failed(self, exc: BaseException) -> None:
        self._count_error()
        down = isinstance(exc, self._down_errors)
        if down:  # unreachable, slow or refusing us: leave it alone for a moment
            self._down_until = time.monotonic() + RETRY_SECONDS
        with self._lock:
            self._errors_since_warning += 1
            now = time.monotonic()
            if now - self._last_warning < WARN_EVERY_SECONDS:
                return
            self._last_warning = now
            count, self._errors_since_warning = self._errors_since_warning, 0
            self._failing = True
        logger.warning(
            "score cache %s: %s; serving uncached%s (%d error%s since the last warning; "
            "next warning in %d s at the earliest)",
            self.description,
            _explain(exc),
            f", retrying every {RETRY_SECONDS:g} s" if down else "",
            count,
            "" if count == 1 else "s",
            WARN_EVERY_SECONDS,
        )


def _decode(value: bytes | None) -> float | None:
    if value is None or len(value) != _VALUE.size:
        return None
    return float(_VALUE.unpack(value)[0])


def _explain(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    name = type(exc).__name__
    if "AuthenticationError" in name or "NOAUTH" in text or "WRONGPASS" in text:
        return f"authentication failed, check the password in the cache URL ({text})"
    if "OOM" in text or "maxmemory" in text:
        return f"Redis is full and refuses writes ({text})"
    return f"{name}: {text}"


def redact(url: str) -> str:
    """``url`` without its password, given before the host (``redis://:secret@host``) or as a
    query parameter (``?password=secret``), for logs, /info and metrics."""
    base, mark, query = url.partition("?")
    parts = urlsplit(base)
    if parts.password is not None:
        user = parts.username or ""
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        base = urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    pairs = [pair.partition("=") for pair in query.split("&")] if query else []
    hidden = [f"{k}{eq}***" if k.lower() == "password" else f"{k}{eq}{v}" for k, eq, v in pairs]
    return base + mark + "&".join(hidden)


# -- the caches of this process -----------------------------------------------------------------

_open_lock = threading.Lock()
_open: dict[tuple[Any, ...], ScoreCache] = {}


def open_cache(options: RerankerOptions, identity: str | None) -> ScoreCache | None:
    """The process's cache for ``options.cache`` and a model ``identity``, opened on first use:
    views of one model and readers of one Redis share it (and its counters). ``None`` when the
    cache is off or the model cannot be identified."""
    if options.cache is None or identity is None:
        return None
    if options.cache == "memory":
        key: tuple[Any, ...] = (identity, "memory", options.cache_size)
    else:
        key = (identity, options.cache, options.cache_ttl)
    with _open_lock:
        cache = _open.get(key)
        if cache is None:
            if options.cache == "memory":
                cache = MemoryScoreCache(options.cache_size)
            else:
                cache = RedisScoreCache(str(options.cache), identity, options.cache_ttl)
            _open[key] = cache
        return cache
