"""What the compressor and the retriever share: their fields, the reranker they use, the copies."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from langchain_core.documents import Document
from pydantic import ConfigDict

from rag_rerank.adapters import RerankFields
from rag_rerank.api import RerankResult
from rag_rerank.errors import InvalidInputTypeError

__all__ = ["KEPT_SPANS_KEY", "ORIGINAL_CONTENT_KEY", "RELEVANCE_SCORE_KEY", "RerankSettings"]

RELEVANCE_SCORE_KEY = "relevance_score"
ORIGINAL_CONTENT_KEY = "original_content"
"""Metadata key of a pruned document's full ``page_content`` (its ``page_content`` is the
pruned text)."""
KEPT_SPANS_KEY = "kept_spans"
"""Metadata key of a pruned document's kept sentences: ``[[start, end], ...]`` character offsets
into ``metadata["original_content"]``."""


class RerankSettings(RerankFields):
    """Fields shared by :class:`RagRerank` and :class:`RagRerankRetriever`: those of
    :class:`rag_rerank.adapters.RerankFields` (``model``, ``top_n``, ``score_threshold``,
    ``options``, ``reranker``). Every option of :class:`rag_rerank.RerankerOptions`
    (``device``, ``dtype``, ``max_length``, ``batch_tokens``, ``long_documents``, ...) is accepted
    as a keyword and gathered into ``options``; none is declared here again.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    def _rerank_documents(
        self,
        documents: Sequence[Document],
        query: str,
        top_n: int | None,
        threshold: float | str | None,
    ) -> list[Document]:
        texts = _texts(documents)
        if not texts:
            return []
        reranker = self.loaded_reranker
        context = self.context_arguments()
        results = reranker.rerank(query, texts, top_n=top_n, threshold=threshold, **context)
        return _scored_copies(documents, results)

    async def _arerank_documents(
        self,
        documents: Sequence[Document],
        query: str,
        top_n: int | None,
        threshold: float | str | None,
    ) -> list[Document]:
        texts = _texts(documents)
        if not texts:
            return []
        reranker = self.loaded_reranker
        context = self.context_arguments()
        results = await reranker.arerank(query, texts, top_n=top_n, threshold=threshold, **context)
        return _scored_copies(documents, results)


def _texts(documents: Sequence[Document]) -> list[str]:
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise InvalidInputTypeError(
            "documents", f"must be a list of Documents, got {type(documents).__name__}"
        )
    for i, document in enumerate(documents):
        if not isinstance(document, Document):
            raise InvalidInputTypeError(
                f"documents[{i}]", f"must be a Document, got {type(document).__name__}"
            )
    return [document.page_content for document in documents]


def _scored_copies(
    documents: Sequence[Document], results: Sequence[RerankResult]
) -> list[Document]:
    # New Documents with copied metadata: the caller's documents and their metadata stay as given.
    copies = []
    for result in results:
        original = documents[result.index]
        metadata = {**copy.deepcopy(original.metadata), RELEVANCE_SCORE_KEY: result.score}
        update: dict[str, object] = {"metadata": metadata}
        if result.pruned_text is not None:
            update["page_content"] = result.pruned_text
            metadata[ORIGINAL_CONTENT_KEY] = original.page_content
            metadata[KEPT_SPANS_KEY] = [list(span) for span in result.kept_spans or ()]
        copies.append(original.model_copy(update=update))
    return copies
