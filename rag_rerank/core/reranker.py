"""The public reranker: :class:`Reranker`, the engine-backed :class:`~rag_rerank.api.BaseReranker`
(its ``score``, ``rerank``, ``rerank_many``, ``score_pairs`` and async twins come from there)."""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..api import (
    DEFAULT_MODEL,
    BaseReranker,
    CacheStats,
    Health,
    LongDocuments,
    PruneJob,
    RerankerOptions,
    RerankerStats,
    check_documents,
)
from ..errors import InvalidInputError
from .cache import ScoreCache, open_cache
from .cleaning import clean_documents
from .device import precision_note, resolve_dtype
from .engine import Engine
from .head import PruningHeadModel
from .kinds import load_model
from .scoring import PairScoring
from .setup import (
    cache_identity,
    default_batch_tokens,
    load_calibration,
    options_of,
    resolved_options,
)
from .shared import SharedRerankers
from .token_scores import RecentTokens

__all__ = ["Reranker"]

_shared: SharedRerankers[Reranker] = SharedRerankers()


class Reranker(BaseReranker):
    """A cross-encoder reranker: scores (query, document) pairs and ranks documents.

    Args:
        model: Hugging Face hub id or local folder (``str`` or ``os.PathLike``) of a
            sequence-classification cross-encoder or an LLM reranker (Qwen3-Reranker,
            bge-reranker-v2-gemma), or a whole :class:`~rag_rerank.RerankerOptions`.
        **options: Any field of :class:`~rag_rerank.RerankerOptions` (they override those of an
            options object): ``device``, ``dtype``, ``max_length`` (tokens per window, default
            512, or the model card's for an LLM reranker), ``batch_tokens``, ``long_documents``
            (``"windows"`` or ``"truncate"``), ``show_progress``, ``revision``,
            ``trust_remote_code``, ``max_queue_pairs``,
            ``quantize``, ``calibration`` (a file from ``rag-rerank calibrate``: ``score`` becomes
            the calibrated probability), ``prompt_format`` and ``instruction`` (LLM rerankers).
            Each is documented there.

    Raises:
        InvalidInputError: A bad option value (``field`` names it).
        CalibrationError: The calibration file is unreadable or was fitted for another model
            (both named).
        InvalidInputTypeError: A name that is not an option.
        ModelLoadError: The model cannot be loaded or is not a cross-encoder.

    Example:
        >>> rr = Reranker("BAAI/bge-reranker-v2-m3")  # doctest: +SKIP
        >>> rr.rerank("what is a panda?", ["A bear.", "A city.", "The giant panda is a bear."],
        ...           top_n=2)  # doctest: +SKIP
        [RerankResult(index=2, score=0.99..., ...), RerankResult(index=0, ...)]

    One instance may be used from many threads and asyncio tasks at once.
    """

    def __init__(
        self, model: str | os.PathLike[str] | RerankerOptions = DEFAULT_MODEL, **options: Any
    ) -> None:
        resolved = resolved_options(options_of(model, options))
        self._attach(_load(resolved), resolved)

    def _attach(self, engine: Engine, options: RerankerOptions) -> None:
        self._engine = engine
        # The engine stops once its last user is collected (no worker left for exit to race).
        engine.acquire()
        weakref.finalize(self, engine.release).atexit = False
        self._options = options
        requested = options.max_length or engine.model.default_max_length
        self._max_length = min(requested, engine.model.max_length)
        self._calibration = load_calibration(options, engine.model.name, self._max_length)
        self._cache: ScoreCache | None = None
        # A pruning head's token scores of the pairs just ranked: pruning reads them (one pass).
        self._tokens = RecentTokens() if isinstance(engine.model, PruningHeadModel) else None
        if options.cache is not None:
            self._cache = open_cache(options, cache_identity(engine.model))
        self._scoring = PairScoring(engine, options, self._max_length, self._cache, self._tokens)

    @classmethod
    def _view(cls, engine: Engine, options: RerankerOptions) -> Reranker:
        view = cls.__new__(cls)
        view._attach(engine, options)
        return view

    @classmethod
    def shared(
        cls, model: str | os.PathLike[str] | RerankerOptions = DEFAULT_MODEL, **options: Any
    ) -> Reranker:
        """The process-wide instance for ``model`` and ``options``, created on first use.

        Instances whose load options are equal (model, revision, device, dtype,
        ``trust_remote_code``, ``quantize``, ``batch_tokens``, ``max_queue_pairs``) share one
        loaded model and one engine, even when their view options (``max_length``,
        ``long_documents``, ``show_progress``, ``calibration``) differ. Thread-safe.
        """
        resolved = resolved_options(options_of(model, options))
        engine_key = resolved.load_key()
        key = (*engine_key, *(getattr(resolved, name) for name in resolved.view_names()))
        return _shared.get(
            engine_key, key, lambda: _load(resolved), lambda e: cls._view(e, resolved)
        )

    def with_options(self, **changes: Any) -> Reranker:
        """A view of this reranker with other view options, sharing its loaded model and engine.

        Args:
            **changes: ``max_length``, ``long_documents``, ``show_progress`` and/or
                ``calibration``.

        Raises:
            InvalidInputError: A load option (``device``, ``dtype``, ...): they are fixed when
                the model loads; create another :class:`Reranker` for those.

        Example:
            >>> first_window_only = rr.with_options(long_documents="truncate")  # doctest: +SKIP
        """
        fixed = sorted(
            set(changes) & set(RerankerOptions.names()) - set(RerankerOptions.view_names())
        )
        if fixed:
            raise InvalidInputError(
                fixed[0],
                "is fixed when the model loads; a view may change only "
                f"{', '.join(RerankerOptions.view_names())}",
            )
        return self._view(self._engine, self._options.replace(**changes))

    # -- properties -----------------------------------------------------------------------------

    @property
    def options(self) -> RerankerOptions:
        """The options this instance was made with (device and dtype resolved)."""
        return self._options

    @property
    def model_name(self) -> str:
        """The hub id or folder the model was loaded from."""
        return self._engine.model.name

    @property
    def device(self) -> torch.device:
        """The device the model runs on."""
        return self._engine.model.device

    @property
    def dtype(self) -> torch.dtype:
        """The precision of the model's weights and activations."""
        return self._engine.model.dtype

    @property
    def max_length(self) -> int:
        """Tokens per (query, document) window, after the model's cap."""
        return self._max_length

    @property
    def quantize(self) -> str | None:
        """``"int8"`` when the model runs dynamically quantized, else ``None``."""
        return self._engine.model.quantize

    @property
    def long_documents(self) -> LongDocuments:
        """``"windows"`` or ``"truncate"``."""
        return self._options.long_documents

    @property
    def batch_tokens(self) -> int:
        """Current token budget per forward pass (lowered after out-of-memory errors)."""
        return self._engine.batch_tokens

    @property
    def pruning_head(self) -> bool:
        """Whether the model has a one-pass pruning head (``rag-rerank train --prune``):
        ``prune=True`` then reads the sentence scores from the pass that ranked the passages."""
        return self._tokens is not None

    @property
    def num_parameters(self) -> int:
        """Parameters of the loaded model."""
        return sum(p.numel() for p in self._engine.model.model.parameters())

    @property
    def engine(self) -> Engine:
        """The micro-batching engine (shared by views). For tuning and tests; the stable
        read-only seams are :meth:`stats` and :meth:`health`."""
        return self._engine

    def stats(self) -> RerankerStats:
        """Counters and limits of the shared engine, as an immutable snapshot."""
        return self._engine.snapshot()

    def health(self) -> Health:
        """Whether the worker runs and the last forward pass succeeded (a snapshot)."""
        engine = self._engine
        return Health(
            alive=engine.alive,
            last_forward_ok=engine.stats.last_forward_ok,
            stalled=engine.stalled,
            failed_rounds=engine.stats.failed_rounds_in_a_row,
        )

    def estimated_wait(self, windows: int = 0) -> float | None:
        """Seconds until ``windows`` more windows submitted now would be scored (the work waiting
        in the shared engine over its measured throughput); ``None`` before a full batch ran."""
        return self._engine.estimated_wait(windows)

    @property
    def precision(self) -> str:
        """The precision in words, with whether a CPU multiplies bf16 natively (e.g.
        ``"bfloat16; CPU bf16 native (AMX)"``): for logs and ``/info``."""
        return precision_note(self.device, self.dtype)

    async def aprobe(self) -> None:
        """Score one tiny pair on the model, past the score cache (a cached score would prove
        nothing): a readiness probe after failed forward passes. Raises what the pass raised."""
        await asyncio.wrap_future(
            self._engine.submit(["probe"], ["a probe passage"], max_length=self.max_length)
        )

    @property
    def cache(self) -> ScoreCache | None:
        """The score cache in use (shared with the views and instances that name the same cache
        for this model), or ``None``: off, or the model's weights cannot be identified."""
        return self._cache

    def cache_stats(self) -> CacheStats | None:
        """Hits, misses and errors of the score cache, as a snapshot; ``None`` without a cache."""
        return None if self._cache is None else self._cache.stats()

    def cleaned(self, documents: Sequence[str], field: str = "documents") -> list[str]:
        """``documents`` as this reranker scores them (after ``clean``; unchanged without it).
        A bad item's error names it as ``field[i]`` (default ``documents[i]``)."""
        return clean_documents(check_documents(documents, field), self._options.clean)

    # -- scoring --------------------------------------------------------------------------------

    def close(self, timeout: float | None = 10.0, *, cancel: bool = False) -> None:
        """Stop the engine (every instance sharing it stops too). Further calls raise.

        Args:
            timeout: Seconds to wait for the worker to stop (``None``: as long as it takes). A
                forward pass cannot be interrupted: check :meth:`health` ``.alive`` after a
                short timeout.
            cancel: Fail the work still queued with
                :class:`~rag_rerank.errors.EngineStoppedError` instead of finishing it first.
        """
        _shared.forget(self._engine)
        self._engine.close(timeout, cancel=cancel)

    def __enter__(self) -> Reranker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Reranker({self.model_name!r}, device={str(self.device)!r}, "
            f"dtype={str(self.dtype).removeprefix('torch.')!r}, max_length={self.max_length})"
        )

    # -- internals ------------------------------------------------------------------------------

    # The pruning seam (rag_rerank.api.pruning): every sentence of every passage of the job, for
    # every query, in one engine submission (through the cache, like any pairs).

    # A model with a pruning head scores the sentences from the token logits of the pass that
    # ranked the passages (kept in self._tokens); passages whose scores came from the score
    # cache run once more. With ``clean`` the head saw other text than the passage: sentences.

    def _use_head(self, job: PruneJob) -> bool:
        method = job.options.method
        if method == "head" and self._tokens is None:
            raise InvalidInputError(
                "prune.method",
                f"'head' needs a model with a pruning head (rag-rerank train --prune); "
                f"{self.model_name!r} has none: use 'sentences' or 'auto'",
            )
        return self._tokens is not None and self._options.clean is None and method != "sentences"

    def _sentence_scores(self, job: PruneJob) -> list[list[float]]:
        if self._use_head(job):
            return self._scoring.head_sentence_scores(job)
        return super()._sentence_scores(job)

    async def _asentence_scores(self, job: PruneJob) -> list[list[float]]:
        if self._use_head(job):
            return await self._scoring.ahead_sentence_scores(job)
        return await super()._asentence_scores(job)

    # Every scoring path goes through the view's PairScoring (cache, cleaning, the engine).

    def _pair_logits(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        return self._scoring.logits(queries, documents)

    async def _apair_logits(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        return await self._scoring.alogits(queries, documents)


def _load(options: RerankerOptions) -> Engine:
    """The model of ``options`` (resolved), loaded, on its engine."""
    device = torch.device(str(options.device))
    loaded = load_model(
        options.model,
        device=device,
        dtype=resolve_dtype(device, options.dtype),
        revision=options.revision,
        trust_remote_code=options.trust_remote_code,
        quantize=options.quantize,
        prompt_format=options.prompt_format,
        instruction=options.instruction,
    )
    batch_tokens = options.batch_tokens or default_batch_tokens(device)
    return Engine(loaded, batch_tokens=batch_tokens, max_queue_pairs=options.max_queue_pairs)
