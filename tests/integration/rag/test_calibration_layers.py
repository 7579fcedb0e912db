"""A calibrated reranker returns sigmoid(a * logit + b) in every layer: both adapters, the
pipeline's threshold, the server (and its /metrics score series), and the CLI (calibrate, rerank
--calibration, eval's threshold table)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_rag_rerank import RagRerank as LangChainRerank
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.rag_rerank import RagRerank as LlamaIndexRerank

from rag_rerank import CalibrationError, Reranker
from rag_rerank.api import Calibration
from rag_rerank.cli import main
from rag_rerank.server import create_app

A, B = 2.0, -0.5
QUERY = "where can I borrow money from a bank?"
DOCS = [
    "The bank approved the loan at a low interest rate.",
    "Fish swim upstream along the river bank.",
    "An apple a day keeps the doctor away.",
    "Savings accounts pay interest on money you deposit.",
]
BEIR_SAMPLE = Path(__file__).resolve().parents[2] / "data" / "beir_sample"


@pytest.fixture(scope="module")
def calibration_file(bert_dir: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("calibration")
    calibration = Calibration(
        model=bert_dir, method="platt", parameters={"a": A, "b": B}, threshold=0.3, target="f1"
    )
    return str(calibration.save(folder / "calibration.json"))


@pytest.fixture(scope="module")
def expected(bert_dir: str) -> dict[str, float]:
    """Each document's sigmoid(A * logit + B), from the uncalibrated reranker's logits."""
    results = Reranker.shared(bert_dir, show_progress=False).rerank(QUERY, DOCS)
    return {r.document: float(1 / (1 + np.exp(-(A * r.raw_score + B)))) for r in results}


def test_langchain_compressor(bert_dir, calibration_file, expected) -> None:
    compressor = LangChainRerank(
        model=bert_dir, top_n=None, calibration=calibration_file, show_progress=False
    )
    out = compressor.compress_documents([Document(page_content=d) for d in DOCS], QUERY)
    for doc in out:
        assert doc.metadata["relevance_score"] == pytest.approx(expected[doc.page_content], 1e-5)
    cut = LangChainRerank(
        model=bert_dir,
        top_n=None,
        score_threshold="calibrated",
        calibration=calibration_file,
        show_progress=False,
    )
    kept = cut.compress_documents([Document(page_content=d) for d in DOCS], QUERY)
    assert {d.page_content for d in kept} == {d for d, s in expected.items() if s >= 0.3}


def test_llamaindex_postprocessor(bert_dir, calibration_file, expected) -> None:
    post = LlamaIndexRerank(
        model=bert_dir,
        top_n=None,
        score_threshold="calibrated",
        calibration=calibration_file,
        show_progress=False,
    )
    nodes = [NodeWithScore(node=TextNode(text=d), score=0.0) for d in DOCS]
    out = post.postprocess_nodes(nodes, QueryBundle(QUERY))
    assert {n.node.get_content() for n in out} == {d for d, s in expected.items() if s >= 0.3}
    for n in out:
        assert n.score == pytest.approx(expected[n.node.get_content()], 1e-5)


def test_adapters_refuse_a_calibration_for_another_model(bert_dir, tmp_path) -> None:
    other = Calibration(
        model="BAAI/bge-reranker-large", method="platt", parameters={"a": 1, "b": 0}
    )
    path = str(other.save(tmp_path / "other.json"))
    for adapter in (LangChainRerank, LlamaIndexRerank):
        with pytest.raises(ValueError, match="bge-reranker-large") as caught:  # pydantic wraps it
            adapter(model=bert_dir, calibration=path)
        assert bert_dir in str(caught.value)
    with pytest.raises(CalibrationError, match="bge-reranker-large"):
        Reranker(bert_dir, calibration=path)


async def test_server_scores_threshold_and_metrics(bert_dir, calibration_file, expected) -> None:
    reranker = Reranker(bert_dir, calibration=calibration_file, show_progress=False)
    app = create_app(reranker)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            tei = (await client.post("/rerank", json={"query": QUERY, "texts": DOCS})).json()
            for row in tei:
                assert row["score"] == pytest.approx(expected[DOCS[row["index"]]], 1e-5)
            body = {"query": QUERY, "documents": DOCS, "score_threshold": "calibrated"}
            cohere = (await client.post("/v1/rerank", json=body)).json()
            kept = {DOCS[r["index"]] for r in cohere["results"]}
            assert kept == {d for d, s in expected.items() if s >= 0.3}
            nothing = {"query": QUERY, "texts": DOCS, "score_threshold": 1.0}
            assert (await client.post("/rerank", json=nothing)).json() == []
            bad = {"query": QUERY, "texts": DOCS, "score_threshold": "calibrate"}
            assert (await client.post("/rerank", json=bad)).status_code == 422
            text = (await client.get("/metrics")).text
    finally:
        reranker.close()
    series = _metrics(text)
    top = max(expected.values())
    assert series["rag_rerank_top_score_count"] == 2  # the request that kept nothing has none
    assert series["rag_rerank_top_score_sum"] == pytest.approx(2 * top, 1e-5)
    assert series["rag_rerank_returned_score_count"] == len(DOCS) + len(kept)
    assert series["rag_rerank_documents_kept_count"] == 3
    assert series["rag_rerank_documents_kept_sum"] == len(DOCS) + len(kept)
    assert series['rag_rerank_documents_kept_bucket{le="0"}'] == 1
    assert series["rag_rerank_nothing_passed_total"] == 1
    assert series['rag_rerank_top_score_bucket{le="+Inf"}'] == 2
    assert "# TYPE rag_rerank_top_score histogram" in text


def test_remote_reranker_with_the_server_calibration(bert_dir, calibration_file, expected):
    from server_testing import live_server

    from rag_rerank import RemoteReranker

    with (
        Reranker(bert_dir, calibration=calibration_file, show_progress=False) as local,
        live_server(create_app(local)) as url,
        RemoteReranker(url, calibration=calibration_file) as remote,
    ):
        results = remote.rerank(QUERY, DOCS, threshold="calibrated")
        assert [r.index for r in results] == [r.index for r in local.rerank(QUERY, DOCS, None, 0.3)]
        for r in results:
            assert r.score == pytest.approx(expected[r.document], abs=1e-5)
        assert remote.score(QUERY, DOCS) == pytest.approx(local.score(QUERY, DOCS), abs=1e-6)
    with pytest.raises(CalibrationError):
        RemoteReranker("http://127.0.0.1:9", calibration=str(Path(calibration_file).parent / "no"))


async def test_server_calibrated_threshold_without_calibration_is_422(bert_dir) -> None:
    reranker = Reranker(bert_dir, show_progress=False)
    transport = httpx.ASGITransport(app=create_app(reranker))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            body = {"query": QUERY, "texts": DOCS, "score_threshold": "calibrated"}
            response = await client.post("/rerank", json=body)
    finally:
        reranker.close()
    assert response.status_code == 422
    assert "calibrated" in response.text


def _metrics(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


# -- CLI ----------------------------------------------------------------------------------------


def _labels(path: Path, bert_dir: str, count: int = 60) -> Path:
    """Labels drawn from sigmoid(A * logit + B) of the tiny model's own logits."""
    rng = np.random.default_rng(1)
    words = "bank loan money interest river fish apple doctor savings deposit panda".split()
    rows = [(" ".join(rng.choice(words, 3)), " ".join(rng.choice(words, 6))) for _ in range(count)]
    scored = Reranker.shared(bert_dir, show_progress=False).rerank_many(
        [q for q, _ in rows], [[d] for _, d in rows]
    )
    logits = np.asarray([r[0].raw_score for r in scored])
    labels = (rng.random(count) < 1 / (1 + np.exp(-(A * logits + B)))).astype(int)
    labels[:2] = [0, 1]  # both classes, whatever the draw
    path.write_text(
        "".join(
            json.dumps({"query": f"q{i % 12} {q}", "document": d, "label": int(y)}) + "\n"
            for i, ((q, d), y) in enumerate(zip(rows, labels, strict=True))
        ),
        encoding="utf-8",
    )
    return path


