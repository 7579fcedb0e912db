"""``rag-rerank score`` and ``rag-rerank rerank``: rerank texts given on the command line, in a
file or on stdin, with no vector store."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..api.checks import find_lone_surrogate
from ..errors import InvalidInputError
from .option_flags import (
    add_model_options,
    add_prune_options,
    load_reranker,
    prune_from,
    reranker_options,
)
from .options import add_context_options, add_selection_options, non_empty
from .output import console, error, model_line

if TYPE_CHECKING:
    from ..api import RerankResult
    from .options import Subparsers

__all__ = ["Candidate", "add_rerank", "add_score", "read_candidates"]

_SAMPLE_QUERY = "What is the capital of France?"
_SAMPLE_DOCUMENTS = [
    "Paris is the capital and most populous city of France.",
    "France is famous for its wine and cheese.",
    "Berlin is the capital of Germany.",
    "The Eiffel Tower stands in Paris, on the Champ de Mars.",
    "Capital gains tax applies when you sell an asset for a profit.",
]


# -- score --------------------------------------------------------------------------------------


def add_score(subparsers: Subparsers) -> None:
    """Register ``score``."""
    parser = subparsers.add_parser(
        "score",
        help="score documents against a query and print them best first",
        description="Score documents against a query (a built-in example when none are given).",
    )
    parser.add_argument("--query", "-q", type=non_empty, default=None, help="the query")
    parser.add_argument("documents", nargs="*", help="candidate passages")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_model_options(parser)
    parser.set_defaults(handler=score)


def score(args: argparse.Namespace) -> int:
    """Rerank the given documents (or the built-in example) and print all of them."""
    if args.documents and args.query is None:
        error("give the query with --query/-q (documents without a query cannot be scored)")
        return 2
    query = args.query or _SAMPLE_QUERY
    documents = args.documents or ([] if args.query else _SAMPLE_DOCUMENTS)
    reranker = load_reranker(reranker_options(args))
    results = reranker.rerank(query, documents)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], ensure_ascii=False))
        return 0
    print(model_line(reranker))
    print(f"query: {query}")
    for rank, r in enumerate(results, 1):
        print(f"{rank:>3}. {r.score:.4f}  (raw {r.raw_score:+.3f})  [{r.index}] {r.document}")
    return 0


# -- rerank -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """One candidate read by ``rerank``: its text, the 1-based line it came from and, for a
    JSON Lines object with an ``"id"``, that id."""

    text: str
    line: int
    id: Any = None
    has_id: bool = False


def add_rerank(subparsers: Subparsers) -> None:
    """Register ``rerank``."""
    parser = subparsers.add_parser(
        "rerank",
        help="rerank candidates read from a file or stdin (no vector store)",
        description="Rerank candidates against a query: one candidate per line, or JSON Lines "
        '(each line a JSON string or an object with "text" and optionally "id"). Blank lines are '
        "not candidates; each result reports the line it came from.",
    )
    parser.add_argument("--query", "-q", type=non_empty, required=True, help="the query")
    parser.add_argument(
        "--file", "-f", default=None, help="file of candidates (default: read stdin)"
    )
    parser.add_argument(
        "--jsonl",
        action="store_true",
        help="read JSON Lines (the default for a --file ending in .jsonl)",
    )
    add_selection_options(parser)
    add_prune_options(parser)
    add_context_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_model_options(parser)
    parser.set_defaults(handler=rerank)


def rerank(args: argparse.Namespace) -> int:
    """Read the candidates, rerank them and print the kept ones as JSON or a table."""
    if args.file is None:
        if sys.stdin.isatty():
            print(
                "rag-rerank rerank: error: give --file FILE or pipe candidates on stdin",
                file=sys.stderr,
            )
            return 2
        source = sys.stdin.read()
    else:
        try:
            with open(args.file, encoding="utf-8") as handle:
                source = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            error(f"cannot read {args.file}: {exc}")
            return 1
    jsonl = args.jsonl or (args.file is not None and args.file.endswith(".jsonl"))
    candidates = read_candidates(source, jsonl, args.file or "<stdin>")
    prune = prune_from(args)  # bad flags fail before the model loads
    if not candidates:
        error(f"{args.file or 'stdin'} has no candidates: give one per line")
        return 1
    reranker = load_reranker(reranker_options(args))
    ranked = reranker.rerank(
        args.query,
        [c.text for c in candidates],
        top_n=args.top_n,
        threshold=args.threshold,
        prune=prune,
        max_context_tokens=args.max_context_tokens,
        tokenizer=args.tokenizer,
        order=args.order,
    )
    if args.json:
        rows = [_row(rank, r, candidates[r.index]) for rank, r in enumerate(ranked, 1)]
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    from ..render import render_rerank_table

    out = console()
    out.print(model_line(reranker))
    out.print(
        render_rerank_table(
            args.query,
            ranked,
            args.threshold,
            len(candidates),
            sources=[c.line for c in candidates],
            source_header="line",
        )
    )
    return 0


def _row(rank: int, result: RerankResult, candidate: Candidate) -> dict[str, Any]:
    """A result's JSON: its rank, where it came from, then :meth:`RerankResult.to_dict`."""
    where: dict[str, Any] = {"rank": rank, "line": candidate.line}
    if candidate.has_id:
        where["id"] = candidate.id
    return {**where, **result.to_dict()}


def read_candidates(source: str, jsonl: bool, name: str = "<stdin>") -> list[Candidate]:
    """The candidates in ``source``: one per non-blank line, plain text or (``jsonl``) a JSON
    string or an object with a string ``"text"`` and optionally ``"id"``.

    Raises:
        InvalidInputError: A JSON Lines line that is not valid (``field`` is ``<name>, line N``,
            ``name`` being the file the text came from).
    """
    candidates: list[Candidate] = []
    for number, line in enumerate(source.split("\n"), 1):  # U+2028 may sit inside a line
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        if not jsonl:
            candidates.append(Candidate(line, number))
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"{name}, line {number}",
                f"is not valid JSON ({exc.msg}); give --jsonl only for JSON Lines files",
            ) from exc
        except RecursionError:
            raise InvalidInputError(f"{name}, line {number}", "is nested too deeply") from None
        if isinstance(value, str):
            candidates.append(Candidate(value, number))
        elif isinstance(value, dict) and isinstance(value.get("text"), str):
            candidates.append(Candidate(value["text"], number, value.get("id"), "id" in value))
        else:
            raise InvalidInputError(
                f"{name}, line {number}", 'must be a JSON string or an object with a string "text"'
            )
        if find_lone_surrogate(candidates[-1].text, "text"):
            raise InvalidInputError(
                f"{name}, line {number}", "contains a lone surrogate (not valid Unicode text)"
            )
    return candidates
