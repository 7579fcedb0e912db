"""``rag-rerank demo --train``: one opening line, one labelled progress bar and no trainer log
lines while it trains, and Ctrl-C keeps the checkpoints and says that a rerun resumes (which
it does). The demo reranker's own settings take minutes: these tests train tiny ones."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from embedding_testing import BagOfWords
from rich.console import Console

pytest.importorskip("datasets", reason="training needs the 'train' extra")

from rag_rerank.cli import main
from rag_rerank.rag.demo import load_demo_corpus
from rag_rerank.render import print_demo_summary
from rag_rerank.training import demo, last_checkpoint, train
from rag_rerank.training.report import REPORT_FILE

# A checkpoint every 10 steps: a Ctrl-C after the first lands well before the end.
TINY = {**demo.DEMO_SETTINGS, "steps": 50, "batch_size": 2, "max_length": 32}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAG_RERANK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(demo, "DEMO_SETTINGS", TINY)
    return tmp_path / "cache"


def ctrl_c_when(ready: Callable[[], bool]) -> threading.Thread:
    """Send this process SIGINT (Ctrl-C) once ``ready()`` holds (or after ten minutes)."""

    def wait_then_interrupt() -> None:
        deadline = time.monotonic() + 600
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=wait_then_interrupt, daemon=True)
    thread.start()
    return thread


def test_training_shows_one_labelled_bar_and_no_log_lines(
    bert_dir: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": p.text}) + "\n" for p in load_demo_corpus()[:20]))
    train(
        corpus, base=bert_dir, out=tmp_path / "model", steps=3, batch_size=4, max_length=32,
        device="cpu", held_out=0.0, embedding_function=BagOfWords(64), show_progress=True,
    )  # fmt: skip
    out, err = capfd.readouterr()
    assert "training: 100%" in err and "3/3" in err
    for noise in ("{'loss'", "'train_runtime'", "Writing model shards", "Loading weights"):
        assert noise not in out + err


def test_demo_train_opens_with_one_line_and_ctrl_c_says_a_rerun_resumes(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = cache / "demo-reranker.building" / "fixture.json"
    watcher = ctrl_c_when(started.is_file)
    code = main(["demo", "--train"])
    watcher.join()
    out, err = capsys.readouterr()
    assert code == 130
    assert err.strip() == (
        "stopped; the checkpoints are kept: run `rag-rerank demo --train` again to resume the "
        "training"
    )
    opening = out.replace("\n", " ")
    for fact in ("training the demo reranker once", "all-MiniLM-L6-v2", "up to 3 minutes",
                 str(cache / "demo-reranker"), "Ctrl-C", "resumes"):  # fmt: skip
        assert fact in opening, out
    assert started.is_file()  # kept for the rerun
    assert demo.training_plan() != ""


@pytest.mark.slow
def test_a_demo_build_cut_off_resumes_from_its_last_checkpoint(cache: Path) -> None:
    checkpoints = cache / "demo-reranker.building" / "model"
    watcher = ctrl_c_when(lambda: last_checkpoint(checkpoints) is not None)
    with pytest.raises(KeyboardInterrupt):
        demo.build_demo_reranker()
    watcher.join()
    step = int(last_checkpoint(checkpoints).name.split("-")[-1])  # type: ignore[union-attr]
    assert f"resuming at step {step}" in demo.training_plan()
    folder = demo.build_demo_reranker()
    report = json.loads((folder / REPORT_FILE).read_text())
    assert report["resumed_from"] == step and report["steps"] == TINY["steps"]
    assert demo.training_plan() == ""  # built: nothing to say, nothing to train
    assert "50 steps of 2 pairs" in demo.describe(folder)


def test_the_summary_shows_how_often_and_how_high_each_order_put_the_answer() -> None:
    out = io.StringIO()
    summary = [("a?", 1, 1), ("b?", 2, 1), ("c?", 4, 2), ("d?", None, None)]
    print_demo_summary(Console(file=out, width=200), summary)
    lines = out.getvalue().splitlines()
    assert lines[-2] == (
        "answering passage's mean reciprocal rank: vector store 0.44, reranked 0.62"
    )  # (1 + 1/2 + 1/4 + 0) / 4 and (1 + 1 + 1/2 + 0) / 4
    assert lines[-1] == "answering passage ranked first: vector store 1/4, reranked 2/4"
