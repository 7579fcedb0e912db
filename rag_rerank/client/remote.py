""":class:`RemoteReranker`: requests to the server, in batches, with retries and backoff; its
answers are read by :mod:`.wire`."""

from __future__ import annotations

import asyncio
import copy
import os
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'RemoteReranker needs httpx: pip install "rag-rerank[server]" (or pip install httpx)'
    ) from exc

from ..api import (
    LONG_DOCUMENTS,
    BaseReranker,
    Calibration,
    LongDocuments,
    check_int,
    check_positive_int,
    check_positive_number,
)
from ..errors import InvalidInputError, NonFiniteScoreError, RemoteRerankError
from .wire import batch_size_from, parse_logits, retry_after

__all__ = ["RemoteRerankError", "RemoteReranker"]

_RETRY_STATUS = frozenset({429, 502, 503, 504})


def _retryable(response: httpx.Response) -> bool:
    """429 (queue full), 503 (restarting, draining), 502/504 (a gateway lost or timed out on the
    backend), and a 500 that is not this server's JSON error (a proxy's, e.g. Ray Serve's after a
    replica died). Reranking changes nothing on the server, so a retry is always safe."""
    if response.status_code in _RETRY_STATUS:
        return True
    if response.status_code != 500:
        return False
    try:
        body = response.json()
    except ValueError:
        return True
    return not (isinstance(body, dict) and "error_type" in body)


