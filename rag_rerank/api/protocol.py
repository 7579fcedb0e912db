"""The reranker protocol (:class:`RerankerLike`) and :class:`BaseReranker`, which implements it
once on a logits primitive."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .calibration import Calibration
from .checks import check_documents, check_query, check_selection
from .results import RerankResult, resolve_threshold, scores_of, select

__all__ = ["BaseReranker", "RerankerLike"]


@runtime_checkable
class RerankerLike(Protocol):
    """What every reranker offers: :class:`~rag_rerank.Reranker` (in process) and
    :class:`~rag_rerank.RemoteReranker` (over HTTP) both satisfy it, and so may a user's own.

    ``rerank`` returns results best first, each with the document's input ``index``, its
    ``score`` in [0, 1] and its ``raw_score`` logit, after ``threshold`` (on ``score``) and then
    ``top_n`` are applied; ties keep input order. ``score`` returns [0, 1] scores in input order.
    ``threshold="calibrated"`` asks for the recommended threshold of the reranker's calibration.
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
        threshold: float | str | None = None,
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
        threshold: float | str | None = None,
    ) -> list[RerankResult]:
        """Async :meth:`rerank`."""
        ...


class BaseReranker(abc.ABC):
    """:class:`RerankerLike` implemented once, on top of one primitive: fp32 relevance logits.

    A reranker subclasses this and writes :meth:`_logits` and :meth:`_alogits`; ``score``,
    ``rerank`` and their async twins (input checks, the [0, 1] scores, threshold, top-n, order)
    come from here, so every reranker behaves the same.

    A subclass that sets ``_calibration`` (a :class:`~rag_rerank.api.calibration.Calibration`)
    gets calibrated scores, and ``threshold="calibrated"``, everywhere.
    """

    _calibration: Calibration | None = None

    @property
    def calibration(self) -> Calibration | None:
        """The calibration that maps logits to scores, or ``None`` (scores are sigmoid(logit))."""
        return self._calibration

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
        return scores_of(self._logits(query, docs), self._calibration) if docs else []

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | str | None = None,
    ) -> list[RerankResult]:
        """Documents best first, each with its input ``index``, ``score`` and ``raw_score``.

        Args:
            query: The question.
            documents: Candidate passages.
            top_n: Keep at most this many results (after the threshold). ``None`` keeps all.
            threshold: Drop results whose ``score`` (in [0, 1]) is below this; ``"calibrated"``:
                the recommended threshold of the reranker's calibration.

        Ties keep input order. An empty ``documents`` list returns ``[]``.

        Raises:
            InvalidInputError: An empty query, a bad ``top_n`` or ``threshold``, or
                ``"calibrated"`` without a calibration that recommends a threshold.
            InvalidInputTypeError: ``documents`` is not a list of strings (the bad item named).
        """
        check_selection(top_n, threshold)
        cutoff = resolve_threshold(threshold, self._calibration)
        docs = _checked(query, documents)
        if not docs:
            return []
        return select(self._logits(query, docs), docs, top_n, cutoff, self._calibration)

    async def ascore(self, query: str, documents: Sequence[str]) -> list[float]:
        """Async :meth:`score`: awaits the work without blocking the event loop."""
        docs = _checked(query, documents)
        return scores_of(await self._alogits(query, docs), self._calibration) if docs else []

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | str | None = None,
    ) -> list[RerankResult]:
        """Async :meth:`rerank`: awaits the work without blocking the event loop."""
        check_selection(top_n, threshold)
        cutoff = resolve_threshold(threshold, self._calibration)
        docs = _checked(query, documents)
        if not docs:
            return []
        logits = await self._alogits(query, docs)
        return select(logits, docs, top_n, cutoff, self._calibration)


def _checked(query: object, documents: object) -> list[str]:
    check_query(query)
    return check_documents(documents)
