"""What a TEI-shaped rerank server answers, read: the logits of one request in input order, or
its error as the typed error a local :class:`~rag_rerank.Reranker` would raise (fields renamed
to the caller's terms and indices shifted by the request's first document), and the retry and
batch hints it sends."""

from __future__ import annotations

import email.utils
import math
import time
from typing import Any

import httpx
import numpy as np

from ..errors import (
    EngineStoppedError,
    InvalidInputError,
    NonFiniteScoreError,
    OverloadedError,
    RemoteRerankError,
    RerankError,
)

__all__ = ["batch_size_from", "error_of", "parse_logits", "retry_after"]


def batch_size_from(info: dict[str, Any]) -> int | None:
    size = info.get("max_client_batch_size")
    return size if isinstance(size, int) and size > 0 else None


def retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_logits(
    response: httpx.Response, query: str, docs: list[str], start: int, end: int
) -> np.ndarray:
    """The logits of ``docs[start:end]`` in input order, or the server's error as a typed one."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code != 200:
        raise error_of(response.status_code, payload, query, docs, start)
    count = end - start
    logits = np.full(count, np.nan, dtype=np.float32)
    seen = np.zeros(count, dtype=bool)
    try:
        for item in payload:
            index = int(item["index"])
            if not 0 <= index < count or seen[index]:
                raise ValueError(f"index {index}")
            seen[index] = True
            logits[index] = float(item["score"])
    except (TypeError, KeyError, ValueError) as exc:
        raise RemoteRerankError(
            f"the server sent an unexpected rerank response ({exc})", 200, None
        ) from exc
    if not seen.all():
        raise RemoteRerankError(
            f"the server ranked {int(seen.sum())} of {count} documents", 200, None
        )
    bad = np.flatnonzero(~np.isfinite(logits))
    if len(bad):
        i = start + int(bad[0])
        raise NonFiniteScoreError(i, query, docs[i], float(logits[bad[0]]))
    return logits


def error_of(status: int, payload: object, query: str, docs: list[str], start: int) -> RerankError:
    body = payload if isinstance(payload, dict) else {}
    message = str(body.get("error") or body.get("message") or body.get("detail") or status)
    error_type = body.get("error_type")
    field = body.get("field")
    if status == 429:
        return OverloadedError(f"the rerank server is overloaded: {message}")
    if status == 503:
        return EngineStoppedError(f"the rerank server is unavailable: {message}")
    if status in (413, 422):
        # The server names its own field ("texts[3]"); report it in the caller's terms.
        name = str(field or "documents")
        if name.startswith("texts"):
            name = shift_index("documents" + name.removeprefix("texts"), start)
        return InvalidInputError(name, message.split(": ", 1)[-1])
    if status == 500 and error_type == "non_finite_score" and isinstance(field, str):
        index = index_of(field)
        if index is not None:
            i = start + index
            return NonFiniteScoreError(i, query, docs[i], math.nan)
    return RemoteRerankError(f"rerank server error {status}: {message}", status, error_type)


def index_of(field: str) -> int | None:
    if "[" not in field or not field.endswith("]"):
        return None
    try:
        return int(field[field.index("[") + 1 : -1])
    except ValueError:
        return None


def shift_index(field: str, offset: int) -> str:
    index = index_of(field)
    if index is None or offset == 0:
        return field
    return f"{field[: field.index('[')]}[{index + offset}]"
