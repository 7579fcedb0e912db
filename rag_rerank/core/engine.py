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
import logging
import queue
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future

import numpy as np

from ..api import LongDocuments, RerankerStats
from ..errors import EngineStalledError, EngineStoppedError, OverloadedError, ScoringError
from .admission import CHARS_PER_TOKEN, estimated_tokens, estimated_windows
from .jobs import EngineStats, Job, gather_rows
from .loading import PairModel
from .passes import MAX_PADDING, ForwardPasses
from .stalls import DEFAULT_STALL_SECONDS, StallWatchdog

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

EXIT_JOIN_SECONDS = 5.0
"""At interpreter exit, how long each engine's worker may take to finish the batch it runs."""

_STOP = object()
_engines: weakref.WeakSet[Engine] = weakref.WeakSet()  # every engine whose threads may run


@atexit.register
def _stop_engines_at_exit() -> None:
    # atexit runs before the interpreter starts finalizing, while the workers may still take the
    # GIL: each one stops between two batches and is joined.
    for engine in list(_engines):
        engine.close(timeout=EXIT_JOIN_SECONDS, cancel=True)


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
        self.max_queue_pairs = max_queue_pairs
        if max_padding is None:
            max_padding = MAX_PADDING.get(model.device.type)
        self.stats = EngineStats()
        self._passes = ForwardPasses(model, self.stats, batch_tokens, max_padding)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._queued_pairs = 0
        self._lock = threading.Lock()
        self._closed = False
        self._cancelled = False  # closing drops the work held rather than finishing it
        self._users = 0
        self._error: BaseException | None = None
        self._active: list[Job] = []  # the jobs the worker holds now
        self._active_windows = 0  # windows of those jobs not yet scored
        self._thread = threading.Thread(target=self._run, name="rag-rerank-engine", daemon=True)
        timeout = DEFAULT_STALL_SECONDS if stall_timeout is None else stall_timeout
        self._watchdog = StallWatchdog(self._passes, self.stats, timeout, self._fail_stalled)
        _engines.add(self)
        self._thread.start()
        self._watchdog.start()

    @property
    def batch_tokens(self) -> int:
        """Padded-token budget per forward pass (lowered after out-of-memory errors)."""
        return self._passes.batch_tokens

    @property
    def max_padding(self) -> int | None:
        """Padding tokens a padded batch may carry before it is better split (settable)."""
        return self._passes.max_padding

    @max_padding.setter
    def max_padding(self, value: int | None) -> None:
        self._passes.max_padding = value

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
        return self._watchdog.stalled

    @property
    def stall_timeout(self) -> float | None:
        """Seconds one forward pass may run before the engine counts as stalled (settable)."""
        return self._watchdog.timeout

    @stall_timeout.setter
    def stall_timeout(self, value: float | None) -> None:
        self._watchdog.timeout = value

    def estimated_wait(self, windows: int = 0) -> float | None:
        """Seconds until ``windows`` more windows submitted now would be scored: the work queued
        and held, over the throughput measured on full steps. ``None`` before the engine ran
        one (an engine that never ran a full step was never loaded enough to shed)."""
        rate = self._passes.windows_per_second
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
        job = Job.of(queries, documents, max_length, long_documents == "windows", show_progress)
        job.cost = estimated_windows(job.documents, max_length, queries=job.queries)
        with self._lock:
            if self._closed or self._error is not None:
                raise EngineStoppedError("the reranker engine is not running") from self._error
            if self.stalled:
                raise EngineStalledError(self._watchdog.message())
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

    def _dequeue(self, job: Job) -> None:
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
            self._watchdog.stop()
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
            self._watchdog.stop()

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
            assert isinstance(item, Job)
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
        held = [*self._active, *self._take_queued()]
        self._active.clear()
        self._active_windows = 0
        for job in held:
            self._dequeue(job)
            job.close_bar()
            job.future.settle(error=error)

    def _tokenize(self, job: Job) -> None:
        try:
            encoded = self.model.encode(
                job.queries, job.documents, max_length=job.max_length, windows=job.windows
            )
        except Exception as exc:
            job.future.settle(error=exc)
            return
        job.start(encoded, self._passes.plan(encoded.lengths))
        self._active_windows += len(encoded.lengths)

    def _step(self) -> None:
        """One batch of every job held, run together (re-planned, so small jobs share one)."""
        for job in self._active:
            if job.finished:
                self._finish(job)
        jobs = self._active = [job for job in self._active if not job.finished]
        if not jobs:
            return
        taken = [job.batches[job.done_batches] for job in jobs]
        ids, extra, lengths = gather_rows(jobs, taken)
        try:
            logits, outputs = self._passes.run(ids, extra, lengths)
        except Exception as exc:
            self.stats.last_forward_ok = False
            self.stats.failed_rounds_in_a_row += 1
            logger.error("the model failed on a batch: %s: %s", type(exc).__name__, exc)
            for job in jobs:
                error = ScoringError(f"the model failed on a batch ({type(exc).__name__})")
                error.__cause__ = exc
                job.future.settle(error=error)
                job.close_bar()
            self._active = []
            self._active_windows = 0
            return
        self.stats.last_forward_ok = True
        self.stats.failed_rounds_in_a_row = 0
        offset = 0
        for job, rows in zip(jobs, taken, strict=True):
            end = offset + len(rows)
            job.record(rows, logits[offset:end], None if outputs is None else outputs[offset:end])
            offset = end
            self._active_windows -= len(rows)
            if job.finished:
                self._finish(job)
        self._active = [job for job in jobs if not job.finished]

    def _finish(self, job: Job) -> None:
        """Resolve a job that has no batch left (or was abandoned, or failed)."""
        job.close_bar()
        if job.future.done():
            return
        if job.future.abandoned:
            self._active_windows -= job.remaining
            job.future.settle(error=CancelledError())
            return
        if job.encoded is None or job.logits is None:
            return
        self.stats.pairs += job.resolve()

    def _fail_stalled(self, error: EngineStalledError) -> None:
        """The watchdog's verdict: fail the jobs held and, as the worker will not reach them
        soon, the queued ones."""
        for job in [*self._active, *self._take_queued()]:
            job.future.settle(error=error)

    def _take_queued(self) -> list[Job]:
        """Take every job still queued out of the queue, marked running (their callers are about
        to be failed); a stop request stays queued for the worker."""
        taken: list[Job] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return taken
            if item is _STOP:
                self._queue.put(_STOP)
                return taken
            if isinstance(item, Job):
                self._dequeue(item)
                if item.future.set_running_or_notify_cancel():
                    taken.append(item)
