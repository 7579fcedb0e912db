"""What the compressor and the retriever share: their fields, the reranker they use, the copies."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rag_rerank.api import (
    DEFAULT_MODEL,
    RerankerLike,
    RerankerOptions,
    RerankResult,
    check_selection,
    options_from,
)
from rag_rerank.errors import InvalidInputTypeError

__all__ = ["RELEVANCE_SCORE_KEY", "RerankSettings"]

RELEVANCE_SCORE_KEY = "relevance_score"


class RerankSettings(BaseModel):
    """Fields shared by :class:`RagRerank` and :class:`RagRerankRetriever`.

    Every option of :class:`rag_rerank.RerankerOptions` (``device``, ``dtype``, ``max_length``,
    ``batch_tokens``, ``long_documents``, ...) is accepted as a keyword and gathered into
    ``options``; none is declared here again.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: str = DEFAULT_MODEL
    """Hugging Face hub id or local folder of the cross-encoder. Loaded once per process through
    ``Reranker.shared``, so every component naming the same model shares one copy."""

    top_n: int | None = 5
    """Keep at most this many documents, best first (after the threshold). ``None`` keeps all."""

    score_threshold: float | None = None
    """Drop documents whose relevance score (in [0, 1]) is below this. ``None`` drops none."""

    options: RerankerOptions | None = None
    """The options of the reranker to load (a ``rag_rerank.RerankerOptions`` or a mapping of
    them). Each option may also be passed as a keyword (``device="cpu"``, ``max_length=256``),
    which overrides the same option here. ``None`` (and refused) with ``reranker``."""

    reranker: RerankerLike | None = None
    """An existing reranker to use instead of loading ``model``: a ``rag_rerank.Reranker``, a
    ``rag_rerank.RemoteReranker`` or any object with their ``rerank`` / ``arerank`` methods. When
    it is left out it is filled in with ``Reranker.shared(options)``."""

    _reranker: RerankerLike = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _gather_options(cls, data: Any) -> Any:
        # Option keywords (``model`` included) become one RerankerOptions, checked by it.
        if not isinstance(data, dict):
            return data
        keywords = options_from(data)
        fields = {name: value for name, value in data.items() if name not in keywords}
        if fields.get("reranker") is not None:
            given = sorted(keywords) + (["options"] if fields.get("options") is not None else [])
            if given:
                raise ValueError(
                    f"pass either reranker= or the model options {given}, not both: "
                    "the reranker is already loaded with its own"
                )
            return fields
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
        if value is None:
            return value
        missing = [
            name for name in ("rerank", "arerank") if not callable(getattr(value, name, None))
        ]
        if missing:
            raise ValueError(
                "must be a rag_rerank.Reranker or an object with its rerank() and arerank() "
                f"methods; {type(value).__name__} has no {' or '.join(m + '()' for m in missing)}"
            )
        return value

    @model_validator(mode="after")
    def _resolve_reranker(self) -> RerankSettings:
        if self.reranker is not None:
            self._reranker = self.reranker
            return self
        # Imported here: torch loads only when this component loads a model itself.
        from rag_rerank import Reranker

        self._reranker = Reranker.shared(self.options or RerankerOptions(model=self.model))
        # Set without validation so that ``model_fields_set`` still says what the caller passed.
        object.__setattr__(self, "reranker", self._reranker)
        return self

    def _rerank_documents(
        self,
        documents: Sequence[Document],
        query: str,
        top_n: int | None,
        threshold: float | None,
    ) -> list[Document]:
        texts = _texts(documents)
        if not texts:
            return []
        results = self._reranker.rerank(query, texts, top_n=top_n, threshold=threshold)
        return _scored_copies(documents, results)

    async def _arerank_documents(
        self,
        documents: Sequence[Document],
        query: str,
        top_n: int | None,
        threshold: float | None,
    ) -> list[Document]:
        texts = _texts(documents)
        if not texts:
            return []
        results = await self._reranker.arerank(query, texts, top_n=top_n, threshold=threshold)
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
