"""Pure functions that plan forward passes: length order, token-budget batches, OOM splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["length_order", "packed_batches", "split_batch", "token_budget_batches"]


def length_order(lengths: Sequence[int] | np.ndarray) -> np.ndarray:
    """Indices that visit the sequences longest first; equal lengths keep input order.

    Longest first puts the biggest batch at the start, so an out-of-memory split happens before any
    work is wasted.
    """
    return np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")


def token_budget_batches(
    lengths: Sequence[int] | np.ndarray,
    batch_tokens: int,
    order: np.ndarray | None = None,
    max_padding: int | None = None,
) -> list[np.ndarray]:
    """Cut sequences into batches whose padded size stays within ``batch_tokens``.

    Args:
        lengths: Token count of each sequence.
        batch_tokens: Budget of padded tokens per batch (rows x longest row). A sequence longer than
            the budget still gets a batch of its own.
        order: Visiting order, by default :func:`length_order`. Batches are consecutive runs of it.
        max_padding: Also close a batch before its padding (padded minus real tokens) would exceed
            this many tokens. A forward pass costs about as much as this many tokens of work, so a
            batch that wastes more on padding is better split. ``None`` means no limit.

    Returns:
        Index arrays into ``lengths``, one per batch, covering every sequence exactly once.
    """
    if batch_tokens < 1:
        raise ValueError(f"batch_tokens must be >= 1, got {batch_tokens}")
    if max_padding is not None and max_padding < 0:
        raise ValueError(f"max_padding must be >= 0, got {max_padding}")
    lengths = np.asarray(lengths, dtype=np.int64)
    if order is None:
        order = length_order(lengths)
    padding_limit = np.inf if max_padding is None else max_padding
    ordered = lengths[order].tolist()  # plain ints: this loop runs once per sequence
    batches: list[np.ndarray] = []
    start = 0
    while start < len(ordered):
        widest = real = ordered[start]
        end = start + 1
        while end < len(ordered):
            length = ordered[end]
            width = max(widest, length)
            rows = end - start + 1
            if width * rows > batch_tokens or width * rows - real - length > padding_limit:
                break
            widest = width
            real += length
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def packed_batches(
    lengths: Sequence[int] | np.ndarray, batch_tokens: int, order: np.ndarray | None = None
) -> list[np.ndarray]:
    """Cut sequences into batches of at most ``batch_tokens`` real tokens, for padding-free
    execution (rows end to end, no padding). A longer sequence still gets a batch of its own.

    ``order`` (default :func:`length_order`) is the visiting order; batches are runs of it.
    """
    if batch_tokens < 1:
        raise ValueError(f"batch_tokens must be >= 1, got {batch_tokens}")
    lengths = np.asarray(lengths, dtype=np.int64)
    if order is None:
        order = length_order(lengths)
    batches: list[np.ndarray] = []
    start = total = 0
    for end, length in enumerate(lengths[order].tolist()):
        if end > start and total + length > batch_tokens:
            batches.append(order[start:end])
            start, total = end, 0
        total += length
    if start < len(order):
        batches.append(order[start:])
    return batches


def split_batch(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Halve a batch of two or more sequences (used after a CUDA out-of-memory error)."""
    if len(batch) < 2:
        raise ValueError("a batch of one sequence cannot be split")
    middle = len(batch) // 2
    return batch[:middle], batch[middle:]
