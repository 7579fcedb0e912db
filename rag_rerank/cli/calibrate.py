"""``rag-rerank calibrate``: fit a calibration from labelled pairs and choose a score threshold."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .option_flags import add_model_options, load_reranker, reranker_options
from .options import add_target_option, positive_int
from .output import error, model_line

if TYPE_CHECKING:
    from .options import Subparsers

__all__ = ["add_calibrate"]


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def add_calibrate(subparsers: Subparsers) -> None:
    """Register ``calibrate``."""
    parser = subparsers.add_parser(
        "calibrate",
        help="fit a map from the model's logit to P(relevant) on your labels and pick a threshold",
        description="Score labelled (query, document) pairs, fit Platt scaling (default) or "
        "isotonic regression from the logit to P(relevant), and print the fitted parameters, "
        "expected calibration error and Brier score before and after (on held-out queries), and "
        "a threshold table with the recommended threshold. Writes the calibration file (load it "
        "with --calibration / calibration=), a reliability diagram and a threshold plot (PNG) "
        "beside it. LABELS is a JSONL file of {query, document, label: 0|1} lines or a BEIR-"
        "layout folder, whose K retrieved candidates per query are labelled from the qrels. "
        "Needs the 'eval' extra.",
    )
    parser.add_argument("labels", metavar="LABELS", help="JSONL labels file or BEIR folder")
    parser.add_argument(
        "--out",
        default="calibration.json",
        metavar="PATH",
        help="calibration file to write (default: calibration.json); the PNGs go beside it",
    )
    parser.add_argument(
        "--method",
        choices=["platt", "isotonic"],
        default="platt",
        help="platt: logistic regression on the logit (default); isotonic: monotone steps",
    )
    parser.add_argument(
        "--holdout",
        type=_share,
        default=0.2,
        help="share of the queries held out to measure the fit (default: 0.2, fixed seed)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out draw (0)")
    add_target_option(parser)
    parser.add_argument("--split", default="test", help="BEIR qrels split (default: test)")
    parser.add_argument(
        "-k",
        "--k",
        dest="k",
        type=positive_int,
        default=50,
        help="BEIR: candidates retrieved and labelled per query (default: 50)",
    )
    parser.add_argument(
        "--max-queries", type=positive_int, default=None, metavar="N", help="BEIR: first N only"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_model_options(parser)
    parser.set_defaults(handler=calibrate)


def calibrate(args: argparse.Namespace) -> int:
    """Fit, print and write the calibration; warnings (few labels, queries left out) go to
    stderr as one line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        code = _calibrate(args)
    for warning in caught:
        print(f"rag-rerank: warning: {warning.message}", file=sys.stderr)
    return code


def _calibrate(args: argparse.Namespace) -> int:
    from ..evaluation.calibration import (
        fit_calibration,
        format_threshold_table,
        labels_from_beir,
        load_labels,
        pair_logits,
    )
    from ..render import plot_reliability, plot_thresholds

    source = Path(args.labels)
    options = reranker_options(args).replace(calibration=None)  # fit on the raw logits
    if source.is_dir():
        from ..evaluation import load_beir

        dataset = load_beir(source, split=args.split)
        pairs = labels_from_beir(
            dataset, k=args.k, max_queries=args.max_queries, show_progress=not args.quiet
        )
    else:
        pairs = load_labels(source)  # checked before the model loads: bad labels fail fast
    reranker = load_reranker(options.replace(show_progress=False if args.quiet else None))
    try:
        logits = pair_logits(reranker, pairs)
        fit = fit_calibration(
            logits,
            pairs,
            reranker=reranker,
            method=args.method,
            holdout=args.holdout,
            seed=args.seed,
            target=args.target,
        )
    except ImportError as exc:
        error(str(exc))
        return 1
    finally:
        reranker.close()
    calibration = fit.calibration
    metrics = calibration.metrics
    print(model_line(reranker))
    queries = len({p.query for p in pairs})
    positives = sum(p.label for p in pairs)
    print(f"labels: {len(pairs)} pairs ({positives} relevant) over {queries} queries")
    parameters = ", ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}: {len(v)} steps"
        for k, v in calibration.parameters.items()
        if k != "probabilities"
    )
    print(f"method: {calibration.method} ({parameters})")
    print(
        f"measured on {metrics['holdout_pairs']} {metrics['measured_on']} pairs:\n"
        f"{'':<8}{'ECE':>8}{'Brier':>8}\n"
        f"{'before':<8}{metrics['ece_before']:>8.4f}{metrics['brier_before']:>8.4f}\n"
        f"{'after':<8}{metrics['ece_after']:>8.4f}{metrics['brier_after']:>8.4f}"
    )
    print(f"\nthresholds on the calibrated score (all {len(pairs)} pairs; * recommended):")
    print(format_threshold_table(fit.table, calibration.threshold))
    print(f"recommended threshold ({calibration.target}): {calibration.threshold:.4f}")
    out = calibration.save(args.out)
    reliability = out.with_name(out.stem + ".reliability.png")
    curves = out.with_name(out.stem + ".thresholds.png")
    plot_reliability(fit.holdout_labels, fit.holdout_before, fit.holdout_after, reliability)
    plot_thresholds(fit.table, calibration.threshold, curves)
    print(f"written: {out}, {reliability}, {curves}")
    print(f"use it: --calibration {out} (threshold 'calibrated' = the recommended one)")
    return 0
