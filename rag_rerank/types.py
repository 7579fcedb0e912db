"""Result types returned by the reranker."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RerankResult"]


@dataclass(frozen=True, slots=True)
class RerankResult:
    """One reranked document.

    Attributes:
        index: Position of the document in the caller's input list.
        score: Relevance in [0, 1]: sigmoid of ``raw_score``, computed in fp32.
        raw_score: The model's relevance logit in fp32 (for two-label models the log-odds of the
            positive class, ``logit[1] - logit[0]``), so ``score == sigmoid(raw_score)``.
        document: The document text, exactly as the caller passed it.
    """

    index: int
    score: float
    raw_score: float
    document: str
