"""What the views share: colours, text limits, how a result's fields are read, and the shape of
the retrieved results they compare (read by attribute: render imports no result class, so the
RAG results may draw themselves through render without an import loop)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

ABOVE_COLOR = "#2e7d32"
"""Bar colour of a score at or above the threshold (green)."""

BELOW_COLOR = "#c62828"
"""Bar colour of a score below the threshold (red)."""

TABLE_TEXT_CHARS = 200
TERMINAL_TEXT_CHARS = 300
COMPARISON_TEXT_CHARS = 110
STOPWORDS = frozenset(
    (
        "a an and are as at be been but by can could did do does for from had has have how i if in "
        "into is it its me my of on or our so than that the their them then there these they this "
        "to was we were what when where which who whom why will with would you your"
    ).split()
)


class RetrievedResult(Protocol):
    """A retrieved and reranked chunk, as the comparison reads it (a
    :class:`~rag_rerank.rag.PipelineResult` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def document(self) -> str: ...
    @property
    def metadata(self) -> Mapping[str, Any]: ...
    @property
    def rank(self) -> int: ...
    @property
    def retrieval_rank(self) -> int: ...
    @property
    def distance(self) -> float: ...
    @property
    def score(self) -> float: ...


class RetrievedResults(Protocol):
    """One question's candidates in reranked order, as the comparison reads them (a
    :class:`~rag_rerank.rag.PipelineResults` is one)."""

    @property
    def query(self) -> str: ...
    @property
    def candidates(self) -> Sequence[RetrievedResult]: ...
    @property
    def threshold(self) -> float | None: ...


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
    # What the LLM reads: the pruned text of a pruned result, else the whole document.
    pruned = getattr(result, "pruned_text", None)
    return str(result.document if pruned is None else pruned)


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
