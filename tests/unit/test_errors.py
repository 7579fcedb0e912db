"""Every bad input gets a clear, typed error naming the field."""

import math

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertModel

from rag_rerank import (
    InvalidInputError,
    InvalidInputTypeError,
    ModelLoadError,
    NonFiniteScoreError,
    OverloadedError,
    Reranker,
)


@pytest.fixture(scope="module")
def rr(bert_dir):
    return Reranker(bert_dir)


@pytest.mark.parametrize("query", ["", "   ", None, 5, ["a"]])
def test_bad_query_is_a_value_error(rr, query):
    with pytest.raises(ValueError, match="query") as info:
        rr.rerank(query, ["doc"])
    assert isinstance(info.value, InvalidInputError) and info.value.field == "query"
    with pytest.raises(ValueError, match="query"):
        rr.score(query, ["doc"])


async def test_bad_query_async(rr):
    with pytest.raises(ValueError, match="query"):
        await rr.arerank("", ["doc"])


def test_non_string_document_names_its_index(rr):
    with pytest.raises(TypeError, match=r"documents\[1\]") as info:
        rr.rerank("q", ["fine", 3, "fine"])
    assert isinstance(info.value, InvalidInputTypeError)
    assert info.value.field == "documents[1]"
    with pytest.raises(TypeError, match=r"documents\[0\]"):
        rr.score("q", [None])


@pytest.mark.parametrize("documents", ["a string", b"bytes", (d for d in ["gen"]), {"a": 1}, 7])
def test_documents_must_be_a_sequence(rr, documents):
    with pytest.raises(TypeError, match="documents"):
        rr.rerank("q", documents)


@pytest.mark.parametrize("top_n", [0, -1, 1.5, True, "3"])
def test_bad_top_n(rr, top_n):
    with pytest.raises(ValueError, match="top_n"):
        rr.rerank("q", ["d"], top_n=top_n)


@pytest.mark.parametrize("threshold", [-0.01, 1.5, math.nan, "0.5", True])
def test_bad_threshold(rr, threshold):
    with pytest.raises(ValueError, match="threshold"):
        rr.rerank("q", ["d"], threshold=threshold)


def test_bad_top_n_is_refused_even_for_empty_documents(rr):
    with pytest.raises(ValueError, match="top_n"):
        rr.rerank("q", [], top_n=0)


def test_rerank_many_needs_one_list_per_query(rr):
    with pytest.raises(ValueError, match="documents_per_query"):
        rr.rerank_many(["a", "b"], [["x"]])
    with pytest.raises(ValueError, match=r"queries\[1\]"):
        rr.rerank_many(["a", ""], [["x"], ["y"]])
    with pytest.raises(TypeError, match=r"documents_per_query\[0\]\[0\]"):
        rr.rerank_many(["a"], [[1]])


def test_bad_pairs(rr):
    with pytest.raises(TypeError, match=r"pairs\[0\]"):
        rr.score_pairs([("only one",)])
    with pytest.raises(TypeError, match=r"pairs\[1\]\[1\]"):
        rr.score_pairs([("q", "d"), ("q", 2)])
    with pytest.raises(ValueError, match=r"pairs\[0\]\[0\]"):
        rr.score_pairs([("", "d")])


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("long_documents", "split"),
        ("max_length", 0),
        ("max_length", 8),
        ("batch_tokens", -5),
        ("dtype", "int4"),
        ("device", "tpu:7"),
        ("max_queue_pairs", 0),
    ],
)
def test_bad_options_name_the_option(bert_dir, option, value):
    with pytest.raises(ValueError, match=option):
        Reranker(bert_dir, **{option: value})


def test_hub_id_unreachable_offline_says_how_to_use_a_folder():
    with pytest.raises(ModelLoadError) as info:
        Reranker("no-such-org/no-such-reranker")
    message = str(info.value)
    assert "no-such-org/no-such-reranker" in message
    assert "--local-dir" in message and "RAG_RERANK_MODEL" in message
    assert "\n" not in message


def test_a_model_that_is_not_a_sequence_classifier(tmp_path, bert_dir):
    from transformers import AutoTokenizer

    config = BertConfig(
        vocab_size=100,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    BertModel(config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(bert_dir).save_pretrained(tmp_path)  # all files there
    with pytest.raises(ModelLoadError, match="not a sequence-classification"):
        Reranker(str(tmp_path))


def test_a_classifier_with_three_labels(tmp_path, bert_dir):
    from transformers import AutoTokenizer

    config = BertConfig(
        vocab_size=30522,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
    )
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(bert_dir).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="3 labels"):
        Reranker(str(tmp_path))


def test_nan_logits_raise_and_name_the_pair(tmp_path, bert_dir):
    from transformers import AutoTokenizer

    model = BertForSequenceClassification.from_pretrained(bert_dir)
    with torch.no_grad():
        model.classifier.bias.fill_(float("nan"))
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(bert_dir).save_pretrained(tmp_path)
    rr = Reranker(str(tmp_path))
    with pytest.raises(NonFiniteScoreError, match="pair 0") as info:
        rr.rerank("which one", ["first doc", "second doc"])
    assert "first doc" in str(info.value)
    # The engine keeps serving after a bad job.
    healthy = Reranker(bert_dir)
    assert len(healthy.score("q", ["d"])) == 1


def test_a_full_queue_refuses_at_once(bert_dir):
    rr = Reranker(bert_dir, max_queue_pairs=4, cache=None)
    with pytest.raises(OverloadedError, match="queue full"):
        rr.score("q", [f"d{i}" for i in range(5)])  # distinct: repeated pairs count once
    assert len(rr.score("q", [f"d{i}" for i in range(4)])) == 4
