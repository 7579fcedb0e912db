"""The engine under faults and abuse: work-based admission, cancelling a running job, a worker
that dies mid-round, model failures, texts the tokenizer cannot take, repeated pairs."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

from rag_rerank import EngineStoppedError, InvalidInputError, OverloadedError, Reranker
from rag_rerank.core.engine import estimated_windows
from rag_rerank.errors import ScoringError

WORDS = "river bank money loan water stream fish boat interest account".split()


def text(words: int, seed: int = 0) -> str:
    """About ``words`` words; distinct for each seed (repeated pairs would be scored once)."""
    return f"{seed} " + " ".join(WORDS[(i * 7 + seed) % len(WORDS)] for i in range(words))


def wait_until(condition, message: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.01)


@pytest.fixture
def rr(bert_dir: str):
    reranker = Reranker(bert_dir, show_progress=False, cache=None)
    yield reranker
    reranker.close()


def _occupy(rr: Reranker, docs: int = 64, words: int = 1500) -> concurrent.futures.Future:
    future = rr.engine.submit(
        ["occupy"] * docs, [text(words, seed=i) for i in range(docs)], max_length=rr.max_length
    )
    wait_until(future.running, "the worker did not start the long job")
    return future


# 2. Admission by work, not items; cancellation of running work.


def test_one_long_document_counts_as_its_windows_in_the_queue(bert_dir: str) -> None:
    with Reranker(bert_dir, show_progress=False, cache=None, max_queue_pairs=100) as rr:
        huge = text(40_000)  # ~240 KB: one pair, but ~120 windows of work
        assert estimated_windows([huge], rr.max_length) > 100
        with pytest.raises(OverloadedError, match="limit 100"):
            rr.engine.submit(["q"], [huge], max_length=rr.max_length)
        small = rr.engine.submit(["q"], ["a short one"], max_length=rr.max_length)
        assert small.result(timeout=60).shape == (1,)


def test_the_unscored_rest_of_a_running_job_counts_as_waiting_work(rr: Reranker) -> None:
    occupier = _occupy(rr, docs=200, words=1500)  # taken in by the worker at once
    rr.engine.max_queue_pairs = 100
    with pytest.raises(OverloadedError, match="limit 100"):
        rr.engine.submit(["q"], ["a short one"], max_length=rr.max_length)
    occupier.cancel()


def test_cancelling_a_running_job_drops_its_remaining_batches(rr: Reranker) -> None:
    occupier = _occupy(rr, docs=200, words=1500)
    before = rr.stats().windows
    assert not occupier.cancel()  # already running: it cannot be unqueued, only abandoned
    with pytest.raises(concurrent.futures.CancelledError):
        occupier.result(timeout=60)
    scored = rr.stats().windows - before
    total = sum(estimated_windows([text(1500, seed=i)], rr.max_length) for i in range(200))
    assert scored < total / 2  # the rest was dropped
    assert rr.score("q", ["still serving"])  # and the engine goes on


async def test_a_cancelled_task_leaves_the_queue_at_once(rr: Reranker) -> None:
    import asyncio

    occupier = _occupy(rr)
    task = asyncio.ensure_future(rr.ascore("q", [f"doc {i}" for i in range(40)]))
    await asyncio.sleep(0.05)
    assert rr.stats().queued_pairs == 40
    task.cancel()
    await asyncio.sleep(0.05)
    assert rr.stats().queued_pairs == 0  # not at the worker's next round
    occupier.cancel()


# 4. A worker that dies mid-round resolves its callers.


def test_a_worker_killed_mid_round_resolves_every_caller(rr: Reranker) -> None:
    model = rr.engine.model
    forward = model.forward
    calls = 0

    def dying_forward(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise SystemExit("the model pulled the plug")
        return forward(*args, **kwargs)

    model.forward = dying_forward
    in_round = rr.engine.submit(
        ["q"] * 64, [text(1500, seed=i) for i in range(64)], max_length=rr.max_length
    )
    with pytest.raises(EngineStoppedError) as caught:
        in_round.result(timeout=60)  # before the fix: never resolved
    assert isinstance(caught.value.__cause__, SystemExit)
    with pytest.raises(EngineStoppedError):
        rr.score("q", ["after the death"])
    assert not rr.health().alive


def test_a_failing_forward_is_a_typed_error_and_the_engine_goes_on(rr: Reranker) -> None:
    model = rr.engine.model
    forward = model.forward

    def broken(*args, **kwargs):
        raise RuntimeError("device lost")

    model.forward = broken
    with pytest.raises(ScoringError) as caught:
        rr.score("q", ["a", "b"])
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert rr.health().reason == "the last forward pass failed"
    model.forward = forward
    assert len(rr.score("q", ["a", "b"])) == 2
    assert rr.health().ready


# 6. Texts the tokenizer cannot take are typed errors naming the item.


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda rr: rr.rerank("q", ["fine", "bad \ud800 text"]), "documents[1]"),
        (lambda rr: rr.score("q \udfff", ["fine"]), "query"),
        (lambda rr: rr.score_pairs([("q", "ok"), ("q", "\ud83d")]), "pairs[1][1]"),
    ],
)
def test_lone_surrogates_are_invalid_input_naming_the_item(rr: Reranker, call, field) -> None:
    with pytest.raises(InvalidInputError) as caught:
        call(rr)
    assert caught.value.field == field
    assert rr.score("q", ["😀 emoji are fine"])


# 7. Identical pairs in one call: one forward, one score, input order.


def test_identical_documents_share_one_score_and_keep_input_order(rr: Reranker) -> None:
    docs = [text(30, seed=1)] * 200 + [text(30, seed=2)] + [text(30, seed=1)] * 5
    before = rr.stats().windows
    results = rr.rerank("which bank?", docs)
    assert rr.stats().windows - before == 2  # two distinct pairs scored
    same = [r for r in results if r.document == docs[0]]
    assert len({r.raw_score for r in same}) == 1
    assert [r.index for r in same] == sorted(r.index for r in same)
    assert len(results) == len(docs)


# Issue 25, 5. No abort at exit: engines stop when their Reranker is collected and at exit.

EXIT_SCRIPT = """
import atexit, sys, threading

