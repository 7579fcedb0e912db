"""LLM rerankers score as their model cards' reference usage does (tests/llm_reference.py)."""

from __future__ import annotations

import shutil

import pytest
from llm_reference import bge_gemma_reference, qwen3_reference

from rag_rerank import InvalidInputError, ModelLoadError, Reranker
from rag_rerank.testing import build_qwen3

QUERY = "what do pandas eat"
DOCS = [
    "Pandas eat bamboo shoots and leaves.",
    "rocks",
    "The giant panda is a bear native to south central China. " * 6,
    "Retrieval-augmented generation grounds a language model in retrieved passages.",
    "苹果公司发布了新的手机，配备更快的芯片。",
]
OTHER = "where is the Eiffel Tower"


@pytest.fixture(scope="module")
def qwen3(qwen3_dir: str) -> Reranker:
    rr = Reranker(qwen3_dir, device="cpu", cache=None)
    yield rr
    rr.close()


@pytest.fixture(scope="module")
def gemma(gemma_dir: str) -> Reranker:
    rr = Reranker(gemma_dir, device="cpu", cache=None)
    yield rr
    rr.close()


def _pairs() -> list[tuple[str, str]]:
    return [(QUERY, d) for d in DOCS] + [(OTHER, d) for d in DOCS[::-1]]


@pytest.mark.parametrize("share_prefix", [True, False])
def test_qwen3_equals_the_model_card_usage(qwen3, qwen3_dir, share_prefix):
    qwen3.engine.model.share_prefix = share_prefix
    try:
        pairs = _pairs()
        expected = qwen3_reference(qwen3_dir, pairs)
        assert qwen3.score_pairs(pairs) == pytest.approx(expected, abs=1e-4)
        results = qwen3.rerank(QUERY, DOCS)
        by_index = {r.index: r for r in results}
        for i in range(len(DOCS)):  # raw_score is the log-odds logit(yes) - logit(no)
            assert by_index[i].score == pytest.approx(expected[i], abs=1e-4)
    finally:
        qwen3.engine.model.share_prefix = True


def test_qwen3_instruction_replaces_the_default(qwen3_dir):
    task = "Given a question about animals, find the passage that answers it"
    with Reranker(qwen3_dir, device="cpu", cache=None, instruction=task) as rr:
        pairs = _pairs()
        assert rr.score_pairs(pairs) == pytest.approx(
            qwen3_reference(qwen3_dir, pairs, instruction=task), abs=1e-4
        )


@pytest.mark.parametrize("share_prefix", [True, False])
def test_bge_gemma_equals_the_model_card_usage(gemma, gemma_dir, share_prefix):
    gemma.engine.model.share_prefix = share_prefix
    try:
        pairs = _pairs()
        expected = bge_gemma_reference(gemma_dir, pairs)
        results = gemma.rerank_many([QUERY, OTHER], [DOCS, DOCS[::-1]])
        raw = [r.raw_score for rs in results for r in sorted(rs, key=lambda r: r.index)]
        assert raw == pytest.approx(expected, abs=1e-4)
    finally:
        gemma.engine.model.share_prefix = True


@pytest.mark.parametrize(("fmt", "length"), [("qwen3", 160), ("bge-gemma", 96)])
def test_truncated_documents_equal_the_cards_truncation(request, fmt, length):
    # The cards' max_length: qwen3 counts every token, bge-gemma those before its final prompt.
    folder = request.getfixturevalue("qwen3_dir" if fmt == "qwen3" else "gemma_dir")
    long_docs = [d * 8 for d in DOCS]
    pairs = [(QUERY, d) for d in long_docs]
    with Reranker(
        folder, device="cpu", cache=None, max_length=length, long_documents="truncate"
    ) as rr:
        results = sorted(rr.rerank(QUERY, long_docs), key=lambda r: r.index)
        if fmt == "qwen3":
            got, expected = [r.score for r in results], qwen3_reference(folder, pairs, None, length)
        else:
            got = [r.raw_score for r in results]
            expected = bge_gemma_reference(folder, pairs, None, length)
        assert got == pytest.approx(expected, abs=1e-4)
        # Windows: the best window, the first (the card's truncation) among them.
        windowed = rr.with_options(long_documents="windows").rerank(QUERY, long_docs)
        best = {r.index: r.raw_score for r in windowed}
        assert all(best[r.index] >= r.raw_score - 1e-5 for r in results)
        assert rr.stats().windows > 2 * len(long_docs)


