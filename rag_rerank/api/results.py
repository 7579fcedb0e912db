"""What a reranker returns: results, [0, 1] scores and the top-n / threshold selection, and the
snapshots of a reranker's health and counters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from ..errors import InvalidInputError
from .calibration import CALIBRATED

if TYPE_CHECKING:
    from .calibration import Calibration

__all__ = [
    "CacheStats",
    "Health",
    "RerankResult",
    "RerankerStats",
    "cut_ranked",
    "resolve_threshold",
    "scores_of",
    "select",
    "sigmoid",
]


@dataclass(frozen=True, slots=True)
class RerankResult:
    """One reranked document.

    Attributes:
        index: Position of the document in the caller's input list.
        score: Relevance in [0, 1]: sigmoid of ``raw_score``, computed in fp32; with a
            calibration (the ``calibration`` option), the calibrated P(relevant) of ``raw_score``.
        raw_score: The model's relevance logit in fp32 (for two-label models the log-odds of the
            positive class, ``logit[1] - logit[0]``), so ``score == sigmoid(raw_score)`` when
            uncalibrated.
        document: The document text, exactly as the caller passed it.
        pruned_text: What the LLM should read of the document: its kept sentences, in their
            original order, joined as in the document (``prune``), or its leading whole
            sentences that fit the token budget (``max_context_tokens``). ``None`` when the whole
            document is used.
        kept_spans: The kept sentences as ``(start, end)`` character offsets into ``document``,
            ascending; ``None`` exactly when ``pruned_text`` is.
    """

    index: int
    score: float
    raw_score: float
    document: str
    pruned_text: str | None = None
    kept_spans: tuple[tuple[int, int], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"index", "score", "raw_score", "document"}``, plus ``"pruned_text"`` and
        ``"kept_spans"`` (``[[start, end], ...]``) when pruned: plain JSON-ready values."""
        data: dict[str, Any] = {
            "index": self.index,
            "score": self.score,
            "raw_score": self.raw_score,
            "document": self.document,
        }
        if self.pruned_text is not None:
            data["pruned_text"] = self.pruned_text
            data["kept_spans"] = [list(span) for span in self.kept_spans or ()]
        return data

    @property
    def text(self) -> str:
        """The text to hand to the LLM: ``pruned_text`` when pruned, else ``document``."""
        return self.document if self.pruned_text is None else self.pruned_text


def sigmoid(logits: Sequence[float] | np.ndarray) -> list[float]:
    """[0, 1] scores of relevance logits, rounded to fp32 (never computed in half precision,
    which saturates and creates false ties)."""
    x = np.asarray(logits, dtype=np.float64)
    with np.errstate(over="ignore"):
        scores = 1.0 / (1.0 + np.exp(-x))
    return scores.astype(np.float32).tolist()


def scores_of(
    logits: Sequence[float] | np.ndarray, calibration: Calibration | None = None
) -> list[float]:
    """The [0, 1] scores of ``logits``: calibrated by ``calibration``, else their sigmoid."""
    return sigmoid(logits) if calibration is None else calibration.scores(logits)


def resolve_threshold(
    threshold: float | str | None, calibration: Calibration | None
) -> float | None:
    """``threshold`` as a number: ``"calibrated"`` becomes the calibration's recommended one.

    Raises:
        InvalidInputError: ``"calibrated"`` without a calibration, or with one that recommends
            no threshold (``field`` is ``threshold``).
    """
    if threshold != CALIBRATED:
        return None if threshold is None else float(threshold)
    if calibration is None:
        raise InvalidInputError(
            "threshold",
            "'calibrated' needs a calibrated reranker: load it with calibration='calibration.json' "
            "(written by rag-rerank calibrate)",
        )
    if calibration.threshold is None:
        raise InvalidInputError(
            "threshold",
            "'calibrated': the calibration file recommends no threshold; run rag-rerank calibrate "
            "with --target",
        )
    return calibration.threshold


