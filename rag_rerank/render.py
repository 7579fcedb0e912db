"""How reranked results look: HTML cards for notebooks and web pages, rich tables for terminals,
the demo's side-by-side comparison, and the calibration plots (reliability diagram, threshold
curves; matplotlib, imported when drawn). Nothing else in the package draws results.

The views take plain sequences of results, so the notebook view (``PipelineResults._repr_html_``),
the CLI and the HTTP server's page all draw the same thing. A result is any object with ``score``,
``raw_score`` and ``document`` (so both :class:`~rag_rerank.RerankResult` and
:class:`~rag_rerank.rag.PipelineResult` work); ``id`` (else ``index``) and ``retrieval_rank``
(else ``index + 1``) are used when present. :func:`render_rerank_table` draws plain
:class:`~rag_rerank.RerankResult` lists (no vector store) with where each document came from.

HTML markup, for styling and for tests: the view is a ``div.rr-view``; each kept result is a
``div.rr-card`` with ``data-rank``, ``data-score`` (4 decimals) and class ``rr-above`` (green,
score at or above the threshold, or no threshold) or ``rr-below`` (red). Inside a card:
``.rr-rank``, ``.rr-score``, ``.rr-raw`` (small grey), ``.rr-bar`` (width = score), ``.rr-text``
with the query's words in ``<mark>``. After the cards, ``details.rr-candidates`` holds a table of
every candidate (``tr.rr-candidate``): id, text, raw score, score, retrieval rank -> rerank rank.
All styles are inline, so notebook front ends that strip ``<style>`` tags show the same thing."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import RerankResult
    from .rag.results import PipelineResults

__all__ = [
    "ABOVE_COLOR",
    "BELOW_COLOR",
    "highlight",
    "plot_reliability",
    "plot_thresholds",
    "print_comparison",
    "query_terms",
    "render_comparison",
    "render_html",
    "render_rerank_table",
    "render_table",
]

ABOVE_COLOR = "#2e7d32"
"""Bar colour of a score at or above the threshold (green)."""

BELOW_COLOR = "#c62828"
"""Bar colour of a score below the threshold (red)."""

_TABLE_TEXT_CHARS = 200
_TERMINAL_TEXT_CHARS = 300
_COMPARISON_TEXT_CHARS = 110
_STOPWORDS = frozenset(
    (
        "a an and are as at be been but by can could did do does for from had has have how i if in "
        "into is it its me my of on or our so than that the their them then there these they this "
        "to was we were what when where which who whom why will with would you your"
    ).split()
)


def query_terms(query: str) -> list[str]:
    """The words of ``query`` worth highlighting: lower-cased, no stop words, no duplicates."""
    words = [w.lower() for w in re.findall(r"\w+", query)]
    terms = [w for w in words if w not in _STOPWORDS and (len(w) > 1 or not w.isascii())]
    return list(dict.fromkeys(terms or words))


def highlight(text: str, query: str) -> str:
    """``text`` HTML-escaped, with the query's words (and their plurals) wrapped in ``<mark>``."""
    terms = query_terms(query)
    if not terms:
        return html.escape(text)
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?:s|es)?(?!\w)", re.IGNORECASE)
    out: list[str] = []
    last = 0
    for match in pattern.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        out.append(f'<mark style="background:#fff59d;padding:0 1px">{html.escape(match[0])}</mark>')
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def render_html(
    query: str,
    results: Sequence[Any],
    threshold: float | None = None,
    candidates: Sequence[Any] | None = None,
) -> str:
    """One card per result and a collapsible table of every candidate, as an HTML fragment.

    Args:
        query: The question; its words are highlighted in the cards.
        results: The kept results, best first (a card each, ranked 1, 2, ...).
        threshold: The score cutoff: green bars at or above it, red below. ``None``: all green.
        candidates: Every candidate, best first, for the table; ``None`` shows no table.

    Returns:
        A self-contained ``<div class="rr-view">`` with inline styles.
    """
    parts = [
        '<div class="rr-view" style="font-family:system-ui,-apple-system,sans-serif;'
        'max-width:60em;line-height:1.4">',
        '<div class="rr-query" style="margin:4px 0 8px 0"><b>Query:</b> '
        f"{html.escape(query)}"
        f'<span style="color:#777;font-size:0.85em"> · {_summary(results, threshold, candidates)}'
        "</span></div>",
    ]
    if not results:
        parts.append(
            '<div class="rr-empty" style="color:#777;font-style:italic">No result'
            f"{' passed the threshold' if threshold is not None else ''}.</div>"
        )
    for position, result in enumerate(results, 1):
        parts.append(_card(query, result, _rank(result, position), threshold))
    if candidates is not None:
        parts.append(_candidate_table(candidates, threshold))
    parts.append("</div>")
    return "".join(parts)


def _summary(results: Sequence[Any], threshold: float | None, candidates: Any) -> str:
    pieces = [f"{len(results)} result{'s' if len(results) != 1 else ''}"]
    if candidates is not None:
        pieces[0] += f" of {len(candidates)} candidates"
    if threshold is not None:
        pieces.append(f"threshold {threshold:.4f}")
    return html.escape(", ".join(pieces))


