"""What operators and the web page call: ``/health``, ``/ready``, ``/info``, ``/metrics``,
``POST /clean`` and the reranking console at ``/``."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from ...core.offload import run_off_loop
from ..bodies import OffLoopRoute
from ..errors import ERROR_RESPONSES, RETRY_AFTER_SECONDS, ServiceError
from ..guards import check_echo
from ..metrics import CONTENT_TYPE
from ..middleware import page_headers
from ..registry import ServiceRegistry
from ..schemas import CleanRequest, CleanResponse
from ..status import ErrorResponse, InfoResponse, StatusResponse

__all__ = ["router"]

router = APIRouter(route_class=OffLoopRoute)

_PAGE = resources.files("rag_rerank.server").joinpath("static/index.html").read_text("utf-8")
_PAGE_HEADERS = page_headers(_PAGE)  # its Content-Security-Policy allows its own script only


@router.get("/health", response_model=StatusResponse, responses={503: {"model": ErrorResponse}})
async def health(request: Request) -> JSONResponse:
    """200 while the engine's worker runs; 503 once it stopped or died, or when its last
    few rounds of forward passes all failed."""
    if ServiceRegistry.of(request).alive:
        return JSONResponse({"status": "ok"})
    return JSONResponse(
        {
            "error": "the reranker worker is not running or keeps failing",
            "error_type": "unavailable",
        },
        status_code=503,
    )


@router.get("/ready", response_model=StatusResponse, responses={503: {"model": ErrorResponse}})
async def ready(request: Request) -> JSONResponse:
    """200 when the model is loaded, its last forward pass succeeded and no shutdown began.
    After a failure it probes the model itself, so it recovers without user traffic."""
    registry = ServiceRegistry.of(request)
    await registry.probe()
    reason = registry.not_ready_reason()
    if reason is None:
        return JSONResponse({"status": "ready"})
    return JSONResponse(
        {"error": reason, "error_type": "unavailable"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@router.get("/info", response_model=InfoResponse)
async def info(request: Request) -> InfoResponse:
    """The model, device, precision, window length and limits."""
    return ServiceRegistry.of(request).info()


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus metrics."""
    text = ServiceRegistry.of(request).render_metrics()
    return PlainTextResponse(text, media_type=CONTENT_TYPE)


@router.post(
    "/clean",
    response_model=CleanResponse,
    responses={k: v for k, v in ERROR_RESPONSES.items() if k in (401, 413, 422)},
    summary="The texts as the server scores them (after its --clean)",
)
async def clean(body: CleanRequest, request: Request) -> CleanResponse:
    """Each text after the server's cleaning (``--clean html``); unchanged without it. The web
    page uses it to show what the model read."""
    default = ServiceRegistry.of(request).default
    limit = default.settings.max_documents
    if len(body.texts) > limit:
        raise ServiceError(
            413,
            "too_many_documents",
            f"texts: {len(body.texts)} documents, the limit is {limit}",
            field="texts",
        )
    check_echo(body.texts, default.settings.max_echo_bytes, "texts")  # cleaning never lengthens
    size = sum(map(len, body.texts))
    texts = await run_off_loop(size, default.reranker.cleaned, body.texts, "texts")
    return CleanResponse(texts=texts, clean=default.reranker.options.clean)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def console() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers=_PAGE_HEADERS)
