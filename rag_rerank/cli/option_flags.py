"""Flags generated from the options objects, one per field with its type, default and help:
the model flags (:class:`~rag_rerank.api.RerankerOptions`), the pruning flags
(:class:`~rag_rerank.api.PruneOptions`) and ``train``'s flags
(:class:`~rag_rerank.api.TrainingOptions`); and the options the parsed flags make.

Light on purpose: building a parser imports this module, and ``rag-rerank --help`` must not pay
for torch. The model loads inside :func:`load_reranker`, when a command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, Literal

from ..api import PruneOptions, RerankerOptions, TrainingOptions
from ..core.hub import check_hub_model
from ..errors import RerankError
from .options import device_value, existing_file, non_empty, non_negative_int, number, whole_number

if TYPE_CHECKING:
    from ..core import Reranker

__all__ = [
    "CACHE_ENV",
    "MODEL_ENV",
    "add_model_options",
    "add_option_flags",
    "add_prune_options",
    "add_training_options",
    "load_reranker",
    "prune_from",
    "reranker_options",
    "training_options",
]

MODEL_ENV = "RAG_RERANK_MODEL"
"""Environment variable that sets the default of ``--model``."""

CACHE_ENV = "RAG_RERANK_CACHE_URL"
"""Environment variable that sets the default of ``--cache``: a Redis URL given here keeps its
password out of the process list (``ps``), where a ``--cache`` flag shows it."""

_PARSERS: dict[type, Callable[[str], Any]] = {int: whole_number, float: number, str: str}


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
    library = RerankerOptions()
    add_option_flags(
        group,
        RerankerOptions,
        help={
            "model": f"{RerankerOptions.help('model')} Default: ${MODEL_ENV}, else "
            f"{library.model}.",
            "cache": f"{RerankerOptions.help('cache')} Default: ${CACHE_ENV} (a Redis URL kept "
            f"out of `ps`), else {library.cache}.",
            **(help_overrides or {}),
        },
        defaults={
            "model": os.environ.get(MODEL_ENV, library.model),
            "cache": os.environ.get(CACHE_ENV) or library.cache,
        },
        parsers={
            # Checked as they are parsed, before torch loads: CUDA that is not here, a missing file.
            "device": _option_value(RerankerOptions, "device", device_value),
            "calibration": _option_value(RerankerOptions, "calibration", existing_file),
        },
        exclude=exclude,
    )
    return group


def add_option_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    options: type[Any],
    *,
    help: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    parsers: Mapping[str, Callable[[str], Any]] | None = None,
    exclude: Collection[str] = (),
    flags: Mapping[str, str] | None = None,
    metavars: Mapping[str, str] | None = None,
    repeated: Collection[str] = (),
) -> None:
    """One flag per field of the frozen options class ``options`` (``max_length`` ->
    ``--max-length``) with the field's type, default and help text (``options.help(name)``).
    Each value is checked by ``options.from_kwargs`` as it is parsed, so a bad one is a usage
    error naming the flag.

    Args:
        parser: The parser or argument group to add the flags to.
        options: :class:`RerankerOptions`, :class:`~rag_rerank.api.ServerOptions`,
            :class:`~rag_rerank.api.TrainingOptions`...
        help: Help text by field name, instead of the field's.
        defaults: Defaults by field name instead of the field's (from the environment); their
            help text says the default itself.
        parsers: Value parsers by field name, used as given (without the options' check).
        exclude: Fields that get no flag.
        flags: Flag names by field name, instead of the field's name with dashes.
        metavars: Metavariables by field name, instead of ``N`` or the name in capitals.
        repeated: Fields whose flag may be given several times, each adding one item.
    """
    hints = typing.get_type_hints(options)
    help, defaults, parsers = help or {}, defaults or {}, parsers or {}
    flags, metavars = flags or {}, metavars or {}
    for field in dataclasses.fields(options):
        name = field.name
        if name in exclude:
            continue
        flag = flags.get(name, "--" + name.replace("_", "-"))
        text = _cli_wording(help.get(name, options.help(name))).replace("%", "%%")
        default = defaults.get(name, field.default)
        if name not in defaults and default is not None and not isinstance(default, bool):
            text += f" Default: {_shown(name, default)}."
        kind = _unwrap_optional(hints[name])
        if kind is bool:
            # --trust-remote-code / --no-trust-remote-code; None (show_progress) means "auto".
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=text
            )
            continue
        if typing.get_origin(kind) is Literal:
            choices = [str(c) for c in typing.get_args(kind)]  # all lower case: INFO works too
            parser.add_argument(flag, type=str.lower, choices=choices, default=default, help=text)
            continue
        if name in parsers:
            convert = parsers[name]
        elif name in repeated:
            convert = str
        elif set(typing.get_args(kind)) - {type(None)} == {int, str}:  # cache: size or name
            convert = _option_value(options, name, _int_or_text)
        elif kind in (int, float) and default is not None and hints[name] is not kind:  # N or off
            convert = _option_value(options, name, _number_or_off(_PARSERS[kind]))
        elif kind in (int, float, str):
            convert = _option_value(options, name, _PARSERS[kind])
        else:  # a new option of a new type: say so here rather than guess a parser
            raise TypeError(f"no command-line flag for option {name} of type {kind!r}")
        metavar = metavars.get(name, "N" if kind is int else name.upper())
        action = "append" if name in repeated else "store"
        if name in repeated:
            text += " Repeatable: one each."
        parser.add_argument(
            flag,
            dest=name,
            type=convert,
            default=default,
            metavar=metavar,
            action=action,
            help=text,
        )


def _shown(name: str, default: object) -> str:
    """A default as the help text shows it: sizes in MiB, floats without trailing zeros."""
    if name.endswith("_bytes") and isinstance(default, int) and default % 2**20 == 0:
        return f"{default // 2**20} MiB"
    return f"{default:g}" if isinstance(default, float) else str(default)


def _cli_wording(text: str) -> str:
    """An option's help as the command line spells it: ``off`` where Python says ``None``."""
    return re.sub(r"\bNone\b", "off", text).replace("off (off)", "off")


def _number_or_off(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """``convert``, or ``off``/``none`` as ``None``."""

    def parse(text: str) -> Any:
        return None if text.strip().lower() in ("none", "off") else convert(text)

    return parse


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


def _option_value(
    options: type[Any], name: str, convert: Callable[[str], Any]
) -> Callable[[str], Any]:
    """A parser for option ``name``'s flag: ``convert`` the text, then check it as ``options``
    would, so the message names the flag, not a traceback."""

    def parse(text: str) -> Any:
        value = convert(text)
        try:
            options.from_kwargs(**{name: value})
        except RerankError as exc:  # its message starts with the option's name
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{name}: ")) from None
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


# -- pruning flags ------------------------------------------------------------------------------


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


# -- training flags -----------------------------------------------------------------------------


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`~rag_rerank.api.TrainingOptions` field, with its default and help;
    ``--steps`` also takes 0 (``train --prune --steps 0`` only adds a pruning head)."""
    add_option_flags(
        parser,
        TrainingOptions,
        help={"steps": "Optimizer steps; 0 with --prune: only add a pruning head to --base."},
        parsers={"steps": non_negative_int, "device": device_value},
    )


def training_options(args: argparse.Namespace) -> TrainingOptions:
    """The :class:`~rag_rerank.api.TrainingOptions` of the parsed training flags."""
    return TrainingOptions(**{name: getattr(args, name) for name in TrainingOptions.names()})
