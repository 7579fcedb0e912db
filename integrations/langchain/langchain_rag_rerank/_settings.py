"""What the compressor and the retriever share: their fields, the reranker they use, the copies."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from langchain_core.documents import Document
from pydantic import ConfigDict

from rag_rerank.adapters import RerankFields
from rag_rerank.api import RerankResult
from rag_rerank.errors import InvalidInputTypeError

__all__ = ["RELEVANCE_SCORE_KEY", "RerankSettings"]

RELEVANCE_SCORE_KEY = "relevance_score"


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
        results = self.loaded_reranker.rerank(query, texts, top_n=top_n, threshold=threshold)
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
        results = await self.loaded_reranker.arerank(query, texts, top_n=top_n, threshold=threshold)
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
    return [
        documents[result.index].model_copy(
            update={
                "metadata": {
                    **copy.deepcopy(documents[result.index].metadata),
                    RELEVANCE_SCORE_KEY: result.score,
                }
            }
        )
        for result in results
    ]
