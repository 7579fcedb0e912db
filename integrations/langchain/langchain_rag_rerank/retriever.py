"""``RagRerankRetriever``: any LangChain retriever, reranked by a cross-encoder."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever, RetrieverLike
from pydantic import ConfigDict

from rag_rerank.api import check_selection

from ._settings import RerankSettings

__all__ = ["RagRerankRetriever"]


class RagRerankRetriever(RerankSettings, BaseRetriever):
    """Wraps a base retriever and returns its results reranked by a cross-encoder.

    Fetch many candidates from the base retriever (e.g. Chroma with ``k=50``) and keep the best
    ``top_n`` by cross-encoder relevance. Each returned ``Document`` is a copy with the caller's
    ``id`` and metadata plus ``metadata["relevance_score"]`` in [0, 1]. Works with ``invoke``,
    ``ainvoke``, ``batch`` and anywhere in an LCEL chain.

    ``top_n`` and ``score_threshold`` may also be given per call
    (``retriever.invoke(query, top_n=1)``, ``retriever.batch(queries, score_threshold=0.5)``);
    they are checked like the fields. Any other keyword goes to the base retriever
    (``retriever.invoke(query, k=100)`` for a vector store retriever).

    Args:
        base_retriever: The retriever (or any runnable from a query to documents) to rerank.
        top_n: Keep at most this many documents (default 5); ``None`` keeps all.
        score_threshold: Drop documents scoring below this, in [0, 1] (default ``None``).
        prune: ``True`` or a ``rag_rerank.PruneOptions``: each copy's ``page_content`` becomes
            the sentences that answer the query, with the full text in
            ``metadata["original_content"]`` and the kept sentences' ``[start, end]`` offsets
            into it in ``metadata["kept_spans"]``. Off by default.
        max_context_tokens: Keep the best documents whose text fits this many tokens together
            (instead of a fixed count; the last one cut at a sentence boundary). Default ``None``.
        tokenizer: How ``max_context_tokens`` counts: ``None`` (approximate), the LLM's
            Hugging Face tokenizer id or folder, a tokenizer object or a callable.
        order: ``"score"`` (best first, default) or ``"edges"`` (best at both ends).
        model: Hugging Face hub id or local folder (default ``"BAAI/bge-reranker-v2-m3"``),
            loaded once per process with ``rag_rerank.Reranker.shared``.
        reranker: An existing ``rag_rerank.Reranker`` or ``rag_rerank.RemoteReranker`` (or any
            object with their ``rerank`` and ``arerank`` methods) to use instead of loading
            ``model``.
        options: A ``rag_rerank.RerankerOptions`` for the model to load.
        **reranker_options: Any ``rag_rerank.RerankerOptions`` field as a keyword (``device``,
            ``dtype``, ``max_length``, ``batch_tokens``, ``long_documents``, ...).

    Raises:
        pydantic.ValidationError: At construction, for a misspelt option, a bad ``top_n`` or
            ``score_threshold``, or a ``reranker`` without the reranking methods.
        rag_rerank.ModelLoadError: At construction, when the model cannot be loaded.

    Example:
        >>> retriever = RagRerankRetriever(
        ...     base_retriever=vectorstore.as_retriever(search_kwargs={"k": 50}),
        ...     top_n=5,
        ...     score_threshold=0.3,
        ... )  # doctest: +SKIP
        >>> retriever.invoke("what do pandas eat?")  # doctest: +SKIP
        >>> retriever.invoke("what do pandas eat?", top_n=1)  # doctest: +SKIP
    """

    # Set here, not only on RerankSettings: LangChain's base classes set their own ``extra``.
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    base_retriever: RetrieverLike
    """The retriever whose results are reranked."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        top_n, threshold = self._selection(kwargs)
        documents = self.base_retriever.invoke(
            query, config={"callbacks": run_manager.get_child()}, **kwargs
        )
        return self._rerank_documents(documents, query, top_n, threshold)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        top_n, threshold = self._selection(kwargs)
        documents = await self.base_retriever.ainvoke(
            query, config={"callbacks": run_manager.get_child()}, **kwargs
        )
        return await self._arerank_documents(documents, query, top_n, threshold)

    def _selection(self, kwargs: dict[str, Any]) -> tuple[int | None, float | str | None]:
        """The per-call ``top_n`` and ``score_threshold`` (taken out of ``kwargs``, which go on to
        the base retriever), else the fields; checked before the base retriever runs."""
        top_n = kwargs.pop("top_n", self.top_n)
        threshold = kwargs.pop("score_threshold", self.score_threshold)
        check_selection(top_n, threshold, threshold_field="score_threshold")
        return top_n, threshold
