"""Per-sentence scores from a pruning head's per-token logits (pure, torch-free).

A pruning head (:class:`~rag_rerank.core.head.PruningHeadModel`) gives a logit for every document
token of a (query, document) row, beside the row's relevance logit. A sentence's score is the mean
logit of the tokens that start inside it (the Provence / OpenProvence layout: token logits
averaged per sentence). A long document scored as several windows gives each window's tokens; a
token seen by two overlapping windows counts once per window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["TokenScores", "sentence_scores"]


@dataclass(frozen=True, eq=False, slots=True)
class TokenScores:
    """The pruning head's logits of one row's document tokens.

    Attributes:
        offsets: ``[tokens, 2]`` character offsets (start, end exclusive) of each token in the
            document.
        logits: ``[tokens]`` fp32 logits: above 0, the head keeps the token's sentence.
    """

    offsets: np.ndarray
    logits: np.ndarray


def sentence_scores(windows: Sequence[TokenScores], spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """The mean token logit of each sentence.

    Args:
        windows: The token logits of the document's rows (one per window; order irrelevant).
        spans: Each sentence's character offsets ``(start, end)`` in the document, in order and
            not overlapping.

    Returns:
        ``[sentences]`` fp32 scores; ``-inf`` for a sentence with no token (beyond the last
        window of a truncated document, or whitespace only).
    """
    scores = np.full(len(spans), -np.inf, dtype=np.float32)
    if not spans or not windows:
        return scores
    starts = np.asarray([start for start, _ in spans], dtype=np.int64)
    ends = np.asarray([end for _, end in spans], dtype=np.int64)
    token_starts = np.concatenate([w.offsets[:, 0] for w in windows]).astype(np.int64)
    logits = np.concatenate([w.logits for w in windows]).astype(np.float64)
    sentence = np.searchsorted(starts, token_starts, side="right") - 1
    inside = sentence >= 0
    inside[inside] &= token_starts[inside] < ends[sentence[inside]]
    counts = np.bincount(sentence[inside], minlength=len(spans))
    sums = np.bincount(sentence[inside], weights=logits[inside], minlength=len(spans))
    seen = counts > 0
    scores[seen] = (sums[seen] / counts[seen]).astype(np.float32)
    return scores
