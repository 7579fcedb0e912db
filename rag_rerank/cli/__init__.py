"""The ``rag-rerank`` command line.

One module per command group registers its commands (an ``add_<command>`` function that adds a
parser and its handler): :mod:`.rerank` (``score``, ``rerank``), :mod:`.index` (``index``,
``ask``), :mod:`.demo`, :mod:`.evaluate` (``eval``), :mod:`.calibrate`, :mod:`.serve`,
:mod:`.compare`, :mod:`.batch` and :mod:`.train`.
Shared helpers (the ``Subparsers`` type, value parsers, small shared flags) live in
:mod:`.options`, the flags generated from the options objects in :mod:`.option_flags`; no command
module imports another. Building the parser imports none of torch, transformers,
chromadb or fastapi: handlers import what they need when they run, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .. import __version__
from ..api.references import check_model_reference
from ..errors import ModelLoadError, RerankError
from .batch import add_batch
from .calibrate import add_calibrate
from .compare import add_compare
from .demo import add_demo
from .evaluate import add_eval
from .index import add_ask, add_index
from .models import model_specs
from .output import error
from .rerank import add_rerank, add_score
from .serve import add_serve
from .train import add_train

if TYPE_CHECKING:
    from .options import Subparsers

__all__ = ["build_parser", "main"]

_COMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    add_score,
    add_index,
    add_ask,
    add_rerank,
    add_demo,
    add_eval,
    add_calibrate,
    add_serve,
    add_compare,
    add_batch,
    add_train,
)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, which also names the flag meant when one is misspelt."""

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self._subcommands().get(getattr(parsed, "command", None) or "", self)
            command.error(
                f"unrecognized arguments: {' '.join(extras)}{_suggestion(command, extras)}"
            )
        return parsed

    def _subcommands(self) -> dict[str, argparse.ArgumentParser]:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}


def _suggestion(parser: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """`` (did you mean --top-n?)`` for the first unknown flag close to a known one, else ``""``."""
    known = list(parser._option_string_actions)
    for extra in extras:
        if extra.startswith("--"):
            close = difflib.get_close_matches(extra.split("=", 1)[0], known, n=1, cutoff=0.6)
            if close:
                return f" (did you mean {close[0]}?)"
    return ""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = _Parser(prog="rag-rerank", description="Cross-encoder reranking for RAG.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=argparse.ArgumentParser
    )
    for add in _COMMANDS:
        add(subparsers)
    for command in subparsers.choices.values():
        command.add_argument(
            "--verbose",
            "-v",
            action="store_true",
            help="show the libraries' logs and progress bars (hub requests, weight loading)",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rag-rerank`` console script; returns the exit code.

    Usage errors exit with 2 (argparse's ``SystemExit``); a model that cannot be loaded returns
    2 and any other :class:`~rag_rerank.RerankError` returns 1, each as one line on stderr;
    Ctrl-C returns 130. A ``--model`` that names a folder is checked before anything runs.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _set_verbosity(args.verbose)
    model = getattr(args, "model", None)
    try:
        references = model_specs(model).values() if isinstance(model, list) else [model]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    try:
        for reference in references:
            if reference:
                check_model_reference(reference)  # "no such folder: ./x", before torch loads
        for flag in ("base", "teacher"):  # train's other models, checked the same way
            _check_model_flag(flag, getattr(args, flag, None))
        return int(args.handler(args))
    except ModelLoadError as exc:
        error(str(exc))
        return 2
    except RerankError as exc:
        error(str(exc))
        return 1
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 130


def _check_model_flag(flag: str, reference: str | None) -> None:
    try:
        if reference:
            check_model_reference(reference)
    except ModelLoadError as exc:
        raise ModelLoadError(f"--{flag}: {exc}") from None


def _set_verbosity(verbose: bool) -> None:
    """Quiet by default: the libraries' retry warnings, "Loading weights" bars and info logs
    show only with ``--verbose`` (the commands' own progress bars stay)."""
    import logging

    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        os.environ["TRANSFORMERS_VERBOSITY"] = "info"  # asked for: wins over the environment
        return
    for name in ("huggingface_hub", "transformers", "sentence_transformers", "chromadb"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
