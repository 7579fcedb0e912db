"""Server manners: a JSON body is read whatever its Content-Type, an unknown model is a 404 with
one model as with several, and /docs works in a browser with an API key, offline, under its CSP."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import httpx
import pytest
from server_testing import client_for, live_server

from rag_rerank import Reranker
from rag_rerank.server import create_app

KEY = "docs-key"
QUERY = "where can I borrow money?"
DOCS = ["The bank lends money.", "Pandas eat bamboo.", "Rivers have banks."]


@pytest.fixture
async def client(rr: Reranker) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(rr, api_key=KEY)) as c:
        yield c


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"browser:{key}".encode()).decode()}


BEARER = {"Authorization": f"Bearer {KEY}"}


@pytest.mark.parametrize(
    "content_type", [None, "application/x-www-form-urlencoded", "text/plain; charset=utf-8"]
)
async def test_a_json_body_is_read_whatever_its_content_type(
    client: httpx.AsyncClient, rr: Reranker, content_type: str | None
) -> None:
    headers = {**BEARER, **({"Content-Type": content_type} if content_type else {})}
    body = json.dumps({"query": QUERY, "texts": DOCS}).encode()
    response = await client.post("/rerank", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert [r["index"] for r in response.json()] == [r.index for r in rr.rerank(QUERY, DOCS)]
    bad = await client.post("/rerank", content=b"query=q", headers=headers)
    assert bad.status_code == 422 and "JSON" in bad.text  # not "a valid dictionary"


@pytest.mark.parametrize("path", ["/rerank", "/v1/rerank", "/v2/rerank"])
async def test_an_unknown_model_is_404_on_a_one_model_server(
    client: httpx.AsyncClient, rr: Reranker, path: str
) -> None:
    field = "texts" if path == "/rerank" else "documents"
    body = {"query": QUERY, field: DOCS}
    response = await client.post(path, json={**body, "model": "nope"}, headers=BEARER)
    assert response.status_code == 404
    assert "no model named 'nope'" in response.json()["error"]
    served = await client.post(path, json={**body, "model": rr.model_name}, headers=BEARER)
    assert served.status_code == 200


async def test_docs_ask_a_browser_for_the_key_and_load_nothing_from_elsewhere(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
        refused = await client.get(path)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic")  # a browser can answer
    api = await client.post("/rerank", json={"query": QUERY, "texts": DOCS})
    assert api.status_code == 401 and api.headers["www-authenticate"] == "Bearer"
    page = await client.get("/docs", headers=_basic(KEY))
    assert page.status_code == 200
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN, no absolute URL
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        served = await client.get(f"/docs/assets/{asset}", headers=_basic(KEY))
        assert served.status_code == 200 and len(served.content) > 1000
    schema = await client.get("/openapi.json", headers=_basic(KEY))
    assert "/v2/rerank" in schema.json()["paths"]


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")
def test_docs_render_in_a_browser_offline_under_the_csp(rr: Reranker) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with live_server(create_app(rr, api_key=KEY)) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context(http_credentials={"username": "u", "password": KEY})
            page = context.new_page()
            hosts: set[str] = set()
            problems: list[str] = []
            page.on("request", lambda r: hosts.add(urlparse(r.url).hostname or ""))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.goto(f"{url}/docs")
            page.wait_for_selector("#operations-default-rerank_tei_rerank_post", timeout=30_000)
            assert hosts == {"127.0.0.1"}
            assert problems == []
        finally:
            browser.close()
