"""The labelled multi-sentence set for pruning and its measures (pure functions)."""

from __future__ import annotations

import math

import pytest

from rag_rerank.evaluation.pruning import (
    PruneExample,
    answer_survives,
    build_prune_set,
    load_prune_set,
    measure_pruning,
)

PASSAGES = [
    {"id": "a-1", "topic": "a", "text": "First sentence about apples."},
    {"id": "a-2", "topic": "a", "text": "Second one, on pears."},
    {"id": "a-3", "topic": "a", "text": "Third on plums."},
    {"id": "b-1", "topic": "b", "text": "Only sentence of b."},
]


def test_build_joins_a_topic_and_marks_the_answer() -> None:
    examples = build_prune_set(PASSAGES, [{"question": "pears?", "answer": "a-2"}])
    (example,) = examples
    assert example.document_id == "a-1..a-3"
    assert example.document == "First sentence about apples. Second one, on pears. Third on plums."
    start, end = example.answer
    assert example.document[start:end] == "Second one, on pears."
    assert example.answer_id == "a-2"


def test_build_splits_a_topic_into_near_equal_documents() -> None:
    passages = [{"id": f"t-{i}", "topic": "t", "text": f"Sentence {i}."} for i in range(7)]
    questions = [{"question": "q", "answer": f"t-{i}"} for i in range(7)]
    ids = {e.document_id for e in build_prune_set(passages, questions, sentences_per_document=3)}
    assert ids == {"t-0..t-2", "t-3..t-4", "t-5..t-6"}


def test_build_names_a_missing_answer() -> None:
    with pytest.raises(ValueError, match="no passage 'x-9'"):
        build_prune_set(PASSAGES, [{"question": "q", "answer": "x-9"}])


def test_the_shipped_set_has_multi_sentence_documents_with_their_answers() -> None:
    examples = load_prune_set()
    assert len(examples) == 62
    for example in examples:
        start, end = example.answer
        assert 0 <= start < end <= len(example.document)
        assert len(example.document) > end - start  # more than the answer sentence
        assert example.document_id.split("..")[0].split("-")[0] == example.answer_id.split("-")[0]


def test_answer_survives_needs_every_non_space_character() -> None:
    text = "Aa bb. Cc dd. Ee."
    answer = (7, 13)  # "Cc dd."
    assert answer_survives(text, answer, [(7, 13)])
    assert answer_survives(text, answer, [(0, 17)])
    assert answer_survives(text, answer, [(7, 9), (10, 13)])  # the space between may go
    assert not answer_survives(text, answer, [(7, 9)])
    assert not answer_survives(text, answer, [(0, 6), (14, 17)])


def test_measures_count_tokens_removed_and_answers_kept() -> None:
    examples = [
        PruneExample("q1", "d1", "One two. Three four.", (9, 20), "p1"),
        PruneExample("q2", "d2", "Five six. Seven eight.", (0, 9), "p2"),
    ]
    # First: only the answer kept; second: the other sentence kept, the answer lost.
    words = lambda text: len(text.split())  # noqa: E731
    measures = measure_pruning(examples, [[(9, 20)], [(10, 22)]], words)
    assert measures.questions == 2
    assert measures.tokens_before == 8
    assert measures.tokens_after == 4
    assert measures.tokens_removed == pytest.approx(0.5)
    assert measures.answers_kept == 1
    assert measures.answer_survival == pytest.approx(0.5)
    off = measure_pruning(examples, [None, None])
    assert (off.tokens_removed, off.answer_survival) == (0.0, 1.0)


def test_measures_of_nothing_and_mismatched_lengths() -> None:
    empty = measure_pruning([], [])
    assert empty.tokens_removed == 0.0 and math.isnan(empty.answer_survival)
    with pytest.raises(ValueError, match="1 entries for 0 examples"):
        measure_pruning([], [None])
