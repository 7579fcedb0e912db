"""How one :class:`~rag_rerank.Reranker` view scores pairs on its engine: the documents cleaned,
the pairs looked up in the score cache, the misses submitted as one job with the view's window
options, their logits kept in the cache, and a pruning head's token scores of the pairs just
ranked kept for pruning (which then reads them instead of running the passages again)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from ..api import PruneJob, RerankerOptions
from ..errors import EngineStoppedError, NonFiniteScoreError
from .cache import ScoreCache
from .cleaning import clean_documents
from .engine import Engine
from .lookup import CacheLookup
from .offload import run_off_loop
from .token_scores import RecentTokens, sentence_probabilities

__all__ = ["PairScoring"]


class PairScoring:
    """Scores pairs for one view: its ``options`` (``clean``, ``long_documents``,
    ``show_progress``), ``max_length``, ``cache`` (``None``: none) and, for a model with a
    pruning head, the ``tokens`` its passes leave behind."""

    def __init__(
        self,
        engine: Engine,
        options: RerankerOptions,
        max_length: int,
        cache: ScoreCache | None,
        tokens: RecentTokens | None,
    ) -> None:
        self._engine = engine
        self._options = options
        self._max_length = max_length
        self._cache = cache
        self._tokens = tokens

    def submit(self, queries: Sequence[str], documents: Sequence[str]) -> Future[np.ndarray]:
        return self._engine.submit(
            queries,
            documents,
            max_length=self._max_length,
            long_documents=self._options.long_documents,
            show_progress=self._options.show_progress,
        )

    def head_sentence_scores(self, job: PruneJob) -> list[list[float]]:
        """[0, 1] scores of the sentences of ``job`` from the pruning head's token logits of the
        pass that ranked the passages; passages whose scores came from the score cache run
        once more."""
        queries, passages = self._head_missing(job)
        if passages:
            future = self.submit(queries, passages)
            _wait(future)
            self._remember(future, queries, passages)
        return self._head_scores(job)

    async def ahead_sentence_scores(self, job: PruneJob) -> list[list[float]]:
        """Async :meth:`head_sentence_scores`."""
        queries, passages = self._head_missing(job)
        if passages:
            future = self.submit(queries, passages)
            await asyncio.wrap_future(future)
            self._remember(future, queries, passages)
        return self._head_scores(job)

    def _head_missing(self, job: PruneJob) -> tuple[list[str], list[str]]:
        """The (query, passage) pairs of ``job`` whose token scores are not at hand."""
        assert self._tokens is not None
        missing = [
            (job.queries[i], job.passages[i])
            for i in job.to_score
            if self._tokens.get(job.queries[i], job.passages[i]) is None
        ]
        return [q for q, _ in missing], [p for _, p in missing]

    def _head_scores(self, job: PruneJob) -> list[list[float]]:
        assert self._tokens is not None
        scores: list[list[float]] = [[] for _ in job.passages]
        for i in job.to_score:
            windows = self._tokens.get(job.queries[i], job.passages[i]) or []
            scores[i] = sentence_probabilities(windows, job.spans[i])
        return scores

    def _remember(
        self, future: Future[np.ndarray], queries: Sequence[str], texts: Sequence[str]
    ) -> None:
        """Keep a pruning head's token scores of a finished submission."""
        outputs = getattr(future, "row_outputs", None)
        if self._tokens is not None and outputs is not None:
            self._tokens.put(queries, texts, outputs)

    def _prepared(
        self, queries: Sequence[str], documents: Sequence[str]
    ) -> tuple[list[str], CacheLookup | None]:
        """A call's CPU work before the model: the texts as scored (cleaned) and, with a
        cache, the pairs' keys."""
        texts = clean_documents(documents, self._options.clean)
        if self._cache is None:
            return texts, None
        return texts, CacheLookup(queries, texts, self._max_length, self._options.long_documents)

    def logits(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        """fp32 logits of the pairs: cleaned, looked up, the misses run as one job."""
        texts, lookup = self._prepared(queries, documents)
        cache = self._cache
        if cache is None or lookup is None:
            future = self.submit(queries, texts)
            logits = _wait(future)
            self._remember(future, queries, texts)
            return logits
        self._check_running()
        lookup.found(cache.get_many(lookup.keys))
        if lookup.missing:
            pairs = lookup.to_score()
            future = self.submit(*pairs)
            lookup.scored(self._checked(lambda: _wait(future), lookup))
            self._remember(future, *pairs)
        return lookup.finish(cache)

    async def alogits(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        """Async :meth:`logits`; never blocks the event loop."""
        cache = self._cache
        if self._options.clean is None and cache is None:
            texts, lookup = list(documents), None
        else:  # cleaning and hashing a large call would hold the event loop: off it
            size = sum(map(len, documents)) + sum(map(len, queries))
            texts, lookup = await run_off_loop(size, self._prepared, queries, documents)
        if cache is None or lookup is None:
            submitted = self.submit(queries, texts)
            logits: np.ndarray = await asyncio.wrap_future(submitted)
            self._remember(submitted, queries, texts)
            return logits
        self._check_running()
        if cache.blocking:  # a network round trip: off the event loop
            lookup.found(await asyncio.to_thread(cache.get_many, lookup.keys))
        else:
            lookup.found(cache.get_many(lookup.keys))
        if lookup.missing:
            pairs = lookup.to_score()
            submitted = self.submit(*pairs)
            try:
                logits = await asyncio.wrap_future(submitted)
            except NonFiniteScoreError as exc:
                raise lookup.renumbered(exc) from exc
            lookup.scored(logits)
            self._remember(submitted, *pairs)
        return lookup.finish(cache)

    def _check_running(self) -> None:
        # A closed or dead reranker refuses work even when the cache could answer it.
        if not self._engine.alive:
            raise EngineStoppedError("the reranker engine is not running")

    @staticmethod
    def _checked(result: Any, lookup: CacheLookup) -> np.ndarray:
        try:
            logits: np.ndarray = result()
        except NonFiniteScoreError as exc:
            raise lookup.renumbered(exc) from exc
        return logits


def _wait(future: Future[np.ndarray]) -> np.ndarray:
    """The future's logits; interrupted (Ctrl-C, a timeout), the engine drops the job's work."""
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise
