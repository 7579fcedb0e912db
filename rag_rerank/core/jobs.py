"""The engine's unit of work: a :class:`Job` (one caller's pairs, tokenized into windows and
planned into batches by the worker) and the :class:`JobFuture` its caller waits on, and the
engine's counters (:class:`EngineStats`). The worker drives them; they know nothing of queues."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..errors import NonFiniteScoreError
from .loading import EncodedPairs
from .windows import max_per_document

__all__ = ["PROGRESS_MIN_WINDOWS", "EngineStats", "Job", "JobFuture", "gather_rows"]

PROGRESS_MIN_WINDOWS = 2048
"""With ``show_progress=None``, jobs of at least this many windows get a progress bar."""


class JobFuture(Future[np.ndarray]):
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
class Job:
    queries: Sequence[str]
    documents: Sequence[str]
    max_length: int
    windows: bool
    show_progress: bool | None
    cost: int = 0
    inverse: np.ndarray | None = None  # caller's pair -> distinct pair, when pairs repeat
    queued: bool = True  # its cost still counts against the queue
    future: JobFuture = field(default_factory=JobFuture)
    # Once the worker tokenized it:
    encoded: EncodedPairs | None = None
    batches: list[np.ndarray] = field(default_factory=list)  # its own plan, over its windows
    done_batches: int = 0
    logits: np.ndarray | None = None  # per window
    outputs: list[Any] | None = None  # per window, when the model gives more than logits
    bar: Any = None  # a progress bar, for a long job

    @classmethod
    def of(
        cls,
        queries: Sequence[str],
        documents: Sequence[str],
        max_length: int,
        windows: bool,
        show_progress: bool | None,
    ) -> Job:
        """A job for the pairs ``(queries[i], documents[i])``; a pair repeated in it is scored
        once (one forward, one score)."""
        distinct: dict[tuple[str, str], int] = {}
        inverse = [
            distinct.setdefault(pair, len(distinct))
            for pair in zip(queries, documents, strict=True)
        ]
        job = cls(queries, documents, max_length, windows, show_progress)
        if len(distinct) < len(inverse):
            job.queries = [query for query, _ in distinct]
            job.documents = [document for _, document in distinct]
            job.inverse = np.asarray(inverse, dtype=np.int64)
        return job

    def start(self, encoded: EncodedPairs, batches: list[np.ndarray]) -> None:
        """Take its windows (tokenized) and their plan; a long job gets a progress bar."""
        self.encoded = encoded
        self.logits = np.empty(len(encoded.lengths), dtype=np.float32)
        self.batches = batches
        windows = len(encoded.lengths)
        if self.show_progress or (self.show_progress is None and windows >= PROGRESS_MIN_WINDOWS):
            self.bar = tqdm(total=windows, unit="pair", desc="Reranking")

    @property
    def finished(self) -> bool:
        return self.future.done() or self.future.abandoned or self.done_batches == len(self.batches)

    @property
    def remaining(self) -> int:
        """Windows of the batches not yet run."""
        return sum(len(rows) for rows in self.batches[self.done_batches :])

    def record(self, rows: np.ndarray, logits: np.ndarray, outputs: list[Any] | None) -> None:
        """The results of one of its batches (``rows``: its windows in the batch)."""
        assert self.logits is not None
        self.logits[rows] = logits
        if outputs is not None:
            self.outputs = self.outputs or [None] * len(self.logits)
            for i, row in enumerate(rows.tolist()):
                self.outputs[row] = outputs[i]
        self.done_batches += 1
        if self.bar is not None:
            self.bar.update(len(rows))

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def resolve(self) -> int:
        """Settle the future of a job whose every batch ran: the logits of the caller's pairs
        (each document's best window), or :class:`NonFiniteScoreError` for the first pair that
        is NaN or infinite. Returns the pairs scored (0 on an error)."""
        assert self.encoded is not None and self.logits is not None
        logits = max_per_document(self.logits, self.encoded.owner, len(self.documents))
        if self.outputs is not None:
            self.future.row_outputs = self._per_pair(self.outputs, self.encoded.owner)
        queries, documents = self.queries, self.documents
        if self.inverse is not None:  # back to the caller's pairs, repeats sharing one score
            logits = logits[self.inverse]
            queries = [queries[i] for i in self.inverse.tolist()]
            documents = [documents[i] for i in self.inverse.tolist()]
        bad = np.flatnonzero(~np.isfinite(logits))
        if len(bad):
            i = int(bad[0])
            error = NonFiniteScoreError(i, queries[i], documents[i], float(logits[i]))
            self.future.settle(error=error)
            return 0
        self.future.settle(logits)
        return len(logits)

    def _per_pair(self, outputs: list[Any], owner: np.ndarray) -> list[list[Any]]:
        """The per-window outputs grouped by the caller's pair, windows in order."""
        grouped: list[list[Any]] = [[] for _ in self.documents]
        for pair, output in zip(owner.tolist(), outputs, strict=True):
            grouped[pair].append(output)
        if self.inverse is not None:
            return [grouped[i] for i in self.inverse.tolist()]
        return grouped


def gather_rows(
    jobs: Sequence[Job], taken: Sequence[np.ndarray]
) -> tuple[list[list[int]], list[Any] | None, np.ndarray]:
    """``(ids, extra, lengths)`` of the windows ``taken[i]`` of each ``jobs[i]`` (started), in
    order: one step's rows."""
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
    return ids, extra, np.concatenate(parts)


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