def _card(query: str, result: Any, rank: int, threshold: float | None) -> str:
    score = float(result.score)
    above = threshold is None or score >= threshold
    color = ABOVE_COLOR if above else BELOW_COLOR
    width = max(0.0, min(100.0, score * 100.0))
    moved = ""
    retrieval_rank = _retrieval_rank(result)
    if retrieval_rank is not None:
        moved = (
            f'<span class="rr-moved" style="color:#777;font-size:0.8em">'
            f"retrieval #{retrieval_rank}{_arrow(retrieval_rank - rank)}</span>"
        )
    return (
        f'<div class="rr-card {"rr-above" if above else "rr-below"}" data-rank="{rank}" '
        f'data-score="{score:.4f}" style="border:1px solid #ddd;border-radius:8px;'
        'padding:8px 12px;margin:6px 0">'
        '<div class="rr-head" style="display:flex;gap:0.8em;align-items:baseline">'
        f'<span class="rr-rank" style="font-weight:bold">#{rank}</span>'
        f'<span class="rr-score" style="font-weight:bold;color:{color}">{score:.4f}</span>'
        f'<span class="rr-raw" style="color:#999;font-size:0.75em">raw {result.raw_score:+.4f}'
        "</span>"
        f'<span class="rr-id" style="color:#777;font-size:0.8em">{html.escape(_id(result))}</span>'
        f"{moved}</div>"
        '<div class="rr-bar-track" style="background:#eee;border-radius:3px;height:6px;'
        'margin:4px 0 6px 0">'
        f'<div class="rr-bar" style="width:{width:.2f}%;background:{color};height:6px;'
        'border-radius:3px"></div></div>'
        f'<div class="rr-text" style="white-space:pre-wrap">{highlight(_text(result), query)}'
        "</div></div>"
    )


def _candidate_table(candidates: Sequence[Any], threshold: float | None) -> str:
    head = "".join(
        f'<th style="text-align:left;padding:2px 6px">{h}</th>'
        for h in ("id", "text", "raw score", "score", "retrieval → rerank")
    )
    rows = []
    for position, candidate in enumerate(candidates, 1):
        rank = _rank(candidate, position)
        score = float(candidate.score)
        above = threshold is None or score >= threshold
        color = ABOVE_COLOR if above else BELOW_COLOR
        text = _text(candidate)
        short = _preview(text, _TABLE_TEXT_CHARS)
        retrieval_rank = _retrieval_rank(candidate)
        moved = f"{retrieval_rank} → {rank}" if retrieval_rank is not None else f"? → {rank}"
        rows.append(
            f'<tr class="rr-candidate {"rr-above" if above else "rr-below"}" '
            f'data-rank="{rank}" data-score="{score:.4f}">'
            f'<td style="padding:2px 6px">{html.escape(_id(candidate))}</td>'
            f'<td style="padding:2px 6px" title="{html.escape(text)}">{html.escape(short)}</td>'
            f'<td style="padding:2px 6px;color:#999">{candidate.raw_score:+.4f}</td>'
            f'<td style="padding:2px 6px;color:{color}">{score:.4f}</td>'
            f'<td style="padding:2px 6px">{moved}</td></tr>'
        )
    return (
        '<details class="rr-candidates" style="margin-top:8px">'
        f"<summary>All {len(candidates)} candidates</summary>"
        '<table style="border-collapse:collapse;font-size:0.85em">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></details>"
    )


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
            _preview(_text(result), _TERMINAL_TEXT_CHARS),
        )
    return table


def render_comparison(results: PipelineResults, relevant: Sequence[str] = (), top: int = 5) -> Any:
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
        left_cell.append(_preview(left.document, _COMPARISON_TEXT_CHARS))
        color = "green" if results.threshold is None or right.score >= results.threshold else "red"
        right_cell = Text()
        star = "★ " if _doc_id(right) in relevant else ""
        right_cell.append(star + _doc_id(right), style="bold")
        right_cell.append(f" ({right.score:.4f}", style=color)
        right_cell.append(f", from #{right.retrieval_rank})\n", style="dim")
        right_cell.append(_preview(right.document, _COMPARISON_TEXT_CHARS))
        table.add_row(str(i + 1), left_cell, right_cell)
    return table


def print_comparison(
    console: Any, results: PipelineResults, relevant: Sequence[str] = (), top: int = 5
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
    console.print(
        f"answering passage ranked first: vector store {first_before}/{len(summary)}, "
        f"reranked {first_after}/{len(summary)}"
    )


def _caption(count: int, candidates: int | None, threshold: float | None) -> str:
    caption = f"{count} result{'s' if count != 1 else ''}"
    if candidates is not None:
        caption += f" of {candidates} candidates"
    if threshold is not None:
        caption += f", threshold {threshold:.4f}"
    return caption


def _doc_id(result: Any) -> str:
    return str(result.metadata.get("doc_id", result.id))


def _preview(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with a visible ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rank(result: Any, position: int) -> int:
    value = getattr(result, "rank", None)
    return int(value) if isinstance(value, int) else position


def _arrow(change: int) -> str:
    if change > 0:
        return f" ▲{change}"
    if change < 0:
        return f" ▼{-change}"
    return " ="


def _text(result: Any) -> str:
    return str(result.document)


def _id(result: Any) -> str:
    value = getattr(result, "id", None)
    if value is None:
        value = getattr(result, "index", "")
    return str(value)


def _retrieval_rank(result: Any) -> int | None:
    value = getattr(result, "retrieval_rank", None)
    if value is None and isinstance(getattr(result, "index", None), int):
        return int(result.index) + 1
    return None if value is None else int(value)


# -- calibration plots (matplotlib, ``eval`` extra) ----------------------------------------------


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
