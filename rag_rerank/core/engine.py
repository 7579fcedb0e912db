"""The micro-batching engine: one worker thread owns the tokenizer and the model.

Callers (threads, asyncio tasks, the HTTP server) submit jobs and get a
:class:`concurrent.futures.Future`. The worker takes every job that is queued, has the model
tokenize them (it is the only thread that touches the fast tokenizer, so "Already borrowed" cannot
happen), sorts all windows of all jobs by length, runs token-budget batches and resolves each job
with its own logits. A job's scores never depend on which other jobs shared its batches, beyond
floating-point noise (last-bit differences from other batch shapes); identical pairs within one
job are scored once.

Admission counts work, not items: a document costs one unit per window of text it may fill
(:func:`estimated_windows`), so one huge document cannot pass as "one pair". A job whose future is
cancelled while it runs has its remaining batches dropped; a dying worker resolves every job it
holds with :class:`~rag_rerank.errors.EngineStoppedError`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..api import LongDocuments, RerankerStats
from ..errors import EngineStoppedError, NonFiniteScoreError, OverloadedError, ScoringError
from .batching import packed_batches, split_batch, token_budget_batches
from .loading import PairModel
from .windows import max_per_document

__all__ = ["CHARS_PER_TOKEN", "MAX_PADDING", "Engine", "EngineStats", "estimated_windows"]

logger = logging.getLogger(__name__)

PROGRESS_MIN_WINDOWS = 2048
"""With ``show_progress=None``, jobs of at least this many windows get a progress bar."""

MAX_PADDING = {"cpu": 64, "mps": 1024, "cuda": 4096}
"""Default padding allowance per padded batch, by device: about what one extra forward pass costs,
in tokens of work. Padding is work thrown away, so a batch that would carry more is split. A GPU
pays a launch overhead per pass and keeps larger batches; on a CPU most models run padding-free
(:attr:`CrossEncoderModel.packed`) and never pad, and the others pad at most 64 tokens a batch
(measured: benchmarks/RESULTS.md)."""

CHARS_PER_TOKEN = 4
"""Characters per token assumed when admission estimates a document's windows before
tokenizing it (English text averages about 4 with WordPiece and SentencePiece vocabularies)."""

_MIN_BATCH_TOKENS = 512
_STOP = object()


def estimated_windows(documents: Sequence[str], max_length: int) -> int:
    """The work ``documents`` cost at admission, in windows of ``max_length`` tokens: one per
    document, plus one for each further ``max_length * CHARS_PER_TOKEN`` characters it holds.
    Counted before tokenizing (cheap), so a 1 MB document counts as the ~500 windows it may fill
    rather than as one pair."""
    span = max(1, max_length * CHARS_PER_TOKEN)
    return sum(1 + len(document) // span for document in documents)


class _JobFuture(Future[np.ndarray]):
    """A future whose :meth:`cancel` also reaches a job that already runs: the worker then drops
    the job's remaining batches (``Future.cancel`` alone refuses once a job started)."""

    abandoned = False
    row_outputs: list[list[Any]] | None = None
    """Per pair, the model's outputs beside the logits for each of its windows (a pruning head's
    token logits), set before the result when the model gives them."""

    def cancel(self) -> bool:
        if super().cancel():
            return True
        if not self.done():
            self.abandoned = True
        return False


@dataclass(eq=False)
class _Job:
    queries: Sequence[str]
    documents: Sequence[str]
    max_length: int
    windows: bool
    show_progress: bool | None
    cost: int = 0
    inverse: np.ndarray | None = None  # caller's pair -> distinct pair, when pairs repeat
    queued: bool = True  # its cost still counts against the queue
    future: _JobFuture = field(default_factory=_JobFuture)


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
    failed_rounds_in_a_row: int = 0


