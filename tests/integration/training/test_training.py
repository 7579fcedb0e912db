"""Training a reranker offline: sentence-transformers' trainer on a slice of the demo corpus,
from the tiny random BERT (fast) with a bag-of-words vector store; the folder it writes loads in
Reranker. Bad input gets a TrainingError naming the file, line or option. The small trained
MiniLM model (the ``trained_dir`` fixture) is judged in bf16 and int8 against fp32."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from embedding_testing import BagOfWords

pytest.importorskip("datasets", reason="training needs the 'train' extra")


from rag_rerank import Reranker
from rag_rerank.cli import main
from rag_rerank.errors import TrainingError
from rag_rerank.rag.demo import load_demo_corpus, load_demo_questions
from rag_rerank.training import last_checkpoint, train
from rag_rerank.training.fixture import precision_drift

QUICK = {"steps": 3, "batch_size": 8, "max_length": 48, "device": "cpu", "show_progress": False}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 demo passages as a JSONL corpus."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    rows = [{"id": p.id, "text": p.text} for p in load_demo_corpus()[:40]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def quick_train(corpus: Path, base: str, out: Path, **options: object):
    return train(
        corpus, base=base, out=out, embedding_function=BagOfWords(128), **{**QUICK, **options}
    )


def logits(folder: Path | str, query: str, documents: list[str]) -> np.ndarray:
    with Reranker(str(folder), device="cpu", dtype="fp32") as reranker:
        results = reranker.rerank(query, documents)
    values = np.empty(len(documents))
    for result in results:
        values[result.index] = result.raw_score
    return values


def test_trained_folder_loads_in_reranker_with_its_card(
    corpus: Path, bert_dir: str, tmp_path: Path
) -> None:
    report = quick_train(corpus, bert_dir, tmp_path / "model", seed=1)
    texts = [p.text for p in load_demo_corpus()[:5]]
    assert np.isfinite(logits(tmp_path / "model", "apple iphone", texts)).all()
    assert report.passages == 40 and report.steps == 3 and report.loss == "bce"
    assert report.evaluation is not None and report.evaluation.queries == report.held_out_queries
    assert 0 <= report.evaluation.reranked.ndcg_at_10 <= 1
    card = (tmp_path / "model" / "README.md").read_text()
    for fact in (f"base: {bert_dir}", "steps: 3 of 8", "seed: 1", str(corpus), "NDCG@10"):
        assert fact in card
    assert not (tmp_path / "model" / "checkpoints").exists()


def test_same_seed_same_model_other_seed_other_model(
    corpus: Path, bert_dir: str, tmp_path: Path
) -> None:
    texts = [p.text for p in load_demo_corpus()[:8]]
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        quick_train(corpus, bert_dir, tmp_path / name, seed=seed, held_out=0.0)
        runs[name] = logits(tmp_path / name, "where do pythons live", texts)
    np.testing.assert_array_equal(runs["a"], runs["b"])
    assert not np.allclose(runs["a"], runs["c"])


def test_ctrl_c_leaves_the_last_checkpoint_usable_and_the_next_run_resumes(
    corpus: Path, bert_dir: str, tmp_path: Path
) -> None:
    out = tmp_path / "model"

    def press_ctrl_c_after_the_first_checkpoint() -> None:
        deadline = time.monotonic() + 120
        while last_checkpoint(out) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=press_ctrl_c_after_the_first_checkpoint, daemon=True)
    watcher.start()
    with pytest.raises(KeyboardInterrupt):
        quick_train(corpus, bert_dir, out, steps=400, checkpoint_every=2, held_out=0.0)
    watcher.join()
    checkpoint = last_checkpoint(out)
    assert checkpoint is not None
    step = int(checkpoint.name.split("-")[-1])
    assert np.isfinite(logits(checkpoint, "apple", ["Apples grow on trees."])).all()
    report = quick_train(corpus, bert_dir, out, steps=step + 2, held_out=0.0)
    assert report.resumed_from == step
    assert not (out / "checkpoints").exists()
    assert f"resumed from step: {step}" in (out / "README.md").read_text()


def test_labels_train_on_the_labelled_pairs(corpus: Path, bert_dir: str, tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    passages = load_demo_corpus()
    rows = [
        {"query": f"question {i}", "document": passages[i].text, "label": int(i % 3 == 0)}
        for i in range(24)
    ]
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = quick_train(corpus, bert_dir, tmp_path / "model", labels=labels)
    assert report.train_queries + report.held_out_queries == 8  # queries with a relevant document
    assert f"labels: {labels}" in (tmp_path / "model" / "README.md").read_text()


@pytest.mark.parametrize("loss", ["margin-mse", "mse"])
def test_teacher_is_distilled(
    corpus: Path, bert_dir: str, xlmr_dir: str, tmp_path: Path, loss: str
) -> None:
    report = quick_train(corpus, bert_dir, tmp_path / "model", teacher=xlmr_dir, loss=loss)
    assert report.loss == loss
    assert report.data["teacher"] == xlmr_dir
    assert np.isfinite(logits(tmp_path / "model", "bank", ["A river bank."])).all()


# -- bad input ----------------------------------------------------------------------------------


def test_too_few_passages_for_a_batch(corpus: Path, bert_dir: str, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="40 passages, fewer than the 64") as caught:
        quick_train(corpus, bert_dir, tmp_path / "out", batch_size=64)
    assert caught.value.option == "batch_size"
    assert str(corpus) in str(caught.value)


def test_an_empty_text_names_file_and_line(bert_dir: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "Pandas eat bamboo."}\n{"text": ""}\n')
    with pytest.raises(TrainingError, match=r"corpus.jsonl, line 2: 'text' must be a non-empty"):
        quick_train(corpus, bert_dir, tmp_path / "out")


def test_a_base_that_is_not_a_transformer_encoder(corpus: Path, tmp_path: Path) -> None:
    from transformers import GPT2Config

    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    with pytest.raises(TrainingError, match=r"base: .*it has no config.json") as caught:
        quick_train(corpus, str(not_a_model), tmp_path / "out")
    assert caught.value.option == "base"
    decoder = tmp_path / "gpt2"
    GPT2Config(n_layer=1, n_embd=8, n_head=2, architectures=["GPT2LMHeadModel"]).save_pretrained(
        decoder
    )
    for name in ("model.safetensors", "tokenizer.json"):  # the folder check only looks for them
        (decoder / name).touch()
    with pytest.raises(TrainingError, match=r"base: .*is a decoder \(gpt2\), not a transformer"):
        quick_train(corpus, str(decoder), tmp_path / "out")


def test_a_teacher_that_cannot_load(corpus: Path, bert_dir: str, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="teacher: no such folder") as caught:
        quick_train(corpus, bert_dir, tmp_path / "out", teacher=str(tmp_path / "no-teacher"))
    assert caught.value.option == "teacher"


def test_labels_in_another_format_name_file_and_line(
    corpus: Path, bert_dir: str, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"query": "q", "document": "d", "label": 1}\n{"q": "q", "passage": "d"}\n')
    with pytest.raises(TrainingError, match=r"labels: .*labels.jsonl, line 2: ") as caught:
        quick_train(corpus, bert_dir, tmp_path / "out", labels=labels)
    assert (caught.value.option, caught.value.line) == ("labels", 2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"loss": "hinge"}, "loss: must be one of bce, mse, margin-mse"),
        ({"loss": "mse"}, "loss: 'mse' learns a teacher's logits"),
        ({"steps": 0}, "steps: must be an integer of at least 1"),
        ({"held_out": 1.0}, r"held_out: must be in \[0, 1\)"),
    ],
)
def test_bad_settings_name_the_option(
    corpus: Path, bert_dir: str, tmp_path: Path, options: dict, message: str
) -> None:
    with pytest.raises(TrainingError, match=message):
        quick_train(corpus, bert_dir, tmp_path / "out", **options)


def test_cli_reports_bad_input_in_one_line(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", str(corpus), "--base", str(tmp_path), "--out", str(tmp_path / "o")])
    assert code == 2  # checked before anything loads, like --model
    err = capsys.readouterr().err.strip()
    assert err.startswith("rag-rerank: error: --base: ") and "\n" not in err


# -- the trained test model: real margins, and what bf16 and int8 do to them --------------------


def test_trained_model_precision_bf16_and_int8_against_fp32(
    trained_dir: str, record_property: pytest.RecordProperty
) -> None:
    # Every answering passage and every third other one (about 90 of 253): the margins that
    # matter at a third of the full corpus's CPU time (bf16 is emulated on most CPUs).
    demo = load_demo_questions()
    questions = [q.question for q in demo]
    relevant = {i for q in demo for i in q.relevant}
    corpus = load_demo_corpus()
    documents = [p.text for n, p in enumerate(corpus) if p.id in relevant or n % 3 == 0]
    bf16, int8 = precision_drift(trained_dir, questions, documents)
    for drift in (bf16, int8):
        record_property(drift.dtype, drift)
        print(drift)  # shown with -s: the figures benchmarks/bench_precision.py also reports
    assert bf16.logit_spread > 2.5  # real margins, not a random head's
    assert bf16.max_logit_drift < 0.1 * bf16.logit_spread
    assert bf16.top5_overlap >= 0.8
    assert int8.queries == bf16.queries == len(questions)
    assert np.isfinite(int8.max_logit_drift) and int8.top5_overlap > 0
