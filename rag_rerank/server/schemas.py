"""Request and response bodies of the HTTP service (pydantic v2).

Three request shapes reach the same rerankers:

- ``POST /rerank``: Hugging Face text-embeddings-inference (TEI), plus an optional ``model``.
- ``POST /v1/rerank``: Cohere's and Jina's rerank API.
- ``POST /v2/rerank``: Cohere's current API version (``cohere.ClientV2``).

A ``model`` field picks a served model by name; without one, the server's split or its default
model answers.

Both accept an extra ``score_threshold`` (compared with the [0, 1] score; ``"calibrated"``: the
recommended threshold of the server's ``--calibration`` file). All three accept ``"prune": true``
(or an object of :class:`~rag_rerank.PruneOptions` fields), which adds ``pruned_text`` (TEI's
field name) and ``kept_spans`` to each result. Unknown fields are refused with 422, so a
misspelt option never silently does nothing. Each response schema builds its wire body from the
results (``from_results``). The bodies of ``/health``, ``/ready``, ``/info`` and the errors are
in :mod:`.status` (importable from here too).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from ..api import RerankResult
from .status import ErrorResponse, InfoResponse, ModelInfo, ShadowSummary, StatusResponse

__all__ = [
    "CleanRequest",
    "CleanResponse",
    "CohereDocument",
    "CohereRerankRequest",
    "CohereRerankResponse",
    "CohereResult",
    "CohereV2RerankRequest",
    "CohereV2RerankResponse",
    "CohereV2Result",
    "ErrorResponse",
    "InfoResponse",
    "ModelInfo",
    "ShadowSummary",
    "StatusResponse",
    "TEIRank",
    "TEIRerankRequest",
    "Usage",
]


Threshold = float | Literal["calibrated"] | None
"""A score cutoff in [0, 1], or ``"calibrated"`` (checked by :func:`_threshold`)."""


def _threshold(value: object) -> object:
    # Checked before the union so that an error names the field, not a member of the union.
    if value is None or value == "calibrated":
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number in [0, 1] or 'calibrated'")
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise ValueError(f"must be in [0, 1], got {value}")
    return value


def _upto_first_bad_text(value: object) -> object:
    # Cut the list after its first non-string so that pydantic reports that one item only: an
    # 8 MiB body of integers would otherwise build millions of error objects (a minute of CPU
    # and gigabytes) for a 422 that names only the first.
    if type(value) is list:
        for i, item in enumerate(value):
            if type(item) is not str:
                return value[: i + 1]
    return value


def _upto_first_bad_document(value: object) -> object:
    # As _upto_first_bad_text; an item may also be {"text": string}.
    if type(value) is list:
        for i, item in enumerate(value):
            if type(item) is str:
                continue
            if type(item) is dict and len(item) == 1 and type(item.get("text")) is str:
                continue
            return value[: i + 1]
    return value


Prune = StrictBool | dict[str, Any] | None
"""``true``, ``false``, absent, or an object of PruneOptions fields (checked by the core, whose
errors name ``prune.<field>``)."""

_PRUNE_HELP = (
    "Cut each result to the sentences that answer the query: true, or an object of PruneOptions "
    'fields ({"threshold": 0.5, "context": 0, "keep_first": false, ...}); adds '
    "pruned_text and kept_spans to each result. Scores and order do not change."
)
_PRUNED_TEXT_HELP = "The kept sentences, joined as in the text (with prune)."
_KEPT_SPANS_HELP = "The kept sentences as [start, end] character offsets into the text (prune)."


class _Body(BaseModel):
    """A request body: unknown fields refused, the first one only.

    pydantic's ``extra="forbid"`` reports every unknown key, each with its value: a body of
    700,000 unknown keys cost seconds and a gigabyte before its 422. The keys are checked first
    and all unknown ones but the first dropped, so validation reports that one alone.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _first_unknown_key_only(cls, value: Any) -> Any:
        if type(value) is not dict:
            return value
        fields = cls.model_fields
        for key in value:
            if key not in fields:  # the known fields and this key: never a copy of them all
                return {k: value[k] for k in fields if k in value} | {key: value[key]}
        return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


