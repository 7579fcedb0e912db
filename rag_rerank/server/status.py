"""What the operational routes and every error answer (pydantic v2): ``/health`` and ``/ready``
(:class:`StatusResponse`), ``/info`` (:class:`InfoResponse`, one :class:`ModelInfo` per served
model, the :class:`ShadowSummary`) and the JSON error body (:class:`ErrorResponse`). Also
importable from :mod:`rag_rerank.server.schemas`, beside the rerank bodies."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["ErrorResponse", "InfoResponse", "ModelInfo", "ShadowSummary", "StatusResponse"]


class ErrorResponse(BaseModel):
    """Every error response: a message, its kind and, for bad input, the field."""

    error: str
    error_type: str
    field: str | None = None


class StatusResponse(BaseModel):
    """``/health`` and ``/ready``."""

    status: str


class ModelInfo(BaseModel):
    """One served model in ``GET /info``."""

    name: str = Field(description="The name requests pick it by.")
    model_id: str
    device: str
    model_dtype: str
    precision: str = Field(default="", description="As in the top level of ``GET /info``.")
    max_input_length: int
    max_batch_tokens: int
    max_queue_pairs: int | None
    long_documents: str
    default: bool = Field(description="Serves requests that name no model (without a split).")
    weight: float | None = Field(
        default=None, description="Its share of the requests that name no model, under a split."
    )


class ShadowSummary(BaseModel):
    """Running comparison of a primary model with the shadow model, in ``GET /info``."""

    primary: str
    shadow: str
    compared: int = Field(description="Requests both models ranked.")
    top1_agreement: float | None = Field(description="Share with the same first document.")
    top5_overlap: float | None = Field(description="Mean share of the top 5 in common.")
    kendall_tau: float | None = Field(description="Mean rank correlation, in [-1, 1].")
    primary_p50_ms: float | None
    shadow_p50_ms: float | None
    dropped: int = Field(description="Shadow work dropped because its queue was full.")
    failed: int


class InfoResponse(BaseModel):
    """``GET /info``: the default model and the limits (TEI's field names where they exist),
    then every served model, the split and the shadow comparison."""

    model_id: str
    model_type: str = "reranker"
    device: str
    model_dtype: str
    precision: str = Field(
        default="",
        description="model_dtype and, on a CPU, whether it multiplies bf16 natively (which "
        "decides what dtype=None picks there), e.g. 'float32; CPU bf16 not native'.",
    )
    max_input_length: int
    max_batch_tokens: int
    max_client_batch_size: int
    max_body_bytes: int
    max_queue_pairs: int | None
    long_documents: str
    version: str
    cache: str | None = Field(
        default=None, description="The score cache: 'memory', the Redis URL, or null (off)."
    )
    clean: str | None = Field(
        default=None, description="How documents are cleaned before scoring ('html'), or null."
    )
    models: list[ModelInfo] = Field(default_factory=list, description="Every served model.")
    split: dict[str, float] | None = Field(
        default=None, description="Shares of the requests that name no model, or null."
    )
    shadow: list[ShadowSummary] | None = Field(
        default=None, description="The shadow model's running comparison, or null (no shadow)."
    )
