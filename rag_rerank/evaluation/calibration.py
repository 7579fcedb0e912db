"""Fit a calibration from labelled pairs, measure it, and choose a score threshold.

The labels are ``(query, document, 0|1)`` pairs: from a JSONL file (:func:`load_labels`) or from
a BEIR-layout dataset, where ``k`` retrieved candidates per query are labelled from the qrels
(:func:`labels_from_beir`). The reranker's logits of those pairs (:func:`pair_logits`) are mapped
to P(relevant) by Platt scaling (logistic regression on the logit) or isotonic regression, both
from scikit-learn (``eval`` extra), fitted on all but a held-out share of the queries; expected
calibration error and Brier score are measured on the held-out queries before (sigmoid of the
logit) and after. The threshold table and the recommended threshold (:func:`threshold_table`,
:func:`recommend_threshold`) come from the calibrated scores of every labelled pair.

>>> from rag_rerank import Reranker
>>> from rag_rerank.evaluation.calibration import fit_calibration, load_labels, pair_logits
>>> pairs = load_labels("labels.jsonl")  # doctest: +SKIP
>>> reranker = Reranker("BAAI/bge-reranker-v2-m3")  # doctest: +SKIP
>>> fit = fit_calibration(pair_logits(reranker, pairs), pairs, reranker=reranker)  # doctest: +SKIP
>>> fit.calibration.save("calibration.json")  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..api import CALIBRATION_METHODS, Calibration, CalibrationMethod, sigmoid
from ..api.calibration import model_key, parse_target
from ..errors import CalibrationError, InvalidInputError
from .labels import LabelledPair, labels_from_beir, load_labels, pair_logits

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MIN_RELIABLE_LABELS",
    "CalibrationFit",
    "LabelledPair",
    "ThresholdRow",
    "brier_score",
    "expected_calibration_error",
    "fit_calibration",
    "format_threshold_table",
    "labels_from_beir",
    "load_labels",
    "pair_logits",
    "parse_target",
    "recommend_threshold",
    "threshold_table",
]

DEFAULT_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""The thresholds of the table: 0.05, 0.10, ... 0.95."""

MIN_RELIABLE_LABELS = 20
"""Below this many labelled pairs a fit is made, with a warning that it is unreliable."""


@dataclass(frozen=True, slots=True)
class ThresholdRow:
    """What one score threshold does to the labelled pairs.

    Attributes:
        threshold: Pairs scoring at or above it are kept.
        kept_per_query: Mean passages kept per query.
        precision: Relevant share of the kept pairs (over all queries; 0 when nothing is kept).
        recall: Share of the relevant pairs that are kept.
        f1: Harmonic mean of precision and recall.
        queries_without_passage: Share of queries left with no passage at all.
    """

    threshold: float
    kept_per_query: float
    precision: float
    recall: float
    f1: float
    queries_without_passage: float

    def as_dict(self) -> dict[str, float]:
        """The row as plain numbers."""
        return {
            "threshold": self.threshold,
            "kept_per_query": self.kept_per_query,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "queries_without_passage": self.queries_without_passage,
        }


@dataclass(frozen=True)
class CalibrationFit:
    """A fitted calibration and what it was measured on.

    Attributes:
        calibration: The calibration (save it with :meth:`Calibration.save`).
        table: The threshold table on every labelled pair's calibrated score, the recommended
            threshold's row last.
        holdout_labels: Labels of the held-out pairs (the fit's own pairs when ``holdout=0``).
        holdout_before: Their uncalibrated scores, sigmoid(logit).
        holdout_after: Their calibrated scores.
    """

    calibration: Calibration
    table: tuple[ThresholdRow, ...]
    holdout_labels: np.ndarray
    holdout_before: np.ndarray
    holdout_after: np.ndarray


# -- calibration metrics ------------------------------------------------------------------------


def expected_calibration_error(
    probabilities: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, bins: int = 10
) -> float:
    """Expected calibration error: over ``bins`` equal-width probability bins, the
    pair-weighted mean of |mean predicted probability - share of relevant pairs|."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if p.size == 0:
        return 0.0
    which = np.minimum((p * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.sum() / p.size * abs(p[mask].mean() - y[mask].mean())
    return float(error)


def brier_score(
    probabilities: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> float:
    """Mean squared difference between predicted probability and label (lower is better)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    return float(np.mean((p - y) ** 2)) if p.size else 0.0


# -- thresholds ---------------------------------------------------------------------------------


