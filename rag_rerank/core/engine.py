"""The micro-batching engine: one worker thread owns the tokenizer and the model.

Callers (threads, asyncio tasks, the HTTP server) submit jobs and get a
:class:`concurrent.futures.Future`. The worker takes every job that is queued, has the model
tokenize them (it is the only thread that touches the fast tokenizer, so "Already borrowed" cannot
happen), sorts all windows of all jobs by length, runs token-budget batches and resolves each job
with its own logits.
A job's scores never depend on which other jobs shared its batches, beyond floating-point noise.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..api import LongDocuments, RerankerStats
from ..errors import EngineStoppedError, NonFiniteScoreError, OverloadedError
from .batching import packed_batches, split_batch, token_budget_batches
from .loading import PairModel
from .windows import max_per_document

__all__ = ["MAX_PADDING", "Engine", "EngineStats"]

logger = logging.getLogger(__name__)

PROGRESS_MIN_WINDOWS = 2048
"""With ``show_progress=None``, jobs of at least this many windows get a progress bar."""

MAX_PADDING = {"cpu": 64, "mps": 1024, "cuda": 4096}
"""Default padding allowance per padded batch, by device: about what one extra forward pass costs,
in tokens of work. Padding is work thrown away, so a batch that would carry more is split. A GPU
pays a launch overhead per pass and keeps larger batches; on a CPU most models run padding-free
(:attr:`CrossEncoderModel.packed`) and never pad, and the others pad at most 64 tokens a batch
(measured: benchmarks/RESULTS.md)."""

_MIN_BATCH_TOKENS = 512
_STOP = object()


@dataclass(eq=False)
class _Job:
    queries: Sequence[str]
    documents: Sequence[str]
    max_length: int
    windows: bool
    show_progress: bool | None
    future: Future[np.ndarray] = field(default_factory=Future)


@dataclass(eq=False)
class _Windows:
    """Tokenized windows of all jobs in one round, flattened."""

    input_ids: list[list[int]]
    extra: list[Any] | None  # the model's per-row data beside the ids (segment ids, ...)
    lengths: list[np.ndarray]  # tokens each window costs, per job
    job_slices: list[tuple[_Job, np.ndarray]]  # job, owner pair index of each of its windows


@dataclass
class EngineStats:
    """Counters since the engine started (read them for metrics)."""

    batches: int = 0
    pairs: int = 0
    windows: int = 0
    padded_tokens: int = 0
    real_tokens: int = 0
    oom_splits: int = 0
    last_forward_ok: bool | None = None
    last_batch_at: float | None = None


class Engine:
    """Runs a loaded model (:class:`~rag_rerank.core.model.PairModel`) for many concurrent callers.

    Args:
        model: The loaded model: a cross-encoder or an LLM reranker.
        batch_tokens: Padded-token budget per forward pass. Lowered for good after a CUDA
            out-of-memory error.
        max_queue_pairs: Refuse new work with :class:`OverloadedError` while this many pairs are
            queued and not yet started. ``None`` means unbounded.
        max_padding: Padding tokens a padded batch may carry before it is better split (see
            :func:`~rag_rerank.batching.token_budget_batches`); ``None`` picks the device's
            default from :data:`MAX_PADDING`.
    """

    def __init__(
        self,
        model: PairModel,
        *,
        batch_tokens: int,
        max_queue_pairs: int | None = None,
        max_padding: int | None = None,
    ) -> None:
        self.model = model
        self.batch_tokens = batch_tokens
        self.max_queue_pairs = max_queue_pairs
        if max_padding is None:
            max_padding = MAX_PADDING.get(model.device.type)
        self.max_padding = max_padding
        self.stats = EngineStats()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._queued_pairs = 0
        self._lock = threading.Lock()
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="rag-rerank-engine", daemon=True)
        self._thread.start()

    @property
    def queued_pairs(self) -> int:
        """Pairs submitted and not yet picked up by the worker."""
        return self._queued_pairs

    def snapshot(self) -> RerankerStats:
        """The counters and limits now, as an immutable :class:`~rag_rerank.api.RerankerStats`."""
        stats = self.stats
        return RerankerStats(
            batches=stats.batches,
            pairs=stats.pairs,
            windows=stats.windows,
            real_tokens=stats.real_tokens,
            padded_tokens=stats.padded_tokens,
            oom_splits=stats.oom_splits,
            queued_pairs=self._queued_pairs,
            max_queue_pairs=self.max_queue_pairs,
            batch_tokens=self.batch_tokens,
        )

    @property
    def alive(self) -> bool:
        """True while the worker thread runs and has not failed."""
        return self._thread.is_alive() and self._error is None

    def submit(
        self,
        queries: Sequence[str],
        documents: Sequence[str],
        *,
        max_length: int,
        long_documents: LongDocuments = "windows",
        show_progress: bool | None = None,
    ) -> Future[np.ndarray]:
        """Queue ``len(documents)`` pairs; the future resolves to their fp32 relevance logits.

        ``queries`` and ``documents`` are parallel sequences, already validated. With
        ``long_documents="windows"``, a document longer than the window is scored as its best
        overlapping token window; with ``"truncate"``, as its first window.

        Raises:
            OverloadedError: the queue already holds ``max_queue_pairs`` pairs.
            EngineStoppedError: the engine was closed or its worker died.
        """
        job = _Job(queries, documents, max_length, long_documents == "windows", show_progress)
        with self._lock:
            if self._closed or self._error is not None:
                raise EngineStoppedError("the reranker engine is not running") from self._error
            limit = self.max_queue_pairs
            if limit is not None and self._queued_pairs + len(documents) > limit:
                raise OverloadedError(
                    f"queue full: {self._queued_pairs} pairs waiting, limit {limit}; retry later"
                )
            self._queued_pairs += len(documents)
        self._queue.put(job)
        return job.future

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop accepting work, finish what is queued, and stop the worker."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # -- worker ---------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            stopping = False
            while not stopping:
                jobs: list[_Job] = []
                item = self._queue.get()
                while True:
                    if item is _STOP:
                        stopping = True
                    else:
                        assert isinstance(item, _Job)
                        jobs.append(item)
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if jobs:
                    self._process(jobs)
        except BaseException as exc:  # a dead worker must be visible, never a silent hang
            logger.exception("rag-rerank engine worker died")
            with self._lock:
                self._error = exc
            self._fail_queued(exc)

    def _fail_queued(self, exc: BaseException) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Job) and item.future.set_running_or_notify_cancel():
                error = EngineStoppedError("the reranker engine worker died")
                error.__cause__ = exc
                item.future.set_exception(error)

    def _process(self, jobs: list[_Job]) -> None:
        with self._lock:
            self._queued_pairs -= sum(len(job.documents) for job in jobs)
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        windows = self._tokenize(live)
        if not windows.job_slices:
            return
        lengths = np.concatenate(windows.lengths)
        logits = np.empty(len(lengths), dtype=np.float32)
        show = any(job.show_progress for job, _ in windows.job_slices) or (
            len(lengths) >= PROGRESS_MIN_WINDOWS
            and all(job.show_progress is None for job, _ in windows.job_slices)
        )
        if self.model.packed:
            batches = packed_batches(lengths, self.batch_tokens)
        else:
            batches = token_budget_batches(lengths, self.batch_tokens, max_padding=self.max_padding)
        try:
            with tqdm(total=len(lengths), unit="pair", desc="Reranking", disable=not show) as bar:
                pending: list[tuple[np.ndarray, torch.Tensor]] = []
                for batch in batches:
                    self._score_batch(batch, windows, lengths, pending)
                    bar.update(len(batch))
                # Results stay on the device until every batch is queued: no sync per batch, so
                # the host collates the next batch while the GPU runs this one.
                for batch, result in pending:
                    logits[batch] = result.cpu().numpy()
        except Exception as exc:
            self.stats.last_forward_ok = False
            for job, _ in windows.job_slices:
                job.future.set_exception(exc)
            return
        self.stats.last_forward_ok = True
        offset = 0
        for job, owner in windows.job_slices:
            job_logits = logits[offset : offset + len(owner)]
            offset += len(owner)
            self._resolve(job, max_per_document(job_logits, owner, len(job.documents)))

    def _tokenize(self, jobs: list[_Job]) -> _Windows:
        windows = _Windows([], None, [], [])
        for job in jobs:
            try:
                encoded = self.model.encode(
                    job.queries, job.documents, max_length=job.max_length, windows=job.windows
                )
            except Exception as exc:
                job.future.set_exception(exc)
                continue
            if encoded.extra is not None:  # one model: every job has extra data, or none
                windows.extra = windows.extra or []
                windows.extra.extend(encoded.extra)
            windows.input_ids.extend(encoded.input_ids)
            windows.lengths.append(encoded.lengths)
            windows.job_slices.append((job, encoded.owner))
        return windows

    def _score_batch(
        self,
        batch: np.ndarray,
        windows: _Windows,
        lengths: np.ndarray,
        pending: list[tuple[np.ndarray, torch.Tensor]],
    ) -> None:
        ids = [windows.input_ids[i] for i in batch]
        types = None
        if windows.extra is not None:
            types = [windows.extra[i] for i in batch]
        if self.model.packed:
            padded = int(lengths[batch].sum())
        else:
            padded = int(lengths[batch].max()) * len(batch)
        try:
            pending.append((batch, self.model.forward(self.model.collate(ids, types))))
        except torch.OutOfMemoryError:
            if len(batch) < 2:
                raise
            del ids, types
            if self.model.device.type == "cuda":
                torch.cuda.empty_cache()
            # Remember the lesson: later batches start from a budget that fitted.
            self.batch_tokens = max(_MIN_BATCH_TOKENS, min(self.batch_tokens, padded // 2))
            self.stats.oom_splits += 1
            logger.warning("CUDA out of memory on %d pairs; splitting and retrying", len(batch))
            for half in split_batch(batch):
                self._score_batch(half, windows, lengths, pending)
            return
        self.stats.batches += 1
        self.stats.windows += len(batch)
        self.stats.padded_tokens += padded
        self.stats.real_tokens += int(lengths[batch].sum())
        self.stats.last_batch_at = time.monotonic()

    def _resolve(self, job: _Job, logits: np.ndarray) -> None:
        bad = np.flatnonzero(~np.isfinite(logits))
        if len(bad):
            i = int(bad[0])
            job.future.set_exception(
                NonFiniteScoreError(i, job.queries[i], job.documents[i], float(logits[i]))
            )
            return
        self.stats.pairs += len(logits)
        job.future.set_result(logits)
