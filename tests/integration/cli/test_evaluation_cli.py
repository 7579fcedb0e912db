"""End to end on the sample dataset: Chroma retrieval, reranking with a tiny model, both orders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag_rerank import Reranker
from rag_rerank.cli import main
from rag_rerank.evaluation import compute_metrics, evaluate, load_beir
from rag_rerank.rag.embeddings import default_embedding_function

SAMPLE = Path(__file__).parents[2] / "data" / "beir_sample"
METRICS = {"NDCG@10", "MRR@10", "Recall@5", "Recall@20"}


@pytest.fixture(scope="module")
def embedding_function():
    return default_embedding_function()


@pytest.fixture(scope="module")
def reranker(bert_dir: str):
    with Reranker(bert_dir, device="cpu") as rr:
        yield rr


def test_eval_command_end_to_end(
    bert_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    argv = ["eval", str(SAMPLE), "--model", bert_dir, "--device", "cpu", "--k", "20"]
    assert main([*argv, "--top-n", "5", "--json", str(out)]) == 0

    captured = capsys.readouterr()
    assert "queries: 100%" in captured.err  # the progress bar over queries
    assert "dataset: beir_sample (test: 10 queries, 36 documents), k=20, top-n=5" in captured.out
    assert "1 query has no relevant document" in captured.out  # q8: only grade-0 judgements
    for name in METRICS:
        assert any(line.startswith(name) for line in captured.out.splitlines()), name
    assert "retrieval" in captured.out and "reranking" in captured.out

    report = json.loads(out.read_text())
    assert (report["dataset"], report["split"], report["model"]) == (
        "beir_sample",
        "test",
        bert_dir,
    )
    assert (report["k"], report["top_n"], report["num_queries"]) == (20, 5, 10)
    assert report["num_documents"] == 36
    for order in ("retrieval", "reranked"):
        values = report["metrics"][order]
        assert set(values) == METRICS
        assert all(0.0 <= v <= 1.0 for v in values.values())
    # Reranking reorders the same 20 candidates: recall at the retrieval depth cannot change.
    assert report["metrics"]["retrieval"]["Recall@20"] == report["metrics"]["reranked"]["Recall@20"]
    for stage in ("retrieval", "reranking"):
        latency = report["latency"][stage]
        assert set(latency) == {"p50_ms", "p95_ms", "mean_ms", "count"}
        assert 0.0 < latency["p50_ms"] <= latency["p95_ms"]
        assert latency["count"] == 10


def test_evaluate_reranks_the_retrieved_candidates(reranker: Reranker, embedding_function) -> None:
    dataset = load_beir(SAMPLE)
    report = evaluate(
        dataset,
        reranker,
        k=8,
        top_n=3,
        embedding_function=embedding_function,
        max_queries=4,
        show_progress=False,
    )
    assert [run.query_id for run in report.runs] == ["q1", "q2", "q3", "q4"]
    assert report.num_queries == 4 and not report.index_reused
    for run in report.runs:
        assert len(run.retrieved) == 8 and sorted(run.reranked) == sorted(run.retrieved)
        texts = [dataset.corpus[doc_id].content for doc_id in run.retrieved]
        expected = reranker.rerank(dataset.queries[run.query_id], texts)
        assert run.reranked == tuple(run.retrieved[r.index] for r in expected)
        assert run.rerank_scores == pytest.approx([r.score for r in expected], abs=1e-6)
    qrels = {run.query_id: dataset.qrels[run.query_id] for run in report.runs}
    for order, attribute in ((report.retrieval, "retrieved"), (report.reranked, "reranked")):
        rankings = {run.query_id: getattr(run, attribute) for run in report.runs}
        assert order == compute_metrics(qrels, rankings, n=3, k=8)
    assert set(report.to_dict()["metrics"]["reranked"]) == {
        "NDCG@10",
        "MRR@10",
        "Recall@3",
        "Recall@8",
    }


def test_persisted_index_is_reused(reranker: Reranker, embedding_function, tmp_path: Path) -> None:
    dataset = load_beir(SAMPLE)
    options = {
        "k": 5,
        "embedding_function": embedding_function,
        "persist_directory": tmp_path / "chroma",
        "max_queries": 1,
        "show_progress": False,
    }
    first = evaluate(dataset, reranker, **options)
    second = evaluate(dataset, reranker, **options)
    assert (first.index_reused, second.index_reused) == (False, True)
    assert first.runs[0].retrieved == second.runs[0].retrieved


def test_top_n_above_k_is_refused(
    bert_dir: str, reranker: Reranker, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", str(SAMPLE), "--model", bert_dir, "--k", "3", "--top-n", "5"]
    assert main(argv) == 1
    assert "--top-n (5) must not exceed --k (3)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="top_n"):
        evaluate(load_beir(SAMPLE), reranker, k=3, top_n=5)


def broken_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SAMPLE, tmp_path / "broken"))


def corrupt_missing_corpus(folder: Path) -> tuple[str, int | None]:
    (folder / "corpus.jsonl").unlink()
    return "corpus.jsonl", None


def corrupt_bad_json(folder: Path) -> tuple[str, int | None]:
    path = folder / "queries.jsonl"
    lines = path.read_text().splitlines()
    lines[5] = '{"_id": "q6", "text": '
    path.write_text("\n".join(lines) + "\n")
    return "queries.jsonl", 6


def corrupt_unknown_query(folder: Path) -> tuple[str, int | None]:
    path = folder / "qrels" / "test.tsv"
    with path.open("a") as handle:
        handle.write("q404\td01\t1\n")
    return "test.tsv", len(path.read_text().splitlines())


def corrupt_unknown_document(folder: Path) -> tuple[str, int | None]:
    path = folder / "qrels" / "test.tsv"
    lines = path.read_text().splitlines()
    lines[9] = "q3\td999\t2"
    path.write_text("\n".join(lines) + "\n")
    return "test.tsv", 10


@pytest.mark.parametrize(
    ("corrupt", "fragment"),
    [
        (corrupt_missing_corpus, "missing file"),
        (corrupt_bad_json, "bad JSON"),
        (corrupt_unknown_query, "unknown query id 'q404'"),
        (corrupt_unknown_document, "unknown document id 'd999'"),
    ],
)
def test_malformed_dataset_names_file_and_line(
    corrupt, fragment: str, bert_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = broken_copy(tmp_path)
    file, line = corrupt(folder)
    assert main(["eval", str(folder), "--model", bert_dir, "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("rag-rerank: error: ")
    assert len(err.splitlines()) == 1  # one clear line, no traceback
    assert file in err and fragment in err
    if line is not None:
        assert f"line {line}:" in err


def test_evaluate_runs_any_reranker_through_the_pipeline(
    reranker: Reranker, embedding_function
) -> None:
    """A RemoteReranker (any RerankerLike) gives the same runs as the local reranker it serves,
    and evaluation retrieves through RerankPipeline.retrieve."""
    from server_testing import live_server

    from rag_rerank import RemoteReranker
    from rag_rerank.rag import RerankPipeline
    from rag_rerank.server import create_app

    dataset = load_beir(SAMPLE)
    options = {
        "k": 6,
        "top_n": 2,
        "embedding_function": embedding_function,
        "max_queries": 3,
        "show_progress": False,
    }
    local = evaluate(dataset, reranker, **options)
    retrieved_queries: list[str] = []
    original = RerankPipeline.retrieve

    def spy(self: RerankPipeline, question: str, k: int = 50, where=None):
        retrieved_queries.append(question)
        return original(self, question, k, where)

    with (
        live_server(create_app(reranker)) as url,
        RemoteReranker(url) as remote,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr(RerankPipeline, "retrieve", spy)
        remote_report = evaluate(dataset, remote, **options)
    # One warm-up query, then each evaluated query once.
    assert retrieved_queries == [dataset.queries[q] for q in ("q1", "q1", "q2", "q3")]
    assert remote_report.model == reranker.model_name  # from the server's /info
    for got, want in zip(remote_report.runs, local.runs, strict=True):
        assert (got.retrieved, got.reranked) == (want.retrieved, want.reranked)
        assert got.rerank_scores == pytest.approx(want.rerank_scores, abs=1e-6)
    assert remote_report.reranked == local.reranked


def test_evaluate_refuses_what_is_not_a_reranker(embedding_function) -> None:
    from rag_rerank import InvalidInputError, InvalidInputTypeError

    dataset = load_beir(SAMPLE)
    with pytest.raises(InvalidInputTypeError) as err:
        evaluate(dataset, "a model name", embedding_function=embedding_function)  # type: ignore[arg-type]
    assert err.value.field == "reranker"
    with pytest.raises(InvalidInputError) as bad:
        evaluate(dataset, None, k=0)  # type: ignore[arg-type]
    assert bad.value.field == "k"
