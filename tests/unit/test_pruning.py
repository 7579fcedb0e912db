"""Pure pruning logic: the sentence splitter, sentence selection, joining, the token budget and
the LLM order (no model)."""

import pytest

from rag_rerank import InvalidInputError, InvalidInputTypeError, PruneOptions, RerankResult
from rag_rerank.api import (
    ContextBudget,
    PruneJob,
    approximate_tokens,
    context_request,
    edges_order,
    join_sentences,
    prune_options,
    select_sentences,
    split_sentences,
)


def sentences(text, **kwargs):
    return [text[start:end] for start, end in split_sentences(text, **kwargs)]


# -- the splitter ---------------------------------------------------------------------------------


def test_abbreviations_stay_inside_a_sentence():
    text = "Dr. Smith met Mr. Jones in Washington, D.C. on Jan. 5. They saw e.g. the U.S. Senate."
    assert sentences(text) == [
        "Dr. Smith met Mr. Jones in Washington, D.C. on Jan. 5.",
        "They saw e.g. the U.S. Senate.",
    ]


def test_decimals_and_versions_stay_inside_a_sentence():
    text = "Prices rose 3.5% to $1,234.56 in Q3. Version 2.0.1 shipped. Pi is about 3.14."
    assert sentences(text) == [
        "Prices rose 3.5% to $1,234.56 in Q3.",
        "Version 2.0.1 shipped.",
        "Pi is about 3.14.",
    ]


def test_cjk_full_stops_end_sentences_even_between_latin_ones():
    assert sentences("熊猫是一种熊。它生活在中国！你知道吗？") == [
        "熊猫是一种熊。",
        "它生活在中国！",
        "你知道吗？",
    ]
    assert sentences("Pandas 熊猫吃竹子。It lives in China.") == [
        "Pandas 熊猫吃竹子。",
        "It lives in China.",
    ]


def test_text_without_punctuation_splits_at_line_breaks_and_long_runs():
    assert sentences("giant pandas eat bamboo\nred pandas are not bears") == [
        "giant pandas eat bamboo",
        "red pandas are not bears",
    ]
    words = " ".join(f"word{i}" for i in range(200))  # 1,289 characters, no boundary
    pieces = sentences(words, max_chars=100)
    assert all(len(piece) <= 100 for piece in pieces)
    assert " ".join(pieces) == words  # cut at spaces only, nothing lost
    unbroken = "熊" * 250  # no space to cut at: cut at the limit
    assert sentences(unbroken, max_chars=100) == ["熊" * 100, "熊" * 100, "熊" * 50]


def test_spans_are_offsets_into_the_text_without_surrounding_whitespace():
    text = "  First one.   Second one!\n\n Third  "
    spans = split_sentences(text)
    assert spans == [(2, 12), (15, 26), (29, 34)]
    assert [text[s:e] for s, e in spans] == ["First one.", "Second one!", "Third"]


def test_empty_and_blank_text_have_no_sentences():
    assert split_sentences("") == []
    assert split_sentences(" \n\t ") == []


# -- selection and joining ------------------------------------------------------------------------


def test_keeps_sentences_within_the_relative_threshold_of_the_best():
    scores = [0.1, 0.9, 0.2, 0.5, 0.44]
    assert select_sentences(scores, PruneOptions()) == [1, 3]
    assert select_sentences(scores, PruneOptions(threshold=1.0)) == [1]
    assert select_sentences(scores, PruneOptions(threshold=0.1)) == [0, 1, 2, 3, 4]


def test_min_score_context_and_keep_first():
    scores = [0.1, 0.9, 0.2, 0.5, 0.05, 0.06]
    assert select_sentences(scores, PruneOptions(min_score=0.6)) == [1]
    assert select_sentences(scores, PruneOptions(context=1)) == [0, 1, 2, 3, 4]
    assert select_sentences(scores, PruneOptions(threshold=1.0, keep_first=True)) == [0, 1]


