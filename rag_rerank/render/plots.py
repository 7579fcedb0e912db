"""Calibration plots (reliability diagram, threshold curves): matplotlib, imported when drawn
(``eval`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._common import ABOVE_COLOR, BELOW_COLOR

__all__ = ["plot_reliability", "plot_thresholds"]


def _figure(size: tuple[float, float]) -> Any:
    # A bare Figure, not pyplot: no GUI backend, no global state, safe from any thread.
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "the calibration plots need matplotlib: pip install 'rag-rerank[eval]'"
        ) from None
    return Figure(figsize=size)


def plot_reliability(
    labels: Sequence[int] | Any,
    before: Sequence[float] | Any,
    after: Sequence[float] | Any,
    path: Any = None,
    *,
    bins: int = 10,
) -> Any:
    """Reliability diagram: per probability bin, the share of relevant pairs against the mean
    predicted probability, before (sigmoid of the logit) and after calibration; the diagonal is
    perfect calibration. Saved as PNG to ``path`` when given; returns the matplotlib figure."""
    import numpy as np

    y = np.asarray(labels, dtype=float)
    figure = _figure((5, 5))
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for name, probabilities, color in (
        ("sigmoid(logit)", before, BELOW_COLOR),
        ("calibrated", after, ABOVE_COLOR),
    ):
        p = np.asarray(probabilities, dtype=float)
        which = np.minimum((p * bins).astype(int), bins - 1)
        xs = [p[which == b].mean() for b in range(bins) if (which == b).any()]
        ys = [y[which == b].mean() for b in range(bins) if (which == b).any()]
        axes.plot(xs, ys, marker="o", color=color, label=name)
    axes.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="predicted probability",
        ylabel="share relevant",
        title="Reliability (held-out pairs)",
    )
    axes.legend(loc="upper left")
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=100)
    return figure


def plot_thresholds(rows: Sequence[Any], recommended: float | None = None, path: Any = None) -> Any:
    """Precision, recall (left axis) and passages kept per query (right axis) against the score
    threshold, from threshold-table rows; the recommended threshold as a vertical line. Saved as
    PNG to ``path`` when given; returns the matplotlib figure."""
    rows = sorted(rows, key=lambda r: r.threshold)
    xs = [r.threshold for r in rows]
    figure = _figure((6, 4))
    axes = figure.subplots()
    axes.plot(xs, [r.precision for r in rows], label="precision", color="#1565c0")
    axes.plot(xs, [r.recall for r in rows], label="recall", color="#ef6c00")
    axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="score threshold", ylabel="precision / recall")
    kept = axes.twinx()
    kept.plot(xs, [r.kept_per_query for r in rows], label="kept/query", color="grey", ls="--")
    kept.set_ylabel("passages kept per query")
    if recommended is not None:
        axes.axvline(recommended, color=ABOVE_COLOR, linestyle=":", label=f"{recommended:.3f}")
    lines = axes.get_legend_handles_labels()
    more = kept.get_legend_handles_labels()
    axes.legend(lines[0] + more[0], lines[1] + more[1], loc="lower left")
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=100)
    return figure
