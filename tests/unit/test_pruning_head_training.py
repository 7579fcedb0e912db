"""Training a pruning head offline: the examples and labels (pure), the fit on a tiny reranker,
and ``rag-rerank train --prune``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_rerank import Reranker
from rag_rerank.cli import main
from rag_rerank.core.head import HEAD_FILE, PruningHeadModel
from rag_rerank.errors import TrainingError
from rag_rerank.testing import build_bert
from rag_rerank.training.pruning import head_examples, sentence_labels, train_pruning_head

PASSAGES = [
    "Pandas eat bamboo for most of the day.",
    "Giant pandas live in the mountains of central China.",
    "The red panda is not a close relative.",
    "Bamboo grows very fast in warm weather.",
    "Stock markets fell sharply on Monday morning.",
    "Investors sold technology shares after the report.",
    "Central banks raised interest rates again.",
]


def test_a_sentence_answers_when_it_holds_every_query_word() -> None:
    sentences = ["Pandas eat bamboo.", "Bamboo grows fast.", "Eat, pandas!"]
    assert sentence_labels("pandas bamboo", sentences) == [1, 0, 0]
    assert sentence_labels("Pandas eat", sentences) == [1, 0, 1]
    assert sentence_labels("", sentences) == [0, 0, 0]


def test_examples_join_passages_and_ask_each_sentence_of_two_documents() -> None:
    examples = head_examples(PASSAGES, sentences_per_document=3)
    documents = {e.document for e in examples}
    assert len(documents) == 3  # 3 + 3 + 1 passages
    assert " ".join(PASSAGES[:3]) in documents
    own = [e for e in examples if any(e.labels)]
    assert len(own) >= len(PASSAGES) - 1  # nearly every query finds its own sentence
    for example in examples:
        assert len(example.spans) == len(example.labels)
        for (start, end), label in zip(example.spans, example.labels, strict=True):
            assert label == sentence_labels(example.query, [example.document[start:end]])[0]
    assert head_examples(PASSAGES, sentences_per_document=3) == examples  # same seed, same set
    assert len(head_examples(PASSAGES, max_examples=4)) == 4


def test_a_fitted_head_loads_as_a_pruning_model_and_ranks_as_before(tmp_path: Path) -> None:
    base = build_bert(tmp_path / "base")
    report = train_pruning_head(base, PASSAGES, out=tmp_path / "out", epochs=50)
    out = Path(report.out)
    assert (out / HEAD_FILE).is_file() and not (base / HEAD_FILE).exists()
    assert json.loads((out / "config.json").read_text())["reranker_kind"] == "pruning-head"
    assert report.examples > 0 and 0 < report.positive_share < 1
    assert 0.5 <= report.token_accuracy <= 1.0
    query, documents = "pandas bamboo", [" ".join(PASSAGES[:3]), " ".join(PASSAGES[4:])]
    with Reranker(out, device="cpu", cache=None) as head, Reranker(base, device="cpu") as plain:
        assert isinstance(head.engine.model, PruningHeadModel)
        pruned = head.rerank(query, documents, prune=True)
        ranked = plain.rerank(query, documents)
    assert [r.raw_score for r in pruned] == pytest.approx([r.raw_score for r in ranked], abs=1e-5)
    assert all(r.kept_spans for r in pruned)


def test_a_head_needs_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(TrainingError) as caught:
        train_pruning_head(tmp_path, PASSAGES)
    assert caught.value.option == "base"


def test_a_head_needs_a_corpus_with_content_words(bert_dir: str) -> None:
    with pytest.raises(TrainingError) as caught:
        train_pruning_head(bert_dir, ["It is so.", "And it was."])
    assert caught.value.option == "corpus"


def test_cli_train_prune_adds_a_head_to_a_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = build_bert(tmp_path / "base")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": p}) + "\n" for p in PASSAGES))
    out = tmp_path / "with-head"
    args = ["train", str(corpus), "--out", str(out), "--steps", "0"]
    assert main([*args, "--base", str(base), "--prune"]) == 0
    assert "pruning head:" in capsys.readouterr().out and (out / HEAD_FILE).is_file()
    assert main(args) == 2
    assert "--prune and --base" in capsys.readouterr().err