def test_the_best_sentence_survives_any_cutoff():
    assert select_sentences([0.01, 0.02, 0.015], PruneOptions(min_score=0.9)) == [1]
    assert select_sentences([float("nan"), 0.3], PruneOptions(threshold=0.1)) == [1]
    assert select_sentences([float("nan")] * 3, PruneOptions(threshold=0.1)) == [0]
    assert select_sentences([0.4, 0.4], PruneOptions(threshold=1.0)) == [0, 1]  # ties kept
    assert select_sentences([], PruneOptions()) == []


def test_kept_sentences_are_joined_as_in_the_original():
    text = "Title\nOne. Two.  Three!\n\nFour."
    spans = split_sentences(text)
    assert join_sentences(text, [spans[0], spans[2], spans[4]]) == "Title\nTwo.\n\nFour."
    assert join_sentences(text, [spans[1], spans[3]]) == "One.  Three!"
    cjk = "熊猫是一种熊。它生活在中国。它吃竹子。"
    cjk_spans = split_sentences(cjk)
    assert join_sentences(cjk, [cjk_spans[0], cjk_spans[2]]) == "熊猫是一种熊。它吃竹子。"


def result(index, document, score=0.5):
    return RerankResult(index, score, 0.0, document)


def test_a_prune_job_scores_only_passages_with_several_sentences():
    results = [result(2, "A one. A two. A three."), result(0, "Only one."), result(1, "")]
    job = PruneJob.of(["q1", "q2", "q3"], results, PruneOptions())
    assert job.to_score == (0,)
    assert job.sentence_pairs() == (["q1"] * 3, ["A one.", "A two.", "A three."])
    scores = job.unflatten([0.2, 0.9, 0.1])
    assert scores == [[pytest.approx(0.2), pytest.approx(0.9), pytest.approx(0.1)], [], []]
    pruned = job.apply(results, scores)
    assert [(r.index, r.document, r.score) for r in pruned] == [
        (r.index, r.document, r.score) for r in results
    ]
    assert [r.pruned_text for r in pruned] == ["A two.", "Only one.", ""]
    assert pruned[0].kept_spans == ((7, 13),)
    assert pruned[1].kept_spans == ((0, 9),)
    with pytest.raises(ValueError, match="expected 3 sentence scores"):
        job.unflatten([0.1])


def test_result_dict_shows_pruning_only_when_pruned():
    plain = result(0, "A. B.")
    assert plain.to_dict() == {"index": 0, "score": 0.5, "raw_score": 0.0, "document": "A. B."}
    assert plain.text == "A. B."
    pruned = RerankResult(0, 0.5, 0.0, "A. B.", pruned_text="B.", kept_spans=((3, 5),))
    assert pruned.to_dict()["pruned_text"] == "B."
    assert pruned.to_dict()["kept_spans"] == [[3, 5]]
    assert pruned.text == "B."


# -- the prune argument ---------------------------------------------------------------------------


def test_prune_argument_forms():
    assert prune_options(None) is None
    assert prune_options(False) is None
    assert prune_options(True) == PruneOptions()
    options = PruneOptions(context=2)
    assert prune_options(options) is options
    assert prune_options({"threshold": 0.3}) == PruneOptions(threshold=0.3)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"threshold": 0}, "prune.threshold"),
        ({"threshold": 1.5}, "prune.threshold"),
        ({"threshold": float("nan")}, "prune.threshold"),
        ({"threshold": True}, "prune.threshold"),
        ({"min_score": -0.1}, "prune.min_score"),
        ({"context": -1}, "prune.context"),
        ({"context": 1.5}, "prune.context"),
        ({"keep_first": "yes"}, "prune.keep_first"),
        ({"language": ""}, "prune.language"),
    ],
)
def test_bad_prune_options_name_the_field(kwargs, field):
    with pytest.raises(InvalidInputError) as info:
        PruneOptions(**kwargs)
    assert info.value.field == field


def test_bad_prune_argument_types_name_the_field():
    with pytest.raises(InvalidInputTypeError) as info:
        prune_options("yes")
    assert info.value.field == "prune"
    with pytest.raises(InvalidInputTypeError) as info:
        prune_options({"treshold": 0.3})
    assert info.value.field == "prune.treshold"