def no_engine_left():
    # Registered before rag_rerank's own hook, so it runs after it (atexit is last in, first
    # out): a worker still alive here is one the interpreter's finalization could kill inside
    # torch ("terminate called without an active exception", status 134).
    alive = [t.name for t in threading.enumerate() if t.name.startswith("rag-rerank-engine")]
    if alive:
        sys.stderr.write(f"engine threads alive at exit: {alive}\\n")
        sys.stderr.flush()
        import os
        os._exit(3)

atexit.register(no_engine_left)
from rag_rerank import Reranker

for _ in range(3):
    rr = Reranker(sys.argv[1], device="cpu", dtype="fp32", cache=None, batch_tokens=64)
    threads = [threading.Thread(target=lambda: rr.score("q", ["a b c"] * 30)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
# Exit while a job runs, too.
future = rr.engine.submit(["q"] * 40, [f"{i} " + "bank " * 600 for i in range(40)], max_length=64)
while not future.running():
    pass
"""


def test_scripts_exit_cleanly_with_engines_running(bert_dir: str, tmp_path) -> None:
    import subprocess
    import sys

    script = tmp_path / "exit.py"
    script.write_text(EXIT_SCRIPT)
    runs = [
        subprocess.Popen([sys.executable, str(script), bert_dir], stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for run in runs:
        _, stderr = run.communicate(timeout=120)
        assert "terminate called" not in stderr
        assert run.returncode == 0, stderr[-2000:]


def test_an_engine_stops_when_its_last_reranker_is_collected(bert_dir: str) -> None:
    import gc
    import weakref

    rr = Reranker(bert_dir, show_progress=False, cache=None)
    view = rr.with_options(long_documents="truncate")
    engine = weakref.ref(rr.engine)
    assert rr.score("q", ["a"])
    del rr
    gc.collect()
    assert view.score("q", ["the view still holds the engine"])
    del view
    gc.collect()
    wait_until(lambda: engine() is None, "the engine and its threads outlived every reranker")


# Issue 25, 4. Admission by real work; a fair engine.


@pytest.mark.parametrize(
    "document",
    [
        "!?.,;:" * 2000,  # punctuation: a token per character
        "漢字仮名交じり文" * 1500,  # CJK: about a token per character
        "river bank money " * 1000,  # English: about four characters a token
    ],
    ids=["punctuation", "cjk", "english"],
)
def test_admission_never_undercounts_the_windows_a_text_fills(rr: Reranker, document) -> None:
    real = len(rr.engine.model.encode(["q"], [document], max_length=128, windows=True).lengths)
    estimate = estimated_windows([document], 128)
    assert real <= estimate <= 4 * real + 1


def test_admission_counts_the_query(rr: Reranker) -> None:
    huge_query = "bank " * 50_000
    assert estimated_windows(["a"], 512, queries=[huge_query]) > 50
    assert estimated_windows(["a"], 512, queries=["what is a bank?"] * 3) == 1


def test_a_small_request_waits_for_one_batch_of_a_large_one_not_all_of_it(rr: Reranker) -> None:
    large = _occupy(rr, docs=200, words=1500)
    small = rr.engine.submit(["q"], ["a short one"], max_length=rr.max_length)
    assert small.result(timeout=60).shape == (1,)
    assert not large.done()  # before the fix: the small job waited for the whole large round
    large.cancel()


# Issue 25, 6. A hung model is noticed: callers fail, health says so, it recovers.


def test_a_hung_forward_fails_its_callers_and_turns_health_unready(rr: Reranker) -> None:
    from rag_rerank.errors import EngineStalledError

    model = rr.engine.model
    forward = model.forward
    release = threading.Event()

    def hanging_forward(*args, **kwargs):  # fault injection: the device stops answering
        release.wait(30)
        return forward(*args, **kwargs)

    rr.engine.stall_timeout = 0.5
    model.forward = hanging_forward
    try:
        with pytest.raises(EngineStalledError, match="hung"):
            rr.score("q", ["stuck"])  # before the fix: waited as long as the forward
        assert rr.health().stalled and not rr.health().alive
        with pytest.raises(EngineStalledError):
            rr.score("q", ["refused while the model hangs"])
    finally:
        model.forward = forward
        release.set()
    wait_until(lambda: rr.health().alive, "the engine did not recover after the forward returned")
    rr.engine.stall_timeout = 60.0  # a loaded test machine may take over 0.5 s for a pass
    assert rr.score("q", ["served again"])
