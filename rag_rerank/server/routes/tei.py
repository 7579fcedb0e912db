"""``POST /rerank``: the text-embeddings-inference (TEI) shape."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..bodies import OffLoopRoute
from ..errors import ERROR_RESPONSES
from ..guards import check_echo
from ..registry import ServiceRegistry
from ..schemas import TEIRank, TEIRerankRequest

__all__ = ["router"]

router = APIRouter(route_class=OffLoopRoute)


@router.post(
    "/rerank",
    response_model=list[TEIRank],
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
    summary="Rerank texts (text-embeddings-inference shape)",
)
async def rerank_tei(body: TEIRerankRequest, request: Request) -> JSONResponse:
    registry = ServiceRegistry.of(request)
    model = registry.service(body.model, request)
    results = await model.rerank(
        request,
        body.query,
        body.texts,
        field="texts",
        truncate=body.truncate,
        top_n=None,
        threshold=body.score_threshold,
        prune=body.prune,
    )
    if body.return_text:
        check_echo((r.document for r in results), model.settings.max_echo_bytes, "return_text")
    ranks = TEIRank.from_results(results, raw_scores=body.raw_scores, return_text=body.return_text)
    return JSONResponse(ranks, headers=registry.served_by(model))
