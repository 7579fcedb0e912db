"""Large JSON request bodies are parsed off the event loop.

FastAPI parses a body with :func:`json.loads` on the event loop: 8 MiB of JSON holds every other
client for a good part of a second. :class:`OffLoopRoute` parses bodies of
:data:`~rag_rerank.core.offload.OFF_LOOP_CHARS` bytes or more on the CPU pool first and hands
FastAPI the parsed value (Starlette's ``Request.json`` keeps it), so that only validation, which
stops at the first unknown key or bad item, runs on the loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from ..core.offload import run_off_loop

__all__ = ["OffLoopRoute"]


class OffLoopRoute(APIRoute):
    """An API route whose JSON body, when large, is parsed on the CPU pool."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def parse_then_handle(request: Request) -> Response:
            body = await request.body()
            if body and self.body_field is not None and _json_content(request):
                try:
                    parsed = await run_off_loop(len(body), json.loads, body)
                except json.JSONDecodeError as exc:  # answered as FastAPI would (422)
                    error = {
                        "type": "json_invalid",
                        "loc": ("body", exc.pos),
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": exc.msg},
                    }
                    raise RequestValidationError([error]) from exc
                except Exception as exc:  # not UTF-8, nested too deeply: as FastAPI would
                    raise HTTPException(400, "There was an error parsing the body") from exc
                request._json = parsed  # what Request.json() returns from now on
            return await handle(request)

        return parse_then_handle


def _json_content(request: Request) -> bool:
    """FastAPI reads the body as JSON: no content type, or a JSON one."""
    kind = request.headers.get("content-type", "application/json").partition(";")[0]
    kind = kind.strip().lower()
    return kind.startswith("application/") and (
        kind == "application/json" or kind.endswith("+json")
    )
