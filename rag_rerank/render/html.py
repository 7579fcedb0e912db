"""HTML cards for notebooks and web pages (see the package docstring for the markup)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from ._common import (
    ABOVE_COLOR,
    BELOW_COLOR,
    STOPWORDS,
    TABLE_TEXT_CHARS,
    _arrow,
    _id,
    _preview,
    _rank,
    _retrieval_rank,
    _text,
)

__all__ = ["highlight", "query_terms", "render_html"]


def query_terms(query: str) -> list[str]:
    """The words of ``query`` worth highlighting: lower-cased, no stop words, no duplicates."""
    words = [w.lower() for w in re.findall(r"\w+", query)]
    terms = [w for w in words if w not in STOPWORDS and (len(w) > 1 or not w.isascii())]
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
        short = _preview(text, TABLE_TEXT_CHARS)
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
