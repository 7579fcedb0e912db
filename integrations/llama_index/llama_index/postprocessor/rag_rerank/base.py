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
from rag_rerank.api import (
    RerankerLike,
    RerankResult,
    Span,
    check_query,
    join_sentences,
    split_sentences,
)
from rag_rerank.errors import InvalidInputError

__all__ = [
    "KEPT_SPANS_KEY",
    "ORIGINAL_CONTENT_KEY",
    "RETRIEVAL_SCORE_KEY",
    "RagRerank",
    "SupportsRerank",
]

dispatcher = get_dispatcher(__name__)

RETRIEVAL_SCORE_KEY = "retrieval_score"
"""Metadata key under which a reranked node keeps the score it came in with."""

ORIGINAL_CONTENT_KEY = "original_content"
"""Metadata key of a pruned node's full text (its ``text`` is the pruned text)."""

KEPT_SPANS_KEY = "kept_spans"
"""Metadata key of a pruned node's kept sentences: ``[[start, end], ...]`` character offsets into
``metadata["original_content"]``."""

_OWN_KEYS = (RETRIEVAL_SCORE_KEY, ORIGINAL_CONTENT_KEY, KEPT_SPANS_KEY)

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

    With ``prune=True`` (or a ``rag_rerank.PruneOptions``), each copy's ``text`` is cut to the
    sentences that answer the query, the full text kept in ``metadata["original_content"]`` and
    the kept sentences' offsets into it in ``metadata["kept_spans"]`` (both, like the retrieval
    score, excluded from the embed and LLM text). ``max_context_tokens`` (with ``tokenizer``)
    keeps the best nodes that fit a token budget, and ``order="edges"`` puts the best at both
    ends of the context.

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
            context = self.context_arguments()
            return finish(
                reranker.rerank(query, texts, self.top_n, self.score_threshold, **context)
            )

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
            context = self.context_arguments()
            results = await reranker.arerank(
                query, texts, self.top_n, self.score_threshold, **context
            )
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
        metadata = {**node.metadata, RETRIEVAL_SCORE_KEY: original.score}
        update: dict[str, Any] = {"metadata": metadata}
        text = getattr(node, "text", None)
        if result.pruned_text is not None and isinstance(text, str):
            spans = _text_spans(result, text)
            update["text"] = join_sentences(text, spans)
            metadata[ORIGINAL_CONTENT_KEY] = text
            metadata[KEPT_SPANS_KEY] = [list(span) for span in spans]
        keys = [key for key in _OWN_KEYS if key in metadata]
        update["excluded_embed_metadata_keys"] = _plus(node.excluded_embed_metadata_keys, keys)
        update["excluded_llm_metadata_keys"] = _plus(node.excluded_llm_metadata_keys, keys)
        reranked.append(NodeWithScore(node=node.model_copy(update=update), score=result.score))
    return reranked


def _text_spans(result: RerankResult, text: str) -> list[Span]:
    """The kept spans of ``result`` (offsets into the scored content: the node's metadata lines,
    then its text) as offsets into the node's ``text``. The metadata lines are dropped; when only
    they were kept, the text's first sentence stands in, so the pruned text is never empty."""
    sentences = split_sentences(text)
    offset = result.document.rfind(text) if text else -1
    if offset < 0:  # a template that changes the text: its sentences found in the pruned text
        kept = [(s, e) for s, e in sentences if text[s:e] in (result.pruned_text or "")]
        return kept or sentences[:1]
    inside = [
        (start - offset, end - offset)
        for start, end in result.kept_spans or ()
        if start >= offset and end <= offset + len(text)
    ]
    return inside or sentences[:1]


def _plus(keys: list[str], added: list[str]) -> list[str]:
    # A new list either way: the copy must not share a mutable list with the caller's node.
    return [*keys, *(key for key in added if key not in keys)]
