"""RagRerank: a LlamaIndex node postprocessor that reranks retrieved nodes with a cross-encoder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from llama_index.core.bridge.pydantic import ConfigDict
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from rag_rerank.adapters import RerankFields
from rag_rerank.api import RerankerLike, RerankResult, check_query
from rag_rerank.errors import InvalidInputError

__all__ = ["RETRIEVAL_SCORE_KEY", "RagRerank", "SupportsRerank"]

dispatcher = get_dispatcher(__name__)

RETRIEVAL_SCORE_KEY = "retrieval_score"
"""Metadata key under which a reranked node keeps the score it came in with."""

SupportsRerank = RerankerLike
"""The name this package first gave the reranker protocol; it is ``rag_rerank.RerankerLike``."""


class RagRerank(RerankFields, BaseNodePostprocessor):
    """Reranks retrieved nodes with a cross-encoder and keeps the best ``top_n``.

    Each node is scored on the text LlamaIndex would embed for it
    (``node.get_content(metadata_mode=MetadataMode.EMBED)``). The result is a new list of new
    ``NodeWithScore`` objects, best first, whose ``score`` is the cross-encoder's relevance in
    [0, 1] and whose node is a copy carrying the incoming score in
    ``metadata["retrieval_score"]`` (excluded from the embed and LLM text, so it never reaches
    the prompt). The caller's nodes are left untouched.

    Without ``reranker``, the model is loaded once per process through ``Reranker.shared``: every
    ``RagRerank`` and every LangChain compressor from ``langchain-rag-rerank`` naming the same
    model and options share one instance. Every ``rag_rerank.RerankerOptions`` field may be
    passed as a keyword (``device``, ``dtype``, ``max_length``, ``batch_tokens``,
    ``long_documents``, ``quantize``, ...); they are gathered into ``options``.

    Example:
        >>> from llama_index.postprocessor.rag_rerank import RagRerank
        >>> rerank = RagRerank(top_n=5, score_threshold=0.2, batch_tokens=8192)  # doctest: +SKIP
        >>> engine = index.as_query_engine(similarity_top_k=50,
        ...                                node_postprocessors=[rerank])  # doctest: +SKIP
    """

    # A misspelt option must fail, not be dropped (LlamaIndex's components ignore extras).
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    @classmethod
    def class_name(cls) -> str:
        return "RagRerank"

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        query = _query_of(query_bundle)
        if not nodes:
            return []
        with self._reranking(nodes, query_bundle, query) as (texts, finish):
            reranker = self.loaded_reranker
            return finish(reranker.rerank(query, texts, self.top_n, self.score_threshold))

    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        query = _query_of(query_bundle)
        if not nodes:
            return []
        with self._reranking(nodes, query_bundle, query) as (texts, finish):
            # The reranker's own async path: awaits the engine, no thread shim.
            reranker = self.loaded_reranker
            results = await reranker.arerank(query, texts, self.top_n, self.score_threshold)
            return finish(results)

    @contextmanager
    def _reranking(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None, query: str
    ) -> Iterator[tuple[list[str], Callable[[list[RerankResult]], list[NodeWithScore]]]]:
        """What surrounds one reranker call, for the sync and async paths alike: yields the texts
        to score and ``finish``, which turns the reranker's results into the reranked nodes. The
        start event, the callback event and the end event come out in LlamaIndex's order."""
        texts = [item.node.get_content(metadata_mode=MetadataMode.EMBED) for item in nodes]
        self._emit_start(nodes, query_bundle)
        reranked: list[NodeWithScore] = []
        with self.callback_manager.event(
            CBEventType.RERANKING, payload=self._callback_payload(nodes, query)
        ) as event:

            def finish(results: list[RerankResult]) -> list[NodeWithScore]:
                reranked.extend(_rescored(nodes, results))
                event.on_end(payload={EventPayload.NODES: reranked})
                return reranked

            yield texts, finish
        dispatcher.event(ReRankEndEvent(nodes=reranked))

    def _event_top_n(self, nodes: list[NodeWithScore]) -> int:
        # The events need an int: with top_n=None every node is kept (before the threshold).
        return self.top_n if self.top_n is not None else len(nodes)

    def _emit_start(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> None:
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle,
                nodes=nodes,
                top_n=self._event_top_n(nodes),
                model_name=self.model,
            )
        )

    def _callback_payload(self, nodes: list[NodeWithScore], query: str) -> dict[str, Any]:
        return {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self.model,
            EventPayload.QUERY_STR: query,
            EventPayload.TOP_K: self._event_top_n(nodes),
        }


def _query_of(query_bundle: QueryBundle | None) -> str:
    # Checked before any event is emitted, whatever the reranker behind it.
    if query_bundle is None:
        raise InvalidInputError("query_bundle", "RagRerank needs the query: pass query_str or it")
    return check_query(query_bundle.query_str)


def _rescored(nodes: list[NodeWithScore], results: list[RerankResult]) -> list[NodeWithScore]:
    reranked = []
    for result in results:
        original = nodes[result.index]
        node = original.node
        copy = node.model_copy(
            update={
                "metadata": {**node.metadata, RETRIEVAL_SCORE_KEY: original.score},
                "excluded_embed_metadata_keys": _plus(node.excluded_embed_metadata_keys),
                "excluded_llm_metadata_keys": _plus(node.excluded_llm_metadata_keys),
            }
        )
        reranked.append(NodeWithScore(node=copy, score=result.score))
    return reranked


def _plus(keys: list[str]) -> list[str]:
    # A new list either way: the copy must not share a mutable list with the caller's node.
    return list(keys) if RETRIEVAL_SCORE_KEY in keys else [*keys, RETRIEVAL_SCORE_KEY]
