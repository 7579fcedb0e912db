"""Helpers every command shares: the ``Subparsers`` type the ``add_<command>`` functions take,
the value parsers (argparse ``type=``), and the small shared flags: selection (``-k/--k``,
``--top-n``, ``--threshold``), what the LLM reads (``--max-context-tokens``, ``--tokenizer``,
``--order``), the calibration target and the Ray cluster address. The flags generated from the
options objects (model, pruning and training flags) are in :mod:`.option_flags`.

Light on purpose: building a parser imports this module, and ``rag-rerank --help`` must not pay
for torch.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..api import CONTEXT_ORDERS

if TYPE_CHECKING:
    from typing import TypeAlias

    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
    """What :func:`rag_rerank.cli.build_parser` hands each ``add_<command>`` function."""

__all__ = [
    "add_context_options",
    "add_ray_address",
    "add_selection_options",
    "add_target_option",
    "cuda_missing",
    "device_value",
    "existing_file",
    "existing_path",
    "non_empty",
    "non_negative_float",
    "non_negative_int",
    "number",
    "port_number",
    "positive_float",
    "positive_int",
    "threshold_value",
    "unit_float",
    "whole_number",
]


# -- value parsers (argparse ``type=``): their messages follow "argument --flag: " ---------------


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """A whole number >= 0."""
    value = whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def unit_float(text: str) -> float:
    """A number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def threshold_value(text: str) -> float | str:
    """A score threshold: a number in [0, 1], or ``calibrated`` (the recommended threshold of the
    ``--calibration`` file)."""
    if text.strip().lower() == "calibrated":
        return "calibrated"
    return unit_float(text)


def non_empty(text: str) -> str:
    """Text with something other than whitespace in it (a query, a key)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def positive_float(text: str) -> float:
    """A number > 0 (seconds, rates)."""
    value = number(text)
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A number >= 0 (seconds)."""
    value = number(text)
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


def port_number(text: str) -> int:
    """A TCP port in 0-65535 (0: any free port, the one bound is logged)."""
    value = whole_number(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0-65535, got {value}")
    return value


def existing_file(text: str) -> str:
    """The path of a file that exists (``~`` expanded)."""
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(
            f"{text} is a folder, not a file" if path.is_dir() else f"no such file: {text}"
        )
    return str(path)


def existing_path(text: str) -> str:
    """The path of a file or folder that exists (``~`` expanded)."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file or folder: {text}")
    return str(path)


def device_value(text: str) -> str:
    """A device name; ``cuda`` or ``cuda:N`` is refused at once where CUDA cannot work here
    (see :func:`cuda_missing`), before torch is imported."""
    if text.strip().lower().startswith("cuda"):
        reason = cuda_missing()
        if reason:
            raise argparse.ArgumentTypeError(
                f"{text} asked for, but {reason}; use --device cpu, or leave it out"
            )
    return text


def cuda_missing() -> str | None:
    """Why CUDA cannot work on this machine, found in milliseconds without importing torch: a
    CPU-only torch build, ``CUDA_VISIBLE_DEVICES`` hiding every GPU, or (Linux) no NVIDIA
    driver; ``None`` when it may work (torch then has the last word)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
    spec = importlib.util.find_spec("torch")  # finds the package without importing it
    folders = (spec.submodule_search_locations if spec else None) or []
    try:
        build = (Path(next(iter(folders))) / "version.py").read_text()
    except (StopIteration, OSError):
        return None
    if re.search(r"^hip\b[^=\n]*=\s*'", build, re.MULTILINE):
        return None  # ROCm answers to "cuda" too, without an NVIDIA driver
    if re.search(r"^cuda\b[^=\n]*=\s*None", build, re.MULTILINE):
        version = re.search(r"^__version__\s*=\s*'([^']+)'", build, re.MULTILINE)
        return f"this torch build ({version.group(1) if version else 'CPU'}) has no CUDA"
    if sys.platform.startswith("linux") and not Path("/proc/driver/nvidia").exists():
        return "this machine has no NVIDIA driver"
    return None


def whole_number(text: str) -> int:
    """A whole number (any sign)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def number(text: str) -> float:
    """A number (any sign)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


# -- selection flags ----------------------------------------------------------------------------


def add_selection_options(
    parser: argparse.ArgumentParser,
    *,
    k: int | None = None,
    top_n: int | None = None,
    top_n_help: str = "results to keep",
    threshold: bool = True,
) -> None:
    """``-k/--k`` (when the command retrieves: ``k`` is its default), ``--top-n`` and
    ``--threshold`` (unless ``threshold=False``), named the same in every command."""
    if k is not None:
        parser.add_argument(
            "-k",
            "--k",
            dest="k",
            type=positive_int,
            default=k,
            help=f"candidates to retrieve (default: {k})",
        )
    parser.add_argument(
        "--top-n",
        type=positive_int,
        default=top_n,
        metavar="N",
        help=f"{top_n_help} (default: {'all' if top_n is None else top_n})",
    )
    if threshold:
        parser.add_argument(
            "--threshold",
            type=threshold_value,
            default=None,
            help="drop results whose score in [0, 1] is below this; 'calibrated': the "
            "recommended threshold of the --calibration file (default: none)",
        )


# -- what the LLM reads: pruning, the token budget, the order -----------------------------------


def add_context_options(parser: argparse.ArgumentParser) -> None:
    """``--max-context-tokens``, ``--tokenizer`` and ``--order``."""
    parser.add_argument(
        "--max-context-tokens",
        type=positive_int,
        default=None,
        metavar="N",
        help="keep the best passages that fit N tokens together, the last cut at a sentence "
        "boundary (default: no budget)",
    )
    parser.add_argument(
        "--tokenizer",
        default=None,
        help="the LLM's Hugging Face tokenizer id or folder, to count --max-context-tokens "
        "(default: a fast approximate count)",
    )
    parser.add_argument(
        "--order",
        choices=CONTEXT_ORDERS,
        default="score",
        help="'score': best first; 'edges': the best at both ends, the weakest in the middle "
        "(default: score)",
    )


# -- the calibration target and the Ray cluster ------------------------------------------------


def _target(text: str) -> str:
    from ..api.calibration import parse_target
    from ..errors import InvalidInputError

    try:
        parse_target(text)
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("target: ")) from None
    return text


def add_target_option(parser: argparse.ArgumentParser) -> None:
    """``--target``: what the recommended threshold meets (``calibrate`` and ``eval``)."""
    parser.add_argument(
        "--target",
        type=_target,
        default="f1",
        help="what the recommended threshold meets: f1 (best F1, default), recall=R (highest "
        "threshold with recall >= R) or precision=P (lowest threshold with precision >= P)",
    )


def add_ray_address(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--ray-address``: the cluster to join (default: start a local Ray instance)."""
    parser.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="Ray cluster to join: host:port of its head, ray://host:port, or auto "
        "(default: start a local Ray instance, stopped at the end)",
    )
