"""The score cache and clean="html" through the HTTP service: /info names them, /metrics counts
hits, misses and errors, /clean shows what the model read."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from rag_rerank import Reranker
from rag_rerank.server import create_app

QUERY = "where can I borrow money from a bank?"
DOCS = [
    "<p>The bank approved the <b>loan</b> at a low interest rate.</p><script>x()</script>",
    "Fish swim upstream along the river bank.",
    "<!-- nothing but a comment -->",
]


@pytest.fixture(scope="module")
def rr(bert_dir: str) -> Iterator[Reranker]:
    reranker = Reranker(bert_dir, show_progress=False, cache=1000, clean="html")
    yield reranker
    reranker.close()


def _metric(text: str, name: str) -> float:
    match = re.search(rf'^{name}{{cache="memory"}} (\S+)$', text, re.M)
    assert match, f"{name} missing"
    return float(match.group(1))


async def test_info_names_cache_and_cleaning(client: httpx.AsyncClient) -> None:
    info = (await client.get("/info")).json()
    assert (info["cache"], info["clean"]) == ("memory", "html")


async def test_metrics_count_hits_and_misses(client: httpx.AsyncClient, rr: Reranker) -> None:
    before = (await client.get("/metrics")).text
    hits, misses = (_metric(before, f"rag_rerank_cache_{k}_total") for k in ("hits", "misses"))
    first = await client.post("/rerank", json={"query": QUERY, "texts": DOCS, "return_text": True})
    second = await client.post("/rerank", json={"query": QUERY, "texts": DOCS, "return_text": True})
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert {r["text"] for r in first.json()} == set(DOCS)  # the originals come back
    after = (await client.get("/metrics")).text
    assert _metric(after, "rag_rerank_cache_hits_total") >= hits + 3
    assert _metric(after, "rag_rerank_cache_misses_total") <= misses + 3
    assert _metric(after, "rag_rerank_cache_errors_total") == 0
    assert "# TYPE rag_rerank_cache_hits_total counter" in after


async def test_clean_shows_the_scored_text(client: httpx.AsyncClient) -> None:
    response = await client.post("/clean", json={"texts": DOCS})
    assert response.status_code == 200
    assert response.json() == {
        "texts": [
            "The bank approved the loan at a low interest rate.",
            DOCS[1],
            "",
        ],
        "clean": "html",
    }
    assert (await client.post("/clean", json={"texts": []})).status_code == 422


async def test_no_cache_no_cache_metrics(bert_dir: str) -> None:
    rr = Reranker(bert_dir, show_progress=False, cache=None)
    try:
        transport = httpx.ASGITransport(app=create_app(rr))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.get("/info")).json()["cache"] is None
            assert "rag_rerank_cache_" not in (await c.get("/metrics")).text
    finally:
        rr.close()
