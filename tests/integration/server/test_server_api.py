"""The HTTP service through ASGI (no socket): schemas, status codes, auth, limits, concurrency."""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
from collections.abc import AsyncIterator

import httpx
import pytest
from server_testing import POISON_WORD, build_nan_model, client_for, long_text, wait_until

from rag_rerank import InvalidInputError, Reranker
from rag_rerank.server import create_app

QUERY = "where can I borrow money from a bank?"
DOCS = [
    "The bank approved the loan at a low interest rate.",
    "Fish swim upstream along the river bank.",
    "An apple a day keeps the doctor away.",
    "Savings accounts pay interest on money you deposit.",
    "The giant panda is a bear native to China.",
]


# -- schemas ------------------------------------------------------------------------------------


async def test_tei_rerank_matches_in_process_rerank(client, rr: Reranker) -> None:
    expected = rr.rerank(QUERY, DOCS)
    response = await client.post("/rerank", json={"query": QUERY, "texts": DOCS})
    assert response.status_code == 200
    body = response.json()
    assert [r["index"] for r in body] == [r.index for r in expected]
    assert [r["score"] for r in body] == pytest.approx([r.score for r in expected], abs=1e-6)
    assert all(set(r) == {"index", "score"} for r in body)  # no text unless asked for

    raw = (
        await client.post(
            "/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": True, "return_text": True}
        )
    ).json()
    assert [r["score"] for r in raw] == pytest.approx([r.raw_score for r in expected], abs=1e-6)
    assert [r["text"] for r in raw] == [r.document for r in expected]

    threshold = expected[2].score
    kept = (
        await client.post(
            "/rerank", json={"query": QUERY, "texts": DOCS, "score_threshold": threshold}
        )
    ).json()
    assert [r["index"] for r in kept] == [r.index for r in expected if r.score >= threshold]


