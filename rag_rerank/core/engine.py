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

The worker is a daemon thread, so it must never outlive the interpreter's shutdown: a daemon
thread that wakes inside torch's C++ code while Python finalizes is killed there and aborts the
process ("terminate called without an active exception"). So every engine still running at exit
is stopped and joined by an :mod:`atexit` hook (its queued work fails with
:class:`~rag_rerank.errors.EngineStoppedError`, its running work is dropped), and an engine stops
as soon as the last :class:`~rag_rerank.Reranker` using it is collected (:meth:`Engine.acquire`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import threading
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..api import LongDocuments, RerankerStats
from ..errors import (
    EngineStalledError,
    EngineStoppedError,
    NonFiniteScoreError,
    OverloadedError,
    ScoringError,
)
from .batching import packed_batches, split_batch, token_budget_batches
from .loading import EncodedPairs, PairModel
from .windows import max_per_document, query_token_limit, window_overlap

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_STALL_SECONDS",
    "MAX_PADDING",
    "Engine",
    "EngineStats",
    "estimated_tokens",
    "estimated_windows",
]

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

EXIT_JOIN_SECONDS = 5.0
"""At interpreter exit, how long each engine's worker may take to finish the batch it runs."""

DEFAULT_STALL_SECONDS = 60.0
"""A forward pass running longer than this (seconds) means the model is taken for hung."""

_MIN_BATCH_TOKENS = 512
_STOP = object()
_SPECIAL_TOKENS = 4  # a pair's [CLS] q [SEP] d [SEP] (3) or <s> q </s></s> d </s> (4)
_WATCH_EVERY = 0.25  # seconds between the stall watchdog's looks
_engines: weakref.WeakSet[Engine] = weakref.WeakSet()  # every engine whose threads may run


@atexit.register
def _stop_engines_at_exit() -> None:
    # atexit runs before the interpreter starts finalizing, while the workers may still take the
    # GIL: each one stops between two batches and is joined.
    for engine in list(_engines):
        engine.close(timeout=EXIT_JOIN_SECONDS, cancel=True)


_ASCII_ALNUM = bytes(range(48, 58)) + bytes(range(65, 91)) + bytes(range(97, 123))
_ASCII_SPACE = b" \t\n\r\x0b\x0c"
_NON_ASCII = bytes(range(128, 256))


