"""A fitted calibration: the map from a model's relevance logit to P(relevant), and the file that
stores it (written by ``rag-rerank calibrate``, read by the ``calibration`` option).

Applying a calibration needs numpy only: Platt scaling is ``sigmoid(a * logit + b)``; isotonic
regression is stored as its step points and applied by linear interpolation between them,
clipped at both ends (what scikit-learn's ``IsotonicRegression(out_of_bounds="clip")`` does).
Fitting it lives in :mod:`rag_rerank.evaluation.calibration` (scikit-learn, ``eval`` extra).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import CalibrationError, InvalidInputError

__all__ = [
    "CALIBRATED",
    "CALIBRATION_METHODS",
    "Calibration",
    "CalibrationMethod",
    "model_key",
    "parse_target",
]

CalibrationMethod = Literal["platt", "isotonic"]
CALIBRATION_METHODS: tuple[CalibrationMethod, ...] = ("platt", "isotonic")

CALIBRATED = "calibrated"
"""The ``threshold`` value that means: the recommended threshold of the reranker's calibration."""

_FORMAT = "rag-rerank-calibration"
_VERSION = 1


@dataclass(frozen=True)
class Calibration:
    """A map from relevance logits to calibrated probabilities, and what it was fitted for.

    Attributes:
        model: The model the logits came from (hub id, or the absolute path of a local folder).
        revision: Its hub revision, when known.
        max_length: Tokens per window the logits were computed with.
        long_documents: ``"windows"`` or ``"truncate"``: how long documents were scored.
        method: ``"platt"`` (``parameters``: ``a``, ``b``) or ``"isotonic"`` (``parameters``:
            ``logits`` and ``probabilities``, the increasing step points).
        parameters: The fitted parameters (see ``method``).
        labels: Labelled pairs the map was fitted and checked on.
        threshold: The recommended cutoff on the calibrated score (``threshold="calibrated"``),
            or ``None`` when none was chosen.
        target: What the threshold was chosen for: ``"f1"``, ``"recall=0.9"``, ``"precision=0.8"``.
        metrics: Expected calibration error and Brier score before and after, on held-out
            labels, and the threshold's precision / recall / F1.
    """

    model: str
    method: CalibrationMethod
    parameters: Mapping[str, Any]
    revision: str | None = None
    max_length: int | None = None
    long_documents: str | None = None
    labels: int = 0
    threshold: float | None = None
    target: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise CalibrationError(f"method must be 'platt' or 'isotonic', got {self.method!r}")
        if self.method == "platt":
            for name in ("a", "b"):
                value = self.parameters.get(name)
                if not _finite_number(value):
                    raise CalibrationError(f"parameters.{name} must be a finite number")
        else:
            xs, ys = self.parameters.get("logits"), self.parameters.get("probabilities")
            if (
                not isinstance(xs, Sequence)
                or not isinstance(ys, Sequence)
                or len(xs) != len(ys)
                or not xs
                or not all(_finite_number(v) for v in [*xs, *ys])
            ):
                raise CalibrationError(
                    "parameters.logits and parameters.probabilities must be lists of finite "
                    "numbers of one non-zero length"
                )
            if any(b < a for a, b in itertools.pairwise(xs)) or any(
                b < a for a, b in itertools.pairwise(ys)
            ):
                raise CalibrationError("isotonic step points must be non-decreasing")
        if self.threshold is not None and (
            not _finite_number(self.threshold) or not 0.0 <= self.threshold <= 1.0
        ):
            raise CalibrationError(f"threshold must be in [0, 1], got {self.threshold!r}")

    # -- applying -------------------------------------------------------------------------------

    def probabilities(self, logits: Sequence[float] | np.ndarray) -> np.ndarray:
        """Calibrated P(relevant) of each logit (float64, in input order)."""
        x = np.asarray(logits, dtype=np.float64)
        if self.method == "platt":
            z = float(self.parameters["a"]) * x + float(self.parameters["b"])
            with np.errstate(over="ignore"):
                return np.asarray(1.0 / (1.0 + np.exp(-z)))
        xs = np.asarray(self.parameters["logits"], dtype=np.float64)
        ys = np.asarray(self.parameters["probabilities"], dtype=np.float64)
        return np.asarray(np.interp(x, xs, ys))  # clipped to ys[0] / ys[-1] outside

    def scores(self, logits: Sequence[float] | np.ndarray) -> list[float]:
        """:meth:`probabilities` rounded to fp32, as a reranker returns its scores."""
        return self.probabilities(logits).astype(np.float32).tolist()

    def check_model(self, model: str, revision: str | None = None) -> None:
        """Refuse (:class:`~rag_rerank.CalibrationError`, naming both models) logits of another
        model, or of another revision when both revisions are known."""
        if model_key(model) != model_key(self.model):
            raise CalibrationError(
                f"this calibration was fitted for model {self.model!r}, not {model!r}: "
                "scores of one model do not calibrate another; run rag-rerank calibrate for it"
            )
        if revision is not None and self.revision is not None and revision != self.revision:
            raise CalibrationError(
                f"this calibration was fitted for {self.model!r} at revision {self.revision!r}, "
                f"not {revision!r}"
            )

    # -- the file -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The file's JSON content."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "model": self.model,
            "revision": self.revision,
            "max_length": self.max_length,
            "long_documents": self.long_documents,
            "method": self.method,
            "parameters": dict(self.parameters),
            "labels": self.labels,
            "threshold": self.threshold,
            "target": self.target,
            "metrics": dict(self.metrics),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the calibration file (JSON) and return its path."""
        target = Path(path)
        target.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Calibration:
        """Read a calibration file.

        Raises:
            CalibrationError: The file is missing, unreadable, not JSON (the line named), not a
                calibration file, or holds bad values.
        """
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CalibrationError(f"cannot read the calibration file: {exc}", source) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CalibrationError(f"not JSON: {exc.msg}", source, exc.lineno) from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise CalibrationError(
                "not a rag-rerank calibration file (written by rag-rerank calibrate)", source
            )
        if data.get("version") != _VERSION:
            raise CalibrationError(f"unsupported version {data.get('version')!r}", source)
        if not isinstance(data.get("model"), str) or not isinstance(data.get("parameters"), dict):
            raise CalibrationError("needs a 'model' string and a 'parameters' object", source)
        try:
            return cls(
                model=data["model"],
                revision=data.get("revision"),
                max_length=data.get("max_length"),
                long_documents=data.get("long_documents"),
                method=data.get("method"),  # type: ignore[arg-type]  # checked on construction
                parameters=data["parameters"],
                labels=int(data.get("labels") or 0),
                threshold=data.get("threshold"),
                target=data.get("target"),
                metrics=data.get("metrics") or {},
            )
        except CalibrationError as exc:
            raise CalibrationError(str(exc), source) from None
        except (TypeError, ValueError) as exc:
            raise CalibrationError(f"bad value: {exc}", source) from None


def model_key(model: str) -> str:
    """How models are compared: an existing local folder by its absolute real path, a hub id as
    written."""
    if os.path.isdir(model):
        return os.path.realpath(model)
    return model


def parse_target(target: str) -> tuple[str, float | None]:
    """``"f1"`` -> ``("f1", None)``; ``"recall=0.9"`` / ``"precision=0.8"`` -> name and value.

    Raises:
        InvalidInputError: Anything else (``field`` is ``target``).
    """
    name, _, value = target.strip().partition("=")
    name = name.strip().lower()
    if name == "f1" and not value:
        return "f1", None
    if name in ("recall", "precision"):
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if 0.0 < number <= 1.0:
            return name, number
    raise InvalidInputError(
        "target", f"expected f1, recall=R or precision=P with R, P in (0, 1], got {target!r}"
    )


def _finite_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