async def test_cohere_rerank_matches_in_process_rerank(client, rr: Reranker) -> None:
    expected = rr.rerank(QUERY, DOCS, top_n=3)
    documents = [DOCS[0], {"text": DOCS[1]}, *DOCS[2:]]  # strings and {"text"} objects mix
    response = await client.post(
        "/v1/rerank",
        json={
            "model": rr.model_name,  # a name it does not serve is a 404 (test_server_manners)
            "query": QUERY,
            "documents": documents,
            "top_n": 3,
            "return_documents": True,
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == rr.model_name
    assert body["usage"]["documents"] == len(DOCS)
    assert [r["index"] for r in body["results"]] == [r.index for r in expected]
    assert [r["relevance_score"] for r in body["results"]] == pytest.approx(
        [r.score for r in expected], abs=1e-6
    )
    assert [r["document"]["text"] for r in body["results"]] == [r.document for r in expected]

    threshold = rr.rerank(QUERY, DOCS)[1].score
    lean = (
        await client.post(
            "/v1/rerank", json={"query": QUERY, "documents": DOCS, "score_threshold": threshold}
        )
    ).json()
    assert len(lean["results"]) == 2
    assert all("document" not in r for r in lean["results"])


async def test_truncate_scores_only_the_first_window(client, bert_dir: str) -> None:
    long_doc = long_text(800)
    docs = [long_doc, "money at the bank"]
    with Reranker(bert_dir, long_documents="truncate") as truncating:
        expected_first = truncating.score(QUERY, docs)
    with Reranker(bert_dir) as chunking:
        expected_best = chunking.score(QUERY, docs)
    for truncate, expected in ((True, expected_first), (False, expected_best)):
        body = (
            await client.post("/rerank", json={"query": QUERY, "texts": docs, "truncate": truncate})
        ).json()
        by_index = {r["index"]: r["score"] for r in body}
        assert [by_index[0], by_index[1]] == pytest.approx(expected, abs=1e-6)


# -- bad input ----------------------------------------------------------------------------------

BAD_BODIES = [
    ("/rerank", {"query": "", "texts": ["a"]}, "query"),
    ("/rerank", {"query": "   ", "texts": ["a"]}, "query"),
    ("/rerank", {"query": 3, "texts": ["a"]}, "query"),
    ("/rerank", {"texts": ["a"]}, "query"),
    ("/rerank", {"query": "q", "texts": []}, "texts"),
    ("/rerank", {"query": "q", "texts": "a single string"}, "texts"),
    ("/rerank", {"query": "q", "texts": ["a", 2, "c"]}, "texts[1]"),
    ("/rerank", {"query": "q", "texts": ["a", None]}, "texts[1]"),
    ("/rerank", {"query": "q", "texts": ["a"], "raw_score": True}, "raw_score"),
    ("/rerank", {"query": "q", "texts": ["a"], "score_threshold": 1.5}, "score_threshold"),
    ("/v1/rerank", {"query": "", "documents": ["a"]}, "query"),
    ("/v1/rerank", {"query": "q", "documents": []}, "documents"),
    ("/v1/rerank", {"query": "q", "documents": ["a", 7]}, "documents[1]"),
    ("/v1/rerank", {"query": "q", "documents": ["a", {"txt": "b"}]}, "documents[1]"),
    ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, "top_n"),
    ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": "2"}, "top_n"),
]


@pytest.mark.parametrize(("route", "body", "field"), BAD_BODIES)
async def test_bad_input_is_422_naming_the_field(client, route: str, body: dict, field: str):
    response = await client.post(route, json=body)
    assert response.status_code == 422
    error = response.json()
    assert error["error_type"] == "validation"
    assert error["field"] == field
    assert error["error"].startswith(f"{field}: ")


@pytest.mark.parametrize("route", ["/rerank", "/v1/rerank"])
async def test_bad_json_is_422(client, route: str) -> None:
    response = await client.post(
        route, content=b'{"query": "q", "texts": [', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["field"] == "body"
    assert "invalid JSON" in response.json()["error"]


async def test_body_over_the_limit_is_413_before_parsing(rr: Reranker) -> None:
    app = create_app(rr, max_body_bytes=1000)
    async with client_for(app) as client:
        big = {"query": "q", "texts": ["x" * 600, "y" * 600]}
        response = await client.post("/rerank", json=big)
        assert response.status_code == 413
        assert response.json()["error_type"] == "payload_too_large"

        # Not JSON at all: refused on its size, so it was never parsed (that would be 422).
        response = await client.post("/rerank", content=b"{" * 2000)
        assert response.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
            for _ in range(20):
                yield b"[" * 100

        response = await client.post("/v1/rerank", content=chunks())
        assert response.status_code == 413

        ok = await client.post("/rerank", json={"query": "q", "texts": ["small"]})
        assert ok.status_code == 200


async def test_too_many_documents_is_413(rr: Reranker) -> None:
    async with client_for(create_app(rr, max_documents=4)) as client:
        response = await client.post("/rerank", json={"query": "q", "texts": ["d"] * 5})
        assert response.status_code == 413
        assert response.json()["field"] == "texts"
        response = await client.post("/v1/rerank", json={"query": "q", "documents": ["d"] * 5})
        assert response.status_code == 413
        assert response.json()["field"] == "documents"
        assert (await client.post("/rerank", json={"query": "q", "texts": ["d"] * 4})).is_success


def test_create_app_rejects_bad_options(rr: Reranker) -> None:
    for options, field in (
        ({"max_documents": 0}, "max_documents"),
        ({"max_body_bytes": -1}, "max_body_bytes"),
        ({"api_key": ""}, "api_key"),
        ({"cors_origins": "http://a"}, "cors_origins"),
    ):
        with pytest.raises(InvalidInputError) as info:
            create_app(rr, **options)
        assert info.value.field == field
    with pytest.raises(InvalidInputError, match="reranker"):
        create_app("not a reranker")  # type: ignore[arg-type]


# -- auth, CORS, logs ---------------------------------------------------------------------------

ROUTES = [
    ("GET", "/", None),
    ("GET", "/ready", None),
    ("GET", "/info", None),
    ("GET", "/metrics", None),
    ("GET", "/docs", None),
    ("GET", "/openapi.json", None),
    ("POST", "/rerank", {"query": "q", "texts": ["a"]}),
    ("POST", "/v1/rerank", {"query": "q", "documents": ["a"]}),
]


async def test_api_key_guards_every_route_but_health(rr: Reranker) -> None:
    key = "s3cret-key"
    app = create_app(rr, api_key=key)
    basic = base64.b64encode(f"anyone:{key}".encode()).decode()
    async with client_for(app) as client:
        assert (await client.get("/health")).status_code == 200
        for method, path, body in ROUTES:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": key}):
                response = await client.request(method, path, json=body, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert "www-authenticate" in response.headers
            for good in (f"Bearer {key}", f"Basic {basic}"):
                response = await client.request(
                    method, path, json=body, headers={"Authorization": good}
                )
                assert response.status_code == 200, (path, good)
        # Unknown paths are 401 too: nothing about the server leaks without the key.
        assert (await client.get("/nope")).status_code == 401
        assert (
            await client.get("/nope", headers={"Authorization": f"Bearer {key}"})
        ).status_code == 404


async def test_cors_is_off_unless_asked_for(rr: Reranker) -> None:
    preflight = {
        "Origin": "http://app.localhost",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    async with client_for(create_app(rr)) as client:
        response = await client.post(
            "/rerank", json={"query": "q", "texts": ["a"]}, headers={"Origin": "http://x.localhost"}
        )
        assert "access-control-allow-origin" not in response.headers
        assert (await client.options("/rerank", headers=preflight)).status_code == 405
    app = create_app(rr, cors_origins=["http://app.localhost"], api_key="k")
    async with client_for(app) as client:
        response = await client.options("/rerank", headers=preflight)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "http://app.localhost"
        response = await client.post(
            "/rerank",
            json={"query": "q", "texts": ["a"]},
            headers={"Origin": "http://evil.localhost", "Authorization": "Bearer k"},
        )
        assert "access-control-allow-origin" not in response.headers


async def test_request_texts_are_never_logged(client, caplog: pytest.LogCaptureFixture) -> None:
    secret_query = "confidential-merger-query"
    secret_doc = "confidential-merger-document"
    caplog.set_level(logging.DEBUG)
    await client.post("/rerank", json={"query": secret_query, "texts": [secret_doc, "x"]})
    await client.post("/v1/rerank", json={"query": secret_query, "documents": [secret_doc, 5]})
    await client.post("/rerank", content=f'{{"query": "{secret_query}", '.encode())
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "POST /rerank -> 200" in logged  # sizes and timings are logged...
    assert "body bytes" in logged
    assert "confidential" not in logged  # ...texts never


# -- health, readiness, info, metrics -----------------------------------------------------------


async def test_info_health_ready_metrics(client, rr: Reranker) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/ready")).json() == {"status": "ready"}
    info = (await client.get("/info")).json()
    assert info["model_id"] == rr.model_name
    assert info["device"] == "cpu"
    assert info["model_dtype"] == "float32"
    assert info["max_input_length"] == rr.max_length
    assert info["max_client_batch_size"] == 1000
    await client.post("/rerank", json={"query": "q", "texts": ["a", "b"]})
    await client.post("/rerank", json={"query": "", "texts": ["a"]})
    response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'rag_rerank_requests_total{method="POST",route="/rerank",status="200"} 1' in text
    assert 'rag_rerank_requests_total{method="POST",route="/rerank",status="422"} 1' in text
    assert 'rag_rerank_request_duration_seconds_count{route="/rerank"} 2' in text
    for name in (
        "rag_rerank_queue_pairs",
        "rag_rerank_batch_pairs_total",
        "rag_rerank_batch_tokens_total",
        "rag_rerank_batches_total",
        "rag_rerank_worker_alive 1",
    ):
        assert name in text
    schema = (await client.get("/openapi.json")).json()
    assert {"/rerank", "/v1/rerank", "/health", "/ready", "/info", "/metrics"} <= set(
        schema["paths"]
    )


async def test_stopped_worker_fails_health_and_requests(bert_dir: str) -> None:
    reranker = Reranker(bert_dir)
    async with client_for(create_app(reranker)) as client:
        assert (await client.get("/health")).status_code == 200
        reranker.close()
        wait_until(lambda: not reranker.engine.alive, "the worker did not stop")
        assert (await client.get("/health")).status_code == 503
        assert (await client.get("/ready")).status_code == 503
        response = await client.post("/rerank", json={"query": "q", "texts": ["a"]})
        assert response.status_code == 503
        assert response.headers["retry-after"]
        metrics = (await client.get("/metrics")).text
        assert "rag_rerank_worker_alive 0" in metrics


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
async def test_nan_score_fails_that_request_only(bert_dir: str, tmp_path) -> None:
    nan_dir = build_nan_model(bert_dir, tmp_path / "nan-model")
    with Reranker(nan_dir) as reranker:
        async with client_for(create_app(reranker)) as client:
            bad = ["a calm river", f"a striped {POISON_WORD} runs", "money"]
            response = await client.post("/rerank", json={"query": "animals", "texts": bad})
            assert response.status_code == 500
            assert response.json()["error_type"] == "non_finite_score"
            assert response.json()["field"] == "texts[1]"
            response = await client.post("/v1/rerank", json={"query": "animals", "documents": bad})
            assert response.json()["field"] == "documents[1]"
            # The server keeps serving, and stays healthy and ready.
            good = await client.post("/rerank", json={"query": "animals", "texts": bad[::2]})
            assert good.status_code == 200
            assert [r["score"] for r in sorted(good.json(), key=lambda r: r["index"])] == (
                pytest.approx(reranker.score("animals", bad[::2]), abs=1e-6)
            )
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/ready")).status_code == 200


# -- concurrency and overload -------------------------------------------------------------------


def _workloads(n: int) -> list[tuple[str, list[str]]]:
    workloads = []
    for i in range(n):
        docs = [long_text(5 + (i * 13 + j * 29) % 60, seed=i + j) for j in range(1 + i % 6)]
        workloads.append((f"query {i}: {long_text(2 + i % 5, seed=i)}", docs))
    return workloads


async def test_16_concurrent_clients_get_the_scores_they_get_alone(client, rr) -> None:
    workloads = _workloads(16)
    alone = [rr.score(query, docs) for query, docs in workloads]

    async def one(query: str, docs: list[str], raw: bool) -> list[float]:
        response = await client.post(
            "/rerank", json={"query": query, "texts": docs, "raw_scores": raw}
        )
        assert response.status_code == 200
        return [r["score"] for r in sorted(response.json(), key=lambda r: r["index"])]

    together = await asyncio.gather(*(one(q, d, False) for q, d in workloads))
    for got, expected in zip(together, alone, strict=True):
        assert got == pytest.approx(expected, abs=1e-5)


async def test_burst_at_twice_the_queue_gets_fast_429s(bert_dir: str) -> None:
    capacity = 32
    # No cache: the requests were scored alone first, and the burst must meet the queue.
    with Reranker(bert_dir, max_queue_pairs=capacity, cache=None) as reranker:
        app = create_app(reranker)
        requests = [
            (f"burst query {i}", [f"passage {i}.{j} about banks" for j in range(4)])
            for i in range(2 * capacity // 4)
        ]
        alone = [reranker.score(q, d) for q, d in requests]
        # Hold the model (fault injection) so the burst meets a full queue: the engine takes
        # work in at once, and the admitted requests' windows count until they are scored.
        forward = reranker.engine.model.forward
        release = threading.Event()

        def held_forward(*args, **kwargs):
            release.wait(30)
            return forward(*args, **kwargs)

        reranker.engine.model.forward = held_forward
        try:
            async with client_for(app) as client:

                async def one(query: str, docs: list[str]) -> tuple[httpx.Response, bool]:
                    response = await client.post("/rerank", json={"query": query, "texts": docs})
                    return response, release.is_set()

                tasks = [asyncio.ensure_future(one(q, d)) for q, d in requests]
                expected_refusals = len(requests) - capacity // 4
                for _ in range(600):
                    if sum(task.done() for task in tasks) >= expected_refusals:
                        break
                    await asyncio.sleep(0.05)
                release.set()
                results = await asyncio.gather(*tasks)
        finally:
            reranker.engine.model.forward = forward
            release.set()
        refused = [(r, released) for r, released in results if r.status_code == 429]
        admitted = [i for i, (r, _) in enumerate(results) if r.status_code == 200]
        assert len(admitted) + len(refused) == len(requests)
        assert len(admitted) == capacity // 4  # the queue held exactly its capacity
        for response, released in refused:
            assert not released  # refused at once, not after waiting for the queue
            assert response.headers["retry-after"] == "1"
            assert response.json()["error_type"] == "overloaded"
        for i in admitted:
            got = sorted(results[i][0].json(), key=lambda r: r["index"])
            assert [r["score"] for r in got] == pytest.approx(alone[i], abs=1e-5)


async def test_page_has_an_inline_favicon(client) -> None:
    page = (await client.get("/")).text
    assert '<link rel="icon" href="data:image/svg+xml,' in page  # no /favicon.ico request