class RemoteReranker(BaseReranker):
    """Rerank through a ``rag-rerank serve`` (or text-embeddings-inference) server.

    Same ``score`` / ``rerank`` / ``arerank`` API as :class:`~rag_rerank.Reranker`, with the same
    input checks, ordering (best first, ties in input order), ``top_n`` and ``threshold``. Scores
    are computed from the server's fp32 logits exactly as the core does, so they match an
    in-process ``Reranker`` on the same model.

    Args:
        url: Base URL of the server, e.g. ``"http://127.0.0.1:8080"``.
        api_key: Sent as ``Authorization: Bearer <key>``.
        timeout: Seconds per HTTP request (connect, read and write).
        max_retries: Retries after 429 (queue full), 503 (restarting or draining), 502/504 and
            a proxy's non-JSON 500 (a replica behind a gateway died) and connection errors, with
            exponential backoff (honouring ``Retry-After``). Then the error is raised.
        backoff: First backoff in seconds; doubles each retry, with jitter, up to ``max_backoff``.
        max_backoff: Longest wait between two tries, in seconds.
        batch_size: Most documents per HTTP request (larger lists are split and merged). ``None``
            asks the server's ``/info`` (``max_client_batch_size``) once.
        long_documents: As :attr:`RerankerOptions.long_documents
            <rag_rerank.RerankerOptions.long_documents>`, sent as TEI's ``truncate`` field:
            ``"truncate"`` scores only the first window of a long document; ``"windows"`` asks
            the server not to truncate (a rag-rerank server scores the best window unless started
            with ``--long-documents truncate``; a TEI server refuses inputs over its limit).
            ``None`` (the default) leaves the server's mode.
        calibration: A calibration file from ``rag-rerank calibrate`` (or a loaded
            :class:`~rag_rerank.api.Calibration`) for the server's model: ``score`` becomes the
            calibrated probability and ``threshold="calibrated"`` works, as with a calibrated
            ``Reranker``. The client scores the server's raw logits itself, so pass the file the
            server was started with (``--calibration``) to get the same scores.
        model: The name of one of the server's models (``rag-rerank serve --model
            NAME=PATH``); ``None`` lets the server choose (its split or default model).

    Example:
        >>> rr = RemoteReranker("http://127.0.0.1:8080", api_key="secret")  # doctest: +SKIP
        >>> rr.rerank("what is a panda?", docs, top_n=5, threshold=0.5)  # doctest: +SKIP

    Thread-safe; async methods never block the event loop.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
        batch_size: int | None = None,
        long_documents: LongDocuments | None = None,
        calibration: str | os.PathLike[str] | Calibration | None = None,
        model: str | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidInputError("url", f"must be an http:// or https:// URL, got {url!r}")
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise InvalidInputError("api_key", "must be a non-empty string or None")
        check_positive_number(timeout, "timeout")
        check_positive_number(backoff, "backoff")
        check_positive_number(max_backoff, "max_backoff")
        check_int(max_retries, "max_retries", least=0)
        check_positive_int(batch_size, "batch_size", optional=True)
        if long_documents is not None and long_documents not in LONG_DOCUMENTS:
            raise InvalidInputError(
                "long_documents",
                f"must be 'windows', 'truncate' or None, got {long_documents!r}",
            )
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise InvalidInputError("model", f"must be a non-empty string or None, got {model!r}")
        self.model = model
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.long_documents = long_documents
        if calibration is not None and not isinstance(calibration, Calibration):
            calibration = Calibration.load(calibration)
        self._calibration = calibration
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._batch_size = batch_size
        self._info: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._async_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

    # -- properties -----------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The model asked for (``model``), else the server's model id (from ``/info``), else
        the URL when the server does not say."""
        if self.model is not None:
            return self.model
        info = self.info()
        return str(info.get("model_id") or self.url)

    def with_model(self, model: str | None) -> RemoteReranker:
        """The same server and settings, with another of its models (``None``: the server's
        choice). The two clients keep their own connections.

        Example:
            >>> candidate = RemoteReranker(url).with_model("candidate")  # doctest: +SKIP
        """
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise InvalidInputError("model", f"must be a non-empty string or None, got {model!r}")
        other = copy.copy(self)
        other.model = model
        other._lock = threading.Lock()
        other._client = None
        other._async_clients = {}
        return other

    def info(self) -> dict[str, Any]:
        """The server's ``/info`` (``{}`` when it has none), fetched once."""
        if self._info is None:
            try:
                response = self._sync_client().get("/info")
                self._info = response.json() if response.status_code == 200 else {}
            except (httpx.HTTPError, ValueError):
                return {}
        return self._info

    # -- connections ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP connections (async ones are dropped; use :meth:`aclose` to close them)."""
        with self._lock:
            client, self._client = self._client, None
            self._async_clients.clear()
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the async connections of the running event loop, and the sync ones."""
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        self.close()

    def __enter__(self) -> RemoteReranker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> RemoteReranker:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        model = "" if self.model is None else f", model={self.model!r}"
        return f"RemoteReranker({self.url!r}{model})"

    # -- internals ------------------------------------------------------------------------------

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    base_url=self.url, headers=self._headers, timeout=self.timeout
                )
            return self._client

    def _async_client(self) -> httpx.AsyncClient:
        # An AsyncClient's connections belong to one event loop: keep one per loop.
        loop = asyncio.get_running_loop()
        with self._lock:
            for old in [other for other in self._async_clients if other.is_closed()]:
                del self._async_clients[old]
            client = self._async_clients.get(loop)
            if client is None:
                client = httpx.AsyncClient(
                    base_url=self.url, headers=self._headers, timeout=self.timeout
                )
                self._async_clients[loop] = client
            return client

    def _batches(self, count: int, batch_size: int | None) -> list[tuple[int, int]]:
        size = batch_size or count
        return [(start, min(start + size, count)) for start in range(0, count, size)]

    def _body(self, query: str, texts: Sequence[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"query": query, "texts": list(texts), "raw_scores": True}
        if self.model is not None:
            body["model"] = self.model
        if self.long_documents is not None:  # TEI's wire field
            body["truncate"] = self.long_documents == "truncate"
        return body

    # The server ranks one query's documents per request: pairs go as one request (or one per
    # batch) per distinct query; their logits are put back in the pairs' order.

    def _pair_logits(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        logits = np.empty(len(documents), dtype=np.float32)
        for query, at in _by_query(queries).items():
            docs = [documents[i] for i in at]
            try:
                logits[at] = self._query_logits(query, docs)
            except NonFiniteScoreError as exc:
                raise _renumbered(exc, query, at, documents) from None
        return logits

    async def _apair_logits(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        logits = np.empty(len(documents), dtype=np.float32)

        async def run(query: str, at: list[int]) -> None:
            docs = [documents[i] for i in at]
            try:
                logits[at] = await self._aquery_logits(query, docs)
            except NonFiniteScoreError as exc:
                raise _renumbered(exc, query, at, documents) from None

        await asyncio.gather(*(run(query, at) for query, at in _by_query(queries).items()))
        return logits

    def _query_logits(self, query: str, docs: list[str]) -> np.ndarray:
        """The logits of ``docs`` for ``query``: one request per batch, retried."""
        if self._batch_size is None:
            self._batch_size = batch_size_from(self.info())
        logits = np.empty(len(docs), dtype=np.float32)
        for start, end in self._batches(len(docs), self._batch_size):
            body = self._body(query, docs[start:end])
            for attempt in range(self.max_retries + 1):
                try:
                    response = self._sync_client().post("/rerank", json=body)
                except httpx.TransportError as exc:
                    if attempt == self.max_retries:
                        raise _unreachable(self.url, exc) from exc
                    time.sleep(self._delay(attempt, None))
                    continue
                if attempt < self.max_retries and _retryable(response):
                    time.sleep(self._delay(attempt, response))
                    continue
                logits[start:end] = parse_logits(response, query, docs, start, end)
                break
        return logits

    async def _aquery_logits(self, query: str, docs: list[str]) -> np.ndarray:
        """Async :meth:`_query_logits`: the batches' requests run concurrently."""
        if self._batch_size is None:
            self._batch_size = batch_size_from(await self._ainfo())
        logits = np.empty(len(docs), dtype=np.float32)

        async def run(start: int, end: int) -> None:
            body = self._body(query, docs[start:end])
            for attempt in range(self.max_retries + 1):
                try:
                    response = await self._async_client().post("/rerank", json=body)
                except httpx.TransportError as exc:
                    if attempt == self.max_retries:
                        raise _unreachable(self.url, exc) from exc
                    await asyncio.sleep(self._delay(attempt, None))
                    continue
                if attempt < self.max_retries and _retryable(response):
                    await asyncio.sleep(self._delay(attempt, response))
                    continue
                logits[start:end] = parse_logits(response, query, docs, start, end)
                return

        await asyncio.gather(*(run(s, e) for s, e in self._batches(len(docs), self._batch_size)))
        return logits

    async def _ainfo(self) -> dict[str, Any]:
        if self._info is None:
            try:
                response = await self._async_client().get("/info")
                self._info = response.json() if response.status_code == 200 else {}
            except (httpx.HTTPError, ValueError):
                return {}
        return self._info

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            after = retry_after(response.headers.get("Retry-After"))
            if after is not None:
                return min(after, self.max_backoff)
        delay = min(self.backoff * 2**attempt, self.max_backoff)
        return delay * random.uniform(0.5, 1.0)  # jitter: retries of many clients spread out


def _by_query(queries: Sequence[str]) -> dict[str, list[int]]:
    """The positions of each distinct query, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, query in enumerate(queries):
        groups.setdefault(query, []).append(i)
    return groups


def _renumbered(
    exc: NonFiniteScoreError, query: str, at: list[int], documents: Sequence[str]
) -> NonFiniteScoreError:
    """``exc`` (of the documents at positions ``at`` of the pairs) numbered by the pair."""
    i = at[exc.pair_index]
    return exc if i == exc.pair_index else NonFiniteScoreError(i, query, documents[i], exc.value)


def _unreachable(url: str, exc: Exception) -> RemoteRerankError:
    return RemoteRerankError(f"cannot reach the rerank server at {url}: {exc}", None, None)
