"""Long documents: query truncation, window overlap, and per-document aggregation.

The windows themselves are cut by the fast tokenizer (``return_overflowing_tokens`` with a stride),
so special tokens and segment ids come out exactly as the model's tokenizer makes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "DEFAULT_OVERLAP",
    "max_per_document",
    "query_token_limit",
    "truncate_at_token",
    "window_overlap",
]

DEFAULT_OVERLAP = 64
"""Tokens shared by consecutive windows of one document."""


def query_token_limit(max_length: int) -> int:
    """A query keeps at most a quarter of the window; the rest is for the document."""
    return max(1, max_length // 4)


def window_overlap(max_length: int, special_tokens: int, overlap: int = DEFAULT_OVERLAP) -> int:
    """Overlap between windows, kept below half of the smallest document window.

    The smallest window is what is left beside the longest query allowed by
    :func:`query_token_limit`, so every window still advances through the document.
    """
    smallest_window = max_length - query_token_limit(max_length) - special_tokens
    return max(0, min(overlap, (smallest_window - 1) // 2))


def truncate_at_token(text: str, offsets: Sequence[tuple[int, int]], limit: int) -> str:
    """Cut ``text`` after its ``limit``-th token, given the tokenizer's character offsets."""
    if len(offsets) <= limit:
        return text
    return text[: offsets[limit - 1][1]]


def max_per_document(
    window_logits: np.ndarray, window_owner: np.ndarray, n_documents: int
) -> np.ndarray:
    """Each document's best window logit. NaN in any window makes the document NaN."""
    best = np.full(n_documents, -np.inf, dtype=np.float32)
    with np.errstate(invalid="ignore"):  # NaN is reported by the caller, not warned about
        np.maximum.at(best, window_owner, window_logits.astype(np.float32, copy=False))
    return best
