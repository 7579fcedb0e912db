"""The public reranker: score, rerank, rerank_many and their async twins."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Literal

import numpy as np
import torch

from .device import resolve_device, resolve_dtype
from .engine import Engine
from .errors import InvalidInputError, InvalidInputTypeError
from .model import DEFAULT_MODEL, CrossEncoderModel
from .types import RerankResult

__all__ = ["DEFAULT_MODEL", "Reranker"]

LongDocuments = Literal["chunk", "truncate"]

# Tokens per forward pass. CPU: padding-free batches of 2048 real tokens (bigger ones fall out of
# cache; measured in benchmarks/RESULTS.md); GPU: big padded batches keep the device busy.
_DEFAULT_BATCH_TOKENS = {"cuda": 65536, "mps": 16384, "cpu": 2048}

_shared_lock = threading.Lock()
_shared_engines: dict[tuple[Any, ...], Engine] = {}
_shared_rerankers: dict[tuple[Any, ...], Reranker] = {}


class Reranker:
    """A cross-encoder reranker: scores (query, document) pairs and ranks documents.

    Args:
        model: Hugging Face hub id or local folder of a sequence-classification cross-encoder.
        device: ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``; ``None`` picks cuda > mps > cpu.
        dtype: ``"bf16"``, ``"fp16"``, ``"fp32"`` or a ``torch.dtype``; ``None`` picks bf16 on GPUs
            that support it, else fp16, and fp32 on CPU.
        max_length: Tokens per (query, document) window, capped by the model (default 512).
        batch_tokens: Padded tokens per forward pass (rows x longest row); ``None`` picks a
            per-device default (65536 on CUDA, 2048 on CPU).
        long_documents: ``"chunk"`` scores a document longer than the window as its best
            overlapping window; ``"truncate"`` keeps only the first window.
        show_progress: ``True``/``False`` forces a tqdm bar on or off; ``None`` shows one for large
            jobs only.
        revision: Hub revision (branch, tag or commit) of the model.
        trust_remote_code: Allow the model's own Python code from the hub. Off unless asked for.
        max_queue_pairs: Refuse work with ``OverloadedError`` while this many pairs wait.
        quantize: ``"int8"`` runs the encoder's Linear layers in dynamic int8 on the CPU: about
            twice as fast, with slightly different scores (see README "Speed"). CPU and fp32
            only; ``None`` (default) keeps the model's own precision.

    Example:
        >>> rr = Reranker("BAAI/bge-reranker-v2-m3")  # doctest: +SKIP
        >>> rr.rerank("what is a panda?", ["A bear.", "A city.", "The giant panda is a bear."],
        ...           top_n=2)  # doctest: +SKIP
        [RerankResult(index=2, score=0.99..., ...), RerankResult(index=0, ...)]

    One instance may be used from many threads and asyncio tasks at once.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_length: int = 512,
        batch_tokens: int | None = None,
        long_documents: LongDocuments = "chunk",
        show_progress: bool | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        max_queue_pairs: int | None = None,
        quantize: Literal["int8"] | None = None,
    ) -> None:
        _check_options(model, max_length, batch_tokens, long_documents, max_queue_pairs)
        resolved_device = resolve_device(device)
        loaded = CrossEncoderModel.load(
            model,
            device=resolved_device,
            dtype=resolve_dtype(resolved_device, dtype),
            revision=revision,
            trust_remote_code=trust_remote_code,
            quantize=quantize,
        )
        engine = Engine(
            loaded,
            batch_tokens=batch_tokens or _DEFAULT_BATCH_TOKENS.get(resolved_device.type, 2048),
            max_queue_pairs=max_queue_pairs,
        )
        self._setup(engine, max_length, long_documents, show_progress)

    def _setup(
        self,
        engine: Engine,
        max_length: int,
        long_documents: LongDocuments,
        show_progress: bool | None,
    ) -> None:
        self._engine = engine
        self._max_length = min(max_length, engine.model.max_length)
        self._chunk = long_documents == "chunk"
        self._long_documents: LongDocuments = long_documents
        self._show_progress = show_progress

    @classmethod
    def shared(cls, model: str = DEFAULT_MODEL, **options: Any) -> Reranker:
        """The process-wide instance for ``model`` and ``options``, created on first use.

        Instances with the same model, device, dtype, revision, ``trust_remote_code``,
        ``batch_tokens``, ``max_queue_pairs`` and ``quantize`` share one loaded model and one
        engine, even when their ``max_length``, ``long_documents`` or ``show_progress`` differ.
        Thread-safe.
        """
        unknown = set(options) - _OPTION_NAMES
        if unknown:
            raise TypeError(f"Reranker.shared() got unexpected options: {sorted(unknown)}")
        device = resolve_device(options.get("device"))
        dtype = resolve_dtype(device, options.get("dtype"))
        view = {
            "max_length": options.get("max_length", 512),
            "long_documents": options.get("long_documents", "chunk"),
            "show_progress": options.get("show_progress"),
        }
        engine_key = (
            model,
            str(device),
            dtype,
            options.get("revision"),
            bool(options.get("trust_remote_code", False)),
            options.get("batch_tokens"),
            options.get("max_queue_pairs"),
            options.get("quantize"),
        )
        key = (*engine_key, *view.values())
        with _shared_lock:
            if key in _shared_rerankers:
                return _shared_rerankers[key]
            engine = _shared_engines.get(engine_key)
            if engine is None or not engine.alive:
                instance = cls(model, **{**options, "device": device, "dtype": dtype})
                _shared_engines[engine_key] = instance._engine
            else:
                _check_options(model, view["max_length"], None, view["long_documents"], None)
                instance = cls.__new__(cls)
                instance._setup(engine, **view)
            _shared_rerankers[key] = instance
            return instance

    # -- properties -----------------------------------------------------------------------------

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
        """``"chunk"`` or ``"truncate"``."""
        return self._long_documents

    @property
    def batch_tokens(self) -> int:
        """Current padded-token budget per forward pass (lowered after out-of-memory errors)."""
        return self._engine.batch_tokens

    @property
    def engine(self) -> Engine:
        """The micro-batching engine (shared by instances from :meth:`shared`)."""
        return self._engine

    # -- scoring --------------------------------------------------------------------------------

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """Relevance of each document to ``query`` in [0, 1], in input order."""
        return _sigmoid(self._logits_for(query, documents))

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Relevance in [0, 1] of each ``(query, document)`` pair, in input order."""
        queries, documents = _check_pairs(pairs)
        if not queries:
            return []
        return _sigmoid(self._submit(queries, documents).result())

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
        """
        _check_selection(top_n, threshold)
        return _select(self._logits_for(query, documents), documents, top_n, threshold)

    def rerank_many(
        self,
        queries: Sequence[str],
        documents_per_query: Sequence[Sequence[str]],
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> list[list[RerankResult]]:
        """:meth:`rerank` for several queries at once, sharing batches. One list per query."""
        _check_selection(top_n, threshold)
        flat_queries, flat_docs, bounds = _flatten(queries, documents_per_query)
        logits = self._submit(flat_queries, flat_docs).result() if flat_docs else np.empty(0)
        return _split_select(logits, documents_per_query, bounds, top_n, threshold)

    async def ascore(self, query: str, documents: Sequence[str]) -> list[float]:
        """Async :meth:`score`: awaits the engine without blocking the event loop."""
        return _sigmoid(await self._alogits_for(query, documents))

    async def ascore_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Async :meth:`score_pairs`."""
        queries, documents = _check_pairs(pairs)
        if not queries:
            return []
        return _sigmoid(await asyncio.wrap_future(self._submit(queries, documents)))

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> list[RerankResult]:
        """Async :meth:`rerank`."""
        _check_selection(top_n, threshold)
        logits = await self._alogits_for(query, documents)
        return _select(logits, documents, top_n, threshold)

    async def arerank_many(
        self,
        queries: Sequence[str],
        documents_per_query: Sequence[Sequence[str]],
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> list[list[RerankResult]]:
        """Async :meth:`rerank_many`."""
        _check_selection(top_n, threshold)
        flat_queries, flat_docs, bounds = _flatten(queries, documents_per_query)
        logits = np.empty(0, dtype=np.float32)
        if flat_docs:
            logits = await asyncio.wrap_future(self._submit(flat_queries, flat_docs))
        return _split_select(logits, documents_per_query, bounds, top_n, threshold)

    def close(self) -> None:
        """Stop the engine (every instance sharing it stops too). Further calls raise."""
        with _shared_lock:
            for key, instance in list(_shared_rerankers.items()):
                if instance._engine is self._engine:
                    del _shared_rerankers[key]
            for key, engine in list(_shared_engines.items()):
                if engine is self._engine:
                    del _shared_engines[key]
        self._engine.close()

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
            chunk=self._chunk,
            show_progress=self._show_progress,
        )

    def _logits_for(self, query: str, documents: Sequence[str]) -> np.ndarray:
        _check_query(query, "query")
        docs = _check_documents(documents, "documents")
        if not docs:
            return np.empty(0, dtype=np.float32)
        return self._submit([query] * len(docs), docs).result()

    async def _alogits_for(self, query: str, documents: Sequence[str]) -> np.ndarray:
        _check_query(query, "query")
        docs = _check_documents(documents, "documents")
        if not docs:
            return np.empty(0, dtype=np.float32)
        return await asyncio.wrap_future(self._submit([query] * len(docs), docs))


_OPTION_NAMES = {
    "device",
    "dtype",
    "max_length",
    "batch_tokens",
    "long_documents",
    "show_progress",
    "revision",
    "trust_remote_code",
    "max_queue_pairs",
    "quantize",
}


def _sigmoid(logits: np.ndarray) -> list[float]:
    # fp32 throughout: half-precision sigmoid saturates and creates false ties.
    return torch.sigmoid(torch.from_numpy(np.asarray(logits, dtype=np.float32))).tolist()


def _select(
    logits: np.ndarray,
    documents: Sequence[str],
    top_n: int | None,
    threshold: float | None,
) -> list[RerankResult]:
    scores = _sigmoid(logits)
    # Sort on the logit: it orders exactly like the score but does not saturate. Stable: ties keep
    # input order.
    order = np.argsort(-np.asarray(logits, dtype=np.float32), kind="stable")
    results = []
    for i in order.tolist():
        if threshold is not None and scores[i] < threshold:
            continue
        results.append(RerankResult(i, scores[i], float(logits[i]), documents[i]))
        if top_n is not None and len(results) == top_n:
            break
    return results


def _flatten(
    queries: Sequence[str], documents_per_query: Sequence[Sequence[str]]
) -> tuple[list[str], list[str], list[int]]:
    if isinstance(queries, str) or not isinstance(queries, Sequence):
        raise InvalidInputTypeError("queries", "expected a list of query strings")
    if isinstance(documents_per_query, str) or not isinstance(documents_per_query, Sequence):
        raise InvalidInputTypeError("documents_per_query", "expected a list of document lists")
    if len(queries) != len(documents_per_query):
        raise InvalidInputError(
            "documents_per_query",
            f"has {len(documents_per_query)} lists for {len(queries)} queries",
        )
    flat_queries: list[str] = []
    flat_docs: list[str] = []
    bounds = [0]
    for i, (query, documents) in enumerate(zip(queries, documents_per_query, strict=True)):
        _check_query(query, f"queries[{i}]")
        docs = _check_documents(documents, f"documents_per_query[{i}]")
        flat_queries.extend([query] * len(docs))
        flat_docs.extend(docs)
        bounds.append(len(flat_docs))
    return flat_queries, flat_docs, bounds


def _split_select(
    logits: np.ndarray,
    documents_per_query: Sequence[Sequence[str]],
    bounds: list[int],
    top_n: int | None,
    threshold: float | None,
) -> list[list[RerankResult]]:
    return [
        _select(logits[start:end], documents, top_n, threshold)
        for documents, start, end in zip(documents_per_query, bounds[:-1], bounds[1:], strict=True)
    ]


def _check_query(query: object, field: str) -> None:
    if not isinstance(query, str):
        raise InvalidInputError(field, f"must be a string, got {type(query).__name__}")
    if not query.strip():
        raise InvalidInputError(field, "must not be empty")


def _check_documents(documents: object, field: str) -> list[str]:
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise InvalidInputTypeError(
            field, f"must be a list of strings, got {type(documents).__name__}"
        )
    for i, document in enumerate(documents):
        if not isinstance(document, str):
            raise InvalidInputTypeError(
                f"{field}[{i}]", f"must be a string, got {type(document).__name__}"
            )
    return list(documents)


def _check_pairs(pairs: object) -> tuple[list[str], list[str]]:
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise InvalidInputTypeError("pairs", "must be a list of (query, document) tuples")
    queries: list[str] = []
    documents: list[str] = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise InvalidInputTypeError(f"pairs[{i}]", "must be a (query, document) tuple")
        query, document = pair
        _check_query(query, f"pairs[{i}][0]")
        if not isinstance(document, str):
            raise InvalidInputTypeError(
                f"pairs[{i}][1]", f"must be a string, got {type(document).__name__}"
            )
        queries.append(query)
        documents.append(document)
    return queries, documents


def _check_selection(top_n: object, threshold: object) -> None:
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise InvalidInputError("top_n", f"must be an integer >= 1 or None, got {top_n!r}")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise InvalidInputError("threshold", f"must be a number in [0, 1], got {threshold!r}")
        if math.isnan(threshold) or not 0.0 <= threshold <= 1.0:
            raise InvalidInputError("threshold", f"must be in [0, 1], got {threshold!r}")


def _check_options(
    model: object,
    max_length: object,
    batch_tokens: object,
    long_documents: object,
    max_queue_pairs: object,
) -> None:
    if not isinstance(model, str) or not model.strip():
        raise InvalidInputError("model", f"must be a hub id or folder path, got {model!r}")
    for name, value, required in (
        ("max_length", max_length, True),
        ("batch_tokens", batch_tokens, False),
        ("max_queue_pairs", max_queue_pairs, False),
    ):
        if value is None and not required:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(name, f"must be a positive integer, got {value!r}")
    if isinstance(max_length, int) and max_length < 16:
        raise InvalidInputError("max_length", f"must be at least 16 tokens, got {max_length}")
    if long_documents not in ("chunk", "truncate"):
        raise InvalidInputError(
            "long_documents", f"must be 'chunk' or 'truncate', got {long_documents!r}"
        )
