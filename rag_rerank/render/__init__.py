"""How reranked results look: HTML cards for notebooks and web pages, rich tables for terminals,
the demo's side-by-side comparison, and the calibration plots (reliability diagram, threshold
curves; matplotlib, imported when drawn), in :mod:`.html`, :mod:`.tables` and :mod:`.plots`.
Nothing else in the package draws results.

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
All styles are inline, so notebook front ends that strip ``<style>`` tags show the same thing.

Imports point one way: the RAG results draw themselves (``_repr_html_``, ``__rich__``) through
these views, and the views read results by attribute (:class:`RetrievedResults` describes what
the comparison reads), never importing :mod:`rag_rerank.rag`."""

from ._common import ABOVE_COLOR, BELOW_COLOR, RetrievedResult, RetrievedResults
from .html import highlight, query_terms, render_html
from .plots import plot_reliability, plot_thresholds
from .tables import (
    print_comparison,
    print_demo_summary,
    render_comparison,
    render_rerank_table,
    render_table,
)

__all__ = [
    "ABOVE_COLOR",
    "BELOW_COLOR",
    "RetrievedResult",
    "RetrievedResults",
    "highlight",
    "plot_reliability",
    "plot_thresholds",
    "print_comparison",
    "print_demo_summary",
    "query_terms",
    "render_comparison",
    "render_html",
    "render_rerank_table",
    "render_table",
]