def estimated_tokens(text: str) -> int:
    """An upper estimate of the tokens ``text`` tokenizes to, without tokenizing: a token per
    :data:`CHARS_PER_TOKEN` ASCII letters and digits, a token per other visible ASCII character
    (punctuation is a token each) and a token per non-ASCII character (CJK text runs about one
    token per character). Linear in the text and C-speed (byte translations), so admission can
    afford it on the event loop."""
    if text.isascii():
        data = text.encode("ascii")
        non_ascii = 0
    else:
        data = text.encode("utf-8", "surrogatepass").translate(None, _NON_ASCII)
        non_ascii = len(text) - len(data)
    words = len(data) - len(data.translate(None, _ASCII_ALNUM))
    others = len(data.translate(None, _ASCII_ALNUM + _ASCII_SPACE))
    return -(-words // CHARS_PER_TOKEN) + others + non_ascii


def estimated_windows(
    documents: Sequence[str], max_length: int, *, queries: Sequence[str] = ()
) -> int:
    """The work ``documents`` cost at admission, in windows of ``max_length`` tokens: one per
    document plus one per further stretch of text a window advances by (``max_length`` less the
    query, the special tokens and the overlap of consecutive windows), counting tokens with
    :func:`estimated_tokens`; and for the ``queries``, one window per ``max_length`` tokens of
    each distinct query (a query is tokenized once per request, however many documents it comes
    with). Counted before tokenizing (cheap), so a 1 MB document counts as the windows it may
    fill rather than as one pair, and punctuation or CJK text is not undercounted 4-5 times."""
    distinct = {query: estimated_tokens(query) for query in queries}
    query_tokens = min(max(distinct.values(), default=0), query_token_limit(max_length))
    document_tokens = max_length - query_tokens - _SPECIAL_TOKENS
    advance = max(1, document_tokens - window_overlap(max_length, 0))  # the most overlap
    work = sum(1 + estimated_tokens(document) // advance for document in documents)
    return work + sum(tokens // max(1, max_length) for tokens in distinct.values())


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

    def settle(self, result: np.ndarray | None = None, error: BaseException | None = None) -> None:
        """Resolve unless already resolved (the stall watchdog may have failed it first)."""
        with contextlib.suppress(InvalidStateError):
            if error is not None:
                self.set_exception(error)
            elif result is not None:
                self.set_result(result)


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
    # Once the worker tokenized it:
    encoded: EncodedPairs | None = None
    batches: list[np.ndarray] = field(default_factory=list)  # its own plan, over its windows
    done_batches: int = 0
    logits: np.ndarray | None = None  # per window
    outputs: list[Any] | None = None  # per window, when the model gives more than logits
    bar: Any = None  # a progress bar, for a long job

    @property
    def finished(self) -> bool:
        return self.future.done() or self.future.abandoned or self.done_batches == len(self.batches)


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
    stalls: int = 0


class Engine:
    """Runs a loaded model (:class:`~rag_rerank.core.model.PairModel`) for many concurrent callers.

    Fair by construction: each step of the worker takes one token-budget batch from every job it
    holds (a new small request shares the next step with a large one rather than waiting for all
    of it) and runs them together.

    Args:
        model: The loaded model: a cross-encoder or an LLM reranker.
        batch_tokens: Padded-token budget per forward pass. Lowered for good after a CUDA
            out-of-memory error.
        max_queue_pairs: Refuse new work with :class:`OverloadedError` while this much work is
            waiting (queued, or held by the worker and not yet scored), counted in windows
            (:func:`estimated_windows`: one per ordinary document). ``None`` means unbounded.
        max_padding: Padding tokens a padded batch may carry before it is better split (see
            :func:`~rag_rerank.batching.token_budget_batches`); ``None`` picks the device's
            default from :data:`MAX_PADDING`.
        stall_timeout: Seconds one forward pass may run before the engine counts as stalled
            (:attr:`stalled`): its callers and the queued ones then fail with
            :class:`~rag_rerank.errors.EngineStalledError`, and new work is refused until the pass
            returns. Default :data:`DEFAULT_STALL_SECONDS`; ``None`` never.
    """

    def __init__(
        self,
        model: PairModel,
        *,
        batch_tokens: int,
        max_queue_pairs: int | None = None,
        max_padding: int | None = None,
        stall_timeout: float | None = None,
    ) -> None:
        self.model = model
        self.batch_tokens = batch_tokens
        self.max_queue_pairs = max_queue_pairs
        if max_padding is None:
            max_padding = MAX_PADDING.get(model.device.type)
        self.max_padding = max_padding
        self.stall_timeout = DEFAULT_STALL_SECONDS if stall_timeout is None else stall_timeout
        self.stats = EngineStats()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._queued_pairs = 0
        self._lock = threading.Lock()
        self._closed = False
        self._cancelled = False  # closing drops the work held rather than finishing it
        self._users = 0
        self._error: BaseException | None = None
        self._active: list[_Job] = []  # the jobs the worker holds now
        self._active_windows = 0  # windows of those jobs not yet scored
        self._forward_started: float | None = None  # monotonic time of the pass running now
        self._windows_per_second: float | None = None  # measured, smoothed
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rag-rerank-engine", daemon=True)
        self._watchdog = threading.Thread(
            target=self._watch, name="rag-rerank-engine-watchdog", daemon=True
        )
        _engines.add(self)
        self._thread.start()
        self._watchdog.start()

    @property
    def queued_pairs(self) -> int:
        """Work submitted and not yet picked up by the worker, in windows
        (:func:`estimated_windows`); cancelled jobs leave it at once."""
        return self._queued_pairs

    @property
    def waiting_windows(self) -> int:
        """Work not yet scored, in windows: queued, and the rest of the jobs the worker holds
        (what ``max_queue_pairs`` bounds)."""
        return self._queued_pairs + max(0, self._active_windows)

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
        """True while the worker thread runs, has not failed and is not stalled."""
        return self._thread.is_alive() and self._error is None and not self.stalled

    @property
    def stalled(self) -> bool:
        """A forward pass has run longer than ``stall_timeout`` seconds (and still runs)."""
        started = self._forward_started
        limit = self.stall_timeout
        return started is not None and limit is not None and time.monotonic() - started > limit

    def estimated_wait(self, windows: int = 0) -> float | None:
        """Seconds until ``windows`` more windows submitted now would be scored: the work queued
        and held, over the throughput measured on full steps. ``None`` before the engine ran
        one (an engine that never ran a full step was never loaded enough to shed)."""
        rate = self._windows_per_second
        if rate is None:
            return None
        return (self._queued_pairs + self._active_windows + windows) / rate

    def acquire(self) -> None:
        """Count one more user (a :class:`~rag_rerank.Reranker` or a view of one)."""
        with self._lock:
            self._users += 1

    def release(self) -> None:
        """Count one user less; the last one leaving closes the engine (without waiting)."""
        with self._lock:
            self._users -= 1
            last = self._users <= 0
        if last:
            self.close(timeout=0)

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
            EngineStalledError: a forward pass has run longer than ``stall_timeout``.
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
        job.cost = estimated_windows(job.documents, max_length, queries=job.queries)
        with self._lock:
            if self._closed or self._error is not None:
                raise EngineStoppedError("the reranker engine is not running") from self._error
            if self.stalled:
                raise EngineStalledError(self._stall_message())
            limit = self.max_queue_pairs
            # Waiting work: queued, and the unscored windows of the jobs the worker holds (the
            # fair worker takes every job in at once, so the queue alone would bound nothing).
            waiting = self.waiting_windows
            if limit is not None and waiting + job.cost > limit:
                raise OverloadedError(
                    f"queue full: {waiting} windows of work waiting, this request "
                    f"{job.cost}, limit {limit}; retry later",
                    retry_after=self.estimated_wait(),
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

    def close(self, timeout: float | None = 10.0, *, cancel: bool = False) -> None:
        """Stop accepting work and stop the worker, waiting at most ``timeout`` seconds for it.

        By default the work already queued is finished first; with ``cancel=True`` it fails with
        :class:`~rag_rerank.errors.EngineStoppedError` and running jobs drop their remaining
        batches (what happens at interpreter exit).
        """
        with self._lock:
            first = not self._closed
            self._closed = True
            self._cancelled = self._cancelled or cancel
        if first:
            self._queue.put(_STOP)
            self._stopped.set()
        if threading.current_thread() is not self._thread and timeout != 0:
            self._thread.join(timeout)

    # -- worker ---------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            stopping = False
            while not (stopping and not self._active):
                stopping = self._admit(block=not self._active) or stopping
                if self._cancelled:
                    self._drop_held(EngineStoppedError("the reranker engine was closed"))
                elif self._active:
                    self._step()
        except BaseException as exc:  # a dead worker must be visible, never a silent hang
            logger.exception("rag-rerank engine worker died")
            with self._lock:
                self._error = exc
            error = EngineStoppedError("the reranker engine worker died")
            error.__cause__ = exc
            self._drop_held(error)
        finally:
            self._stopped.set()

    def _admit(self, *, block: bool) -> bool:
        """Take every queued job into the active set, tokenized; True once asked to stop."""
        stopping = False
        while True:
            try:
                item = self._queue.get() if block else self._queue.get_nowait()
            except queue.Empty:
                return stopping
            block = False
            if item is _STOP:
                stopping = True
                continue
            assert isinstance(item, _Job)
            if not item.future.set_running_or_notify_cancel():
                continue  # cancelled while queued: it left the queue's count then
            # Its estimate counts as held while it is tokenized, then its real windows do.
            self._active_windows += item.cost
            self._dequeue(item)
            self._active.append(item)
            if not self._cancelled:
                self._tokenize(item)
            self._active_windows -= item.cost

    def _drop_held(self, error: BaseException) -> None:
        """Fail every job held and queued: no caller may hang."""
        held = list(self._active)
        self._active.clear()
        self._active_windows = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Job) and item.future.set_running_or_notify_cancel():
                held.append(item)
        for job in held:
            self._dequeue(job)
            self._close_bar(job)
            job.future.settle(error=error)

    def _tokenize(self, job: _Job) -> None:
        try:
            encoded = self.model.encode(
                job.queries, job.documents, max_length=job.max_length, windows=job.windows
            )
        except Exception as exc:
            job.future.settle(error=exc)
            return
        job.encoded = encoded
        job.logits = np.empty(len(encoded.lengths), dtype=np.float32)
        job.batches = self._plan(encoded.lengths)
        self._active_windows += len(encoded.lengths)
        windows = len(encoded.lengths)
        if job.show_progress or (job.show_progress is None and windows >= PROGRESS_MIN_WINDOWS):
            job.bar = tqdm(total=windows, unit="pair", desc="Reranking")

    def _plan(self, lengths: np.ndarray) -> list[np.ndarray]:
        if self.model.packed:
            return packed_batches(lengths, self.batch_tokens)
        return token_budget_batches(lengths, self.batch_tokens, max_padding=self.max_padding)

    def _step(self) -> None:
        """One batch of every job held, run together (re-planned, so small jobs share one)."""
        for job in self._active:
            if job.finished:
                self._finish(job)
        jobs = self._active = [job for job in self._active if not job.finished]
        if not jobs:
            return
        taken = [job.batches[job.done_batches] for job in jobs]
        ids: list[list[int]] = []
        extra: list[Any] | None = None
        parts: list[np.ndarray] = []
        for job, rows in zip(jobs, taken, strict=True):
            encoded = job.encoded
            assert encoded is not None
            ids.extend(encoded.input_ids[i] for i in rows.tolist())
            if encoded.extra is not None:  # one model: every job has extra data, or none
                extra = extra if extra is not None else []
                extra.extend(encoded.extra[i] for i in rows.tolist())
            parts.append(encoded.lengths[rows])
        lengths = np.concatenate(parts)
        started = time.monotonic()
        try:
            pending: list[tuple[np.ndarray, Any]] = []
            for batch in self._plan(lengths):
                self._score_batch(batch, ids, extra, lengths, pending)
            # Results stay on the device until the step's batches are queued: no sync per batch,
            # so the host collates the next batch while the GPU runs this one.
            logits = np.empty(len(lengths), dtype=np.float32)
            outputs: list[Any] | None = None
            for batch, result in pending:
                if isinstance(result, tuple):  # logits and a per-row output (pruning head)
                    result, extras = result
                    outputs = outputs or [None] * len(lengths)
                    for i, row_output in zip(batch.tolist(), extras, strict=True):
                        outputs[i] = row_output
                logits[batch] = result.cpu().numpy()
            del pending
        except Exception as exc:
            self._forward_started = None
            self.stats.last_forward_ok = False
            self.stats.failed_rounds_in_a_row += 1
            logger.error("the model failed on a batch: %s: %s", type(exc).__name__, exc)
            for job in jobs:
                error = ScoringError(f"the model failed on a batch ({type(exc).__name__})")
                error.__cause__ = exc
                job.future.settle(error=error)
                self._close_bar(job)
            self._active = []
            self._active_windows = 0
            return
        self._forward_started = None
        if lengths.sum() * 2 >= self.batch_tokens:  # a small step is mostly per-pass overhead
            self._measure(len(lengths), time.monotonic() - started)
        self.stats.last_forward_ok = True
        self.stats.failed_rounds_in_a_row = 0
        offset = 0
        for job, rows in zip(jobs, taken, strict=True):
            assert job.logits is not None
            job.logits[rows] = logits[offset : offset + len(rows)]
            if outputs is not None:
                job.outputs = job.outputs or [None] * len(job.logits)
                for i, row in enumerate(rows.tolist()):
                    job.outputs[row] = outputs[offset + i]
            offset += len(rows)
            job.done_batches += 1
            self._active_windows -= len(rows)
            if job.bar is not None:
                job.bar.update(len(rows))
            if job.finished:
                self._finish(job)
        self._active = [job for job in jobs if not job.finished]

    def _remaining(self, job: _Job) -> int:
        return sum(len(rows) for rows in job.batches[job.done_batches :])

    def _measure(self, windows: int, seconds: float) -> None:
        """Smooth the throughput (windows per second) the estimated wait divides by, measured on
        steps of at least half a batch: what a busy engine does, not its idle overhead."""
        rate = windows / max(seconds, 1e-6)
        previous = self._windows_per_second
        self._windows_per_second = rate if previous is None else 0.7 * previous + 0.3 * rate

    def _finish(self, job: _Job) -> None:
        """Resolve a job that has no batch left (or was abandoned, or failed)."""
        self._close_bar(job)
        if job.future.done():
            return
        if job.future.abandoned:
            self._active_windows -= self._remaining(job)
            job.future.settle(error=CancelledError())
            return
        if job.encoded is None or job.logits is None:
            return
        if job.outputs is not None:
            job.future.row_outputs = _per_pair(job.outputs, job.encoded.owner, job)
        self._resolve(job, max_per_document(job.logits, job.encoded.owner, len(job.documents)))

    @staticmethod
    def _close_bar(job: _Job) -> None:
        if job.bar is not None:
            job.bar.close()
            job.bar = None

    def _score_batch(
        self,
        batch: np.ndarray,
        ids: list[list[int]],
        extra: list[Any] | None,
        lengths: np.ndarray,
        pending: list[tuple[np.ndarray, Any]],
    ) -> None:
        rows = [ids[i] for i in batch]
        types = None if extra is None else [extra[i] for i in batch]
        if self.model.packed:
            padded = int(lengths[batch].sum())
        else:
            padded = int(lengths[batch].max()) * len(batch)
        self._forward_started = time.monotonic()
        try:
            pending.append((batch, self.model.forward(self.model.collate(rows, types))))
        except torch.OutOfMemoryError:
            if len(batch) < 2:
                raise
            del rows, types
            if self.model.device.type == "cuda":
                torch.cuda.empty_cache()
            # Remember the lesson: later batches start from a budget that fitted.
            self.batch_tokens = max(_MIN_BATCH_TOKENS, min(self.batch_tokens, padded // 2))
            self.stats.oom_splits += 1
            logger.warning("CUDA out of memory on %d pairs; splitting and retrying", len(batch))
            for half in split_batch(batch):
                self._score_batch(half, ids, extra, lengths, pending)
            return
        finally:
            self._forward_started = None
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
            job.future.settle(
                error=NonFiniteScoreError(i, job.queries[i], job.documents[i], float(logits[i]))
            )
            return
        self.stats.pairs += len(logits)
        job.future.settle(logits)

    # -- watchdog -------------------------------------------------------------------------------

    def _stall_message(self) -> str:
        return (
            f"the model has been running one batch for over {self.stall_timeout:g} s; "
            "it may be hung"
        )

    def _watch(self) -> None:
        """Fail the callers of a forward pass that runs past ``stall_timeout`` (once per pass):
        the worker is stuck inside the model, so nobody else can."""
        failed_pass: float | None = None
        while not self._stopped.wait(_WATCH_EVERY):
            started = self._forward_started
            if started is None or started == failed_pass or not self.stalled:
                continue
            failed_pass = started
            self.stats.stalls += 1
            logger.error(self._stall_message())
            error = EngineStalledError(self._stall_message())
            for job in list(self._active):
                job.future.settle(error=error)
            while True:  # the queued jobs too: the worker will not reach them soon
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)
                    break
                if isinstance(item, _Job):
                    self._dequeue(item)
                    if item.future.set_running_or_notify_cancel():
                        item.future.settle(error=error)


def _per_pair(outputs: list[Any], owner: np.ndarray, job: _Job) -> list[list[Any]]:
    """A job's per-window outputs grouped by the caller's pair, windows in order."""
    grouped: list[list[Any]] = [[] for _ in job.documents]
    for pair, output in zip(owner.tolist(), outputs, strict=True):
        grouped[pair].append(output)
    if job.inverse is not None:
        return [grouped[i] for i in job.inverse.tolist()]
    return grouped
