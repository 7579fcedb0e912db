"""``RagRerank``: a LangChain document compressor that reranks with a cross-encoder."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict

from ._settings import RerankSettings

__all__ = ["RagRerank"]


class RagRerank(RerankSettings, BaseDocumentCompressor):
    """Reranks retrieved documents with a cross-encoder and keeps the best ``top_n``.

    Returns new ``Document``s, best first, each with the caller's ``id`` and metadata plus
    ``metadata["relevance_score"]``, the cross-encoder's relevance in [0, 1]. The documents passed
    in are never changed. Without ``reranker=``, the model is loaded once per process with
    ``rag_rerank.Reranker.shared``, so every component naming the same model shares it.

    Args:
        model: Hugging Face hub id or local folder (default ``"BAAI/bge-reranker-v2-m3"``).
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
        reranker: An existing ``rag_rerank.Reranker`` or ``rag_rerank.RemoteReranker`` (or any
            object with their ``rerank`` and ``arerank`` methods) to use instead of loading
            ``model``.
        options: A ``rag_rerank.RerankerOptions`` for the model to load.
        **reranker_options: Any ``rag_rerank.RerankerOptions`` field as a keyword: ``device``,
            ``dtype``, ``max_length``, ``batch_tokens``, ``long_documents``
            (``"windows"`` or ``"truncate"``), ``quantize``, ``revision``, ...

    Raises:
        pydantic.ValidationError: At construction, for a misspelt option, a bad ``top_n`` or
            ``score_threshold``, or a ``reranker`` without the reranking methods.
        rag_rerank.ModelLoadError: At construction, when the model cannot be loaded.

    Example:
        >>> from langchain_classic.retrievers import ContextualCompressionRetriever
        >>> retriever = ContextualCompressionRetriever(
        ...     base_compressor=RagRerank(top_n=5, score_threshold=0.3),
        ...     base_retriever=vectorstore.as_retriever(search_kwargs={"k": 50}),
        ... )  # doctest: +SKIP
    """

    # Set here, not only on RerankSettings: LangChain's base classes set their own ``extra``.
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank ``documents`` against ``query``: scored copies, best first, at most ``top_n``.

        Args:
            documents: The retrieved documents (not modified).
            query: The question.
            callbacks: Accepted for the LangChain interface; reranking emits no events itself.

        Returns:
            New documents with ``metadata["relevance_score"]``; ``[]`` for no documents.

        Raises:
            rag_rerank.InvalidInputError: An empty query.
            rag_rerank.InvalidInputTypeError: An item that is not a ``Document``.
        """
        return self._rerank_documents(documents, query, self.top_n, self.score_threshold)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`: awaits the reranker without blocking the event loop.

        Uses the reranker's own ``arerank`` rather than running the sync method in a thread.
        """
        return await self._arerank_documents(documents, query, self.top_n, self.score_threshold)
