"""Training pairs from a corpus (pure functions) and reading a training corpus: no model runs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rag_rerank.errors import TrainingError
from rag_rerank.training import load_passages, make_queries
from rag_rerank.training.pairs import (
    content_word_query,
    inverse_cloze_query,
    pick_negatives,
    split_held_out,
)

PASSAGE = (
    "Apple Inc. designs the iPhone and the Mac in California. "
    "Its first product was the Apple I computer kit, sold in 1976."
)


def test_content_word_query_takes_two_to_four_words_of_the_passage_without_stop_words() -> None:
    for seed in range(20):
        query = content_word_query(PASSAGE, random.Random(seed))
        assert query is not None
        words = query.split()
        assert 2 <= len(words) <= 4
        assert all(w in PASSAGE.lower() for w in words)
        assert not {"the", "and", "its", "was", "in"} & set(words)
    assert content_word_query("the and of it", random.Random(0)) is None


def test_inverse_cloze_takes_one_sentence_out_of_the_positive() -> None:
    sentence, rest = inverse_cloze_query(PASSAGE, random.Random(0)) or ("", "")
    assert sentence and rest
    assert sentence not in rest
    assert sorted([sentence, rest]) == sorted(
        [
            "Apple Inc. designs the iPhone and the Mac in California.",
            "Its first product was the Apple I computer kit, sold in 1976.",
        ]
    )
    # "Inc." ends an abbreviation, not a sentence: one sentence makes no cloze query.
    assert (
        inverse_cloze_query("Apple Inc. designs the iPhone and the Mac.", random.Random(0)) is None
    )


def test_same_seed_same_queries_and_both_kinds() -> None:
    passages = [PASSAGE, "Pandas eat bamboo in the mountains of Sichuan. They sleep a lot too."]
    first = make_queries(passages, seed=3)
    assert first == make_queries(passages, seed=3)
    assert {q.kind for q in first} == {"words", "cloze"}
    assert {q.passage for q in first} == {0, 1}


def test_held_out_split_keeps_every_query_of_a_passage_on_one_side() -> None:
    passages = [
        f"Passage number {i} talks about topic {i}. It has a second sentence." for i in range(30)
    ]
    queries = make_queries(passages)
    train, held = split_held_out(queries, 0.2, seed=1)
    assert held and train
    assert {q.passage for q in train}.isdisjoint({q.passage for q in held})
    assert len({q.passage for q in held}) == 6
    assert split_held_out(queries, 0.0)[1] == []


def test_negatives_are_the_nearest_others_then_random_ones_without_repeats() -> None:
    negatives = pick_negatives(2, [2, 5, 7, 1], 10, hard=2, easy=3, rng=random.Random(0))
    assert negatives[:2] == [5, 7]
    assert len(negatives) == 5 == len(set(negatives))
    assert 2 not in negatives


def test_corpus_from_jsonl_files_and_folders(tmp_path: Path) -> None:
    jsonl = tmp_path / "corpus.jsonl"
    jsonl.write_text('{"id": "a", "text": "First passage."}\n\n{"text": "Second passage."}\n')
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("# Guide\n\nInstall it with pip.\n")
    (docs / "notes.txt").write_text("First passage.")  # a duplicate text is kept once
    passages = load_passages([jsonl, docs])
    assert [p.text for p in passages] == [
        "First passage.",
        "Second passage.",
        "# Guide\n\nInstall it with pip.",
    ]
    assert passages[0].id == "a"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": ""}', "'text' must be a non-empty string"),
        ('{"text": "   "}', "'text' must be a non-empty string"),
        ('{"body": "no text field"}', "'text' must be a non-empty string"),
        ('["a list"]', "expected an object"),
        ("not json", "not JSON"),
    ],
)
def test_bad_corpus_lines_name_the_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"text": "A fine passage."}) + "\n" + line + "\n")
    with pytest.raises(TrainingError, match=message) as caught:
        load_passages(corpus)
    assert caught.value.line == 2
    assert caught.value.path == corpus
    assert f"{corpus}, line 2: " in str(caught.value)


def test_missing_or_empty_corpus_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"corpus: .*no such file") as caught:
        load_passages(tmp_path / "missing.jsonl")
    assert caught.value.option == "corpus"
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingError, match="no passages with text"):
        load_passages(tmp_path / "empty")
