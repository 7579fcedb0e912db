"""What the RAG pipeline returns: reranked chunks with their retrieval details, and what an
:meth:`~rag_rerank.rag.RerankPipeline.add` call did."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

__all__ = ["AddSummary", "PipelineResult", "PipelineResults"]


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """One retrieved and reranked chunk.

    Attributes:
        id: The chunk's id in the collection (``"<doc_id>#<chunk>"``).
        document: The chunk text, as indexed (named as in :class:`~rag_rerank.RerankResult`).
        metadata: A copy of the chunk's metadata: the caller's own keys plus ``source`` (file path,
            for files), ``doc_id``, ``chunk`` (position in the document), ``start`` (character
            offset), ``heading`` (Markdown) and ``content_hash``.
        rank: Position after reranking, 1 = best, among all ``k`` candidates.
        retrieval_rank: Position in the vector store's order, 1 = nearest.
        distance: The vector store's distance to the question (cosine distance by default).
        score: Rerank relevance in [0, 1] (sigmoid of ``raw_score``).
        raw_score: The cross-encoder's fp32 logit.
        pruned_text: With ``prune``, the chunk's sentences that answer the question, joined as
            in ``document``; ``None`` when not pruned.
        kept_spans: The kept sentences as ``(start, end)`` offsets into ``document``; ``None``
            when not pruned.
    """

    id: str
    document: str
    metadata: dict[str, Any]
    rank: int
    retrieval_rank: int
    distance: float
    score: float
    raw_score: float
    pruned_text: str | None = None
    kept_spans: tuple[tuple[int, int], ...] | None = None

    @property
    def text(self) -> str:
        """The text to hand to the LLM: ``pruned_text`` when pruned, else ``document``."""
        return self.document if self.pruned_text is None else self.pruned_text

    @property
    def rank_change(self) -> int:
        """How many places reranking moved the chunk up (negative: down)."""
        return self.retrieval_rank - self.rank

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {
            "rank": self.rank,
            "retrieval_rank": self.retrieval_rank,
            "id": self.id,
            "score": self.score,
            "raw_score": self.raw_score,
            "distance": self.distance,
            "document": self.document,
            "metadata": dict(self.metadata),
            **(
                {}
                if self.pruned_text is None
                else {
                    "pruned_text": self.pruned_text,
                    "kept_spans": [list(span) for span in self.kept_spans or ()],
                }
            ),
        }


@dataclass(frozen=True)
class PipelineResults(Sequence[PipelineResult]):
    """The answer to :meth:`RerankPipeline.query`: a sequence of the kept results, best first.

    Indexing, ``len`` and iteration see the kept results (after ``threshold`` and ``top_n``);
    ``candidates`` holds every retrieved chunk in reranked order, so you can see what was cut.
    Renders as a table in a terminal (``rich.print(results)``) and as cards in a notebook.

    Attributes:
        query: The question.
        results: The kept results, best first.
        candidates: All ``k`` retrieved chunks, best first.
        threshold: The score cutoff used, or ``None``.
        top_n: The most results kept, or ``None`` for all.
        k: Candidates asked of the vector store (fewer come back from a small collection).
    """

    query: str
    results: tuple[PipelineResult, ...]
    candidates: tuple[PipelineResult, ...]
    threshold: float | None
    top_n: int | None
    k: int

    @overload
    def __getitem__(self, index: int) -> PipelineResult: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[PipelineResult, ...]: ...
    def __getitem__(self, index: int | slice) -> PipelineResult | tuple[PipelineResult, ...]:
        return self.results[index]

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[PipelineResult]:
        return iter(self.results)

    @property
    def documents(self) -> list[str]:
        """The kept chunk texts (pruned where pruned), best first: the context to hand to an
        LLM."""
        return [r.text for r in self.results]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the settings, the kept results and the number of candidates."""
        return {
            "query": self.query,
            "k": self.k,
            "top_n": self.top_n,
            "threshold": self.threshold,
            "candidates": len(self.candidates),
            "results": [r.to_dict() for r in self.results],
        }

    def _repr_html_(self) -> str:
        from ..render import render_html

        return render_html(self.query, self.results, self.threshold, self.candidates)

    def __rich__(self) -> Any:
        from ..render import render_table

        return render_table(self.query, self.results, self.threshold, len(self.candidates))


@dataclass(frozen=True, slots=True)
class AddSummary:
    """What :meth:`RerankPipeline.add` did.

    Attributes:
        documents: Documents (texts and files) read.
        added: Chunks embedded and written (new, or changed since the last add).
        unchanged: Chunks already in the collection with the same text, left as they were.
        removed: Chunks of re-added documents that the new version no longer has, deleted.
        skipped: Files inside added directories passed over for their suffix (see
            ``TEXT_SUFFIXES``), and documents with no text.
        unreadable: ``(file, why)`` for each file that could not be read as text (binary, or
            not in the encoding asked for); nothing of it was indexed.
    """

    documents: int
    added: int
    unchanged: int
    removed: int
    skipped: tuple[str, ...] = field(default=())
    unreadable: tuple[tuple[str, str], ...] = field(default=())
