"""Several models behind one server: routing by name, the traffic split, shadow scoring, the
start-up memory check, Cohere's /v2/rerank (through the Cohere SDK) and RemoteReranker(model=)."""

from __future__ import annotations

import asyncio
import math
import re
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from server_testing import client_for, live_server, long_text

from rag_rerank import RemoteReranker, Reranker
from rag_rerank.cli import main
from rag_rerank.server import create_app
from rag_rerank.server.models import TrafficSplit

QUERY = "which bank pays interest on savings?"
DOCS = [
    "The bank pays interest on savings accounts every month.",
    "We sat on the river bank and watched the boats.",
    "Interest rates rose again this year.",
    "A loan from the bank bought the fishing boat.",
    "Pandas eat bamboo.",
    "Savings grow when interest compounds.",
]
KEY = "models-test-key"


@pytest.fixture(scope="module")
def bert(bert_dir: str) -> Iterator[Reranker]:
    with Reranker(bert_dir, show_progress=False, cache=None) as reranker:
        yield reranker


@pytest.fixture(scope="module")
def xlmr(xlmr_dir: str) -> Iterator[Reranker]:
    with Reranker(xlmr_dir, show_progress=False, cache=None) as reranker:
        yield reranker


@pytest.fixture
async def two(bert: Reranker, xlmr: Reranker) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app({"default": bert, "candidate": xlmr})) as client:
        yield client


def _series(text: str, name: str) -> dict[str, float]:
    """Labels -> value of every sample of metric ``name``."""
    return {
        labels: float(value)
        for labels, value in re.findall(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE)
    }


# -- two architectures in one server ------------------------------------------------------------


async def test_each_model_scores_as_in_process(two, bert: Reranker, xlmr: Reranker) -> None:
    for name, reranker in (("default", bert), ("candidate", xlmr)):
        expected = reranker.rerank(QUERY, DOCS)
        tei = await two.post("/rerank", json={"query": QUERY, "texts": DOCS, "model": name})
        assert tei.status_code == 200
        assert tei.headers["x-rerank-model"] == name
        assert [r["index"] for r in tei.json()] == [r.index for r in expected]
        assert [r["score"] for r in tei.json()] == pytest.approx(
            [r.score for r in expected], abs=1e-6
        )
        for path in ("/v1/rerank", "/v2/rerank"):
            body = {"query": QUERY, "documents": DOCS, "model": name, "top_n": 3}
            cohere = await two.post(path, json=body)
            assert cohere.status_code == 200
            assert cohere.json()["model"] == name
            assert [r["relevance_score"] for r in cohere.json()["results"]] == pytest.approx(
                [r.score for r in expected[:3]], abs=1e-6
            )
    # The two architectures really differ: the test would pass vacuously otherwise.
    assert bert.score(QUERY, DOCS) != pytest.approx(xlmr.score(QUERY, DOCS), abs=1e-3)
    # No model named, no split: the first model.
    plain = await two.post("/rerank", json={"query": QUERY, "texts": DOCS})
    assert plain.headers["x-rerank-model"] == "default"


async def test_unknown_model_is_404_naming_the_models(two) -> None:
    for path, body in (
        ("/rerank", {"query": QUERY, "texts": DOCS, "model": "nope"}),
        ("/v1/rerank", {"query": QUERY, "documents": DOCS, "model": "nope"}),
        ("/v2/rerank", {"query": QUERY, "documents": DOCS, "model": "nope"}),
    ):
        response = await two.post(path, json=body)
        assert response.status_code == 404
        error = response.json()
        assert error["field"] == "model"
        assert "'nope'" in error["error"] and "default, candidate" in error["error"]


async def test_info_and_metrics_per_model(two, bert: Reranker, xlmr: Reranker) -> None:
    await two.post("/rerank", json={"query": QUERY, "texts": DOCS, "model": "candidate"})
    info = (await two.get("/info")).json()
    assert [(m["name"], m["model_id"], m["default"]) for m in info["models"]] == [
        ("default", bert.model_name, True),
        ("candidate", xlmr.model_name, False),
    ]
    assert {m["device"] for m in info["models"]} == {"cpu"}
    assert info["models"][1]["max_input_length"] == xlmr.max_length
    text = (await two.get("/metrics")).text
    assert set(_series(text, "rag_rerank_worker_alive")) == {
        '{model="default"}',
        '{model="candidate"}',
    }
    assert _series(text, "rag_rerank_model_requests_total")['{model="candidate"}'] >= 1
    assert text.count("# TYPE rag_rerank_worker_alive gauge") == 1  # one family, two series


