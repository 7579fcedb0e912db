"""The HTTP service on a real uvicorn on 127.0.0.1: sockets, disconnects, the client, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from server_testing import live_server, long_text, serve_cli, wait_until

from rag_rerank import InvalidInputError, OverloadedError, RemoteReranker, Reranker
from rag_rerank.cli import build_parser, main
from rag_rerank.client import RemoteRerankError
from rag_rerank.server import create_app

KEY = "live-test-key"
CAPACITY = 64
QUERY = "which bank pays interest on savings?"
DOCS = [
    "The bank pays interest on savings accounts every month.",
    "We sat on the river bank and watched the boats.",
    "Interest rates rose again this year.",
    "A loan from the bank bought the fishing boat.",
    "Pandas eat bamboo.",
    "Savings grow when interest compounds.",
]


@pytest.fixture(scope="module")
def rr(bert_dir: str) -> Iterator[Reranker]:
    reranker = Reranker(bert_dir, max_queue_pairs=CAPACITY, show_progress=False, cache=None)
    yield reranker
    reranker.close()


@pytest.fixture(scope="module")
def app(rr: Reranker):
    return create_app(rr, api_key=KEY, max_documents=200, max_body_bytes=64 * 1024)


@pytest.fixture(scope="module")
def url(app) -> Iterator[str]:
    with live_server(app) as base_url:
        yield base_url


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        yield client


def _count(metrics: str, pattern: str) -> float:
    match = re.search(rf"^{pattern} (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _occupy(reranker: Reranker, pairs: int, words: int = 600):
    """Give the worker a long job and wait until it runs (the queue is then empty again)."""
    future = reranker.engine.submit(
        ["occupy"] * pairs,
        [f"{i} {long_text(words, seed=i)}" for i in range(pairs)],  # distinct: none deduplicated
        max_length=reranker.max_length,
        long_documents="windows",
    )
    wait_until(future.running, "the worker did not start the long job")
    return future


def test_status_codes_and_schemas_over_tcp(http: httpx.Client, url: str, rr: Reranker) -> None:
    expected = rr.rerank(QUERY, DOCS)
    tei = http.post("/rerank", json={"query": QUERY, "texts": DOCS, "return_text": True})
    assert tei.status_code == 200
    assert [(r["index"], r["text"]) for r in tei.json()] == [
        (r.index, r.document) for r in expected
    ]
    cohere = http.post("/v1/rerank", json={"query": QUERY, "documents": DOCS, "top_n": 2})
    assert cohere.status_code == 200
    assert [r["relevance_score"] for r in cohere.json()["results"]] == pytest.approx(
        [r.score for r in expected[:2]], abs=1e-6
    )
    assert httpx.get(f"{url}/health").status_code == 200
    assert httpx.get(f"{url}/info").status_code == 401
    assert http.get("/ready").status_code == 200
    assert http.post("/rerank", json={"query": "", "texts": ["a"]}).status_code == 422
    assert http.post("/rerank", content=b"not json").status_code == 422
    too_many = http.post("/rerank", json={"query": "q", "texts": ["d"] * 201})
    assert too_many.status_code == 413
    too_big = http.post("/rerank", json={"query": "q", "texts": ["x" * 70_000]})
    assert too_big.status_code == 413
    assert http.get("/missing").status_code == 404
    assert http.get("/").headers["content-type"].startswith("text/html")


async def test_16_concurrent_clients_over_tcp(url: str, rr: Reranker) -> None:
    workloads = [
        (
            f"question {i} {long_text(1 + i % 4, seed=i)}",
            [long_text(3 + (i * 17 + j * 31) % 60, seed=i * j) for j in range(1 + i % 6)],
        )
        for i in range(16)
    ]
    assert sum(len(docs) for _, docs in workloads) <= CAPACITY
    alone = [rr.score(query, docs) for query, docs in workloads]

    async def one(query: str, docs: list[str]) -> list[float]:
        # A client (connection pool) each, as 16 separate application processes would have.
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {KEY}"}
        ) as client:
            response = await client.post("/rerank", json={"query": query, "texts": docs})
        assert response.status_code == 200
        return [r["score"] for r in sorted(response.json(), key=lambda r: r["index"])]

    together = await asyncio.gather(*(one(q, d) for q, d in workloads))
    for got, expected in zip(together, alone, strict=True):
        assert got == pytest.approx(expected, abs=1e-5)


def test_disconnected_clients_pairs_leave_the_queue(url: str, http: httpx.Client, rr) -> None:
    engine = rr.engine
    pairs_before = engine.stats.pairs
    disconnects_before = _count(
        http.get("/metrics").text,
        r'rag_rerank_requests_total\{method="POST",route="/rerank",status="499"\}',
    )
    forward = engine.model.forward
    release = threading.Event()

    def slow_forward(*args, **kwargs):  # fault injection: the request's batch takes a while
        release.wait(30)
        return forward(*args, **kwargs)

    engine.model.forward = slow_forward
    body = json.dumps({"query": "gone", "texts": [f"doc {i}" for i in range(8)]}).encode()
    port = int(url.rsplit(":", 1)[1])
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"POST /rerank HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            wait_until(lambda: engine.waiting_windows == 8, "the request's pairs were not queued")
        # The socket is closed: the server notices, answers 499 to nobody and cancels the pairs.
        wait_until(
            lambda: (
                _count(
                    http.get("/metrics").text,
                    r'rag_rerank_requests_total\{method="POST",route="/rerank",status="499"\}',
                )
                == disconnects_before + 1
            ),
            "the server did not notice the disconnect",
        )
    finally:
        engine.model.forward = forward
        release.set()
    wait_until(lambda: engine.waiting_windows == 0, "the cancelled pairs stayed queued")
    assert http.post("/rerank", json={"query": "q", "texts": ["after"]}).status_code == 200
    # Only the last request was resolved: the 8 pairs were dropped.
    assert engine.stats.pairs == pairs_before + 1


def test_remote_reranker_matches_in_process_reranker(url: str, bert_dir: str) -> None:
    docs = DOCS * 12  # 72 documents: over the server's 64 per request, so the client splits
    rr = Reranker(bert_dir)  # in-process, no queue limit
    with RemoteReranker(url, api_key=KEY) as remote:
        assert remote.model_name == rr.model_name
        assert remote.score(QUERY, DOCS) == pytest.approx(rr.score(QUERY, DOCS), abs=1e-6)
        for top_n, threshold in ((None, None), (3, None), (None, 0.5), (4, 0.3)):
            got = remote.rerank(QUERY, docs, top_n=top_n, threshold=threshold)
            expected = rr.rerank(QUERY, docs, top_n=top_n, threshold=threshold)
            assert [(r.index, r.document) for r in got] == [(r.index, r.document) for r in expected]
            assert [r.score for r in got] == pytest.approx([r.score for r in expected], abs=1e-6)
            assert [r.raw_score for r in got] == pytest.approx(
                [r.raw_score for r in expected], abs=1e-6
            )
        got = asyncio.run(remote.arerank(QUERY, DOCS, top_n=2))
        assert [r.index for r in got] == [r.index for r in rr.rerank(QUERY, DOCS, top_n=2)]
        assert remote.rerank(QUERY, []) == []
        with pytest.raises(InvalidInputError) as info:
            remote.rerank("", DOCS)
        assert info.value.field == "query"
        with pytest.raises(TypeError) as type_info:
            remote.score(QUERY, ["ok", 3])  # type: ignore[list-item]
        assert type_info.value.field == "documents[1]"  # type: ignore[attr-defined]
        with pytest.raises(InvalidInputError, match="top_n"):
            remote.rerank(QUERY, DOCS, top_n=0)
    with RemoteReranker(url, api_key="wrong") as stranger:
        with pytest.raises(RemoteRerankError) as denied:
            stranger.score(QUERY, DOCS)
        assert denied.value.status_code == 401
    with pytest.raises(InvalidInputError, match="url"):
        RemoteReranker("127.0.0.1:8080")
    rr.close()


def test_remote_reranker_long_documents_goes_on_the_wire_as_truncate(
    url: str, rr: Reranker
) -> None:
    docs = [long_text(800), "money at the bank"]
    first = rr.with_options(long_documents="truncate").score(QUERY, docs)
    for mode, expected in (("truncate", first), ("windows", rr.score(QUERY, docs))):
        with RemoteReranker(url, api_key=KEY, long_documents=mode) as remote:
            assert remote.score(QUERY, docs) == pytest.approx(expected, abs=1e-6)
    assert first[0] != pytest.approx(rr.score(QUERY, docs)[0], abs=1e-6)
    with pytest.raises(InvalidInputError) as info:
        RemoteReranker(url, long_documents=True)  # type: ignore[arg-type]
    assert info.value.field == "long_documents"


def test_remote_reranker_retries_when_the_queue_is_full(url: str, http, rr: Reranker) -> None:
    metric = r'rag_rerank_requests_total\{method="POST",route="/rerank",status="429"\}'
    refused_before = _count(http.get("/metrics").text, metric)
    expected = rr.score(QUERY, DOCS)
    forward = rr.engine.model.forward
    release = threading.Event()

    def slow_forward(*args, **kwargs):  # fault injection: the long job holds the engine
        release.wait(30)
        return forward(*args, **kwargs)

    rr.engine.model.forward = slow_forward
    try:
        occupier = _occupy(rr, CAPACITY, words=300)  # its unscored windows fill the limit
        with (
            RemoteReranker(url, api_key=KEY, max_retries=0) as impatient,
            pytest.raises(OverloadedError),
        ):
            impatient.score(QUERY, DOCS)
        with RemoteReranker(
            url, api_key=KEY, max_retries=300, backoff=0.02, max_backoff=0.1
        ) as patient:
            scores: list[list[float]] = []
            worker = threading.Thread(target=lambda: scores.append(patient.score(QUERY, DOCS)))
            worker.start()
            wait_until(
                lambda: _count(http.get("/metrics").text, metric) >= refused_before + 2,
                "the patient client was never refused",
            )
            rr.engine.model.forward = forward
            release.set()
            worker.join(60)
        assert scores and scores[0] == pytest.approx(expected, abs=1e-6)
        occupier.result(timeout=60)
    finally:
        rr.engine.model.forward = forward
        release.set()


def test_serve_defaults_to_loopback_and_fails_clearly_on_a_bad_model(tmp_path, capsys) -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.api_key is None or "RAG_RERANK_API_KEY" in os.environ) == (
        "127.0.0.1",
        8080,
        True,
    )
    assert main(["serve", "--model", str(tmp_path / "no-such-model"), "--port", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rag-rerank: error:")


@pytest.mark.slow  # starts a fresh Python process that imports torch
def test_sigterm_drains_then_exits_0(busy_bert_dir: str) -> None:
    process, base = serve_cli(busy_bert_dir, drain_timeout=60)
    try:
        docs = [long_text(2000, seed=i) for i in range(48)]  # ~9 s of work on 2 cores
        slow: dict[str, httpx.Response] = {}

        def send_slow_request() -> None:
            slow["response"] = httpx.post(
                f"{base}/rerank", json={"query": "drain", "texts": docs}, timeout=120
            )

        sender = threading.Thread(target=send_slow_request)
        sender.start()
        # In flight: the slow request plus this /metrics request itself.
        wait_until(
            lambda: _count(httpx.get(f"{base}/metrics").text, "rag_rerank_requests_in_flight") >= 2,
            "the slow request never arrived",
        )
        process.send_signal(signal.SIGTERM)
        wait_until(lambda: httpx.get(f"{base}/ready").status_code == 503, "/ready stayed 200")
        late = httpx.post(f"{base}/rerank", json={"query": "late", "texts": ["a"]})
        assert late.status_code == 503
        assert late.json()["error_type"] == "shutting_down"
        assert late.headers["retry-after"]
        assert "response" not in slow  # still working: the drain waits for it
        sender.join(120)
        assert slow["response"].status_code == 200
        assert sorted(r["index"] for r in slow["response"].json()) == list(range(len(docs)))
        assert process.wait(timeout=60) == 0
        output = process.communicate()[0]
        assert "SIGTERM: not ready; draining" in output
        assert "drain" not in output.split("SIGTERM", 1)[0]  # texts are never logged
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
