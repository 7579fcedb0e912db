"""``POST /v1/rerank`` (Cohere's and Jina's shape) and ``POST /v2/rerank`` (Cohere's API v2, as
``cohere.ClientV2`` sends it)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..bodies import OffLoopRoute
from ..errors import ERROR_RESPONSES
from ..guards import check_echo
from ..registry import ServiceRegistry
from ..schemas import (
    CohereRerankRequest,
    CohereRerankResponse,
    CohereV2RerankRequest,
    CohereV2RerankResponse,
)

__all__ = ["router"]

router = APIRouter(route_class=OffLoopRoute)


@router.post(
    "/v1/rerank",
    response_model=CohereRerankResponse,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
    summary="Rerank documents (Cohere / Jina shape)",
)
async def rerank_cohere(body: CohereRerankRequest, request: Request) -> JSONResponse:
    registry = ServiceRegistry.of(request)
    texts = body.texts()
    model = registry.service(body.model, request)
    results = await model.rerank(
        request,
        body.query,
        texts,
        field="documents",
        truncate=None,
        top_n=body.top_n,
        threshold=body.score_threshold,
        prune=body.prune,
    )
    if body.return_documents:
        limit = model.settings.max_echo_bytes
        check_echo((r.document for r in results), limit, "return_documents")
    response = CohereRerankResponse.from_results(
        results, model=model.name, documents=len(texts), return_documents=body.return_documents
    )
    return JSONResponse(response, headers=registry.served_by(model))


@router.post(
    "/v2/rerank",
    response_model=CohereV2RerankResponse,
    responses=ERROR_RESPONSES,
    summary="Rerank documents (Cohere API v2 shape, as cohere.ClientV2 sends it)",
)
async def rerank_cohere_v2(body: CohereV2RerankRequest, request: Request) -> JSONResponse:
    registry = ServiceRegistry.of(request)
    model = registry.service(body.model, request)
    results = await model.rerank(
        request,
        body.query,
        body.documents,
        field="documents",
        truncate=body.max_tokens_per_doc,
        top_n=body.top_n,
        threshold=None,
        prune=body.prune,
    )
    response = CohereV2RerankResponse.from_results(results, model=model.name)
    return JSONResponse(response, headers=registry.served_by(model))
