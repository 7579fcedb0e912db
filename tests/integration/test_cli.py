"""The ``rag-rerank`` commands through their entry point: exit codes, JSON shape, error lines."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from rag_rerank import Reranker
from rag_rerank.cli import main
from rag_rerank.rag.demo import load_demo_corpus, load_demo_questions

DOCS = {
    "fruit.md": "# Apples\nApples are rich in fibre.\n\n# Pears\nPears ripen after picking.",
    "tech.txt": "Apple sells the iPhone.\n\nPython is a programming language.",
}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_index_then_ask_json(
    docs: Path, tmp_path: Path, xlmr_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "db")
    code, out, _ = run(capsys, "index", str(docs), "--db", db, "--model", xlmr_dir)
    assert code == 0
    assert "indexed 2 documents" in out and "3 chunks added" in out

    code, out, _ = run(capsys, "index", str(docs), "--db", db)  # again: nothing new
    assert code == 0 and "0 chunks added, 3 unchanged" in out and "3 chunks in the index" in out

    code, out, _ = run(
        capsys, "ask", "Which fruit has fibre?", "--db", db, "-k", "50", "--top-n", "3",
        "--json", "--model", xlmr_dir, "--device", "cpu",
    )  # fmt: skip
    assert code == 0
    payload = json.loads(out)
    assert set(payload) == {"model", "query", "k", "top_n", "threshold", "candidates", "results"}
    assert payload["model"] == xlmr_dir and payload["candidates"] == 3 and payload["k"] == 50
    results = payload["results"]
    assert len(results) == 3 and [r["rank"] for r in results] == [1, 2, 3]
    assert set(results[0]) == {
        "rank", "retrieval_rank", "id", "score", "raw_score", "distance", "document", "metadata",
    }  # fmt: skip
    texts = [r["document"] for r in results]
    expected = Reranker.shared(xlmr_dir, device="cpu").rerank("Which fruit has fibre?", texts)
    assert [r["score"] for r in results] == pytest.approx([e.score for e in expected], abs=1e-6)
    assert all(Path(r["metadata"]["source"]).parent == docs.resolve() for r in results)


def test_ask_table_shows_rank_movement(
    docs: Path, tmp_path: Path, xlmr_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "db")
    assert run(capsys, "index", str(docs), "--db", db)[0] == 0
    code, out, _ = run(capsys, "ask", "pears", "--db", db, "--threshold", "0", "--model", xlmr_dir)
    assert code == 0
    assert "model:" in out and "Query: pears" in out and "threshold 0.0000" in out
    assert any(arrow in out for arrow in ("▲", "▼", " ="))


def test_ask_without_an_index(tmp_path: Path, xlmr_dir: str, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "ask", "q", "--db", str(tmp_path / "nothing"), "--model", xlmr_dir)
    assert code == 1
    assert err.count("\n") == 1 and "no index at" in err and "rag-rerank index" in err


def test_rerank_from_file_json(
    tmp_path: Path, xlmr_dir: str, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "candidates.txt"
    path.write_text("Paris is in France.\n\nBerlin is in Germany.\nApples are fruit.\n", "utf-8")
    code, out, _ = run(
        capsys, "rerank", "--query", "capital of France", "--file", str(path), "--json",
        "--model", xlmr_dir,
    )  # fmt: skip
    assert code == 0
    rows = json.loads(out)
    docs = ["Paris is in France.", "Berlin is in Germany.", "Apples are fruit."]
    expected = Reranker.shared(xlmr_dir).rerank("capital of France", docs)
    assert [r["document"] for r in rows] == [e.document for e in expected]
    assert [r["index"] for r in rows] == [e.index for e in expected]
    assert [r["score"] for r in rows] == pytest.approx([e.score for e in expected], abs=1e-6)
    assert {r["document"]: r["line"] for r in rows} == {docs[0]: 1, docs[1]: 3, docs[2]: 4}
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert set(rows[0]) == {"rank", "index", "line", "score", "raw_score", "document"}


def test_rerank_jsonl_from_stdin_with_top_n(
    xlmr_dir: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [json.dumps({"id": "a", "text": "one"}), json.dumps("two"), json.dumps({"text": "3"})]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    monkeypatch.setenv("RAG_RERANK_MODEL", xlmr_dir)  # the default model comes from the env
    code, out, _ = run(capsys, "rerank", "-q", "numbers", "--jsonl", "--top-n", "2", "--json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 2
    expected = Reranker.shared(xlmr_dir).rerank("numbers", ["one", "two", "3"], top_n=2)
    assert [r["document"] for r in rows] == [e.document for e in expected]
    assert [r.get("id") for r in rows] == [("a" if e.index == 0 else None) for e in expected]


def test_rerank_table(tmp_path: Path, xlmr_dir: str, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "c.txt"
    path.write_text("alpha\nbeta\n", "utf-8")
    code, out, _ = run(capsys, "rerank", "-q", "greek", "-f", str(path), "--model", xlmr_dir)
    assert code == 0 and "alpha" in out and "beta" in out and "2 results of 2 candidates" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "ok"}\nnot json\n', "line 2: is not valid JSON (Expecting value)"),
        ('{"id": 1}\n', 'line 1: must be a JSON string or an object with a string "text"'),
    ],
)
def test_rerank_bad_jsonl(
    tmp_path: Path, xlmr_dir: str, capsys: pytest.CaptureFixture, content: str, message: str
) -> None:
    path = tmp_path / "c.jsonl"  # .jsonl switches JSON Lines on
    path.write_text(content, "utf-8")
    code, out, err = run(capsys, "rerank", "-q", "q", "-f", str(path), "--model", xlmr_dir)
    assert code == 1 and out == ""
    assert err == f"rag-rerank: error: {message}\n"


def test_rerank_missing_file(tmp_path: Path, xlmr_dir: str, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "rerank", "-q", "q", "-f", str(tmp_path / "no.txt"))
    assert code == 1 and "cannot read" in err and err.count("\n") == 1


def test_unloadable_hub_model_is_one_clear_line_exit_2(
    tmp_path: Path, docs: Path, capsys: pytest.CaptureFixture
) -> None:
    # conftest sets HF_HUB_OFFLINE=1, so a hub id cannot be fetched and fails fast.
    db = str(tmp_path / "db")
    assert run(capsys, "index", str(docs), "--db", db)[0] == 0
    for argv in (
        ["ask", "q", "--db", db, "--model", "BAAI/bge-reranker-v2-m3"],
        ["rerank", "-q", "q", "-f", str(docs / "tech.txt"), "--model", "BAAI/bge-reranker-v2-m3"],
        ["demo", "--model", "BAAI/bge-reranker-v2-m3"],
    ):
        code, out, err = run(capsys, *argv)
        assert code == 2, argv
        assert err.count("\n") == 1 and err.startswith("rag-rerank: error: could not load")
        assert "--model" in err and "RAG_RERANK_MODEL" in err
        assert "Traceback" not in err and out == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["ask", "q", "--db", "x", "-k", "0"],
        ["ask", "q", "--db", "x", "--top-n", "many"],
        ["ask", "q", "--db", "x", "--threshold", "2"],
        ["ask", "q"],  # --db is required
        ["rerank", "--file", "x"],  # --query is required
        ["index", "--db", "x"],  # no path
        ["index", "p", "--db", "x", "--chunk-size", "0"],
        ["demo", "--top-n", "-1"],
        ["nonsense"],
    ],
)
def test_bad_arguments_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: rag-rerank" in err and "Traceback" not in err


def test_index_chunk_overlap_not_below_size_is_a_clear_error(
    docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = run(
        capsys, "index", str(docs), "--db", str(tmp_path / "db"), "--chunk-size", "10",
        "--chunk-overlap", "10",
    )  # fmt: skip
    assert code == 1 and err.startswith("rag-rerank: error: chunk_overlap:")


def test_demo_runs_to_the_end(xlmr_dir: str, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "demo", "--model", xlmr_dir, "--top-n", "3")
    assert code == 0
    assert f"demo corpus: {len(load_demo_corpus())} passages" in out
    assert "test model?" in out  # the tiny random model is flagged as such
    questions = load_demo_questions()
    for question in questions:
        assert question.question in out
    assert out.count("answering passage: vector store #") == len(questions)
    assert "vector store order" in out and "reranked order" in out
    assert "reranked " in out.splitlines()[-1] and f"/{len(questions)}" in out.splitlines()[-1]


def test_demo_corpus_is_varied_with_keyword_traps() -> None:
    corpus = load_demo_corpus()
    assert 200 <= len(corpus) <= 500
    assert len({p.id for p in corpus}) == len(corpus)
    topics = {p.topic for p in corpus}
    assert len(topics) >= 20
    assert {"Apple Inc. (technology company)", "apples (the fruit)"} <= topics
    ids = {p.id for p in corpus}
    for question in load_demo_questions():
        assert set(question.relevant) <= ids