class Engine:
    """Runs a loaded model (:class:`~rag_rerank.core.model.PairModel`) for many concurrent callers.

    Args:
        model: The loaded model: a cross-encoder or an LLM reranker.
        batch_tokens: Padded-token budget per forward pass. Lowered for good after a CUDA
            out-of-memory error.
        max_queue_pairs: Refuse new work with :class:`OverloadedError` while this much work is
            queued and not yet started, counted in windows (:func:`estimated_windows`: one per
            ordinary document). ``None`` means unbounded.
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
        self._round: list[_Job] = []  # the jobs the worker holds now
        self._thread = threading.Thread(target=self._run, name="rag-rerank-engine", daemon=True)
        self._thread.start()

    @property
    def queued_pairs(self) -> int:
        """Work submitted and not yet picked up by the worker, in windows
        (:func:`estimated_windows`); cancelled jobs leave it at once."""
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
        distinct: dict[tuple[str, str], int] = {}
        inverse = [
            distinct.setdefault(pair, len(distinct))
            for pair in zip(queries, documents, strict=True)
        ]
        job = _Job(queries, documents, max_length, long_documents == "windows", show_progress)
        if len(distinct) < len(inverse):  # score each repeated pair once: one forward, one score
            job.queries = [query for query, _ in distinct]
            job.documents = [document for _, document in distinct]
            job.inverse = np.asarray(inverse, dtype=np.int64)
        job.cost = estimated_windows(job.documents, max_length)
        with self._lock:
            if self._closed or self._error is not None:
                raise EngineStoppedError("the reranker engine is not running") from self._error
            limit = self.max_queue_pairs
            if limit is not None and self._queued_pairs + job.cost > limit:
                raise OverloadedError(
                    f"queue full: {self._queued_pairs} windows of work waiting, this request "
                    f"{job.cost}, limit {limit}; retry later"
                )
            self._queued_pairs += job.cost
        job.future.add_done_callback(lambda _: self._dequeue(job))  # cancelled while queued
        self._queue.put(job)
        return job.future

    def _dequeue(self, job: _Job) -> None:
        with self._lock:
            if job.queued:
                job.queued = False
                self._queued_pairs -= job.cost

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
            self._fail_held(exc)

    def _fail_held(self, exc: BaseException) -> None:
        """Resolve every job of the round in progress and of the queue: no caller may hang."""
        held = list(self._round)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Job) and item.future.set_running_or_notify_cancel():
                held.append(item)
        for job in held:
            self._dequeue(job)
            if not job.future.done():
                error = EngineStoppedError("the reranker engine worker died")
                error.__cause__ = exc
                job.future.set_exception(error)

    def _process(self, jobs: list[_Job]) -> None:
        for job in jobs:
            self._dequeue(job)
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        self._round = live
        windows = self._tokenize(live)
        if not windows.job_slices:
            self._round = []
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
        owners = np.repeat(
            np.arange(len(windows.job_slices)), [len(owner) for _, owner in windows.job_slices]
        )
        try:
            with tqdm(total=len(lengths), unit="pair", desc="Reranking", disable=not show) as bar:
                pending: list[tuple[np.ndarray, Any]] = []
                for batch in batches:
                    if not self._abandoned(windows, owners[batch]):
                        self._score_batch(batch, windows, lengths, pending)
                    bar.update(len(batch))
                # Results stay on the device until every batch is queued: no sync per batch, so
                # the host collates the next batch while the GPU runs this one.
                outputs: list[Any] | None = None
                for batch, result in pending:
                    if isinstance(result, tuple):  # logits and a per-row output (pruning head)
                        result, extras = result
                        outputs = outputs or [None] * len(lengths)
                        for i, extra in zip(batch.tolist(), extras, strict=True):
                            outputs[i] = extra
                    logits[batch] = result.cpu().numpy()
        except Exception as exc:
            self.stats.last_forward_ok = False
            self.stats.failed_rounds_in_a_row += 1
            logger.error("the model failed on a batch: %s: %s", type(exc).__name__, exc)
            for job, _ in windows.job_slices:
                error = ScoringError(f"the model failed on a batch ({type(exc).__name__})")
                error.__cause__ = exc
                job.future.set_exception(error)
            self._round = []
            return
        self.stats.last_forward_ok = True
        self.stats.failed_rounds_in_a_row = 0
        offset = 0
        for job, owner in windows.job_slices:
            job_logits = logits[offset : offset + len(owner)]
            if outputs is not None:
                job.future.row_outputs = _per_pair(
                    outputs[offset : offset + len(owner)], owner, job
                )
            offset += len(owner)
            if job.future.abandoned:
                job.future.set_exception(CancelledError())
                continue
            self._resolve(job, max_per_document(job_logits, owner, len(job.documents)))
        self._round = []

    @staticmethod
    def _abandoned(windows: _Windows, owners: np.ndarray) -> bool:
        """Every window of this batch belongs to a job whose caller cancelled it."""
        slices = windows.job_slices
        if not any(job.future.abandoned for job, _ in slices):
            return False
        return all(slices[i][0].future.abandoned for i in np.unique(owners).tolist())

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
        pending: list[tuple[np.ndarray, Any]],
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
        if job.inverse is not None:  # back to the caller's pairs, repeats sharing one score
            logits = logits[job.inverse]
            job.queries = [job.queries[i] for i in job.inverse.tolist()]
            job.documents = [job.documents[i] for i in job.inverse.tolist()]
        bad = np.flatnonzero(~np.isfinite(logits))
        if len(bad):
            i = int(bad[0])
            job.future.set_exception(
                NonFiniteScoreError(i, job.queries[i], job.documents[i], float(logits[i]))
            )
            return
        self.stats.pairs += len(logits)
        job.future.set_result(logits)


def _per_pair(outputs: list[Any], owner: np.ndarray, job: _Job) -> list[list[Any]]:
    """A job's per-row outputs grouped by the caller's pair, windows in order."""
    grouped: list[list[Any]] = [[] for _ in job.documents]
    for pair, output in zip(owner.tolist(), outputs, strict=True):
        grouped[pair].append(output)
    if job.inverse is not None:
        return [grouped[i] for i in job.inverse.tolist()]
    return grouped
