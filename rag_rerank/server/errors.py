"""Error responses: every failure is ``{"error", "error_type", "field"?}`` with its status code.

=====  ====================================================================================
400    the ``Host`` header is not one of the allowed hosts
401    missing or wrong API key (every route but ``/health``)
413    request body over ``max_body_bytes`` (refused before parsing), too many documents, or
       more windows of text than ``max_request_windows``
422    bad JSON (also undecodable or too deeply nested), empty query, empty document list,
       non-string items, texts that are not valid Unicode, unknown fields
429    the engine's queue is full, or the work ahead would take longer than ``max_queue_wait``
       (``Retry-After`` says when to come back)
499    the client disconnected before its answer was ready (never seen by that client)
500    the model failed on the request's batch or returned NaN or infinity for one of its pairs;
       any other failure (``internal``): never plain text
503    the worker is not running, a forward pass ran past the stall timeout (the model may be
       hung), the server is shutting down, or too many connections (``Retry-After``)
504    the request ran past ``request_timeout`` (its work was cancelled)
=====  ====================================================================================
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    EngineStoppedError,
    InvalidInputError,
    InvalidInputTypeError,
    NonFiniteScoreError,
    OverloadedError,
    ScoringError,
)
from .metrics import UNMATCHED
from .status import ErrorResponse

__all__ = [
    "ERROR_RESPONSES",
    "RETRY_AFTER_SECONDS",
    "ClientDisconnected",
    "ServiceError",
    "error_response",
]

logger = logging.getLogger("rag_rerank.server")

RETRY_AFTER_SECONDS = 1
"""``Retry-After`` sent with 429 and 503."""

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        401: "Missing or wrong API key.",
        400: "Host header not in the allowed hosts.",
        404: "The request names a model the server does not serve (the message lists them).",
        413: "Body over the byte limit, more documents or more windows of text than allowed, "
        "or more text to send back than max_echo_bytes.",
        422: "Bad JSON, empty query or document list, non-string items, unknown fields.",
        429: "Queue full or its estimated wait too long; retry after Retry-After seconds.",
        500: "The model failed on this request's batch or returned a non-finite score.",
        503: "The worker is not running or the model is hung, or the server is shutting down.",
        504: "The request ran past request_timeout; its work was cancelled.",
    }.items()
}
"""The error answers of the rerank routes, for the OpenAPI document."""


class ServiceError(Exception):
    """An error the HTTP layer answers with ``status_code`` and a JSON body."""

    def __init__(
        self,
        status_code: int,
        error_type: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type
        self.message = message
        self.field = field
        self.headers = headers


class ClientDisconnected(Exception):
    """The client went away; its queued pairs were cancelled."""


def error_response(
    status_code: int,
    error_type: str,
    message: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The JSON error body every route uses."""
    body: dict[str, Any] = {"error": message, "error_type": error_type}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status_code, headers=headers)


def field_name(loc: Sequence[Any]) -> str:
    """``("body", "texts", 2)`` -> ``"texts[2]"``; a location in the JSON text -> ``"body"``."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    name = ""
    for part in parts:
        if isinstance(part, int):
            if not name:  # JSON decode errors locate a character offset, not a field
                break
            name += f"[{part}]"
        elif part in ("str", "CohereDocument", "function-after[_non_blank(), str]"):
            continue  # pydantic names the union member it tried; the caller does not care
        else:
            name = f"{name}.{part}" if name else str(part)
    return name or "body"


def _unparsable(cause: BaseException) -> str:
    """Why a body could not be read as JSON, for the cases FastAPI answers with a bare 400."""
    if isinstance(cause, UnicodeDecodeError):
        return "body: not UTF-8 text"
    if isinstance(cause, RecursionError):
        return "body: JSON nested too deeply"
    return f"body: invalid JSON ({type(cause).__name__})"


def install_error_handlers(app: FastAPI) -> None:
    """Map validation errors, the core's typed errors and HTTP errors to JSON error bodies."""

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        field = field_name(first.get("loc", ()))
        if first.get("type") == "json_invalid":
            message = f"body: invalid JSON ({first.get('ctx', {}).get('error', 'decode error')})"
        elif first.get("type") == "missing":
            message = f"{field}: field required"
        elif first.get("type") == "extra_forbidden":
            message = f"{field}: unknown field"
        elif field.startswith("documents[") and len(exc.errors()) > 1:
            message = f'{field}: must be a string or an object {{"text": string}}'
        else:
            detail = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
            message = f"{field}: {detail}"
        # Never echo the input: it may be a large or private text.
        return error_response(422, "validation", message, field=field)

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(
            exc.status_code, exc.error_type, exc.message, field=exc.field, headers=exc.headers
        )

    @app.exception_handler(InvalidInputError)
    @app.exception_handler(InvalidInputTypeError)
    async def _invalid(request: Request, exc: Exception) -> JSONResponse:
        return error_response(422, "validation", str(exc), field=getattr(exc, "field", None))

    @app.exception_handler(OverloadedError)
    async def _overloaded(request: Request, exc: OverloadedError) -> JSONResponse:
        retry = RETRY_AFTER_SECONDS if exc.retry_after is None else math.ceil(exc.retry_after)
        return error_response(429, "overloaded", str(exc), headers={"Retry-After": str(retry)})

    @app.exception_handler(EngineStoppedError)
    async def _stopped(request: Request, exc: EngineStoppedError) -> JSONResponse:
        return error_response(
            503, "unavailable", str(exc), headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )

    @app.exception_handler(NonFiniteScoreError)
    async def _non_finite(request: Request, exc: NonFiniteScoreError) -> JSONResponse:
        # The message names the pair but must not carry the texts into logs or other clients.
        message = (
            f"the model returned a non-finite score ({exc.value}) for document {exc.pair_index}"
        )
        logger.error("non-finite score for document %d of a request", exc.pair_index)
        return error_response(
            500, "non_finite_score", message, field=f"documents[{exc.pair_index}]"
        )

    @app.exception_handler(ScoringError)
    async def _scoring(request: Request, exc: ScoringError) -> JSONResponse:
        return error_response(500, "model_error", str(exc))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # The route template, never the raw path: a client chooses that (and its length).
        route = getattr(request.scope.get("route"), "path", UNMATCHED)
        logger.error("unexpected %s answering %s", type(exc).__name__, route)
        return error_response(500, "internal", "internal server error")

    @app.exception_handler(ClientDisconnected)
    async def _disconnected(request: Request, exc: ClientDisconnected) -> JSONResponse:
        return error_response(499, "client_closed_request", "the client disconnected")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.__cause__ is not None:  # the body did not parse
            return error_response(422, "validation", _unparsable(exc.__cause__), field="body")
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
        return error_response(exc.status_code, kind, str(exc.detail), headers=exc.headers)
