"""``rag-rerank compare``: two models on labelled pairs, the figures of each, their agreement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_rerank import Reranker
from rag_rerank.cli import main
from rag_rerank.evaluation import compute_metrics

LABELS = [
    ("which bank pays interest on savings?", "The bank pays interest on savings accounts.", 1),
    ("which bank pays interest on savings?", "We sat on the river bank.", 0),
    ("which bank pays interest on savings?", "Savings grow when interest compounds.", 1),
    ("which bank pays interest on savings?", "Pandas eat bamboo.", 0),
    ("what do pandas eat?", "Pandas eat bamboo.", 1),
    ("what do pandas eat?", "The giant panda is a bear.", 0),
    ("what do pandas eat?", "A loan from the bank bought the boat.", 0),
]


@pytest.fixture
def labels_file(tmp_path: Path) -> Path:
    path = tmp_path / "labels.jsonl"
    lines = [json.dumps({"query": q, "document": d, "label": y}) for q, d, y in LABELS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_compare_two_models(
    labels_file: Path, bert_dir: str, xlmr_dir: str, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "figures.json"
    argv = ["compare", str(labels_file), "--model", f"base={bert_dir}", "--model"]
    assert main([*argv, f"twin={bert_dir}", "--model", f"xlmr={xlmr_dir}", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 queries, 7 labelled documents" in printed
    assert "agreement of twin with base: top-1 100.0%, top-5 overlap 100.0%, Kendall tau 1.000" in (
        printed
    )
    report = json.loads(out.read_text())
    assert report["baseline"] == "base"
    assert report["agreement"]["twin"] == {"top1": 1.0, "top5_overlap": 1.0, "kendall_tau": 1.0}
    assert report["models"]["twin"] == report["models"]["base"]
    # Each model's figures are the evaluation metrics of its in-process rankings.
    queries: dict[str, list[tuple[str, int]]] = {}
    for query, document, label in LABELS:
        queries.setdefault(query, []).append((document, label))
    qrels = {q: {d: y for d, y in docs} for q, docs in queries.items()}
    with Reranker(xlmr_dir) as xlmr:
        rankings = {
            q: [r.document for r in xlmr.rerank(q, [d for d, _ in docs])]
            for q, docs in queries.items()
        }
    expected = compute_metrics(qrels, rankings, n=5, k=4)
    assert report["models"]["xlmr"] == pytest.approx(
        {"NDCG@10": expected.ndcg_at_10, "MRR@10": expected.mrr_at_10, "Recall@5": 1.0}
    )
    assert -1.0 <= report["agreement"]["xlmr"]["kendall_tau"] <= 1.0


def test_compare_needs_two_models_and_good_labels(
    labels_file: Path, bert_dir: str, tmp_path: Path, capsys
) -> None:
    assert main(["compare", str(labels_file), "--model", bert_dir]) == 2
    assert "--model: give at least two models to compare" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "document": "d", "label": 1}\n{"query": "q"}\n')
    argv = ["compare", str(bad), "--model", f"a={bert_dir}", "--model", f"b={bert_dir}"]
    assert main(argv) == 1
    assert "bad.jsonl, line 2: 'document' must be a non-empty string" in capsys.readouterr().err


def test_compare_on_a_beir_folder(bert_dir: str, xlmr_dir: str, tmp_path: Path, capsys) -> None:
    sample = Path(__file__).parents[2] / "data" / "beir_sample"
    out = tmp_path / "figures.json"
    argv = ["compare", str(sample), "--k", "5", "--max-queries", "3", "--quiet"]
    assert main([*argv, "--model", bert_dir, "--model", xlmr_dir, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report["models"]) == [bert_dir, xlmr_dir]  # bare references name themselves
    assert set(report["agreement"]) == {xlmr_dir}
    assert "3 queries, 15 labelled documents" in capsys.readouterr().out