async def test_metrics_exposition_with_caches(bert_dir: str, xlmr_dir: str) -> None:
    with (
        Reranker(bert_dir, cache="memory", show_progress=False) as a,
        Reranker(xlmr_dir, cache="memory", show_progress=False) as b,
    ):
        async with client_for(create_app({"a": a, "b": b})) as client:
            # The in-process cache is shared by the process's rerankers: count from here, with
            # a query no other test scored.
            before = _series((await client.get("/metrics")).text, "rag_rerank_cache_misses_total")
            query = f"{QUERY} {uuid.uuid4().hex}"
            await client.post("/rerank", json={"query": query, "texts": DOCS, "model": "b"})
            text = (await client.get("/metrics")).text
    types = [line for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))  # each family declared once, its series grouped
    misses = _series(text, "rag_rerank_cache_misses_total")
    assert {k: v - before[k] for k, v in misses.items()} == {
        '{model="a",cache="memory"}': 0,
        '{model="b",cache="memory"}': len(DOCS),
    }
    kept = _series(text, "rag_rerank_documents_kept_count")
    assert kept == {'{model="a"}': 0, '{model="b"}': 1}


def test_create_app_refuses_names_it_does_not_serve(bert: Reranker) -> None:
    from rag_rerank import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"^split: no model named 'b'"):
        create_app({"a": bert}, split={"a": 1, "b": 1})
    with pytest.raises(InvalidInputError, match=r"^shadow: no model named 'c'"):
        create_app({"a": bert}, shadow="c")


# -- traffic split ------------------------------------------------------------------------------


async def test_split_90_10_within_binomial_bounds_and_sticky(
    bert: Reranker, xlmr: Reranker
) -> None:
    app = create_app({"default": bert, "candidate": xlmr}, split={"default": 90, "candidate": 10})
    async with client_for(app) as client:
        served: Counter[str] = Counter()
        for start in range(0, 1000, 100):
            responses = await asyncio.gather(
                *(
                    client.post("/rerank", json={"query": "q", "texts": ["d"]})
                    for _ in range(start, start + 100)
                )
            )
            served.update(r.headers["x-rerank-model"] for r in responses)
        # 1,000 draws at p = 0.1: mean 100, sd 9.5; 5 sd either side fails once in 3 million.
        sd = math.sqrt(1000 * 0.1 * 0.9)
        assert abs(served["candidate"] - 100) < 5 * sd
        assert served["default"] + served["candidate"] == 1000
        # A key sticks to one model, whatever the route.
        for key in ("user-1", "user-2", "session-abc"):
            seen = set()
            for path, body in (
                ("/rerank", {"query": "q", "texts": ["d"]}),
                ("/v1/rerank", {"query": "q", "documents": ["d"]}),
            ) * 5:
                response = await client.post(path, json=body, headers={"X-Rerank-Key": key})
                seen.add(response.headers["x-rerank-model"])
            assert len(seen) == 1
        # A request that names a model is not split.
        named = await client.post(
            "/rerank", json={"query": "q", "texts": ["d"], "model": "candidate"}
        )
        assert named.headers["x-rerank-model"] == "candidate"
        info = (await client.get("/info")).json()
        assert info["split"] == {"default": 0.9, "candidate": 0.1}


def test_sticky_keys_spread_by_weight() -> None:
    split = TrafficSplit({"default": 90, "candidate": 10})
    chosen = Counter(split.choose(f"user-{i}") for i in range(1000))
    assert abs(chosen["candidate"] - 100) < 5 * math.sqrt(1000 * 0.1 * 0.9)
    assert all(split.choose(f"user-{i}") == split.choose(f"user-{i}") for i in range(50))


# -- shadow scoring -----------------------------------------------------------------------------


