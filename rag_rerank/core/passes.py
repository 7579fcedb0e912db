"""The engine's model side: the windows of one step planned into token-budget batches, each
collated and run through the model, split and retried after running out of memory, and counted.
It knows nothing of jobs or queues (:mod:`rag_rerank.core.engine` does)."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from .batching import packed_batches, split_batch, token_budget_batches
from .jobs import EngineStats
from .loading import PairModel

__all__ = ["MAX_PADDING", "ForwardPasses"]

logger = logging.getLogger(__name__)

MAX_PADDING = {"cpu": 64, "mps": 1024, "cuda": 4096}
"""Default padding allowance per padded batch, by device: about what one extra forward pass costs,
in tokens of work. Padding is work thrown away, so a batch that would carry more is split. A GPU
pays a launch overhead per pass and keeps larger batches; on a CPU most models run padding-free
(:attr:`CrossEncoderModel.packed`) and never pad, and the others pad at most 64 tokens a batch
(measured: benchmarks/RESULTS.md)."""

_MIN_BATCH_TOKENS = 512


class ForwardPasses:
    """Runs windows (token rows) through ``model`` in batches of ``batch_tokens`` tokens.

    Attributes:
        batch_tokens: Padded-token budget per forward pass; lowered for good after an
            out-of-memory error.
        max_padding: Padding tokens a padded batch may carry before it is better split.
        started: Monotonic time the forward pass running now started; ``None`` between passes
            (what the stall watchdog reads).
        windows_per_second: The throughput measured on steps of at least half a batch (what a
            busy engine does, not its idle overhead), smoothed; ``None`` before one ran.
    """

    def __init__(
        self, model: PairModel, stats: EngineStats, batch_tokens: int, max_padding: int | None
    ) -> None:
        self.model = model
        self.stats = stats
        self.batch_tokens = batch_tokens
        self.max_padding = max_padding
        self.started: float | None = None
        self.windows_per_second: float | None = None

    def plan(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Windows of these token ``lengths`` as batches (arrays of row indices)."""
        if self.model.packed:
            return packed_batches(lengths, self.batch_tokens)
        return token_budget_batches(lengths, self.batch_tokens, max_padding=self.max_padding)

    def run(
        self, ids: list[list[int]], extra: list[Any] | None, lengths: np.ndarray
    ) -> tuple[np.ndarray, list[Any] | None]:
        """fp32 logits of every row, and its output beside them when the model gives one (a
        pruning head's token logits), else ``None``. Raises what the model raised."""
        step_started = time.monotonic()
        try:
            pending: list[tuple[np.ndarray, Any]] = []
            for batch in self.plan(lengths):
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
        finally:
            self.started = None
        if lengths.sum() * 2 >= self.batch_tokens:  # a small step is mostly per-pass overhead
            self._measure(len(lengths), time.monotonic() - step_started)
        return logits, outputs

    def _measure(self, windows: int, seconds: float) -> None:
        rate = windows / max(seconds, 1e-6)
        previous = self.windows_per_second
        self.windows_per_second = rate if previous is None else 0.7 * previous + 0.3 * rate

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
        self.started = time.monotonic()
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
            self.started = None
        self.stats.batches += 1
        self.stats.windows += len(batch)
        self.stats.padded_tokens += padded
        self.stats.real_tokens += int(lengths[batch].sum())
        self.stats.last_batch_at = time.monotonic()
