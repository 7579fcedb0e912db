"""The torch-free contract: options, selection, results, and the core's public seams on it."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from rag_rerank import (
    Health,
    InvalidInputError,
    InvalidInputTypeError,
    Reranker,
    RerankerLike,
    RerankerOptions,
    RerankerStats,
    RerankResult,
)
from rag_rerank.api import select, sigmoid

DOCUMENTS = ["The giant panda eats bamboo.", "Paris is in France.", "Pandas are bears. " * 200]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", ""),
        ("model", 3),
        ("device", ""),
        ("dtype", "int4"),
        ("trust_remote_code", "yes"),
        ("quantize", "int4"),
        ("batch_tokens", 0),
        ("max_queue_pairs", True),
        ("max_length", 8),
        ("max_length", 512.0),
        ("long_documents", "chunk"),
        ("show_progress", 1),
    ],
)
def test_each_bad_option_names_its_field(field, value):
    with pytest.raises(InvalidInputError) as info:
        RerankerOptions(**{field: value})
    assert info.value.field == field


def test_unknown_option_is_named_with_the_valid_ones():
    with pytest.raises(InvalidInputTypeError, match="max_lenght: is not a reranker option") as info:
        RerankerOptions.from_kwargs(max_lenght=64)
    assert info.value.field == "max_lenght"
    assert "max_length" in str(info.value)


def test_options_are_frozen_and_replace_checks_values():
    options = RerankerOptions(model=Path("models/x"), max_length=64)
    assert options.model == "models/x"  # os.PathLike becomes its path string
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.max_length = 32  # type: ignore[misc]
    assert options.replace(max_length=32).max_length == 32
    assert options.max_length == 64
    with pytest.raises(InvalidInputError, match="max_length"):
        options.replace(max_length=4)


def test_view_and_load_options_partition_all_options():
    names = set(RerankerOptions.names())
    views = set(RerankerOptions.view_names())
    assert views == {
        "max_length",
        "long_documents",
        "show_progress",
        "calibration",
        "cache",
        "cache_size",
        "cache_ttl",
        "clean",
    }
    assert views < names
    base = RerankerOptions()
    assert base.load_key() == base.replace(max_length=64, show_progress=False).load_key()
    assert base.load_key() != base.replace(batch_tokens=4096).load_key()
    assert all(RerankerOptions.help(name) for name in names)


def test_select_keeps_ties_in_input_order_and_applies_threshold_before_top_n():
    logits = np.array([0.0, 2.0, 0.0, -3.0, 2.0], dtype=np.float32)
    docs = ["a", "b", "c", "d", "e"]
    assert [r.index for r in select(logits, docs)] == [1, 4, 0, 2, 3]
    kept = select(logits, docs, top_n=3, threshold=0.4)
    assert [r.index for r in kept] == [1, 4, 0]
    assert [r.index for r in select(logits, docs, threshold=0.6)] == [1, 4]
    assert kept[0] == RerankResult(1, sigmoid([2.0])[0], 2.0, "b")


def test_sigmoid_is_fp32_and_does_not_overflow():
    scores = sigmoid([-1000.0, 0.0, 1000.0, 1e-3])
    assert scores[:3] == [0.0, 0.5, 1.0]
    assert scores[3] == float(np.float32(1 / (1 + math.exp(-1e-3))))


def test_result_to_dict_is_json_ready():
    result = RerankResult(2, 0.75, 1.0986, "text")
    assert json.loads(json.dumps(result.to_dict())) == {
        "index": 2,
        "score": 0.75,
        "raw_score": 1.0986,
        "document": "text",
    }


def test_reranker_takes_an_options_object_and_keywords(bert_dir):
    options = RerankerOptions(model=bert_dir, max_length=64)
    rr = Reranker(options, long_documents="truncate")
    assert isinstance(rr, RerankerLike)
    assert rr.options.max_length == 64 and rr.options.long_documents == "truncate"
    assert rr.options.device == "cpu" and rr.options.dtype == "float32"  # resolved by name
    assert rr.max_length == 64
    assert Reranker(Path(bert_dir)).model_name == bert_dir


def test_with_options_is_a_view_on_the_same_model(bert_dir):
    rr = Reranker(bert_dir)
    truncating = rr.with_options(long_documents="truncate", max_length=32)
    assert truncating.engine is rr.engine
    assert truncating.long_documents == "truncate" and rr.long_documents == "windows"
    long = "Rain today and tomorrow. " * 40 + "The giant panda eats bamboo."
    windowed = rr.with_options(max_length=32)
    before = rr.stats().windows
    best = windowed.score("what do pandas eat", [long])[0]
    after_windows = rr.stats().windows
    first = truncating.score("what do pandas eat", [long])[0]
    assert after_windows - before > 1  # every window of the document was scored
    assert rr.stats().windows - after_windows == 1  # only its first window
    assert best >= first
    with Reranker(bert_dir, max_length=32, long_documents="truncate") as alone:
        assert alone.score("what do pandas eat", [long])[0] == pytest.approx(first, abs=1e-6)
    with pytest.raises(InvalidInputError, match="device: is fixed when the model loads") as info:
        rr.with_options(device="cpu")
    assert info.value.field == "device"
    with pytest.raises(InvalidInputTypeError, match="colour"):
        rr.with_options(colour="blue")


def test_stats_and_health_are_snapshots(bert_dir):
    rr = Reranker(bert_dir, max_queue_pairs=100)
    before = rr.stats()
    assert isinstance(before, RerankerStats)
    assert before.pairs == 0 and before.max_queue_pairs == 100
    assert rr.health() == Health(alive=True, last_forward_ok=None)
    assert rr.health().ready and rr.health().reason is None
    rr.score("pandas", DOCUMENTS)
    after = rr.stats()
    assert before.pairs == 0  # the earlier snapshot did not move
    assert after.pairs == 3 and after.windows > 3 and after.batches >= 1
    assert after.real_tokens <= after.padded_tokens
    assert rr.health().last_forward_ok is True
    rr.close()
    assert not rr.health().alive
    assert rr.health().reason == "the reranker worker is not running"
