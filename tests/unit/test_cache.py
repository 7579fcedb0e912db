"""The in-process score cache: identical scores, only misses run, keys, identity, bad options."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag_rerank import InvalidInputError, Reranker, RerankerOptions
from rag_rerank.cli.option_flags import add_model_options, reranker_options
from rag_rerank.core.cache import MemoryScoreCache, folder_digest, model_identity, score_key

QUERY = "which bank lends money for a boat"
DOCS = [
    "The bank lends money at a fair interest rate.",
    "Fishing boats line the river bank at dawn.",
    "Pandas eat bamboo in the mountains.",
    "A boat loan needs a deposit and a credit check.",
]


@pytest.fixture(scope="module")
def rr(bert_dir: str) -> Reranker:
    reranker = Reranker(bert_dir, show_progress=False, cache_size=1000)
    yield reranker
    reranker.close()


def test_cached_scores_equal_uncached_and_run_no_model(rr: Reranker) -> None:
    uncached = rr.with_options(cache=None).rerank(QUERY, DOCS)
    fresh = rr.with_options(cache=400)  # its own, empty LRU
    first = fresh.rerank(QUERY, DOCS)
    pairs = rr.stats().pairs
    again = fresh.rerank(QUERY, DOCS)
    assert rr.stats().pairs == pairs  # all hits: the model did not run
    assert again == first
    assert [r.raw_score for r in first] == pytest.approx([r.raw_score for r in uncached], abs=1e-6)
    stats = fresh.cache_stats()
    assert stats is not None and (stats.hits, stats.misses) == (4, 4)


def test_only_misses_run_and_each_once(rr: Reranker) -> None:
    view = rr.with_options(cache=500)
    view.score(QUERY, DOCS[:2])
    pairs = rr.stats().pairs
    scores = view.score(QUERY, [*DOCS, DOCS[3]])  # two known, two new, one repeated
    assert rr.stats().pairs - pairs == 2
    assert scores[3] == scores[4]
    # Batch composition moves fp32 scores by ~1e-7 (documented): equal within that, not bitwise.
    uncached = rr.with_options(cache=None).score(QUERY, [*DOCS, DOCS[3]])
    np.testing.assert_allclose(scores, uncached, rtol=0, atol=1e-6)


async def test_async_paths_use_the_cache(rr: Reranker) -> None:
    view = rr.with_options(cache=300)
    first = await view.arerank(QUERY, DOCS)
    pairs = rr.stats().pairs
    assert await view.arerank(QUERY, DOCS) == first
    assert await view.ascore_pairs([(QUERY, d) for d in DOCS]) == view.score(QUERY, DOCS)
    many = await view.arerank_many([QUERY, QUERY], [DOCS, DOCS[:1]])
    assert many[0] == first
    assert rr.stats().pairs == pairs


def test_key_covers_window_mode_query_and_document(rr: Reranker) -> None:
    keys = {
        score_key(512, "windows", "q", "d"),
        score_key(256, "windows", "q", "d"),
        score_key(512, "truncate", "q", "d"),
        score_key(512, "windows", "qd", ""),
        score_key(512, "windows", "q", "e"),
    }
    assert len(keys) == 5
    short = rr.with_options(max_length=32, cache=100)
    long_doc = " ".join(["river bank money loan water"] * 40)
    windows = short.score(QUERY, [long_doc])
    truncated = short.with_options(long_documents="truncate").score(QUERY, [long_doc])
    assert windows == rr.with_options(max_length=32, cache=None).score(QUERY, [long_doc])
    assert truncated == rr.with_options(max_length=32, long_documents="truncate", cache=None).score(
        QUERY, [long_doc]
    )


def test_lru_is_bounded_by_entries() -> None:
    cache = MemoryScoreCache(2)
    cache.put_many({b"a": 1.0, b"b": 2.0})
    assert cache.get_many([b"a"]) == [1.0]  # a is now the most recent
    cache.put_many({b"c": 3.0})
    assert cache.get_many([b"a", b"b", b"c"]) == [1.0, None, 3.0]
    assert cache.entries() == 2


def test_identity_changes_with_the_weights(bert_dir: str, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bert_dir, copy)
    before = folder_digest(copy)
    assert before == folder_digest(copy)
    weights = next(copy.glob("*.safetensors"))
    os.utime(weights, ns=(1, 1))
    assert folder_digest(copy) != before
    same = {"dtype": "float32", "quantize": None, "device_type": "cpu"}
    assert model_identity("org/m", "abc", **same) != model_identity("org/m", "abd", **same)
    assert model_identity("org/m", "abc", **same) != model_identity(
        "org/m", "abc", **{**same, "dtype": "bfloat16"}
    )
    assert model_identity("org/m", None, **same) is None  # unknown weights: no cache


def test_other_weights_never_share_entries(bert_dir: str, tmp_path: Path) -> None:
    from rag_rerank.testing import build_bert

    other = build_bert(tmp_path / "other", seed=7)
    a = Reranker(bert_dir, show_progress=False)
    b = Reranker(other, show_progress=False)
    try:
        assert a.cache is not b.cache
        assert a.score(QUERY, DOCS) != b.score(QUERY, DOCS)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"cache": "memcached://x"}, "cache"),
        ({"cache": 0}, "cache"),
        ({"cache": 1.5}, "cache"),
        ({"cache": True}, "cache"),
        ({"cache_size": 0}, "cache_size"),
        ({"cache_ttl": -1}, "cache_ttl"),
        ({"clean": "markdown"}, "clean"),
    ],
)
def test_bad_cache_and_clean_values_name_the_option(value: dict, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        RerankerOptions(**value)
    assert info.value.field == field


def test_a_size_means_the_in_process_cache() -> None:
    options = RerankerOptions(cache=5000)
    assert (options.cache, options.cache_size) == ("memory", 5000)
    assert options == RerankerOptions(cache="memory", cache_size=5000)
    assert RerankerOptions().cache == "memory"
    assert RerankerOptions(cache="redis://127.0.0.1:6379/0").cache == "redis://127.0.0.1:6379/0"


def test_cli_flags(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_model_options(parser)
    assert reranker_options(parser.parse_args(["--cache", "none"])).cache is None
    parsed = reranker_options(parser.parse_args(["--cache", "20", "--clean", "html"]))
    assert (parsed.cache, parsed.cache_size, parsed.clean) == ("memory", 20, "html")
    assert (
        reranker_options(parser.parse_args(["--cache", "redis://h:1/2"])).cache == "redis://h:1/2"
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["--cache", "memcached://x"])
    assert "--cache" in capsys.readouterr().err


def test_adapters_take_the_options(bert_dir: str) -> None:
    from rag_rerank.adapters import RerankFields

    fields = RerankFields(model=bert_dir, cache=None, clean="html", show_progress=False)
    loaded = fields.loaded_reranker
    assert isinstance(loaded, Reranker)
    assert (loaded.cache, loaded.options.clean) == (None, "html")
    with pytest.raises(ValueError, match="cache"):
        RerankFields(model=bert_dir, cache="memcached://x")


def test_shared_instances_share_one_cache(bert_dir: str) -> None:
    # Reranker.shared holds its registry lock while it loads: opening the cache must not need it.
    first = Reranker.shared(bert_dir, show_progress=False, cache_size=64)
    view = Reranker.shared(bert_dir, show_progress=False, cache_size=64, max_length=128)
    assert first.cache is not None and first.cache is view.cache
    assert Reranker.shared(bert_dir, show_progress=False, cache=None).cache is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:secret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (
            "redis://127.0.0.1:6379/0?password=secret&db=1",
            "redis://127.0.0.1:6379/0?password=***&db=1",
        ),
        ("rediss://u:secret@h/0?Password=secret", "rediss://u:***@h/0?Password=***"),
        ("unix:///run/redis.sock?password=secret", "unix:///run/redis.sock?password=***"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_redis_passwords_never_shown(url: str, shown: str) -> None:
    from rag_rerank.core.cache import RedisScoreCache, redact

    assert redact(url) == shown
    cache = RedisScoreCache(url, "identity", ttl=None)  # connects lazily: no Redis needed
    try:
        assert cache.stats().cache == shown
    finally:
        cache.close()


def test_the_cache_url_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from rag_rerank.cli import build_parser

    url = "redis://:secret@127.0.0.1:6379/0"
    monkeypatch.setenv("RAG_RERANK_CACHE_URL", url)
    assert build_parser().parse_args(["score"]).cache == url
    assert build_parser().parse_args(["score", "--cache", "off"]).cache is None
    monkeypatch.setenv("RAG_RERANK_CACHE_URL", "nowhere")
    with pytest.raises(SystemExit):  # a bad value is a usage error naming --cache
        build_parser().parse_args(["score"])
