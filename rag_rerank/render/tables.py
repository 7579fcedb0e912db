"""Rich tables for terminals: results, plain RerankResult lists, the demo's comparison."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._common import (
    COMPARISON_TEXT_CHARS,
    TERMINAL_TEXT_CHARS,
    RetrievedResults,
    _arrow,
    _caption,
    _doc_id,
    _id,
    _preview,
    _rank,
    _retrieval_rank,
    _text,
)

if TYPE_CHECKING:
    from ..api import RerankResult

__all__ = [
    "print_comparison",
    "print_demo_summary",
    "render_comparison",
    "render_rerank_table",
    "render_table",
]


def render_table(
    query: str,
    results: Sequence[Any],
    threshold: float | None = None,
    candidates: int | None = None,
) -> Any:
    """A ``rich`` table of the results: rank, score, raw score, movement, id and text.

    Args:
        query: The question (the table's title).
        results: The results to list, best first.
        threshold: Scores at or above it are green, below it red. ``None``: all green.
        candidates: How many candidates the results were picked from, for the caption.

    Returns:
        A ``rich.table.Table``; print it with ``rich.print`` or a ``rich.console.Console``.
    """

    def cells(rank: int, result: Any) -> list[str]:
        retrieval_rank = _retrieval_rank(result)
        moved = "" if retrieval_rank is None else f"{retrieval_rank}{_arrow(retrieval_rank - rank)}"
        return [moved, _id(result)]

    columns = [("retrieval", {"justify": "right"}), ("id", {"overflow": "fold"})]
    return _score_table(query, results, threshold, candidates, columns, cells)


def render_rerank_table(
    query: str,
    results: Sequence[RerankResult],
    threshold: float | None = None,
    candidates: int | None = None,
    *,
    sources: Sequence[object] | None = None,
    source_header: str = "input",
) -> Any:
    """A ``rich`` table of plain :class:`~rag_rerank.RerankResult` lists, as
    ``Reranker.rerank`` and ``RemoteReranker.rerank`` return them: rank, score, raw score, where
    each document came from, and its text.

    Args:
        query: The query (the table's title).
        results: The results, best first.
        threshold: Scores at or above it are green, below it red. ``None`` (default): all green.
        candidates: How many documents were reranked, for the caption (default: not shown).
        sources: A label per input document, looked up by ``RerankResult.index`` (e.g. the line
            each was read from). ``None`` (default) shows the input index itself.
        source_header: The header of that column (default ``"input"``; e.g. ``"line"``).

    Returns:
        A ``rich.table.Table``; print it with ``rich.print`` or a ``rich.console.Console``.
    """

    def cells(rank: int, result: Any) -> list[str]:
        return [str(result.index if sources is None else sources[result.index])]

    columns = [(source_header, {"justify": "right"})]
    return _score_table(query, results, threshold, candidates, columns, cells)


def _score_table(
    query: str,
    results: Sequence[Any],
    threshold: float | None,
    candidates: int | None,
    columns: Sequence[tuple[str, dict[str, Any]]],
    cells: Callable[[int, Any], list[str]],
) -> Any:
    """The table both result tables are: rank, score, raw score, ``columns``, text."""
    from rich.table import Table
    from rich.text import Text

    caption = _caption(len(results), candidates, threshold)
    table = Table(title=f"Query: {query}", caption=caption, show_lines=True, expand=False)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("raw", justify="right", style="dim")
    for header, style in columns:
        table.add_column(header, **style)
    table.add_column("text", ratio=1)
    for position, result in enumerate(results, 1):
        rank = _rank(result, position)
        score = float(result.score)
        color = "green" if threshold is None or score >= threshold else "red"
        table.add_row(
            str(rank),
            Text(f"{score:.4f}", style=color),
            f"{result.raw_score:+.3f}",
            *cells(rank, result),
            _preview(_text(result), TERMINAL_TEXT_CHARS),
        )
    return table


def render_comparison(results: RetrievedResults, relevant: Sequence[str] = (), top: int = 5) -> Any:
    """The vector store's order next to the reranked order, row by row, as a ``rich`` table.

    Args:
        results: From :meth:`RerankPipeline.query <rag_rerank.rag.RerankPipeline.query>`; every
            candidate is compared, not only the kept ones.
        relevant: Document ids (a chunk's ``doc_id`` metadata, else its id) of the passages that
            answer the question; they are starred.
        top: Rows to show (default 5).

    Returns:
        A ``rich.table.Table``: distance on the left, score and former position on the right.
    """
    from rich.table import Table
    from rich.text import Text

    by_retrieval = sorted(results.candidates, key=lambda r: r.retrieval_rank)
    table = Table(
        title=f"[bold]{results.query}[/bold]",
        caption=f"{len(results.candidates)} candidates; ★ = the passage that answers the question",
        show_lines=True,
    )
    table.add_column("#", justify="right")
    table.add_column("vector store order (distance)", ratio=1)
    table.add_column("reranked order (score, from #)", ratio=1)
    for i in range(min(top, len(by_retrieval))):
        left, right = by_retrieval[i], results.candidates[i]
        left_cell = Text()
        star = "★ " if _doc_id(left) in relevant else ""
        left_cell.append(star + _doc_id(left), style="bold")
        left_cell.append(f" ({left.distance:.3f})\n", style="dim")
        left_cell.append(_preview(left.document, COMPARISON_TEXT_CHARS))
        color = "green" if results.threshold is None or right.score >= results.threshold else "red"
        right_cell = Text()
        star = "★ " if _doc_id(right) in relevant else ""
        right_cell.append(star + _doc_id(right), style="bold")
        right_cell.append(f" ({right.score:.4f}", style=color)
        right_cell.append(f", from #{right.retrieval_rank})\n", style="dim")
        right_cell.append(_preview(right.document, COMPARISON_TEXT_CHARS))
        table.add_row(str(i + 1), left_cell, right_cell)
    return table


def print_comparison(
    console: Any, results: RetrievedResults, relevant: Sequence[str] = (), top: int = 5
) -> tuple[int | None, int | None]:
    """Print :func:`render_comparison` and where the best answering passage landed.

    Args:
        console: A ``rich.console.Console``.
        results: From :meth:`RerankPipeline.query <rag_rerank.rag.RerankPipeline.query>`.
        relevant: Ids of the passages that answer the question (see :func:`render_comparison`).
        top: Rows to show (default 5).

    Returns:
        ``(retrieval rank, rerank rank)`` of the best-placed answering passage, each 1-based;
        ``(None, None)`` when none was among the candidates.
    """
    console.print(render_comparison(results, relevant, top))
    hits = [c for c in results.candidates if _doc_id(c) in relevant]
    if not hits:
        console.print("  the answering passage was not among the candidates\n")
        return None, None
    before = min(c.retrieval_rank for c in hits)
    after = min(c.rank for c in hits)
    console.print(f"  answering passage: vector store #{before} -> reranked #{after}\n")
    return before, after


def print_demo_summary(console: Any, summary: Sequence[tuple[str, int | None, int | None]]) -> None:
    """Print where the answering passage landed for each demo question, before and after
    reranking: ``summary`` holds ``(question, retrieval rank, rerank rank)`` from
    :func:`print_comparison` (``None`` when it was not among the candidates)."""
    from rich.table import Table

    table = Table(title="Where the answering passage landed (1 = first)")
    table.add_column("question", ratio=1)
    table.add_column("vector store", justify="right")
    table.add_column("reranked", justify="right")
    for question, before, after in summary:
        table.add_row(question, str(before or "-"), str(after or "-"))
    console.print(table)
    first_before = sum(1 for _, before, _ in summary if before == 1)
    first_after = sum(1 for _, _, after in summary if after == 1)
    # Mean reciprocal rank (0 for a question whose answer was not among the candidates).
    mrr_before = sum(1 / before for _, before, _ in summary if before) / len(summary)
    mrr_after = sum(1 / after for _, _, after in summary if after) / len(summary)
    console.print(
        f"answering passage's mean reciprocal rank: vector store {mrr_before:.2f}, "
        f"reranked {mrr_after:.2f}"
    )
    console.print(
        f"answering passage ranked first: vector store {first_before}/{len(summary)}, "
        f"reranked {first_after}/{len(summary)}"
    )