class TEIRerankRequest(_Body):
    """``POST /rerank`` body, as in text-embeddings-inference."""

    query: StrictStr = Field(description="The question the texts are ranked against.")
    texts: list[StrictStr] = Field(min_length=1, description="Candidate passages (strings).")
    model: StrictStr | None = Field(
        default=None,
        description="A served model's name (an extension; TEI clients do not send it). Absent: "
        "the server's split or default model.",
    )
    truncate: StrictBool | None = Field(
        default=None,
        description="True scores only the first window of a long text; false or absent uses the "
        "server's mode (long texts are scored as their best overlapping window by default).",
    )
    raw_scores: StrictBool = Field(
        default=False, description="Return the model's logit instead of the [0, 1] score."
    )
    return_text: StrictBool = Field(default=False, description="Echo each text in its result.")
    score_threshold: Threshold = Field(
        default=None,
        description="Drop results whose [0, 1] score is below this; 'calibrated': the "
        "recommended threshold of the server's calibration file.",
    )
    prune: Prune = Field(default=None, description=_PRUNE_HELP)

    _check_query = field_validator("query")(_non_blank)
    _check_threshold = field_validator("score_threshold", mode="before")(_threshold)
    _first_bad_text = field_validator("texts", mode="before")(_upto_first_bad_text)


class TEIRank(BaseModel):
    """One ranked text; the response is a list of these, best first."""

    index: int = Field(description="Position of the text in the request.")
    score: float = Field(description="Relevance in [0, 1], or the logit with raw_scores.")
    text: str | None = Field(default=None, description="The text, with return_text.")
    pruned_text: str | None = Field(default=None, description=_PRUNED_TEXT_HELP)
    kept_spans: list[list[int]] | None = Field(default=None, description=_KEPT_SPANS_HELP)

    @classmethod
    def from_results(
        cls, results: Sequence[RerankResult], *, raw_scores: bool, return_text: bool
    ) -> list[dict[str, Any]]:
        """The ``/rerank`` response body (JSON-ready, absent fields left out): the logit as
        ``score`` with ``raw_scores``, the text with ``return_text``."""
        return [
            _wire(
                r,
                index=r.index,
                score=r.raw_score if raw_scores else r.score,
                text=r.document if return_text else None,
            )
            for r in results
        ]


class CohereDocument(_Body):
    """A document given as an object (Cohere and Jina accept ``{"text": ...}``)."""

    text: StrictStr


class CohereRerankRequest(_Body):
    """``POST /v1/rerank`` body, as in Cohere's and Jina's rerank APIs."""

    model: StrictStr | None = Field(
        default=None,
        description="A served model's name (404 for an unknown one when the server serves "
        "several; a one-model server answers with its model whatever the name). Absent: the "
        "server's split or default model.",
    )
    query: StrictStr = Field(description="The question the documents are ranked against.")
    documents: list[StrictStr | CohereDocument] = Field(
        min_length=1, description='Candidate passages: strings or {"text": ...} objects.'
    )
    top_n: StrictInt | None = Field(default=None, ge=1, description="Keep the best n results.")
    return_documents: StrictBool = Field(
        default=False, description="Include each document in its result."
    )
    score_threshold: Threshold = Field(
        default=None,
        description="Drop results whose score is below this; 'calibrated': the recommended "
        "threshold of the server's calibration file.",
    )
    prune: Prune = Field(default=None, description=_PRUNE_HELP)

    _check_query = field_validator("query")(_non_blank)
    _check_threshold = field_validator("score_threshold", mode="before")(_threshold)
    _first_bad_document = field_validator("documents", mode="before")(_upto_first_bad_document)

    def texts(self) -> list[str]:
        """The documents as plain strings, in request order."""
        return [d if isinstance(d, str) else d.text for d in self.documents]


class CohereResult(BaseModel):
    """One ranked document."""

    index: int
    relevance_score: float = Field(description="Relevance in [0, 1].")
    document: CohereDocument | None = None
    pruned_text: str | None = Field(default=None, description=_PRUNED_TEXT_HELP)
    kept_spans: list[list[int]] | None = Field(default=None, description=_KEPT_SPANS_HELP)