def threshold_table(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    queries: Sequence[str],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> list[ThresholdRow]:
    """One :class:`ThresholdRow` per threshold: pairs with ``score >= threshold`` are kept.

    Args:
        scores: Each labelled pair's score in [0, 1].
        labels: Each pair's label (1 relevant, 0 not).
        queries: Each pair's query (pairs of one query are one group).
        thresholds: The thresholds to tabulate (default 0.05 ... 0.95).
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    index = {q: i for i, q in enumerate(dict.fromkeys(queries))}
    group = np.asarray([index[q] for q in queries], dtype=np.int64)
    n_queries = max(len(index), 1)
    positives = int(y.sum())
    rows = []
    for t in thresholds:
        kept = s >= t
        hits = int((kept & (y == 1)).sum())
        n_kept = int(kept.sum())
        precision = hits / n_kept if n_kept else 0.0
        recall = hits / positives if positives else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        with_passage = len(np.unique(group[kept]))
        rows.append(
            ThresholdRow(
                threshold=float(t),
                kept_per_query=n_kept / n_queries,
                precision=precision,
                recall=recall,
                f1=f1,
                queries_without_passage=(len(index) - with_passage) / n_queries,
            )
        )
    return rows


def recommend_threshold(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    queries: Sequence[str],
    target: str = "f1",
) -> float:
    """The threshold that meets ``target`` on the labelled pairs, one of their own scores.

    ``"f1"``: the highest F1 (the highest such threshold on ties); ``"recall=R"``: the highest
    threshold whose recall is at least R; ``"precision=P"``: the lowest threshold whose precision
    is at least P (it keeps the most passages that still meet P).

    Raises:
        InvalidInputError: A bad ``target``.
        CalibrationError: No threshold reaches the precision asked for.
    """
    name, goal = parse_target(target)
    candidates = np.unique(np.asarray(scores, dtype=np.float64))
    rows = threshold_table(scores, labels, queries, candidates.tolist())
    if name == "f1":
        best = max(r.f1 for r in rows)
        return max(r.threshold for r in rows if r.f1 == best)
    assert goal is not None
    if name == "recall":
        return max(r.threshold for r in rows if r.recall >= goal - 1e-12)
    meeting = [r.threshold for r in rows if r.precision >= goal - 1e-12 and r.kept_per_query > 0]
    if not meeting:
        raise CalibrationError(
            f"no threshold reaches precision {goal} on these labels "
            f"(best: {max(r.precision for r in rows if r.kept_per_query > 0):.3f})"
        )
    return min(meeting)


def format_threshold_table(rows: Sequence[ThresholdRow], recommended: float | None = None) -> str:
    """The table as text, one row per threshold; the recommended one marked with ``*``."""
    lines = [
        f"{'threshold':>10}{'kept/query':>12}{'precision':>11}{'recall':>8}{'F1':>8}"
        f"{'no passage':>12}"
    ]
    for row in rows:
        mark = " *" if recommended is not None and row.threshold == recommended else ""
        lines.append(
            f"{row.threshold:>10.4f}{row.kept_per_query:>12.2f}{row.precision:>11.3f}"
            f"{row.recall:>8.3f}{row.f1:>8.3f}{row.queries_without_passage:>12.1%}{mark}"
        )
    return "\n".join(lines)


# -- fitting ------------------------------------------------------------------------------------


def fit_calibration(
    logits: Sequence[float] | np.ndarray,
    pairs: Sequence[LabelledPair],
    *,
    reranker: Any = None,
    model: str | None = None,
    revision: str | None = None,
    max_length: int | None = None,
    long_documents: str | None = None,
    method: CalibrationMethod = "platt",
    holdout: float = 0.2,
    seed: int = 0,
    target: str = "f1",
) -> CalibrationFit:
    """Fit a map from ``logits`` to P(relevant) on ``pairs``' labels and choose a threshold.

    Args:
        logits: The reranker's logit of each pair (:func:`pair_logits`).
        pairs: The labelled pairs, aligned with ``logits``.
        reranker: The reranker the logits came from; its model, revision, ``max_length`` and
            ``long_documents`` are recorded (or give ``model`` and the others yourself).
        method: ``"platt"`` (default) or ``"isotonic"``.
        holdout: Share of the queries held out of the fit to measure it (default 0.2; 0 measures
            on the fitted pairs). With fewer than 5 queries, pairs are held out instead.
        seed: Seed of the held-out draw (default 0: the same split every run).
        target: What the recommended threshold meets: ``"f1"`` (default), ``"recall=0.9"``,
            ``"precision=0.8"``.

    Raises:
        CalibrationError: All labels (or all fitted labels) in one class, or a target no
            threshold meets.
        InvalidInputError: A bad ``method``, ``holdout`` or ``target``, or ``logits`` and
            ``pairs`` of different lengths.
    """
    if method not in CALIBRATION_METHODS:
        raise InvalidInputError("method", f"must be 'platt' or 'isotonic', got {method!r}")
    if not isinstance(holdout, (int, float)) or not 0.0 <= holdout < 1.0:
        raise InvalidInputError("holdout", f"must be in [0, 1), got {holdout!r}")
    parse_target(target)
    x = np.asarray(logits, dtype=np.float64)
    if x.shape != (len(pairs),):
        raise InvalidInputError("logits", f"{x.size} logits for {len(pairs)} pairs")
    y = np.asarray([p.label for p in pairs], dtype=np.int64)
    queries = [p.query for p in pairs]
    _check_classes(y, "labels")
    if len(pairs) < MIN_RELIABLE_LABELS:
        warnings.warn(
            f"only {len(pairs)} labelled pairs: a calibration fitted on fewer than "
            f"{MIN_RELIABLE_LABELS} is unreliable; label more",
            UserWarning,
            stacklevel=2,
        )

    train, held = _split(queries, holdout, seed)
    _check_classes(y[train], "labels left for fitting after --holdout (try a smaller holdout)")
    parameters = _fit(method, x[train], y[train])
    identity = _identity(reranker, model, revision, max_length, long_documents)
    draft = Calibration(method=method, parameters=parameters, **identity)
    measured = held if held.size else train
    before = np.asarray(sigmoid(x[measured]), dtype=np.float64)
    after = draft.probabilities(x[measured])

    scores = np.asarray(draft.scores(x), dtype=np.float64)  # fp32, as the reranker returns them
    threshold = recommend_threshold(scores, y, queries, target)
    table = threshold_table(scores, y, queries, [*DEFAULT_THRESHOLDS, threshold])
    chosen = table[-1]
    metrics = {
        "measured_on": "holdout" if held.size else "fitted pairs",
        "holdout_pairs": int(measured.size),
        "ece_before": expected_calibration_error(before, y[measured]),
        "ece_after": expected_calibration_error(after, y[measured]),
        "brier_before": brier_score(before, y[measured]),
        "brier_after": brier_score(after, y[measured]),
        "threshold": chosen.as_dict(),
    }
    calibration = Calibration(
        method=method,
        parameters=parameters,
        labels=len(pairs),
        threshold=threshold,
        target=target.strip().lower().replace(" ", ""),
        metrics=metrics,
        **identity,
    )
    return CalibrationFit(calibration, tuple(table), y[measured], before, after)


def _check_classes(y: np.ndarray, what: str) -> None:
    if y.size and (y.min() == y.max()):
        raise CalibrationError(
            f"all {y.size} {what} are {int(y[0])}: a calibration needs relevant (1) and "
            "irrelevant (0) pairs; cannot fit"
        )


def _split(queries: Sequence[str], holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(fit, held out)``: whole queries held out, so no query is in both."""
    n = len(queries)
    everything = np.arange(n)
    if holdout == 0:
        return everything, np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    distinct = list(dict.fromkeys(queries))
    if len(distinct) >= 5:
        count = max(1, round(holdout * len(distinct)))
        held_queries = {distinct[int(i)] for i in rng.permutation(len(distinct))[:count]}
        held = np.asarray([i for i, q in enumerate(queries) if q in held_queries], dtype=np.int64)
    else:
        held = np.sort(rng.permutation(n)[: max(1, round(holdout * n))])
    return np.setdiff1d(everything, held), held


def _fit(method: str, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    try:
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import LogisticRegression
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError(
            "fitting a calibration needs scikit-learn: pip install 'rag-rerank[eval]'"
        ) from None
    if method == "platt":
        # Unpenalised: Platt scaling is the maximum-likelihood a, b of sigmoid(a * logit + b).
        model = LogisticRegression(C=np.inf).fit(x.reshape(-1, 1), y)
        return {"a": float(model.coef_[0, 0]), "b": float(model.intercept_[0])}
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(x, y)
    return {
        "logits": [float(v) for v in iso.X_thresholds_],
        "probabilities": [float(v) for v in iso.y_thresholds_],
    }


def _identity(
    reranker: Any,
    model: str | None,
    revision: str | None,
    max_length: int | None,
    long_documents: str | None,
) -> dict[str, Any]:
    options = getattr(reranker, "options", None)
    name = model or getattr(reranker, "model_name", None)
    if not isinstance(name, str):
        raise InvalidInputError("model", "give the reranker or the model the logits came from")
    return {
        "model": model_key(name),
        "revision": revision if revision is not None else getattr(options, "revision", None),
        "max_length": max_length or getattr(reranker, "max_length", None),
        "long_documents": long_documents or getattr(reranker, "long_documents", None),
    }
