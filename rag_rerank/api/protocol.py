"""The reranker protocol (:class:`RerankerLike`) and :class:`BaseReranker`, which implements it
once on a logits primitive."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .checks import check_documents, check_query, check_selection
from .results import RerankResult, select, sigmoid

__all__ = ["BaseReranker", "RerankerLike"]


@runtime_checkable
class RerankerLike(Protocol):
    """What every reranker offers: :class:`~rag_rerank.Reranker` (in process) and
    :class:`~rag_rerank.RemoteReranker` (over HTTP) both satisfy it, and so may a user's own.

    ``rerank`` returns results best first, each with the document's input ``index``, its
    ``score`` in [0, 1] and its ``raw_score`` logit, after ``threshold`` (on ``score``) and then
    ``top_n`` are applied; ties keep input order. ``score`` returns [0, 1] scores in input order.
    The async twins await the work without blocking the event loop.
    """

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """Relevance of each document to ``query`` in [0, 1], in input order."""
        ...

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> list[RerankResult]:
        """Documents best first, at most ``top_n``, none scoring below ``threshold``."""
        ...

    async def ascore(self, query: str, documents: Sequence[str]) -> list[float]:
        """Async :meth:`score`."""
        ...

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> list[RerankResult]:
        """Async :meth:`rerank`."""
        ...


class BaseReranker(abc.ABC):
    """:class:`RerankerLike` implemented once, on top of one primitive: fp32 relevance logits.

    A reranker subclasses this and writes :meth:`_logits` and :meth:`_alogits`; ``score``,
    ``rerank`` and their async twins (input checks, the [0, 1] scores, threshold, top-n, order)
    come from here, so every reranker behaves the same.
    """

    @abc.abstractmethod
    def _logits(self, query: str, documents: list[str]) -> np.ndarray:
        """fp32 relevance logits of ``documents`` (checked, non-empty) for ``query``, in order."""

    @abc.abstractmethod
    async def _alogits(self, query: str, documents: list[str]) -> np.ndarray:
        """Async :meth:`_logits`; must not block the event loop."""

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """Relevance of each document to ``query`` in [0, 1], in input order.

        Raises:
            InvalidInputError: An empty or non-string query.
            InvalidInputTypeError: ``documents`` is not a list of strings (the bad item named).
        """
        docs = _checked(query, documents)
        return sigmoid(self._logits(query, docs)) if docs else []

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> list[RerankResult]:
        """Documents best first, each with its input ``index``, ``score`` and ``raw_score``.

        Args:
            query: The question.
            documents: Candidate passages.
            top_n: Keep at most this many results (after the threshold). ``None`` keeps all.
            threshold: Drop results whose ``score`` (in [0, 1]) is below this.

        Ties keep input order. An empty ``documents`` list returns ``[]``.

        Raises:
            InvalidInputError: An empty query, a bad ``top_n`` or ``threshold``.
            InvalidInputTypeError: ``documents`` is not a list of strings (the bad item named).
        """
        check_selection(top_n, threshold)
        docs = _checked(query, documents)
        return select(self._logits(query, docs), docs, top_n, threshold) if docs else []

    async def ascore(self, query: str, documents: Sequence[str]) -> list[float]:
        """Async :meth:`score`: awaits the work without blocking the event loop."""
        docs = _checked(query, documents)
        return sigmoid(await self._alogits(query, docs)) if docs else []

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> list[RerankResult]:
        """Async :meth:`rerank`: awaits the work without blocking the event loop."""
        check_selection(top_n, threshold)
        docs = _checked(query, documents)
        return select(await self._alogits(query, docs), docs, top_n, threshold) if docs else []


def _checked(query: object, documents: object) -> list[str]:
    check_query(query)
    return check_documents(documents)