class Usage(BaseModel):
    """What the request cost."""

    documents: int = Field(description="Documents scored.")
    search_units: int = Field(default=1, description="Cohere-style billing unit (one per request).")


class CohereRerankResponse(BaseModel):
    """``POST /v1/rerank`` response."""

    id: str
    results: list[CohereResult]
    model: str
    usage: Usage
    meta: dict[str, object] = Field(default_factory=dict)

    @classmethod
    def from_results(
        cls, results: Sequence[RerankResult], *, model: str, documents: int, return_documents: bool
    ) -> dict[str, Any]:
        """The response body (JSON-ready) for ``results`` of ``documents`` sent, served by
        ``model``; each document echoed with ``return_documents``."""
        return {
            "id": uuid.uuid4().hex,
            "results": [
                _wire(
                    r,
                    index=r.index,
                    relevance_score=r.score,
                    document={"text": r.document} if return_documents else None,
                )
                for r in results
            ],
            "model": model,
            "usage": {"documents": documents, "search_units": 1},
            "meta": {"billed_units": {"search_units": 1}},
        }


class CohereV2RerankRequest(_Body):
    """``POST /v2/rerank`` body, as Cohere's ``ClientV2.rerank`` sends it."""

    model: StrictStr | None = Field(
        default=None, description="A served model's name, as in /v1/rerank."
    )
    query: StrictStr = Field(description="The question the documents are ranked against.")
    documents: list[StrictStr] = Field(min_length=1, description="Candidate passages (strings).")
    top_n: StrictInt | None = Field(default=None, ge=1, description="Keep the best n results.")
    max_tokens_per_doc: StrictInt | None = Field(
        default=None,
        ge=1,
        description="Score only the first window of each document, of at most this many tokens "
        "(query and special tokens included; 16 at the least); absent: the server's mode for "
        "long documents.",
    )
    priority: StrictInt | None = Field(
        default=None, description="Accepted for compatibility; requests are served in order."
    )
    prune: Prune = Field(default=None, description=_PRUNE_HELP)

    _check_query = field_validator("query")(_non_blank)


class CohereV2Result(BaseModel):
    """One ranked document of ``/v2/rerank``."""

    index: int
    relevance_score: float = Field(description="Relevance in [0, 1].")
    pruned_text: str | None = Field(default=None, description=_PRUNED_TEXT_HELP)
    kept_spans: list[list[int]] | None = Field(default=None, description=_KEPT_SPANS_HELP)


class CohereV2RerankResponse(BaseModel):
    """``POST /v2/rerank`` response."""

    id: str
    results: list[CohereV2Result]
    model: str = Field(description="The model that served the request (an extension).")
    meta: dict[str, object] = Field(default_factory=dict)

    @classmethod
    def from_results(cls, results: Sequence[RerankResult], *, model: str) -> dict[str, Any]:
        """The response body (JSON-ready) for ``results``, served by ``model``."""
        return {
            "id": uuid.uuid4().hex,
            "results": [_wire(r, index=r.index, relevance_score=r.score) for r in results],
            "model": model,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
        }


class CleanRequest(_Body):
    """``POST /clean`` body: documents to see as the server scores them."""

    texts: list[StrictStr] = Field(min_length=1, description="Documents, as sent to /rerank.")

    _first_bad_text = field_validator("texts", mode="before")(_upto_first_bad_text)


class CleanResponse(BaseModel):
    """``POST /clean``: each text as scored (after the server's ``clean``), in request order."""

    texts: list[str]
    clean: str | None = Field(description="The server's cleaning ('html'), or null: unchanged.")


def _wire(result: RerankResult, **fields: Any) -> dict[str, Any]:
    """One result on the wire: ``fields`` (``None`` ones left out), then the result's
    ``pruned_text`` and ``kept_spans`` when it was pruned. A plain dict, not a validated model:
    a response of 1,000 results is built in microseconds."""
    data = result.to_dict()
    item = {key: value for key, value in fields.items() if value is not None}
    item.update((key, data[key]) for key in ("pruned_text", "kept_spans") if key in data)
    return item
