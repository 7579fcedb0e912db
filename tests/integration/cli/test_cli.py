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
        (
            '{"text": "ok"}\nnot json\n',
            "{path}, line 2: is not valid JSON (Expecting value); give --jsonl only for JSON "
            "Lines files",
        ),
        ('{"id": 1}\n', '{path}, line 1: must be a JSON string or an object with a string "text"'),
    ],
)
def test_rerank_bad_jsonl(
    tmp_path: Path, xlmr_dir: str, capsys: pytest.CaptureFixture, content: str, message: str
) -> None:
    path = tmp_path / "c.jsonl"  # .jsonl switches JSON Lines on
    path.write_text(content, "utf-8")
    code, out, err = run(capsys, "rerank", "-q", "q", "-f", str(path), "--model", xlmr_dir)
    assert code == 1 and out == ""
    assert err == f"rag-rerank: error: {message.format(path=path)}\n"


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
        assert err.count("\n") == 1 and err.startswith("rag-rerank: error: HF_HUB_OFFLINE is set")
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


# -- every argument is checked before a model loads, and errors name the flag -------------------


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model fails the test: the error must come before it."""
    from rag_rerank.cli import option_flags as options

    monkeypatch.setattr(options, "load_reranker", lambda _: pytest.fail("a model was loaded"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["score", "-q", "", "a passage"], "argument --query/-q: must not be empty"),
        (["rerank", "-q", "  ", "-f", "x"], "argument --query/-q: must not be empty"),
        (["ask", "", "--db", "x"], "argument question: must not be empty"),
        (["demo", "--question", ""], "argument --question: must not be empty"),
        (["serve", "--api-key", ""], "argument --api-key: must not be empty"),
        (["serve", "--drain-timeout", "-1"], "argument --drain-timeout: must be at least 0"),
        (["serve", "--log-level", "loud"], "argument --log-level: invalid choice"),
        (["index", ".", "--db", "x", "--encoding", "klingon"], "unknown text encoding 'klingon'"),
        (["score", "--max-length", "8"], "argument --max-length: must be at least 16"),
    ],
)
def test_bad_arguments_name_the_flag_before_any_model_loads(
    argv: list[str], message: str, capsys: pytest.CaptureFixture, no_model_load: None
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_model_folder_fails_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture, no_model_load: None
) -> None:
    for argv in (
        ["score", "--model", "./bge-reranker-v2-m3"],
        ["rerank", "-q", "q", "-f", "x", "--model", "./bge-reranker-v2-m3"],
        ["demo", "--model", "./bge-reranker-v2-m3"],
    ):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (2, "")
        assert err == "rag-rerank: error: no such folder: ./bge-reranker-v2-m3\n"


def test_score_documents_without_a_query(
    capsys: pytest.CaptureFixture, no_model_load: None
) -> None:
    code, _, err = run(capsys, "score", "a passage")
    assert code == 2 and "--query" in err


def test_eval_json_into_a_missing_folder_fails_first(
    tmp_path: Path, capsys: pytest.CaptureFixture, no_model_load: None
) -> None:
    data = Path(__file__).parents[2] / "data" / "beir_sample"
    code, _, err = run(capsys, "eval", str(data), "--json", str(tmp_path / "no" / "r.json"))
    assert code == 1 and "--json" in err and "no such folder" in err


def test_serve_empty_api_key_env_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    from rag_rerank.cli import build_parser

    monkeypatch.setenv("RAG_RERANK_API_KEY", "")
    assert build_parser().parse_args(["serve"]).api_key is None


# -- index: unreadable files, headings, Ctrl-C, no empty bar ------------------------------------


def test_index_skips_unreadable_files_with_one_warning_each(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.md").write_text("# Tea\nGreen tea is steamed.", "utf-8")
    (folder / "latin1.txt").write_bytes("Caf\xe9 au lait est bon.".encode("latin-1"))
    (folder / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    db = str(tmp_path / "db")
    code, out, err = run(capsys, "index", str(folder), "--db", db)
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("rag-rerank: warning:")]
    assert len(warnings) == 2
    assert any("latin1.txt: not utf-8 text" in w for w in warnings)
    assert any("image.txt: a binary file" in w for w in warnings)
    assert "indexed 1 document" in out and "1 chunks added" in out
    assert "1 file skipped as binary" in out  # counted apart: no encoding reads it
    assert "1 file not read as utf-8 text" in out and "--encoding" in out

    code, out, err = run(capsys, "index", str(folder), "--db", db, "--encoding", "latin-1")
    assert code == 0 and "indexed 2 documents" in out  # the binary file is still skipped
    assert err.count("rag-rerank: warning:") == 1 and "image.txt" in err
    assert "1 file skipped as binary" in out and "--encoding" not in out


def test_second_index_run_shows_no_empty_bar(
    docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    db = str(tmp_path / "db")
    assert run(capsys, "index", str(docs), "--db", db)[0] == 0
    code, out, err = run(capsys, "index", str(docs), "--db", db)
    assert code == 0 and "0 chunks added" in out
    assert "Indexing" not in err and "0chunk" not in err


def test_heading_only_section_is_not_a_chunk(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "guide.md").write_text(
        "# Guide\n\n## Install\n\nRun pip install.\n\n## Later\n", "utf-8"
    )
    db = str(tmp_path / "db")
    code, out, _ = run(capsys, "index", str(folder), "--db", db)
    assert code == 0 and "1 chunks added" in out


def test_ctrl_c_while_indexing_is_one_line_exit_130(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag_rerank.rag import pipeline, store

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "long.txt").write_text(
        "\n\n".join(f"Paragraph {i} about tea." for i in range(200)), "utf-8"
    )

    def interrupted(collection, rows, **kwargs):  # the first batch lands, then Ctrl-C
        store.write_chunks(collection, rows[: store.WRITE_BATCH], **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "write_chunks", interrupted)
    db = str(tmp_path / "db")
    code, out, err = run(capsys, "index", str(folder), "--db", db, "--chunk-size", "30",
                         "--chunk-overlap", "0")  # fmt: skip
    assert code == 130
    assert err.splitlines()[-1] == (
        f"stopped; {store.WRITE_BATCH} chunks indexed, run again to continue"
    )
    assert "Traceback" not in err
    monkeypatch.undo()
    code, out, _ = run(capsys, "index", str(folder), "--db", db, "--chunk-size", "30",
                       "--chunk-overlap", "0")  # fmt: skip
    assert code == 0 and f"{store.WRITE_BATCH} unchanged" in out
