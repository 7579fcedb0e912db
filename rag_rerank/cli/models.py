"""``--model`` given several times (``serve``, ``compare``): ``NAME=PATH_OR_ID`` or a bare
``PATH_OR_ID`` named by itself; the first one given is the default. Light: no torch, no fastapi."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence

from ..api import DEFAULT_MODEL
from .option_flags import MODEL_ENV

__all__ = ["add_models_option", "model_specs", "parse_size"]

_UNITS = {
    "": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30
}  # fmt: skip

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


def add_models_option(group: argparse._ArgumentGroup, help_text: str) -> None:
    """A repeatable ``--model [NAME=]PATH_OR_ID`` in ``group``."""
    group.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="[NAME=]PATH_OR_ID",
        help=f"{help_text} Default: ${MODEL_ENV}, else {DEFAULT_MODEL}.",
    )


def model_specs(values: Sequence[str] | None) -> dict[str, str]:
    """Model references by name, in the order given (``$RAG_RERANK_MODEL`` or the default model
    when none is).

    Raises:
        argparse.ArgumentTypeError: A malformed ``NAME=`` or a name given twice (the value named).
    """
    if not values:
        values = [os.environ.get(MODEL_ENV) or DEFAULT_MODEL]
    specs: dict[str, str] = {}
    for value in values:
        name, sep, reference = value.partition("=")
        # "NAME=REF" only when NAME looks like a name: a path may hold "=" too.
        if not sep or not _NAME.match(name) or os.path.exists(value):
            name = reference = value
        if not reference.strip():
            raise argparse.ArgumentTypeError(f"--model {value}: expected NAME=PATH_OR_ID")
        if name in specs:
            raise argparse.ArgumentTypeError(f"--model {value}: the name {name!r} is given twice")
        specs[name] = reference
    return specs


def parse_size(text: str) -> int:
    """Bytes from ``"512MB"``, ``"2GiB"``, ``"1000000"``.

    Raises:
        ValueError: Not a size.
    """
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"expected a size such as 512MB or 2GiB, got {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
