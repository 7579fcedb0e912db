"""The score cache shared through a real Redis (Debian's redis-server on a free loopback port):
shared across instances, keys under the model identity, and never failing a request when
Redis is down, full or refuses the password."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from server_testing import REDIS_SERVER, RedisServer, wait_until

from rag_rerank import Reranker
from rag_rerank.core import cache as cache_module
from rag_rerank.core.cache import KEY_PREFIX, RedisScoreCache

redis = pytest.importorskip("redis")
pytestmark = pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="needs redis-server")

QUERY = "which bank lends money for a boat"
DOCS = [
    "The bank lends money at a fair interest rate.",
    "Fishing boats line the river bank at dawn.",
    "Pandas eat bamboo in the mountains.",
]


@pytest.fixture
def server() -> Iterator[RedisServer]:
    redis_server = RedisServer()
    redis_server.start()
    yield redis_server
    redis_server.stop()


@pytest.fixture(scope="module")
def base(bert_dir: str) -> Iterator[Reranker]:
    reranker = Reranker(bert_dir, show_progress=False, cache=None)
    yield reranker
    reranker.close()


@pytest.fixture(autouse=True)
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "RETRY_SECONDS", 0.2)


def _cache(rr: Reranker) -> RedisScoreCache:
    assert isinstance(rr.cache, RedisScoreCache)
    return rr.cache


def test_scores_are_shared_through_redis(base: Reranker, server: RedisServer) -> None:
    writer = base.with_options(cache=server.url, cache_ttl=60)
    first = writer.rerank(QUERY, DOCS)
    _cache(writer).flush()
    client = redis.Redis.from_url(server.url)
    keys = client.keys(KEY_PREFIX + "*")
    assert len(keys) == 3
    assert all(keys[0].split(b":")[2] == key.split(b":")[2] for key in keys)  # model identity
    assert all(len(client.get(key)) == 4 for key in keys)  # the fp32 logit
    assert 0 < client.ttl(keys[0]) <= 60
    # Another process would open its own client: a new cache object on the same Redis.
    cache_module._open.clear()
    reader = base.with_options(cache=server.url, cache_ttl=60)
    assert reader.cache is not writer.cache
    pairs = base.stats().pairs
    assert reader.rerank(QUERY, DOCS) == first
    assert base.stats().pairs == pairs
    assert [r.raw_score for r in first] == [r.raw_score for r in base.rerank(QUERY, DOCS)]
    stats = reader.cache_stats()
    assert stats is not None and (stats.hits, stats.misses, stats.errors) == (3, 0, 0)
    assert stats.cache == server.url


def test_redis_killed_mid_run_then_restarted(
    base: Reranker, server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    rr = base.with_options(cache=server.url)
    expected = base.score(QUERY, DOCS)
    assert rr.score(QUERY, DOCS) == expected
    _cache(rr).flush()
    server.stop()
    with caplog.at_level(logging.WARNING, logger="rag_rerank.core.cache"):
        for _ in range(5):  # served uncached, neither failed nor hung
            assert rr.score(QUERY, DOCS) == pytest.approx(expected, abs=1e-6)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "serving uncached" in warnings[0].getMessage()
    errors = rr.cache_stats().errors
    assert errors >= 1
    server.start()
    rr.score(QUERY, DOCS[:1])  # the first call after the restart may still be in the pause

    def hits_resume() -> bool:
        before = rr.cache_stats().hits
        rr.score(QUERY, DOCS)
        _cache(rr).flush()
        return rr.cache_stats().hits == before + 3

    wait_until(hits_resume, "hits did not resume after Redis came back", timeout=10)


async def test_async_requests_survive_a_dead_redis(base: Reranker, server: RedisServer) -> None:
    rr = base.with_options(cache=server.url)
    first = await rr.arerank(QUERY, DOCS)
    server.stop()
    assert [r.index for r in await rr.arerank(QUERY, DOCS)] == [r.index for r in first]


def test_wrong_password_warns_once_and_serves(
    base: Reranker, caplog: pytest.LogCaptureFixture
) -> None:
    locked = RedisServer("--requirepass", "right")
    locked.start()
    try:
        url = f"redis://:wrong@127.0.0.1:{locked.port}/0"
        rr = base.with_options(cache=url)
        with caplog.at_level(logging.WARNING, logger="rag_rerank.core.cache"):
            for _ in range(3):
                assert rr.score(QUERY, DOCS) == base.score(QUERY, DOCS)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "authentication failed" in warnings[0] and "wrong" not in warnings[0]
        assert rr.cache_stats().cache == f"redis://:***@127.0.0.1:{locked.port}/0"
    finally:
        locked.stop()


def test_full_redis_refuses_writes_and_requests_still_succeed(base: Reranker) -> None:
    full = RedisServer("--maxmemory", "1", "--maxmemory-policy", "noeviction")
    full.start()
    try:
        rr = base.with_options(cache=full.url)
        for _ in range(2):
            assert rr.score(QUERY, DOCS) == base.score(QUERY, DOCS)
        _cache(rr).flush()
        assert rr.cache_stats().errors >= 1
    finally:
        full.stop()


def test_unreachable_redis_does_not_hang(base: Reranker) -> None:
    rr = base.with_options(cache="redis://127.0.0.1:1/0")  # nothing listens on port 1
    assert rr.score(QUERY, DOCS) == base.score(QUERY, DOCS)
    assert rr.cache_stats().errors >= 1


def test_scores_are_shared_across_processes(
    base: Reranker, server: RedisServer, bert_dir: str
) -> None:
    # Another process, with its own model load and Redis client, scores the pairs first.
    code = (
        "from rag_rerank import Reranker\n"
        f"rr = Reranker({bert_dir!r}, show_progress=False, cache={server.url!r})\n"
        f"rr.rerank({QUERY!r}, {DOCS!r})\n"
        "rr.cache.flush()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    rr = base.with_options(cache=server.url)
    pairs = base.stats().pairs
    assert rr.rerank(QUERY, DOCS) == base.with_options(cache=None).rerank(QUERY, DOCS)
    assert base.stats().pairs == pairs + len(DOCS)  # only the uncached reference ran the model
    stats = rr.cache_stats()
    assert stats is not None and (stats.hits, stats.misses) == (len(DOCS), 0)


def test_a_slow_redis_is_skipped_not_waited_for(base: Reranker) -> None:
    slow = RedisServer("--enable-debug-command", "yes")
    slow.start()
    try:
        rr = base.with_options(cache=slow.url)
        expected = base.score(QUERY, DOCS)
        client = redis.Redis.from_url(slow.url)
        sleeper = threading.Thread(target=client.execute_command, args=("DEBUG", "SLEEP", "3"))
        sleeper.start()
        time.sleep(0.3)  # the server is now asleep: every command waits for it
        assert rr.score(QUERY, DOCS) == expected  # served without the cache
        assert sleeper.is_alive()  # ... while Redis was still asleep
        assert rr.cache_stats().errors >= 1
        sleeper.join()
    finally:
        slow.stop()