def select(
    logits: Sequence[float] | np.ndarray,
    documents: Sequence[str],
    top_n: int | None = None,
    threshold: float | str | None = None,
    calibration: Calibration | None = None,
) -> list[RerankResult]:
    """Rank ``documents`` by their ``logits``: best first, ``threshold`` on the [0, 1] score
    (calibrated by ``calibration`` when given; ``"calibrated"`` is its recommended threshold),
    then at most ``top_n``. Ties keep input order. Arguments are assumed checked."""
    threshold = resolve_threshold(threshold, calibration)
    raw = np.asarray(logits, dtype=np.float32)
    scores = scores_of(raw, calibration)
    # Sort on the logit: it orders exactly like the score but does not saturate. Stable: ties
    # keep input order.
    results = []
    for i in np.argsort(-raw, kind="stable").tolist():
        if threshold is not None and scores[i] < threshold:
            continue
        results.append(RerankResult(i, scores[i], float(raw[i]), documents[i]))
        if top_n is not None and len(results) == top_n:
            break
    return results


class _Scored(Protocol):
    @property
    def score(self) -> float: ...


ScoredT = TypeVar("ScoredT", bound=_Scored)


def cut_ranked(
    ranked: Sequence[ScoredT], top_n: int | None = None, threshold: float | None = None
) -> list[ScoredT]:
    """The results of an already ranked list (best first) to keep: those whose ``score`` is at
    least ``threshold`` (``None``: all), then at most the first ``top_n`` (``None``: all). Any
    items with a ``score`` ([0, 1]) will do: :class:`RerankResult`, a pipeline's results.
    Arguments are assumed checked (``threshold`` resolved by :func:`resolve_threshold`)."""
    return [r for r in ranked if threshold is None or r.score >= threshold][:top_n]


@dataclass(frozen=True, slots=True)
class Health:
    """A reranker's state at one moment.

    Attributes:
        alive: The worker that runs the model is running.
        last_forward_ok: Whether the last forward pass succeeded; ``None`` before the first.
        stalled: A forward pass has run past the engine's ``stall_timeout`` (the model may be
            hung); ``alive`` is then False too.
        failed_rounds: Rounds of forward passes that failed in a row, up to now (0 after a
            success).
    """

    alive: bool
    last_forward_ok: bool | None
    stalled: bool = False
    failed_rounds: int = 0

    @property
    def ready(self) -> bool:
        """Alive, and the last forward pass (if any) succeeded."""
        return self.alive and self.last_forward_ok is not False

    @property
    def reason(self) -> str | None:
        """Why it is not ready, in words; ``None`` when it is."""
        if self.stalled:
            return "the model has been running one batch too long (hung?)"
        if not self.alive:
            return "the reranker worker is not running"
        if self.last_forward_ok is False:
            return "the last forward pass failed"
        return None


@dataclass(frozen=True, slots=True)
class RerankerStats:
    """Counters since a reranker's model was loaded, and its current limits (a snapshot).

    Attributes:
        batches: Forward passes run.
        pairs: (query, document) pairs scored.
        windows: Token windows (rows) in all batches; more than ``pairs`` with long documents.
        real_tokens: Tokens of real text in all batches.
        padded_tokens: Tokens computed, padding included.
        oom_splits: Batches split after an out-of-memory error.
        queued_pairs: Pairs submitted and not yet started.
        max_queue_pairs: The queue's limit; ``None`` when unbounded.
        batch_tokens: The current token budget per forward pass (lowered after out of memory).
    """

    batches: int
    pairs: int
    windows: int
    real_tokens: int
    padded_tokens: int
    oom_splits: int
    queued_pairs: int
    max_queue_pairs: int | None
    batch_tokens: int


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A score cache's counters since it was opened (a snapshot).

    Attributes:
        cache: Which cache: ``"memory"`` or the Redis URL (password hidden).
        hits: Pairs answered from the cache, without running the model.
        misses: Pairs the model scored because the cache did not hold them.
        errors: Cache operations that failed, or were skipped while the cache was unreachable
            (the pairs were scored by the model; no request fails because of the cache).
        entries: Entries held, for the in-process cache; ``None`` for Redis.
    """

    cache: str
    hits: int
    misses: int
    errors: int
    entries: int | None
