"""``/docs``: Swagger UI served from files installed with the package (fastapi-offline's copy of
swagger-ui-dist), so the page works offline and under a Content-Security-Policy that lets it load
and call only this server. With an API key, the browser is asked for it (HTTP Basic, the key as
the password) like the console at ``/``; see :class:`~rag_rerank.server.middleware.AuthMiddleware`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["DOCS_ASSETS", "install_docs"]

DOCS_ASSETS = "/docs/assets"
"""Where Swagger UI's script, stylesheet and icon are served from."""


def install_docs(app: FastAPI) -> None:
    """Serve ``GET /docs`` (Swagger UI of ``app.openapi_url``) and its assets from the package.

    Raises:
        ImportError: fastapi-offline (the ``server`` extra) is not installed.
    """
    try:
        assets = resources.files("fastapi_offline").joinpath("static")
    except ModuleNotFoundError as exc:
        raise ImportError(
            "the server's /docs page needs the 'server' extra: pip install 'rag-rerank[server]'"
        ) from exc
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")
    page = get_swagger_ui_html(
        openapi_url=str(app.openapi_url),
        title=f"{app.title} API",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
    ).body
    html = bytes(page).decode()
    headers = _headers(html)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)


def _headers(page: str) -> dict[str, str]:
    """A CSP for the page: scripts, styles and images from this server (the inline start-up
    script by hash), calls to this server only; no framing."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(code.encode()).digest()).decode() + "'"
        for code in re.findall(r"<script>(.*?)</script>", page, flags=re.DOTALL)
    )
    policy = (
        f"default-src 'none'; script-src 'self' {hashes}; "
        "style-src 'self' 'unsafe-inline'; "  # Swagger UI sets styles as it renders
        "img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
