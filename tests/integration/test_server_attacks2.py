"""The HTTP service under attack, round two (issue 25, the HTTP layer): metric and log flooding,
clients that never read, CPU work on the event loop, /clean's field names, shutdown at the
deadline. Each test failed before its fix."""

from __future__ import annotations

import logging
import random
import string
from collections.abc import Iterator

import httpx
import pytest

from rag_rerank import Reranker
from rag_rerank.server import create_app


@pytest.fixture(scope="module")
def rr(bert_dir: str) -> Iterator[Reranker]:
    reranker = Reranker(bert_dir, show_progress=False, cache=None)
    yield reranker
    reranker.close()


def client_for(app, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers
    )


def _junk(size: int, seed: int) -> str:
    return "".join(random.Random(seed).choices(string.ascii_uppercase, k=size))


# Item 2: metric and log flooding. Every label is bounded by the code, not the client.


async def test_random_methods_and_paths_add_no_series_and_no_log_text(
    rr: Reranker, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(rr, api_key="k")
    caplog.set_level(logging.INFO, logger="rag_rerank.server")
    async with client_for(app) as client:
        for i in range(40):  # unauthenticated: each answered 401
            method = _junk(2000, seed=i)
            response = await client.request(method, "/rerank")
            assert response.status_code == 401
            response = await client.get("/" + _junk(2000, seed=100 + i))
            assert response.status_code == 401
        metrics = (await client.get("/metrics", headers={"Authorization": "Bearer k"})).text
    series = [line for line in metrics.splitlines() if line.startswith("rag_rerank_requests_total")]
    assert 'rag_rerank_requests_total{method="other",route="/rerank",status="401"} 40' in series
    assert 'rag_rerank_requests_total{method="GET",route="unmatched",status="401"} 40' in series
    assert len(series) == 2  # the scrape itself is counted after it renders
    assert max(len(line) for line in metrics.splitlines()) < 200
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert _junk(2000, seed=0)[:50] not in logged
    assert _junk(2000, seed=100)[:50] not in logged
    assert "other /rerank -> 401" in logged