async def test_shadow_with_the_same_weights_agrees_fully(bert_dir: str, bert: Reranker) -> None:
    with Reranker(bert_dir, show_progress=False, cache=None) as twin:
        app = create_app({"default": bert, "twin": twin}, shadow="twin")
        async with client_for(app) as client:
            for i in range(5):
                docs = [long_text(5 + 3 * j, seed=i + j) for j in range(8)]
                body = {"query": f"bank interest {i}", "texts": docs}
                response = await client.post("/rerank", json=body)
                assert response.status_code == 200
                assert response.headers["x-rerank-model"] == "default"
            # top_n still applies to the answer; the shadow compares the full ranking.
            cut = await client.post(
                "/v1/rerank", json={"query": QUERY, "documents": DOCS, "top_n": 2}
            )
            assert len(cut.json()["results"]) == 2
            await app.state.service.shadow.wait()
            info = (await client.get("/info")).json()
            text = (await client.get("/metrics")).text
    (summary,) = info["shadow"]
    assert summary["primary"] == "default" and summary["shadow"] == "twin"
    assert summary["compared"] == 6 and summary["dropped"] == 0
    assert summary["top1_agreement"] == summary["top5_overlap"] == summary["kendall_tau"] == 1.0
    pair = '{primary="default",shadow="twin"}'
    assert _series(text, "rag_rerank_shadow_top1_agreement")[pair] == 1.0
    assert _series(text, "rag_rerank_shadow_kendall_tau")[pair] == 1.0
    assert _series(text, "rag_rerank_shadow_compared_total")[pair] == 6
    latency = _series(text, "rag_rerank_shadow_duration_seconds_count")
    assert latency['{primary="default",shadow="twin",role="shadow"}'] == 6
    assert latency['{primary="default",shadow="twin",role="primary"}'] == 6


async def test_slow_shadow_work_is_dropped_not_queued(bert_dir: str, bert: Reranker) -> None:
    with Reranker(bert_dir, show_progress=False, cache=None) as slow:
        # Slow the shadow model down: its forward pass waits until the test opens the gate.
        gate = threading.Event()
        embeddings = slow.engine.model.model.get_input_embeddings()

        def hold(*_: object) -> None:
            gate.wait(60)

        hook = embeddings.register_forward_pre_hook(hold)
        app = create_app({"default": bert, "slow": slow}, shadow="slow", shadow_queue=2)
        shadow = app.state.service.shadow
        try:
            async with client_for(app) as client:
                responses = [
                    await client.post("/rerank", json={"query": QUERY, "texts": DOCS})
                    for _ in range(10)
                ]
                # Every answer came back while the shadow model was still held up.
                assert [r.status_code for r in responses] == [200] * 10
                assert shadow.pending == 2
                (summary,) = shadow.summary()
                assert summary["dropped"] == 8 and summary["compared"] == 0
                gate.set()
                await shadow.wait()
                (summary,) = shadow.summary()
                assert (summary["compared"], summary["dropped"], shadow.pending) == (2, 8, 0)
                text = (await client.get("/metrics")).text
        finally:
            gate.set()
            hook.remove()
    dropped = _series(text, "rag_rerank_shadow_dropped_total")
    assert dropped['{primary="default",shadow="slow"}'] == 8


# -- start-up memory check ----------------------------------------------------------------------


def test_models_that_do_not_fit_stop_the_server_at_start_up(
    bert_dir: str, xlmr_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["serve", "--model", f"default={bert_dir}", "--model", f"candidate={xlmr_dir}",
         "--memory-limit", "64KiB", "--port", "1"]
    )  # fmt: skip
    assert code == 2
    message = capsys.readouterr().err
    assert "do not fit in --memory-limit 65536 bytes" in message
    assert re.search(r"default needs [0-9.]+ MiB, candidate needs [0-9.]+ MiB", message)