# -- the token budget and the order ---------------------------------------------------------------


def test_approximate_tokens():
    assert approximate_tokens("") == 0
    assert approximate_tokens("a cat sat.") == 4  # three short words and a full stop
    assert approximate_tokens("extraordinarily") == 4  # one token per 4 characters of a word
    assert approximate_tokens("熊猫吃竹子。") == 6  # one per CJK character and mark


def tokens_of_words(text):
    return len(text.split())


RANKED = [
    result(4, "One two three. Four five.", 0.9),  # 5 words
    result(2, "Six seven. Eight nine ten. Eleven.", 0.8),  # 6 words
    result(0, "Twelve.", 0.7),  # 1 word
]


def test_budget_keeps_whole_passages_in_score_order():
    budget = ContextBudget(11, tokens_of_words)
    assert budget.apply(RANKED) == RANKED[:2]
    assert ContextBudget(100, tokens_of_words).apply(RANKED) == RANKED


def test_budget_cuts_the_first_overflowing_passage_at_whole_sentences_and_stops():
    kept = ContextBudget(9, tokens_of_words).apply(RANKED)
    assert kept[0] == RANKED[0]
    assert kept[1].index == 2
    assert kept[1].pruned_text == "Six seven."  # "Eight nine ten." would overflow: 5 + 2 + 3 > 9
    assert kept[1].kept_spans == ((0, 10),)
    assert len(kept) == 2  # "Twelve." would fit, but never ahead of a better passage
    assert ContextBudget(1, tokens_of_words).apply(RANKED) == []  # not even one sentence fits


def test_budget_counts_the_pruned_text_where_pruned():
    pruned = RerankResult(4, 0.9, 0.0, "One two three. Four five.", "Four five.", ((15, 25),))
    kept = ContextBudget(3, tokens_of_words).apply([pruned, RANKED[2]])
    assert kept == [pruned, RANKED[2]]


def test_budget_counts_with_a_tokenizer_object_or_a_token_list():
    class Encoding:  # like tiktoken's
        def encode(self, text):
            return list(text.replace(" ", ""))

    assert ContextBudget(10, Encoding()).count("ab cd") == 4
    assert ContextBudget(10, lambda text: text.split()).count("a b c") == 3


def test_edges_order_matches_long_context_reorder():
    five = [result(i, str(i)) for i in range(1, 6)]
    assert [r.index for r in edges_order(five)] == [1, 3, 5, 4, 2]
    assert [r.index for r in edges_order(five[:4])] == [2, 4, 3, 1]
    assert edges_order([]) == []
    assert [r.index for r in ContextBudget(order="edges").apply(five)] == [1, 3, 5, 4, 2]
    assert ContextBudget().apply(five) == five


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"max_context_tokens": 0}, InvalidInputError, "max_context_tokens"),
        ({"max_context_tokens": -5}, InvalidInputError, "max_context_tokens"),
        ({"max_context_tokens": 2.5}, InvalidInputError, "max_context_tokens"),
        ({"order": "edge"}, InvalidInputError, "order"),
        ({"order": "Score"}, InvalidInputError, "order"),
        ({"max_context_tokens": 10, "tokenizer": 42}, InvalidInputTypeError, "tokenizer"),
        (
            {"max_context_tokens": 10, "tokenizer": "/no/such/tokenizer"},
            InvalidInputError,
            "tokenizer",
        ),
        ({"tokenizer": len}, InvalidInputError, "tokenizer"),  # a tokenizer without a budget
        ({"prune": "on"}, InvalidInputTypeError, "prune"),
    ],
)
def test_bad_context_arguments_name_the_field(kwargs, error, field):
    arguments = {"prune": None, "max_context_tokens": None, "tokenizer": None, "order": "score"}
    with pytest.raises(error) as info:
        context_request(**{**arguments, **kwargs})
    assert info.value.field == field


def test_a_callable_returning_nonsense_is_refused_when_counting():
    budget = ContextBudget(10, lambda text: "many")
    with pytest.raises(InvalidInputTypeError) as info:
        budget.apply(RANKED)
    assert info.value.field == "tokenizer"
