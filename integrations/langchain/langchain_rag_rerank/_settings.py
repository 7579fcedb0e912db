"""What the compressor and the retriever share: their fields, the reranker they use, the copies."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from langchain_core.documents import Document
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from rag_rerank import DEFAULT_MODEL, Reranker, RerankResult
from rag_rerank.errors import InvalidInputTypeError

__all__ = ["RELEVANCE_SCORE_KEY", "RerankerLike"]

RELEVANCE_SCORE_KEY = "relevance_score"

# Fields that choose and load the model; meaningless (and so refused) next to ``reranker=``.
_MODEL_FIELDS = ("model", "device", "dtype", "max_length", "batch_tokens", "long_documents")


@runtime_checkable
class RerankerLike(Protocol):
    """Anything with the reranking API of :class:`rag_rerank.Reranker`.

    A local :class:`rag_rerank.Reranker` is one; a client of the rag-rerank HTTP server with the
    same ``rerank`` / ``arerank`` methods is another. Results are best first and carry the
    caller's ``index`` and the ``score`` in [0, 1].
    """

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> Sequence[RerankResult]:
        """Documents best first, at most ``top_n``, none scoring below ``threshold``."""
        ...

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | None = None,
    ) -> Sequence[RerankResult]:
        """Async :meth:`rerank`, awaiting the work without blocking the event loop."""
        ...


class RerankSettings(BaseModel):
    """Fields shared by :class:`RagRerank` and :class:`RagRerankRetriever`."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: str = Field(default=DEFAULT_MODEL, min_length=1)
    """Hugging Face hub id or local folder of the cross-encoder. Loaded once per process through
    ``Reranker.shared``, so every component naming the same model shares one copy."""

    top_n: int | None = Field(default=5, ge=1, strict=True)
    """Keep at most this many documents, best first (after the threshold). ``None`` keeps all."""

    score_threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, allow_inf_nan=False, strict=True
    )
    """Drop documents whose relevance score (in [0, 1]) is below this. ``None`` drops none."""

    reranker: RerankerLike | None = None
    """An existing reranker to use instead of loading ``model``: a ``rag_rerank.Reranker`` or any
    object with the same ``rerank`` / ``arerank`` methods (see :class:`RerankerLike`). When it is
    left out it is filled in with ``Reranker.shared(model, ...)``."""

    device: str | None = None
    """``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"cpu"``; ``None`` picks cuda > mps > cpu."""

    dtype: str | None = None
    """``"bf16"``, ``"fp16"`` or ``"fp32"``; ``None`` picks bf16/fp16 on GPUs and fp32 on CPU."""

    max_length: int = Field(default=512, ge=16, strict=True)
    """Tokens per (query, document) window, capped by the model."""

    batch_tokens: int | None = Field(default=None, ge=1, strict=True)
    """Padded tokens per forward pass; ``None`` picks a per-device default."""

    long_documents: Literal["chunk", "truncate"] = "chunk"
    """``"chunk"`` scores a long document as its best window; ``"truncate"`` keeps the first."""

    _reranker: RerankerLike = PrivateAttr()

    @field_validator("reranker", mode="before")
    @classmethod
    def _check_reranker(cls, value: Any) -> Any:
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
            conflicting = sorted(set(_MODEL_FIELDS) & self.model_fields_set)
            if conflicting:
                raise ValueError(
                    f"pass either reranker= or the model options {conflicting}, not both: "
                    "the reranker is already loaded with its own"
                )
            self._reranker = self.reranker
            return self
        options: dict[str, Any] = {
            "max_length": self.max_length,
            "long_documents": self.long_documents,
        }
        for name in ("device", "dtype", "batch_tokens"):
            if getattr(self, name) is not None:
                options[name] = getattr(self, name)
        self._reranker = Reranker.shared(self.model, **options)
        # Set without validation so that ``model_fields_set`` still says what the caller passed.
        object.__setattr__(self, "reranker", self._reranker)
        return self

    def _rerank_documents(self, documents: Sequence[Document], query: str) -> list[Document]:
        texts = _texts(documents)
        if not texts:
            return []
        results = self._reranker.rerank(
            query, texts, top_n=self.top_n, threshold=self.score_threshold
        )
        return _scored_copies(documents, results)

    async def _arerank_documents(self, documents: Sequence[Document], query: str) -> list[Document]:
        texts = _texts(documents)
        if not texts:
            return []
        results = await self._reranker.arerank(
            query, texts, top_n=self.top_n, threshold=self.score_threshold
        )
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
