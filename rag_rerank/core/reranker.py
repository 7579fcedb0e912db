"""The public reranker: :class:`Reranker`, the engine-backed :class:`~rag_rerank.api.BaseReranker`
(its ``score``, ``rerank``, ``rerank_many``, ``score_pairs`` and async twins come from there)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import warnings
import weakref
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np
import torch

from ..api import (
    DEFAULT_MODEL,
    BaseReranker,
    CacheStats,
    Calibration,
    Health,
    LongDocuments,
    PruneJob,
    RerankerOptions,
    RerankerStats,
    check_documents,
)
from ..errors import (
    EngineStoppedError,
    InvalidInputError,
    NonFiniteScoreError,
)
from .cache import ScoreCache, model_identity, open_cache
from .cleaning import clean_documents
from .device import precision_note, resolve_device, resolve_dtype
from .engine import Engine
from .head import PruningHeadModel
from .kinds import load_model
from .loading import PairModel
from .lookup import CacheLookup
from .offload import run_off_loop
from .token_scores import RecentTokens, sentence_probabilities

__all__ = ["Reranker"]

logger = logging.getLogger(__name__)

# Tokens per forward pass. CPU: padding-free batches of 2048 real tokens (bigger ones fall out of
# cache; measured in benchmarks/RESULTS.md); GPU: big padded batches keep the device busy.
_DEFAULT_BATCH_TOKENS = {"cuda": 65536, "mps": 16384, "cpu": 2048}

_shared_lock = threading.Lock()
_shared_engines: dict[tuple[Any, ...], Engine] = {}
_shared_rerankers: dict[tuple[Any, ...], Reranker] = {}
_identity_lock = threading.Lock()  # not _shared_lock: shared() holds it while it loads
_identities: weakref.WeakKeyDictionary[PairModel, str | None] = weakref.WeakKeyDictionary()


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
        resolved = _resolve(_options(model, options))
        device = torch.device(str(resolved.device))
        loaded = load_model(
            resolved.model,
            device=device,
            dtype=resolve_dtype(device, resolved.dtype),
            revision=resolved.revision,
            trust_remote_code=resolved.trust_remote_code,
            quantize=resolved.quantize,
            prompt_format=resolved.prompt_format,
            instruction=resolved.instruction,
        )
        batch_tokens = resolved.batch_tokens or _DEFAULT_BATCH_TOKENS.get(device.type, 2048)
        engine = Engine(loaded, batch_tokens=batch_tokens, max_queue_pairs=resolved.max_queue_pairs)
        self._attach(engine, resolved)

    def _attach(self, engine: Engine, options: RerankerOptions) -> None:
        self._engine = engine
        # The engine stops once its last user is collected (no worker left for exit to race).
        engine.acquire()
        weakref.finalize(self, engine.release).atexit = False
        self._options = options
        requested = options.max_length or engine.model.default_max_length
        self._max_length = min(requested, engine.model.max_length)
        self._calibration = _load_calibration(options, engine.model.name, self._max_length)
        self._cache: ScoreCache | None = None
        # A pruning head's token scores of the pairs just ranked: pruning reads them (one pass).
        self._tokens = RecentTokens() if isinstance(engine.model, PruningHeadModel) else None
        if options.cache is not None:
            self._cache = open_cache(options, _identity(engine.model))

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
        resolved = _resolve(_options(model, options))
        engine_key = resolved.load_key()
        key = (*engine_key, *(getattr(resolved, name) for name in resolved.view_names()))
        with _shared_lock:
            if key in _shared_rerankers:
                return _shared_rerankers[key]
            engine = _shared_engines.get(engine_key)
            if engine is None or not (engine.alive or engine.stalled):  # stalled: it may recover
                instance = cls(resolved)
                _shared_engines[engine_key] = instance._engine
            else:
                instance = cls._view(engine, resolved)
            _shared_rerankers[key] = instance
            return instance

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
        with _shared_lock:
            for key, instance in list(_shared_rerankers.items()):
                if instance._engine is self._engine:
                    del _shared_rerankers[key]
            for key, engine in list(_shared_engines.items()):
                if engine is self._engine:
                    del _shared_engines[key]
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

    def _submit(self, queries: Sequence[str], documents: Sequence[str]) -> Future[np.ndarray]:
        return self._engine.submit(
            queries,
            documents,
            max_length=self._max_length,
            long_documents=self._options.long_documents,
            show_progress=self._options.show_progress,
        )

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
            queries, passages = self._head_missing(job)
            if passages:
                future = self._submit(queries, passages)
                _wait(future)
                self._remember(future, queries, passages)
            return self._head_scores(job)
        return super()._sentence_scores(job)

    async def _asentence_scores(self, job: PruneJob) -> list[list[float]]:
        if self._use_head(job):
            queries, passages = self._head_missing(job)
            if passages:
                future = self._submit(queries, passages)
                await asyncio.wrap_future(future)
                self._remember(future, queries, passages)
            return self._head_scores(job)
        return await super()._asentence_scores(job)

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

    # Every scoring path: clean, look the pairs up, run the misses as one job, keep their logits.

    def _prepared(
        self, queries: Sequence[str], documents: Sequence[str]
    ) -> tuple[list[str], CacheLookup | None]:
        """A call's CPU work before the model: the texts as scored (cleaned) and, with a
        cache, the pairs' keys."""
        texts = clean_documents(documents, self._options.clean)
        if self._cache is None:
            return texts, None
        return texts, CacheLookup(queries, texts, self._max_length, self._options.long_documents)

    def _pair_logits(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        texts, lookup = self._prepared(queries, documents)
        cache = self._cache
        if cache is None or lookup is None:
            future = self._submit(queries, texts)
            logits = _wait(future)
            self._remember(future, queries, texts)
            return logits
        self._check_running()
        lookup.found(cache.get_many(lookup.keys))
        if lookup.missing:
            pairs = lookup.to_score()
            future = self._submit(*pairs)
            lookup.scored(self._checked(lambda: _wait(future), lookup))
            self._remember(future, *pairs)
        return lookup.finish(cache)

    async def _apair_logits(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        cache = self._cache
        if self._options.clean is None and cache is None:
            texts, lookup = list(documents), None
        else:  # cleaning and hashing a large call would hold the event loop: off it
            size = sum(map(len, documents)) + sum(map(len, queries))
            texts, lookup = await run_off_loop(size, self._prepared, queries, documents)
        if cache is None or lookup is None:
            submitted = self._submit(queries, texts)
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
            submitted = self._submit(*pairs)
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


def _identity(model: PairModel) -> str | None:
    """The model's cache identity, computed once per loaded model."""
    with _identity_lock:
        if model not in _identities:
            config = model.model.config
            _identities[model] = model_identity(
                model.name,
                getattr(config, "_commit_hash", None),
                dtype=str(model.dtype).removeprefix("torch."),
                quantize=model.quantize,
                device_type=model.device.type,
                template=model.template,
            )
            if _identities[model] is None:
                logger.warning(
                    "%s: no hub commit known for these weights; scoring without a cache",
                    model.name,
                )
        return _identities[model]


def _options(model: object, options: dict[str, Any]) -> RerankerOptions:
    if isinstance(model, RerankerOptions):
        return model.replace(**options) if options else model
    return RerankerOptions.from_kwargs(model=model, **options)  # type: ignore[arg-type]


def _load_calibration(
    options: RerankerOptions, model_name: str, max_length: int
) -> Calibration | None:
    """The calibration named by the options, checked against the model it will calibrate."""
    if options.calibration is None:
        return None
    calibration = Calibration.load(options.calibration)
    calibration.check_model(model_name, options.revision)
    # Other windows or long-document handling move the logits a little: allowed, but said.
    for name, fitted, used in (
        ("max_length", calibration.max_length, max_length),
        ("long_documents", calibration.long_documents, options.long_documents),
    ):
        if fitted is not None and fitted != used:
            warnings.warn(
                f"{options.calibration}: fitted with {name}={fitted!r}, used with {used!r}; "
                "the calibrated scores may be off",
                stacklevel=4,
            )
    return calibration


def _resolve(options: RerankerOptions) -> RerankerOptions:
    """``options`` with the device and dtype that ``None`` stands for on this machine, by name,
    so that ``device=None`` and ``device="cpu"`` share one model on a CPU-only machine."""
    device = resolve_device(options.device)
    dtype = resolve_dtype(device, options.dtype, quantize=options.quantize)
    return options.replace(device=str(device), dtype=str(dtype).removeprefix("torch."))
