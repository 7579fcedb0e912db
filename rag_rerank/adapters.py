"""What the LangChain and LlamaIndex packages share: their reranking fields, declared once.

:class:`RerankFields` is a pydantic mixin: ``model``, ``top_n``, ``score_threshold``, ``options``
(every :class:`~rag_rerank.RerankerOptions` field, also accepted as a keyword) and ``reranker``,
with their checks and the shared model loading. The framework packages add only what is
theirs: converting documents or nodes to texts, the copies with scores, the framework's events.
Needs pydantic (both frameworks bring it); imports no torch until a model is loaded.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .api import (
    DEFAULT_MODEL,
    ContextOrder,
    PruneOptions,
    RerankerLike,
    RerankerOptions,
    check_reranker,
    check_selection_field,
    context_request,
    prune_options,
    split_options,
)

__all__ = ["RerankFields"]


class RerankFields(BaseModel):
    """The fields of a reranking component, and the reranker they resolve to.

    Without ``reranker``, the model is loaded once per process through
    :meth:`Reranker.shared <rag_rerank.Reranker.shared>` with ``options``, so every component
    naming the same model and load options shares one copy. With ``reranker``, options are
    refused (it is loaded with its own), and ``model`` takes the reranker's ``model_name``; a
    ``RemoteReranker`` that chose no model is pointed at the server's model named by ``model``
    (``rag-rerank serve --model NAME=PATH``).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: str = Field(
        default=DEFAULT_MODEL,
        description="Hugging Face hub id or local folder of the cross-encoder. With `reranker`, "
        "that reranker's `model_name`.",
    )
    top_n: int | None = Field(
        default=5, description="Keep at most this many, best first (after the threshold)."
    )
    score_threshold: float | Literal["calibrated"] | None = Field(
        default=None,
        description="Drop those whose relevance score (in [0, 1]) is below this; 'calibrated': "
        "the recommended threshold of the reranker's calibration (the `calibration` option).",
    )
    options: RerankerOptions | None = Field(
        default=None,
        description="Options of the reranker to load (a `rag_rerank.RerankerOptions` or a "
        "mapping of them). Each option may also be passed as a keyword (`device`, `dtype`, "
        "`max_length`, `batch_tokens`, `long_documents`, ...), which overrides it here.",
    )
    reranker: RerankerLike | None = Field(
        default=None,
        exclude=True,
        description="An existing reranker: a `rag_rerank.Reranker`, a `RemoteReranker` or any "
        "object with their `rerank`/`arerank` methods. None loads `Reranker.shared(options)`.",
    )

    prune: PruneOptions | None = Field(
        default=None,
        description="Cut each kept text to the sentences that answer the query: True (the "
        "defaults) or a `rag_rerank.PruneOptions` (or a mapping of its fields). None or False: "
        "whole texts (default).",
    )
    max_context_tokens: int | None = Field(
        default=None,
        description="Keep the best texts that fit this many tokens together (after pruning), "
        "cutting the last at a sentence boundary; None (default): no budget.",
    )
    tokenizer: Any = Field(
        default=None,
        exclude=True,
        description="How max_context_tokens counts: None (a fast approximate count), the LLM's "
        "Hugging Face tokenizer id or folder, a tokenizer object or a callable.",
    )
    order: ContextOrder = Field(
        default="score",
        description="'score' (best first, default) or 'edges' (the best at both ends, as "
        "LangChain's LongContextReorder).",
    )

    @field_validator("prune", mode="before")
    @classmethod
    def _check_prune(cls, value: Any) -> Any:
        try:
            return prune_options(value)
        except TypeError as exc:  # pydantic reports ValueErrors only: keep the message
            raise ValueError(str(exc)) from exc

    @model_validator(mode="after")
    def _check_context(self) -> RerankFields:
        try:
            context_request(self.prune, self.max_context_tokens, self.tokenizer, self.order)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc
        return self

    def context_arguments(self) -> dict[str, Any]:
        """The ``prune``, ``max_context_tokens``, ``tokenizer`` and ``order`` keywords of a
        ``rerank`` call, only those set (so a reranker without them works while they are off)."""
        arguments = {
            "prune": self.prune,
            "max_context_tokens": self.max_context_tokens,
            "tokenizer": self.tokenizer,
        }
        given = {name: value for name, value in arguments.items() if value is not None}
        return given if self.order == "score" else {**given, "order": self.order}

    @model_validator(mode="before")
    @classmethod
    def _gather_options(cls, data: Any) -> Any:
        # Option keywords become one RerankerOptions, checked by it.
        if not isinstance(data, dict):
            return data
        fields, options, given = split_options(data)
        if data.get("reranker") is not None:
            given = [name for name in given if name != "model"]  # checked against the reranker
            if given:
                raise ValueError(
                    f"pass either reranker= or the model options {given}, not both: "
                    "the reranker is already loaded with its own"
                )
            return {**fields, **({"model": data["model"]} if "model" in data else {})}
        return {**fields, "options": options, "model": options.model}

    @field_validator("top_n", "score_threshold", mode="before")
    @classmethod
    def _check_selection(cls, value: Any, info: ValidationInfo) -> Any:
        check_selection_field(str(info.field_name), value)
        return value

    @field_validator("reranker", mode="plain")
    @classmethod
    def _check_reranker(cls, value: Any) -> Any:
        if value is not None:
            check_reranker(value)
        return value

    @model_validator(mode="after")
    def _resolve_reranker(self) -> RerankFields:
        # Set without validation so that ``model_fields_set`` still says what the caller passed.
        if self.reranker is None:
            from .core import Reranker  # torch loads only when a component loads a model itself

            loaded = Reranker.shared(self.options or RerankerOptions(model=self.model))
            object.__setattr__(self, "reranker", loaded)
            return self
        with_model = getattr(self.reranker, "with_model", None)
        # A RemoteReranker that chose no model: ask its server for the one named here.
        if (
            "model" in self.model_fields_set
            and callable(with_model)
            and getattr(self.reranker, "model", None) is None
        ):
            object.__setattr__(self, "reranker", with_model(self.model))
        name = getattr(self.reranker, "model_name", None)
        if isinstance(name, str):
            if "model" in self.model_fields_set and self.model != name:
                raise ValueError(
                    f"model: {self.model!r} differs from the given reranker's model {name!r}"
                )
            object.__setattr__(self, "model", name)
        return self

    @property
    def loaded_reranker(self) -> RerankerLike:
        """The reranker in use: the one given, or the shared one loaded for ``options``."""
        assert self.reranker is not None  # set by _resolve_reranker
        return self.reranker
