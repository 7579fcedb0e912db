"""Flags shared by the commands: the model flags (generated from :class:`RerankerOptions`), the
selection flags (``-k/--k``, ``--top-n``, ``--threshold``) and the value parsers behind them.

Light on purpose: building a parser imports this module, and ``rag-rerank --help`` must not pay
for torch. The model loads inside :func:`load_reranker`, when a command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..api import CONTEXT_ORDERS, PruneOptions, RerankerOptions
from ..core.hub import check_hub_model
from ..errors import InvalidInputError, InvalidInputTypeError

if TYPE_CHECKING:
    from ..core import Reranker

__all__ = [
    "CACHE_ENV",
    "MODEL_ENV",
    "add_context_options",
    "add_model_options",
    "add_prune_options",
    "add_selection_options",
    "cuda_missing",
    "device_value",
    "existing_file",
    "existing_path",
    "load_reranker",
    "non_empty",
    "non_negative_float",
    "non_negative_int",
    "port_number",
    "positive_float",
    "positive_int",
    "prune_from",
    "reranker_options",
    "threshold_value",
    "unit_float",
]

MODEL_ENV = "RAG_RERANK_MODEL"
"""Environment variable that sets the default of ``--model``."""

CACHE_ENV = "RAG_RERANK_CACHE_URL"
"""Environment variable that sets the default of ``--cache``: a Redis URL given here keeps its
password out of the process list (``ps``), where a ``--cache`` flag shows it."""


# -- value parsers (argparse ``type=``): their messages follow "argument --flag: " ---------------


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """A whole number >= 0."""
    value = _int(text)
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
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A number >= 0 (seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


def port_number(text: str) -> int:
    """A TCP port in 0-65535 (0: any free port, the one bound is logged)."""
    value = _int(text)
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


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


# -- model flags --------------------------------------------------------------------------------


def add_model_options(
    parser: argparse.ArgumentParser,
    *,
    help_overrides: Mapping[str, str] | None = None,
    exclude: Collection[str] = (),
) -> argparse._ArgumentGroup:
    """One flag per :class:`RerankerOptions` field (``max_length`` -> ``--max-length``), in a
    "model options" group, with the field's type, default and help.

    Each value is checked by :class:`RerankerOptions` as it is parsed, so a bad one is a usage
    error naming the flag. ``--model`` defaults to ``$RAG_RERANK_MODEL`` when set.

    Args:
        parser: The command's parser.
        help_overrides: Help text by option name, for a command that gives an option another
            meaning by default (``serve`` bounds the queue where the library does not).
        exclude: Options the command declares itself, in the returned group (``serve`` and
            ``compare`` take ``--model`` several times).

    Returns:
        The "model options" group.
    """
    group = parser.add_argument_group(
        "model options", "how the cross-encoder is loaded and run (any command that loads it)"
    )
    hints = typing.get_type_hints(RerankerOptions)
    overrides = help_overrides or {}
    for field in dataclasses.fields(RerankerOptions):
        name = field.name
        if name in exclude:
            continue
        flag = "--" + name.replace("_", "-")
        text = _cli_wording(overrides.get(name, RerankerOptions.help(name))).replace("%", "%%")
        default = field.default
        if name == "model":
            default = os.environ.get(MODEL_ENV, field.default)
            text += f" Default: ${MODEL_ENV}, else {field.default}."
        elif name == "cache":
            default = os.environ.get(CACHE_ENV) or field.default
            text += f" Default: ${CACHE_ENV} (a Redis URL kept out of `ps`), else {field.default}."
        elif default is not None and not isinstance(default, bool):
            text += " Default: %(default)s."
        kind = _unwrap_optional(hints[name])
        if kind is bool:
            # --trust-remote-code / --no-trust-remote-code; None (show_progress) means "auto".
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=text
            )
        elif typing.get_origin(kind) is Literal:
            choices = [str(c) for c in typing.get_args(kind)]
            group.add_argument(flag, choices=choices, default=default, help=text)
        elif set(typing.get_args(kind)) - {type(None)} == {int, str}:  # cache: size or name
            group.add_argument(
                flag,
                type=_option_value(name, _int_or_text),
                default=default,
                metavar=name.upper(),
                help=text,
            )
        elif kind is int and default is not None and hints[name] is not int:  # cache_ttl: N or off
            group.add_argument(
                flag, type=_option_value(name, _int_or_off), default=default, metavar="N", help=text
            )
        elif kind is int or kind is str:
            group.add_argument(
                flag,
                type=_option_value(name, _int if kind is int else _TEXT_VALUES.get(name, str)),
                default=default,
                metavar="N" if kind is int else name.upper(),
                help=text,
            )
        else:  # a new option of a new type: say so here rather than guess a parser
            raise TypeError(f"no command-line flag for option {name} of type {kind!r}")
    return group


_TEXT_VALUES: dict[str, Callable[[str], str]] = {
    "device": device_value,
    "calibration": existing_file,
}
"""Flags checked as they are parsed, before torch loads: a missing file, CUDA that is not here."""


def _cli_wording(text: str) -> str:
    """An option's help as the command line spells it: ``off`` where Python says ``None``."""
    return re.sub(r"\bNone\b", "off", text).replace("off (off)", "off")


