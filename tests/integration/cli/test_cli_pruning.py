"""``rag-rerank rerank --prune`` / ``--max-context-tokens`` / ``--order`` and ``ask --prune``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_rerank import PruneOptions, Reranker
from rag_rerank.cli import main

QUERY = "what do giant pandas eat"
DOCS = [
    "The giant panda is a bear. It eats bamboo almost all day. It lives in China.",
    "Paris is the capital of France. It is on the Seine.",
    "Red pandas are small. Their diet is mostly bamboo, too. They are not bears.",
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def candidates(tmp_path: Path) -> str:
    path = tmp_path / "candidates.txt"
    path.write_text("\n".join(DOCS) + "\n", "utf-8")
    return str(path)


def test_rerank_prune_json(candidates: str, bert_dir: str, capsys) -> None:
    code, out, _ = run(
        capsys, "rerank", "-q", QUERY, "--file", candidates, "--prune", "--json",
        "--model", bert_dir,
    )  # fmt: skip
    assert code == 0
    rows = json.loads(out)
    expected = Reranker.shared(bert_dir).rerank(QUERY, DOCS, prune=True)
    assert [(r["index"], r["pruned_text"]) for r in rows] == [
        (e.index, e.pruned_text) for e in expected
    ]
    assert [r["kept_spans"] for r in rows] == [[list(s) for s in e.kept_spans] for e in expected]


def test_rerank_prune_flags_budget_and_order(candidates: str, bert_dir: str, capsys) -> None:
    code, out, _ = run(
        capsys, "rerank", "-q", QUERY, "--file", candidates, "--prune-threshold", "0.9",
        "--prune-context", "1", "--max-context-tokens", "30", "--order", "edges", "--json",
        "--model", bert_dir,
    )  # fmt: skip
    assert code == 0
    expected = Reranker.shared(bert_dir).rerank(
        QUERY,
        DOCS,
        prune=PruneOptions(threshold=0.9, context=1),
        max_context_tokens=30,
        order="edges",
    )
    assert [(r["index"], r["pruned_text"]) for r in json.loads(out)] == [
        (e.index, e.pruned_text) for e in expected
    ]


def test_rerank_prune_table_shows_the_pruned_text(candidates: str, bert_dir: str, capsys) -> None:
    options = PruneOptions(threshold=1.0)
    code, out, _ = run(
        capsys, "rerank", "-q", QUERY, "--file", candidates, "--prune-threshold", "1",
        "--model", bert_dir,
    )  # fmt: skip
    assert code == 0
    best = Reranker.shared(bert_dir).rerank(QUERY, DOCS, prune=options)[0]
    assert best.pruned_text in out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-context-tokens", "0"], "argument --max-context-tokens: must be at least 1"),
        (["--order", "middle"], "argument --order: invalid choice: 'middle'"),
        (["--prune-context", "-1"], "argument --prune-context: must be at least 0"),
    ],
)
def test_bad_flags_are_usage_errors(candidates: str, capsys, flags, message) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["rerank", "-q", QUERY, "--file", candidates, *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--prune-threshold", "0"], "prune.threshold: must be a number in (0, 1]"),
        (["--max-context-tokens", "9", "--tokenizer", "/no/such/tokenizer"], "tokenizer: cannot"),
    ],
)
def test_bad_values_are_one_error_line_naming_the_field(
    candidates: str, bert_dir: str, capsys, flags, message
) -> None:
    code, _, err = run(
        capsys, "rerank", "-q", QUERY, "--file", candidates, *flags, "--model", bert_dir
    )
    assert code == 1
    assert message in err


def test_ask_prune(tmp_path: Path, bert_dir: str, capsys) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, text in enumerate(DOCS):
        (folder / f"{i}.txt").write_text(text, "utf-8")
    db = str(tmp_path / "db")
    assert run(capsys, "index", str(folder), "--db", db, "--model", bert_dir)[0] == 0
    code, out, _ = run(
        capsys, "ask", QUERY, "--db", db, "--top-n", "2", "--prune", "--json", "--model", bert_dir
    )
    assert code == 0
    results = json.loads(out)["results"]
    assert len(results) == 2
    texts = [r["document"] for r in results]
    expected = Reranker.shared(bert_dir).rerank(QUERY, texts, prune=True)
    by_text = {e.document: e for e in expected}
    for r in results:
        assert r["pruned_text"] == by_text[r["document"]].pruned_text
        assert r["kept_spans"] == [list(s) for s in by_text[r["document"]].kept_spans]
