"""RagRerank: a LlamaIndex node postprocessor that reranks retrieved nodes with a cross-encoder."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from llama_index.core.bridge.pydantic import (
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from rag_rerank.api import (
    DEFAULT_MODEL,
    RerankerLike,
    RerankerOptions,
    RerankResult,
    check_query,
    check_selection,
    options_from,
)
from rag_rerank.errors import InvalidInputError

__all__ = ["RETRIEVAL_SCORE_KEY", "RagRerank", "SupportsRerank"]

dispatcher = get_dispatcher(__name__)

RETRIEVAL_SCORE_KEY = "retrieval_score"
"""Metadata key under which a reranked node keeps the score it came in with."""

SupportsRerank = RerankerLike
"""The name this package first gave the reranker protocol; it is ``rag_rerank.RerankerLike``."""


class RagRerank(BaseNodePostprocessor):
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

    model: str = Field(
        default=DEFAULT_MODEL,
        description="Hugging Face hub id or local folder of the cross-encoder. With `reranker`, "
        "defaults to that reranker's `model_name`.",
    )
    top_n: int | None = Field(
        default=5,
        description="Keep at most this many nodes (after the threshold); None keeps all.",
    )
    score_threshold: float | None = Field(
        default=None,
        description="Drop nodes whose relevance score (in [0, 1]) is below this.",
    )
    options: RerankerOptions | None = Field(
        default=None,
        description="Options of the reranker to load (a `rag_rerank.RerankerOptions` or a "
        "mapping of them). Each option may also be passed as a keyword (`device`, `dtype`, "
        "`max_length`, `batch_tokens`, `long_documents`, ...), which overrides it here. None "
        "(and refused) with `reranker`.",
    )
    reranker: RerankerLike | None = Field(
        default=None,
        exclude=True,
        description="An existing reranker (a `rag_rerank.Reranker`, a `RemoteReranker`, or any "
        "object with their `rerank`/`arerank` methods). None loads `Reranker.shared(options)`.",
    )

    @model_validator(mode="before")
    @classmethod
    def _gather_options(cls, data: Any) -> Any:
        # Option keywords become one RerankerOptions, checked by it. ``model`` is kept as a
        # field too: with ``reranker`` it may name that reranker's model.
        if not isinstance(data, dict):
            return data
        keywords = options_from(data)
        fields = {name: value for name, value in data.items() if name not in keywords}
        if data.get("reranker") is not None:
            given = sorted(set(keywords) - {"model"})
            if data.get("options") is not None:
                given.append("options")
            if given:
                raise ValueError(
                    f"{given[0]}: applies only when RagRerank loads the model; "
                    "set it on the reranker you pass instead"
                )
            return data
        base = fields.get("options")
        if isinstance(base, Mapping):
            base = RerankerOptions.from_kwargs(**base)
        elif base is not None and not isinstance(base, RerankerOptions):
            raise ValueError(f"options: must be a RerankerOptions or a mapping, got {base!r}")
        options = RerankerOptions.from_kwargs(base, **keywords)
        return {**fields, "options": options, "model": options.model}

    @field_validator("top_n", "score_threshold", mode="before")
    @classmethod
    def _check_selection(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name == "top_n":
            check_selection(value, None)
        else:
            check_selection(None, value, threshold_field="score_threshold")
        return value

    @field_validator("reranker", mode="plain")
    @classmethod
    def _check_reranker(cls, value: Any) -> Any:
        # Only the methods used here are required, so a minimal stand-in will do.
        if value is not None and not all(
            callable(getattr(value, name, None)) for name in ("rerank", "arerank")
        ):
            raise ValueError(
                "must be a rag_rerank.Reranker or an object with its rerank() and arerank() "
                f"methods, got {type(value).__name__}"
            )
        return value

    @model_validator(mode="after")
    def _resolve_reranker(self) -> RagRerank:
        if self.reranker is None:
            # Imported here: torch loads only when this postprocessor loads a model itself.
            from rag_rerank import Reranker

            self.reranker = Reranker.shared(self.options or RerankerOptions(model=self.model))
            return self
        name = getattr(self.reranker, "model_name", None)
        if isinstance(name, str):
            if "model" in self.model_fields_set and self.model != name:
                raise ValueError(
                    f"model: {self.model!r} differs from the given reranker's model {name!r}"
                )
            self.model = name
        return self

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
            return finish(self._reranker.rerank(query, texts, self.top_n, self.score_threshold))

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
            results = await self._reranker.arerank(query, texts, self.top_n, self.score_threshold)
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

    @property
    def _reranker(self) -> RerankerLike:
        assert self.reranker is not None  # set by _resolve_reranker
        return self.reranker

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