def test_cli_calibrate_then_rerank_with_the_file(bert_dir, tmp_path, capsys) -> None:
    labels = _labels(tmp_path / "labels.jsonl", bert_dir)
    out = tmp_path / "cal.json"
    code = main(
        ["calibrate", str(labels), "--model", bert_dir, "--out", str(out), "--quiet",
         "--target", "recall=0.9"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    for needle in ("method: platt (a=", "ECE", "Brier", "before", "after", "kept/query", " *"):
        assert needle in printed
    assert out.with_name("cal.reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert out.with_name("cal.thresholds.png").read_bytes()[:4] == b"\x89PNG"
    calibration = Calibration.load(out)
    assert calibration.target == "recall=0.9" and calibration.labels == 60
    assert calibration.metrics["threshold"]["recall"] >= 0.9
    assert f"recommended threshold (recall=0.9): {calibration.threshold:.4f}" in printed

    candidates = tmp_path / "docs.txt"
    candidates.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    code = main(
        ["rerank", "--query", QUERY, "--file", str(candidates), "--json", "--model", bert_dir,
         "--calibration", str(out), "--threshold", "calibrated"]
    )  # fmt: skip
    rows = json.loads(capsys.readouterr().out)
    assert code == 0
    for row in rows:
        assert row["score"] == pytest.approx(calibration.scores([row["raw_score"]])[0], abs=1e-6)
        assert row["score"] >= calibration.threshold


def test_cli_bad_labels_name_the_line(bert_dir, tmp_path, capsys) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"query": "q", "document": "d", "label": 1}\n{"query": "q"}\n', "utf-8")
    assert main(["calibrate", str(labels), "--model", bert_dir]) == 1
    assert f"{labels}, line 2: 'document' must be a non-empty string" in capsys.readouterr().err


def test_cli_mismatched_calibration_is_refused(bert_dir, xlmr_dir, calibration_file, capsys):
    code = main(["score", "--model", xlmr_dir, "--calibration", calibration_file])
    assert code == 1
    err = capsys.readouterr().err
    assert bert_dir in err and xlmr_dir in err


def test_cli_calibrate_beir_and_eval_threshold_table(bert_dir, tmp_path, capsys) -> None:
    out = tmp_path / "beir.json"
    code = main(
        ["calibrate", str(BEIR_SAMPLE), "--model", bert_dir, "-k", "10", "--out", str(out),
         "--quiet", "--holdout", "0"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "left out 1 queries with no relevant document (q8)" in captured.err
    assert Calibration.load(out).labels == 90  # 9 judged queries x 10 candidates
    code = main(
        ["eval", str(BEIR_SAMPLE), "--model", bert_dir, "-k", "10", "--quiet",
         "--calibration", str(out), "--json", str(tmp_path / "report.json")]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "thresholds on the reranked score (* recommended, the calibration's, f1)" in printed
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["thresholds"]["recommended"] == Calibration.load(out).threshold
    assert len(report["thresholds"]["rows"]) == 20
