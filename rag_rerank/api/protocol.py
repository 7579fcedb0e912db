"""The reranker protocol (:class:`RerankerLike`) and :class:`BaseReranker`, which implements it
(and ``rerank_many`` / ``score_pairs``) once on a pairs-logits primitive."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .calibration import Calibration
from .checks import check_documents, check_pairs, check_query, check_selection
from .context import ContextBudget, ContextOrder
from .many import flatten_queries, prune_job_of_many, split_select, unflat_like
from .pruning import PruneJob, PruneOptions, prune_options
from .results import RerankResult, resolve_threshold, scores_of, select

__all__ = ["BaseReranker", "RerankerLike", "context_request"]


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
        *,
        prune: bool | PruneOptions | None = None,
        max_context_tokens: int | None = None,
        tokenizer: object = None,
        order: ContextOrder = "score",
    ) -> list[RerankResult]:
        """Documents best first, at most ``top_n``, none scoring below ``threshold``; pruned to
        the sentences that answer with ``prune``, fitted to ``max_context_tokens``, in ``order``."""
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
        *,
        prune: bool | PruneOptions | None = None,
        max_context_tokens: int | None = None,
        tokenizer: object = None,
        order: ContextOrder = "score",
    ) -> list[RerankResult]:
        """Async :meth:`rerank`."""
        ...


class BaseReranker(abc.ABC):
    """:class:`RerankerLike` implemented once, on top of one primitive: the fp32 relevance logits
    of (query, document) pairs.

    A reranker subclasses this and writes :meth:`_pair_logits` and :meth:`_apair_logits`;
    ``score``, ``rerank``, ``rerank_many``, ``score_pairs``, their async twins and ``prune``
    (input checks, the [0, 1] scores, threshold, top-n, pruning, the token budget, order) come
    from here, so every reranker behaves the same.

    A subclass that sets ``_calibration`` (a :class:`~rag_rerank.api.calibration.Calibration`)
    gets calibrated scores, and ``threshold="calibrated"``, everywhere.
    """

    _calibration: Calibration | None = None

    @property
    def calibration(self) -> Calibration | None:
        """The calibration that maps logits to scores, or ``None`` (scores are sigmoid(logit))."""
        return self._calibration

    @abc.abstractmethod
    def _pair_logits(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        """fp32 relevance logits of the pairs ``(queries[i], documents[i])`` (checked, non-empty,
        as many queries as documents), in order. A non-finite logit raises
        :class:`~rag_rerank.errors.NonFiniteScoreError` with the pair's index."""

    @abc.abstractmethod
    async def _apair_logits(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        """Async :meth:`_pair_logits`; must not block the event loop."""

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """Relevance of each document to ``query`` in [0, 1], in input order.

        Raises:
            InvalidInputError: An empty or non-string query.
            InvalidInputTypeError: ``documents`` is not a list of strings (the bad item named).
        """
        docs = _checked(query, documents)
        if not docs:
            return []
        return scores_of(self._pair_logits([query] * len(docs), docs), self._calibration)

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | str | None = None,
        *,
        prune: bool | PruneOptions | None = None,
        max_context_tokens: int | None = None,
        tokenizer: object = None,
        order: ContextOrder = "score",
    ) -> list[RerankResult]:
        """Documents best first, each with its input ``index``, ``score`` and ``raw_score``.

        Args:
            query: The question.
            documents: Candidate passages.
            top_n: Keep at most this many results (after the threshold). ``None`` keeps all.
            threshold: Drop results whose ``score`` (in [0, 1]) is below this; ``"calibrated"``:
                the recommended threshold of the reranker's calibration.
            prune: Cut each kept document to the sentences that answer ``query``: ``True`` (the
                defaults) or a :class:`~rag_rerank.PruneOptions`; each result's ``pruned_text``
                and ``kept_spans`` say what is kept. Scores and order do not change. Off
                (``None``) by default.
            max_context_tokens: Keep the best results whose text (pruned where pruned) fits
                this many tokens together, instead of a fixed count; the first that does not
                fit whole is cut to its leading whole sentences. ``None`` (default): no budget.
            tokenizer: How ``max_context_tokens`` counts: ``None`` (a fast approximate count),
                the LLM's Hugging Face tokenizer id or folder, a tokenizer object, or a callable
                from text to a count.
            order: ``"score"`` (best first, default) or ``"edges"`` (the best at the two ends,
                the weakest in the middle, for LLMs that lose the middle of a long context; as
                LangChain's ``LongContextReorder``).

        Ties keep input order. An empty ``documents`` list returns ``[]``.

        Raises:
            InvalidInputError: An empty query, a bad ``top_n``, ``threshold``, ``prune``
                option, ``max_context_tokens`` or ``order``, a ``tokenizer`` that cannot be
                loaded, or ``"calibrated"`` without a calibration that recommends a threshold.
            InvalidInputTypeError: ``documents`` is not a list of strings (the bad item named),
                or ``prune`` / ``tokenizer`` of a wrong type.
        """
        cutoff, pruning, budget = self._request(
            top_n, threshold, prune, max_context_tokens, tokenizer, order
        )
        docs = _checked(query, documents)
        if not docs:
            return []
        logits = self._pair_logits([query] * len(docs), docs)
        results = select(logits, docs, top_n, cutoff, self._calibration)
        if pruning is not None:
            results = self.prune(query, results, pruning)
        return budget.apply(results)

    async def ascore(self, query: str, documents: Sequence[str]) -> list[float]:
        """Async :meth:`score`: awaits the work without blocking the event loop."""
        docs = _checked(query, documents)
        if not docs:
            return []
        logits = await self._apair_logits([query] * len(docs), docs)
        return scores_of(logits, self._calibration)

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | str | None = None,
        *,
        prune: bool | PruneOptions | None = None,
        max_context_tokens: int | None = None,
        tokenizer: object = None,
        order: ContextOrder = "score",
    ) -> list[RerankResult]:
        """Async :meth:`rerank`: awaits the work without blocking the event loop."""
        cutoff, pruning, budget = self._request(
            top_n, threshold, prune, max_context_tokens, tokenizer, order
        )
        docs = _checked(query, documents)
        if not docs:
            return []
        logits = await self._apair_logits([query] * len(docs), docs)
        results = select(logits, docs, top_n, cutoff, self._calibration)
        if pruning is not None:
            results = await self.aprune(query, results, pruning)
        return budget.apply(results)

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Relevance in [0, 1] of each ``(query, document)`` pair, in input order.

        Raises:
            InvalidInputError: An empty query (``pairs[i][0]`` named).
            InvalidInputTypeError: ``pairs`` is not a list of (query, document) string pairs
                (the bad item named).
        """
        queries, documents = check_pairs(pairs)
        if not queries:
            return []
        return scores_of(self._pair_logits(queries, documents), self._calibration)

    def rerank_many(
        self,
        queries: Sequence[str],
        documents_per_query: Sequence[Sequence[str]],
        top_n: int | None = None,
        threshold: float | str | None = None,
        *,
        prune: bool | PruneOptions | None = None,
        max_context_tokens: int | None = None,
        tokenizer: object = None,
        order: ContextOrder = "score",
    ) -> list[list[RerankResult]]:
        """:meth:`rerank` for several queries at once, sharing batches. One list per query, each
        equal to ``rerank(queries[i], documents_per_query[i], ...)``; ``prune`` scores the
        sentences of every query's results in one more call, and ``max_context_tokens`` and
        ``order`` apply to each query's list.

        Raises:
            InvalidInputError: As :meth:`rerank`, or as many document lists as queries are not
                given (``documents_per_query``); bad items are named ``queries[i]`` and
                ``documents_per_query[i][j]``.
            InvalidInputTypeError: ``queries`` or ``documents_per_query`` is not a list.
        """
        cutoff, pruning, budget = self._request(
            top_n, threshold, prune, max_context_tokens, tokenizer, order
        )
        flat_queries, flat_docs, bounds = flatten_queries(queries, documents_per_query)
        logits = np.empty(0, dtype=np.float32)
        if flat_docs:
            logits = self._pair_logits(flat_queries, flat_docs)
        calibration = self._calibration
        ranked = split_select(logits, documents_per_query, bounds, top_n, cutoff, calibration)
        if pruning is not None:
            job, flat = prune_job_of_many(queries, ranked, pruning)
            ranked = unflat_like(job.apply(flat, self._sentence_scores(job)), ranked)
        return [budget.apply(results) for results in ranked]

    async def ascore_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Async :meth:`score_pairs`."""
        queries, documents = check_pairs(pairs)
        if not queries:
            return []
        return scores_of(await self._apair_logits(queries, documents), self._calibration)

    async def arerank_many(
        self,
        queries: Sequence[str],
        documents_per_query: Sequence[Sequence[str]],
        top_n: int | None = None,
        threshold: float | str | None = None,
        *,
        prune: bool | PruneOptions | None = None,
        max_context_tokens: int | None = None,
        tokenizer: object = None,
        order: ContextOrder = "score",
    ) -> list[list[RerankResult]]:
        """Async :meth:`rerank_many`."""
        cutoff, pruning, budget = self._request(
            top_n, threshold, prune, max_context_tokens, tokenizer, order
        )
        flat_queries, flat_docs, bounds = flatten_queries(queries, documents_per_query)
        logits = np.empty(0, dtype=np.float32)
        if flat_docs:
            logits = await self._apair_logits(flat_queries, flat_docs)
        calibration = self._calibration
        ranked = split_select(logits, documents_per_query, bounds, top_n, cutoff, calibration)
        if pruning is not None:
            job, flat = prune_job_of_many(queries, ranked, pruning)
            ranked = unflat_like(job.apply(flat, await self._asentence_scores(job)), ranked)
        return [budget.apply(results) for results in ranked]

    def prune(
        self,
        query: str,
        results: Sequence[RerankResult],
        options: bool | PruneOptions | None = True,
    ) -> list[RerankResult]:
        """``results`` (of a ``rerank`` for ``query``) with each document cut to the sentences
        that answer ``query``: ``pruned_text`` and ``kept_spans`` set, all else unchanged. The
        sentences of all results are scored together (see :mod:`rag_rerank.api.pruning`).

        Args:
            query: The question the results were ranked for.
            results: Reranked results, in any order (kept).
            options: ``True`` (the defaults) or a :class:`~rag_rerank.PruneOptions`; ``None`` or
                ``False`` return the results as they are.
        """
        pruning = prune_options(options)
        results = list(results)
        if pruning is None or not results:
            return results
        check_query(query)
        job = PruneJob.of([query] * len(results), results, pruning)
        return job.apply(results, self._sentence_scores(job))

    async def aprune(
        self,
        query: str,
        results: Sequence[RerankResult],
        options: bool | PruneOptions | None = True,
    ) -> list[RerankResult]:
        """Async :meth:`prune`."""
        pruning = prune_options(options)
        results = list(results)
        if pruning is None or not results:
            return results
        check_query(query)
        job = PruneJob.of([query] * len(results), results, pruning)
        return job.apply(results, await self._asentence_scores(job))

    def _request(
        self,
        top_n: int | None,
        threshold: float | str | None,
        prune: bool | PruneOptions | None,
        max_context_tokens: int | None,
        tokenizer: object,
        order: ContextOrder,
    ) -> tuple[float | None, PruneOptions | None, ContextBudget]:
        """The score cutoff, the pruning and the token budget one (a)rerank(_many) call asks
        for, checked before any scoring (errors name the field)."""
        check_selection(top_n, threshold)
        cutoff = resolve_threshold(threshold, self._calibration)
        return (cutoff, *context_request(prune, max_context_tokens, tokenizer, order))

    # -- the pruning seam (see rag_rerank.api.pruning) ------------------------------------------

    def _sentence_scores(self, job: PruneJob) -> list[list[float]]:
        """[0, 1] scores of every sentence of ``job``, one list per passage: every
        ``(query, sentence)`` pair scored like a document, in one :meth:`_pair_logits` call. A
        reranker with a faster source (a pruning head) overrides this."""
        queries, sentences = job.sentence_pairs()
        if not sentences:
            return job.unflatten([])
        return job.unflatten(scores_of(self._pair_logits(queries, sentences), self._calibration))

    async def _asentence_scores(self, job: PruneJob) -> list[list[float]]:
        """Async :meth:`_sentence_scores`."""
        queries, sentences = job.sentence_pairs()
        if not sentences:
            return job.unflatten([])
        logits = await self._apair_logits(queries, sentences)
        return job.unflatten(scores_of(logits, self._calibration))


def context_request(
    prune: object, max_context_tokens: object, tokenizer: object, order: object
) -> tuple[PruneOptions | None, ContextBudget]:
    """The pruning and the budget a ``rerank`` call asks for, checked (errors name the field)."""
    pruning = prune_options(prune)
    language = "en" if pruning is None else pruning.language
    budget = ContextBudget(max_context_tokens, tokenizer, order, language)  # type: ignore[arg-type]
    return pruning, budget


def _checked(query: object, documents: object) -> list[str]:
    check_query(query)
    return check_documents(documents)
