"""The HTTP service on Ray Serve: 2 replicas serving two tiny models (a BERT default and an XLM-R
candidate) on a local Ray instance (one Serve deployment for the whole module), reached over HTTP,
through the adapters and by handle."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from server_testing import free_port, wait_until

from rag_rerank import RemoteReranker, Reranker, RerankError

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

pytestmark = pytest.mark.slow

KEY = "ray-test-key"
QUERY = "which bank pays interest on savings?"
DOCS = [
    "The bank pays interest on savings accounts every month.",
    "We sat on the river bank and watched the boats.",
    "Interest rates rose again this year.",
    "Savings grow when interest compounds.",
]
APP = "rerank"


@pytest.fixture(scope="module")
def deployed(bert_dir: str, xlmr_dir: str) -> Iterator[tuple[str, object]]:
    """``(base URL, handle)`` of a 2-replica app; Ray and Serve stop after the module."""
    from rag_rerank.cluster import connect, serve_app

    connect(num_cpus=2)
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        app = serve_app(
            models={"default": bert_dir, "candidate": xlmr_dir},
            replicas=2,
            cpus_per_replica=0.5,
            api_key=KEY,
            max_request_windows=50,
            dtype="fp32",
            device="cpu",
            cache=None,
        )
        handle = serve.run(app, name=APP, route_prefix="/")
        yield f"http://127.0.0.1:{port}", handle
    finally:
        serve.shutdown()
        ray.shutdown()


def _docs(i: int) -> list[str]:
    return [f"{d} (client {i})" for d in DOCS] + [f"passage number {i} about savings"]


def test_http_and_handle_give_in_process_scores(deployed, local: Reranker) -> None:
    url, handle = deployed
    auth = {"Authorization": f"Bearer {KEY}"}

    def call(i: int) -> tuple[int, list[dict]]:
        body = {"query": QUERY, "documents": _docs(i)}
        response = httpx.post(f"{url}/v1/rerank", json=body, headers=auth, timeout=60)
        assert response.status_code == 200, response.text
        return i, response.json()["results"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, range(16)))
    for i, results in answers:
        expected = local.score(QUERY, _docs(i))
        assert sorted(r["index"] for r in results) == list(range(len(expected)))
        for r in results:
            assert r["relevance_score"] == pytest.approx(expected[r["index"]], abs=1e-5)

    # The same app as `rag-rerank serve`: its routes, its API key (every route but /health).
    assert (
        httpx.post(f"{url}/v1/rerank", json={"query": QUERY, "documents": DOCS}).status_code == 401
    )
    assert httpx.get(f"{url}/health").status_code == 200
    for route in ("/ready", "/info", "/metrics", "/"):
        assert httpx.get(url + route, headers=auth).status_code == 200, route
    assert "rag_rerank" in httpx.get(f"{url}/metrics", headers=auth).text

    # In-cluster callers: the deployment handle has the reranker's methods.
    top = handle.rerank.remote(QUERY, DOCS, top_n=2).result()
    assert [r.index for r in top] == [r.index for r in local.rerank(QUERY, DOCS, top_n=2)]
    assert handle.score.remote(QUERY, DOCS).result() == pytest.approx(
        local.score(QUERY, DOCS), abs=1e-5
    )


def test_a_model_is_picked_by_name_as_in_rag_rerank_serve(deployed, xlmr_dir: str) -> None:
    url, handle = deployed
    auth = {"Authorization": f"Bearer {KEY}"}
    with Reranker(xlmr_dir, device="cpu", dtype="fp32", cache=None) as candidate:
        expected = candidate.score(QUERY, DOCS)
    body = {"query": QUERY, "documents": DOCS, "model": "candidate"}
    response = httpx.post(f"{url}/v1/rerank", json=body, headers=auth, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["X-Rerank-Model"] == "candidate"
    for r in response.json()["results"]:
        assert r["relevance_score"] == pytest.approx(expected[r["index"]], abs=1e-5)
    unknown = httpx.post(f"{url}/v1/rerank", json={**body, "model": "nope"}, headers=auth)
    assert unknown.status_code == 404 and "default, candidate" in unknown.json()["error"]
    info = httpx.get(f"{url}/info", headers=auth).json()
    assert [m["name"] for m in info["models"]] == ["default", "candidate"]
    # The plain server's limits hold on Serve too.
    many = {**body, "documents": [f"passage {i}" for i in range(51)]}
    too_much = httpx.post(f"{url}/v1/rerank", json=many, headers=auth)
    assert too_much.status_code == 413 and "max_request_windows" in too_much.json()["error"]
    with RemoteReranker(url, api_key=KEY, model="candidate") as remote:
        assert remote.score(QUERY, DOCS) == pytest.approx(expected, abs=1e-5)
    assert handle.score.remote(QUERY, DOCS, model="candidate").result() == pytest.approx(
        expected, abs=1e-5
    )


def test_clients_and_adapters_work_against_serve(deployed, local: Reranker) -> None:
    from langchain_core.documents import Document
    from langchain_core.runnables import RunnableLambda
    from langchain_rag_rerank import RagRerankRetriever
    from llama_index.core.schema import NodeWithScore, TextNode
    from llama_index.postprocessor.rag_rerank import RagRerank

    url, _ = deployed
    expected = local.rerank(QUERY, DOCS)
    with RemoteReranker(url, api_key=KEY) as remote:
        got = remote.rerank(QUERY, DOCS)
        assert [r.index for r in got] == [r.index for r in expected]
        assert [r.score for r in got] == pytest.approx([r.score for r in expected], abs=1e-5)

        base = RunnableLambda(lambda _q: [Document(page_content=d) for d in DOCS])
        retriever = RagRerankRetriever(base_retriever=base, reranker=remote, top_n=2)
        docs = retriever.invoke(QUERY)
        assert [d.page_content for d in docs] == [r.document for r in expected[:2]]

        nodes = [NodeWithScore(node=TextNode(text=d)) for d in DOCS]
        out = RagRerank(reranker=remote, top_n=2).postprocess_nodes(nodes, query_str=QUERY)
        assert [n.node.get_content() for n in out] == [r.document for r in expected[:2]]
        assert out[0].score == pytest.approx(expected[0].score, abs=1e-5)


def test_a_killed_replica_fails_cleanly_and_is_replaced(deployed, local: Reranker) -> None:
    url, _ = deployed
    replicas = [
        a
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == "serve" and "REPLICA" in a["name"].upper() and APP in a["name"]
    ]
    assert len(replicas) == 2, replicas
    outcomes: list[object] = []
    stop = threading.Event()

    def client(i: int) -> None:
        with RemoteReranker(url, api_key=KEY, max_retries=8, backoff=0.2, timeout=30) as rr:
            while not stop.is_set():
                try:
                    outcomes.append(rr.score(QUERY, _docs(i)))
                except RerankError as exc:  # a clear, typed error: never a hang
                    outcomes.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(outcomes) >= 8, "no request succeeded before the kill", timeout=60)
    ray.kill(ray.get_actor(replicas[0]["name"], namespace="serve"), no_restart=True)
    time.sleep(2)
    stop.set()
    for t in threads:
        t.join(90)
        assert not t.is_alive(), "a request hung after a replica died"
    # Requests lost with the replica come back as the proxy's error, which RemoteReranker
    # retries (reranking is read-only): every call answers, with the in-process scores.
    errors = [o for o in outcomes if not isinstance(o, list)]
    assert outcomes and not errors, errors[:3]

    def healthy() -> bool:
        status = serve.status().applications[APP]
        deployment = status.deployments["RerankDeployment"]
        return status.status == "RUNNING" and deployment.replica_states.get("RUNNING") == 2

    wait_until(
        lambda: time.sleep(0.5) or healthy(), "Serve did not replace the killed replica", timeout=90
    )
    with RemoteReranker(url, api_key=KEY) as rr:
        for i in range(4):
            assert rr.score(QUERY, _docs(i)) == pytest.approx(
                local.score(QUERY, _docs(i)), abs=1e-5
            )