def test_bad_rollout_flags_are_usage_errors(
    bert_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["serve", "--model", f"a={bert_dir}", "--port", "1"]
    assert main([*common, "--split", "a=90,b=10"]) == 2
    assert "--split: no model named 'b'; served: a" in capsys.readouterr().err
    assert main([*common, "--split", "a=ninety"]) == 2
    assert "--split: a: weight 'ninety' is not a number" in capsys.readouterr().err
    assert main([*common, "--shadow", "b"]) == 2
    assert "--shadow: no model named 'b'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([*common, "--model", f"a={bert_dir}"])
    assert exc.value.code == 2
    assert "the name 'a' is given twice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*common, "--memory-limit", "lots"])
    assert "expected a size such as 512MB" in capsys.readouterr().err


# -- over TCP: the Cohere SDK, RemoteReranker(model=) and the adapters --------------------------


@pytest.fixture(scope="module")
def url(bert: Reranker, xlmr: Reranker) -> Iterator[str]:
    app = create_app({"default": bert, "candidate": xlmr}, api_key=KEY)
    with live_server(app) as base_url:
        yield base_url


def test_cohere_client_v2_against_v2_rerank(url: str, xlmr: Reranker) -> None:
    cohere = pytest.importorskip("cohere")
    client = cohere.ClientV2(base_url=url, api_key=KEY)
    response = client.rerank(model="candidate", query=QUERY, documents=DOCS, top_n=3)
    expected = xlmr.rerank(QUERY, DOCS, top_n=3)
    assert [r.index for r in response.results] == [r.index for r in expected]
    assert [r.relevance_score for r in response.results] == pytest.approx(
        [r.score for r in expected], abs=1e-6
    )
    # max_tokens_per_doc: each document's first window only.
    short = client.rerank(model="candidate", query=QUERY, documents=DOCS, max_tokens_per_doc=20)
    truncated = xlmr.with_options(long_documents="truncate", max_length=20)
    assert [r.relevance_score for r in short.results] == pytest.approx(
        [r.score for r in truncated.rerank(QUERY, DOCS)], abs=1e-6
    )
    with pytest.raises(cohere.core.api_error.ApiError) as exc:
        client.rerank(model="nope", query=QUERY, documents=DOCS)
    assert exc.value.status_code == 404


def test_remote_reranker_and_adapters_pick_a_model(url: str, xlmr: Reranker) -> None:
    expected = xlmr.rerank(QUERY, DOCS, top_n=3)
    with RemoteReranker(url, api_key=KEY, model="candidate") as remote:
        assert remote.model_name == "candidate"
        got = remote.rerank(QUERY, DOCS, top_n=3)
        assert [r.score for r in got] == pytest.approx([r.score for r in expected], abs=1e-6)
        langchain = pytest.importorskip("langchain_rag_rerank")
        from langchain_core.documents import Document

        compressor = langchain.RagRerank(reranker=remote, top_n=3)
        assert compressor.model == "candidate"
        kept = compressor.compress_documents([Document(page_content=d) for d in DOCS], QUERY)
        assert [d.metadata["relevance_score"] for d in kept] == pytest.approx(
            [r.score for r in expected], abs=1e-6
        )
        llama = pytest.importorskip("llama_index.postprocessor.rag_rerank")
        from llama_index.core.schema import NodeWithScore, TextNode

        postprocessor = llama.RagRerank(reranker=remote, top_n=3)
        assert postprocessor.model == "candidate"
        nodes = postprocessor.postprocess_nodes(
            [NodeWithScore(node=TextNode(text=d)) for d in DOCS], query_str=QUERY
        )
        assert [n.score for n in nodes] == pytest.approx([r.score for r in expected], abs=1e-6)
    # A client that chose no model: the adapters' model= picks the server's model by name.
    with RemoteReranker(url, api_key=KEY) as server_choice:
        assert server_choice.rerank(QUERY, DOCS)[0].score != pytest.approx(expected[0].score)
        for adapter in (langchain.RagRerank, llama.RagRerank):
            component = adapter(reranker=server_choice, model="candidate", top_n=3)
            assert component.model == "candidate"
            assert component.loaded_reranker.model == "candidate"
            assert server_choice.model is None  # the caller's client is left as it was
            got = component.loaded_reranker.rerank(QUERY, DOCS, top_n=3)
            assert [r.score for r in got] == pytest.approx([r.score for r in expected], abs=1e-6)
    with RemoteReranker(url, api_key=KEY, model="nope") as missing:
        from rag_rerank.client import RemoteRerankError

        with pytest.raises(RemoteRerankError, match=r"404.*'nope'"):
            missing.rerank(QUERY, DOCS)