def test_only_the_answer_rows_of_the_output_head_are_kept(qwen3, gemma):
    assert tuple(qwen3.engine.model.head.shape) == (2, 32)  # "yes" and "no"
    assert tuple(gemma.engine.model.head.shape) == (1, 32)  # "Yes"
    assert qwen3.max_length == 8192 and gemma.max_length == 1024  # the cards' max_length


def test_the_family_is_recognised_by_id_or_told_by_prompt_format(tmp_path):
    unnamed = build_qwen3(tmp_path / "tiny-decoder", prompt_format=None)
    with pytest.raises(ModelLoadError, match="prompt_format='qwen3'"):
        Reranker(unnamed, device="cpu")
    named = tmp_path / "Qwen3-Reranker-0.6B"
    shutil.copytree(unnamed, named)
    told = Reranker(unnamed, device="cpu", cache=None, prompt_format="qwen3")
    recognised = Reranker(named, device="cpu", cache=None)
    assert recognised.engine.model.prompt.name == "qwen3"
    pairs = _pairs()
    assert recognised.score_pairs(pairs) == pytest.approx(told.score_pairs(pairs), abs=1e-6)
    told.close()
    recognised.close()


def test_the_seq_cls_conversion_scores_like_the_causal_model(tmp_path, qwen3):
    converted = build_qwen3(tmp_path / "seq-cls", seq_cls=True)
    with Reranker(converted, device="cpu", cache=None) as rr:
        assert type(rr.engine.model.model).__name__ == "Qwen3ForSequenceClassification"
        pairs = _pairs()
        assert rr.score_pairs(pairs) == pytest.approx(qwen3.score_pairs(pairs), abs=1e-4)


@pytest.mark.parametrize(
    ("fixture", "prompt_format"),
    [("gemma_dir", "qwen3"), ("qwen3_dir", "bge-gemma"), ("bert_dir", "qwen3")],
)
def test_a_wrong_prompt_format_is_a_typed_error(request, fixture, prompt_format):
    folder = request.getfixturevalue(fixture)
    with pytest.raises(InvalidInputError, match="template of") as info:
        Reranker(folder, device="cpu", prompt_format=prompt_format)
    assert info.value.field == "prompt_format"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"prompt_format": "llama"}, "prompt_format"),
        ({"instruction": "  "}, "instruction"),
        ({"instruction": 3}, "instruction"),
    ],
)
def test_bad_llm_options_name_their_field(bert_dir, options, field):
    with pytest.raises(InvalidInputError) as info:
        Reranker(bert_dir, device="cpu", **options)
    assert info.value.field == field


def test_an_instruction_for_a_cross_encoder_is_refused(bert_dir):
    with pytest.raises(InvalidInputError, match="LLM rerankers") as info:
        Reranker(bert_dir, device="cpu", instruction="Find the answer.")
    assert info.value.field == "instruction"


def test_a_window_too_small_for_the_prompt_says_so(qwen3_dir):
    with (
        Reranker(qwen3_dir, device="cpu", cache=None, max_length=32) as rr,
        pytest.raises(InvalidInputError, match="no room for the document") as info,
    ):
        rr.score(QUERY, DOCS)
    assert info.value.field == "max_length"


def test_the_score_cache_keeps_instructions_apart(qwen3_dir):
    task = "Given a question about animals, find the passage that answers it"
    pairs = _pairs()
    with (
        Reranker(qwen3_dir, device="cpu") as default,
        Reranker(qwen3_dir, device="cpu", instruction=task) as instructed,
    ):
        assert default.cache is not None and instructed.cache is not None
        default.score_pairs(pairs)  # fills the default instruction's entries
        assert instructed.score_pairs(pairs) == pytest.approx(
            qwen3_reference(qwen3_dir, pairs, instruction=task), abs=1e-4
        )
