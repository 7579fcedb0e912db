"""Per-sentence scores from a pruning head's per-token logits (pure, torch-free).

A pruning head (:class:`~rag_rerank.core.head.PruningHeadModel`) gives a logit for every document
token of a (query, document) row, beside the row's relevance logit. A sentence's score is the mean
logit of the tokens that start inside it (the Provence / OpenProvence layout: token logits
averaged per sentence). A long document scored as several windows gives each window's tokens; a
token seen by two overlapping windows counts once per window.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["RecentTokens", "TokenScores", "sentence_probabilities", "sentence_scores"]


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


def sentence_probabilities(
    windows: Sequence[TokenScores], spans: Sequence[tuple[int, int]]
) -> list[float]:
    """:func:`sentence_scores` as [0, 1] scores (the sigmoid of each sentence's mean token
    logit; 0.0 for a sentence without tokens), the scale sentence selection compares."""
    scores = sentence_scores(windows, spans).astype(np.float64)
    return (1.0 / (1.0 + np.exp(-scores))).tolist()


class RecentTokens:
    """The token scores of the last ``capacity`` (query, document) pairs a pruning head ran,
    so pruning right after reranking reads them instead of running the passages again.
    Thread-safe; the oldest pairs are forgotten first.

    Args:
        capacity: Pairs kept (default 4096: about 80 requests of 50 passages).
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._pairs: OrderedDict[tuple[str, str], list[TokenScores]] = OrderedDict()
        self._lock = threading.Lock()

    def put(
        self,
        queries: Sequence[str],
        documents: Sequence[str],
        outputs: Sequence[list[TokenScores]],
    ) -> None:
        """Keep each pair's windows' token scores (``outputs``: one list per pair)."""
        with self._lock:
            for pair in zip(queries, documents, outputs, strict=True):
                self._pairs[pair[0], pair[1]] = pair[2]
                self._pairs.move_to_end((pair[0], pair[1]))
            while len(self._pairs) > self.capacity:
                self._pairs.popitem(last=False)

    def get(self, query: str, document: str) -> list[TokenScores] | None:
        """The pair's token scores, or ``None`` when it was not run lately."""
        with self._lock:
            return self._pairs.get((query, document))