def _int_or_off(text: str) -> int | None:
    """A whole number, or ``off``/``none`` as ``None``."""
    return None if text.strip().lower() in ("none", "off") else _int(text)


def _int_or_text(text: str) -> int | str | None:
    """A whole number as an int, ``none``/``off`` as ``None``, anything else as given."""
    if text.strip().lower() in ("none", "off"):
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _unwrap_optional(hint: Any) -> Any:
    """``X`` for ``X | None`` (an optional flag defaults to ``None``: not given); else ``hint``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _option_value(name: str, convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """A parser for option ``name``'s flag: ``convert`` the text, then check it as
    :class:`RerankerOptions` would, so the message names the flag, not a traceback."""

    def parse(text: str) -> Any:
        value = convert(text)
        try:
            RerankerOptions.from_kwargs(**{name: value})
        except (InvalidInputError, InvalidInputTypeError) as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{exc.field}: ")) from None
        return value

    parse.__name__ = name  # argparse names the type in "invalid <name> value" messages
    return parse


def reranker_options(args: argparse.Namespace, **changes: Any) -> RerankerOptions:
    """The :class:`RerankerOptions` of the parsed model flags, with ``changes`` (such as one
    ``model`` of a command that takes several)."""
    values = {name: getattr(args, name) for name in RerankerOptions.names()}
    return RerankerOptions(**{**values, **changes})


def load_reranker(options: RerankerOptions) -> Reranker:
    """Load the model (imports torch): raises :class:`~rag_rerank.ModelLoadError` when it
    cannot be loaded. A hub that cannot be reached is found before torch is imported."""
    check_hub_model(options.model, options.revision)
    from ..core import Reranker

    return Reranker(options)


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


def add_prune_options(parser: argparse.ArgumentParser) -> None:
    """``--prune`` and one ``--prune-<field>`` per :class:`PruneOptions` field (any of them
    turns pruning on; their defaults are PruneOptions')."""
    parser.add_argument(
        "--prune",
        action="store_true",
        help="cut each kept passage to the sentences that answer the query",
    )
    defaults = PruneOptions()
    for field in dataclasses.fields(PruneOptions):
        flag = "--prune-" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        help_text = _cli_wording(f"{field.metadata['help']} (default: {default})")
        dest = "prune_" + field.name
        if isinstance(default, bool):
            parser.add_argument(flag, dest=dest, action="store_true", default=None, help=help_text)
        else:
            converters: dict[str, Callable[[str], Any]] = {
                "threshold": float,
                "min_score": float,
                "context": non_negative_int,
            }
            convert = converters.get(field.name, non_empty)
            parser.add_argument(flag, dest=dest, type=convert, default=None, help=help_text)


def prune_from(args: argparse.Namespace) -> PruneOptions | None:
    """The :class:`PruneOptions` the ``--prune*`` flags ask for, or ``None`` (none given).

    Raises:
        InvalidInputError: A bad value (``field`` is ``prune.<name>``).
    """
    given = {
        field.name: getattr(args, "prune_" + field.name)
        for field in dataclasses.fields(PruneOptions)
        if getattr(args, "prune_" + field.name, None) is not None
    }
    return PruneOptions(**given) if given or args.prune else None


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
