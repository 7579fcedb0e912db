"""One instance called from many threads and asyncio tasks gives the serial scores."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rag_rerank import Reranker

WORDS = "panda bamboo apple phone tower paris python code river bear forest 苹果 熊猫".split()


def _job(i: int) -> tuple[str, list[str]]:
    query = f"{WORDS[i % len(WORDS)]} {WORDS[(i * 3) % len(WORDS)]}"
    docs = [
        " ".join(WORDS[(i + j) % len(WORDS)] for j in range(1 + (i * k) % 40)) for k in range(9)
    ]
    return query, docs


@pytest.fixture(scope="module")
def rr(xlmr_dir):
    return Reranker(xlmr_dir, batch_tokens=512, cache=None)  # these tests time the engine


@pytest.fixture(scope="module")
def serial(rr):
    return [rr.score(*_job(i)) for i in range(16)]


def test_sixteen_threads_get_their_serial_scores(rr, serial):
    barrier = threading.Barrier(16)

    def run(i: int) -> list[float]:
        barrier.wait()
        return rr.score(*_job(i))

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(run, range(16)))
    for got, want in zip(results, serial, strict=True):
        assert got == pytest.approx(want, abs=1e-5)


async def test_sixteen_tasks_get_their_serial_scores(rr, serial):
    results = await asyncio.gather(*(rr.ascore(*_job(i)) for i in range(16)))
    for got, want in zip(results, serial, strict=True):
        assert got == pytest.approx(want, abs=1e-5)


async def test_async_call_does_not_block_the_event_loop(rr):
    ticks = 0
    stop = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    query, docs = _job(5)
    await rr.arerank(query, docs * 20)
    stop.set()
    await task
    assert ticks > 1


def test_shared_is_one_instance_across_threads(xlmr_dir):
    with ThreadPoolExecutor(8) as pool:
        instances = list(pool.map(lambda _: Reranker.shared(xlmr_dir), range(8)))
    assert all(instance is instances[0] for instance in instances)
    assert Reranker.shared(xlmr_dir, device="cpu") is instances[0]


def test_shared_views_with_other_options_share_the_loaded_model(xlmr_dir):
    default = Reranker.shared(xlmr_dir)
    shorter = Reranker.shared(xlmr_dir, max_length=64)
    assert shorter is not default
    assert shorter.engine is default.engine
    assert shorter.max_length == 64
    assert Reranker.shared(xlmr_dir, max_length=64) is shorter
    with pytest.raises(TypeError, match="max_lenght: is not a reranker option"):
        Reranker.shared(xlmr_dir, max_lenght=64)


def test_closed_reranker_refuses_work(bert_dir):
    from rag_rerank import EngineStoppedError

    rr = Reranker(bert_dir)
    with rr:
        assert len(rr.score("q", ["d"])) == 1
    with pytest.raises(EngineStoppedError):
        rr.score("q", ["d"])
