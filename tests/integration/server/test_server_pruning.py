"""``"prune": true`` on /rerank, /v1/rerank and /v2/rerank, and RemoteReranker.rerank(prune=...)."""

from __future__ import annotations

import httpx
import pytest
from server_testing import live_server

from rag_rerank import PruneOptions, RemoteReranker, Reranker
from rag_rerank.server import create_app

QUERY = "what do giant pandas eat"
DOCS = [
    "The giant panda is a bear. It eats bamboo almost all day. It lives in China.",
    "Paris is the capital of France. It is on the Seine.",
    "Red pandas are small. Their diet is mostly bamboo, too. They are not bears.",
    "Savings accounts pay interest.",
]


def pruned(results) -> list[tuple[int, str, list[list[int]]]]:
    return [(r.index, r.pruned_text, [list(s) for s in r.kept_spans]) for r in results]


def wire(items: list[dict]) -> list[tuple[int, str, list[list[int]]]]:
    return [(r["index"], r["pruned_text"], r["kept_spans"]) for r in items]


@pytest.mark.parametrize(
    ("route", "body", "results_of"),
    [
        ("/rerank", {"texts": DOCS}, lambda body: body),
        ("/v1/rerank", {"documents": DOCS, "top_n": 3}, lambda body: body["results"]),
        ("/v2/rerank", {"documents": DOCS, "top_n": 3}, lambda body: body["results"]),
    ],
)
async def test_prune_adds_pruned_text_per_result(client, rr, route, body, results_of) -> None:
    expected = rr.rerank(QUERY, DOCS, top_n=body.get("top_n"), prune=True)
    response = await client.post(route, json={"query": QUERY, **body, "prune": True})
    assert response.status_code == 200, response.text
    assert wire(results_of(response.json())) == pruned(expected)
    plain = results_of((await client.post(route, json={"query": QUERY, **body})).json())
    assert all("pruned_text" not in r and "kept_spans" not in r for r in plain)


async def test_prune_takes_an_object_of_options(client, rr) -> None:
    options = {"threshold": 1.0, "keep_first": True}
    expected = rr.rerank(QUERY, DOCS, prune=PruneOptions(**options))
    response = await client.post("/rerank", json={"query": QUERY, "texts": DOCS, "prune": options})
    assert wire(response.json()) == pruned(expected)


@pytest.mark.parametrize(
    ("prune", "field"),
    [
        ({"threshold": 0}, "prune.threshold"),
        ({"context": -1}, "prune.context"),
        ({"treshold": 0.5}, "prune.treshold"),
    ],
)
async def test_bad_prune_is_422_naming_the_field(client, prune, field) -> None:
    for route, texts in (("/rerank", "texts"), ("/v1/rerank", "documents")):
        response = await client.post(route, json={"query": QUERY, texts: DOCS, "prune": prune})
        assert response.status_code == 422
        assert response.json()["field"] == field


async def test_prune_of_a_wrong_type_is_422(client) -> None:
    response = await client.post("/rerank", json={"query": QUERY, "texts": DOCS, "prune": "yes"})
    assert response.status_code == 422
    assert "prune" in response.text


async def test_shadowed_model_prunes_the_same(rr, bert_dir) -> None:
    twin = Reranker(bert_dir, show_progress=False)
    try:
        app = create_app({"default": rr, "twin": twin}, shadow="twin")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(
                "/v1/rerank", json={"query": QUERY, "documents": DOCS, "top_n": 2, "prune": True}
            )
            await app.state.service.shadow.wait()
    finally:
        twin.close()
    assert wire(response.json()["results"]) == pruned(rr.rerank(QUERY, DOCS, top_n=2, prune=True))


def test_remote_reranker_prunes_like_the_local_one(rr) -> None:
    expected = rr.rerank(QUERY, DOCS, top_n=3, prune=True, max_context_tokens=20)
    with live_server(create_app(rr)) as url, RemoteReranker(url) as remote:
        got = remote.rerank(QUERY, DOCS, top_n=3, prune=True, max_context_tokens=20)
    assert [r.index for r in got] == [r.index for r in expected]
    assert [(r.pruned_text, r.kept_spans) for r in got] == [
        (r.pruned_text, r.kept_spans) for r in expected
    ]
