"""Model references: a path that is not there, a folder that is not a model, a hub that cannot be
reached. Each fails at once with one true line, without a hub request."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag_rerank import Reranker, RerankerOptions
from rag_rerank.api.references import check_model_reference, looks_like_path
from rag_rerank.core import hub
from rag_rerank.errors import ModelLoadError


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any hub probe or hub request fails the test: a path-like reference must not make one."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a path-like model reference reached the hub")

    monkeypatch.setattr(hub, "_probe", refuse)
    monkeypatch.setattr(hub, "hub_unreachable", refuse)


@pytest.mark.parametrize(
    ("name", "path_like"),
    [
        ("./bge-reranker-v2-m3", True),
        ("/abs/path/nope", True),
        ("~/models/bge", True),
        ("../bge", True),
        ("BAAI/bge-reranker-v2-m3", False),
        ("cross-encoder/ms-marco-MiniLM-L-6-v2", False),
        ("bert-base-uncased", False),
    ],
)
def test_looks_like_path(name: str, path_like: bool) -> None:
    assert looks_like_path(name) is path_like


def test_a_name_under_an_existing_folder_is_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    assert looks_like_path("models/bge")  # models/ exists: a typo'd folder, not a hub id
    assert not looks_like_path("BAAI/bge")


@pytest.mark.parametrize("name", ["./bge-reranker-v2-m3", "/abs/path/nope", "~/no-such-model-x"])
def test_missing_folder_is_no_such_folder_without_a_hub_call(name: str, no_hub: None) -> None:
    started = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        Reranker(name)
    assert str(info.value) == f"no such folder: {os.path.expanduser(name)}"
    assert time.perf_counter() - started < 5


def test_path_objects_are_accepted_and_checked(tmp_path: Path, bert_dir: str, no_hub: None) -> None:
    assert RerankerOptions(model=Path(bert_dir)).model == bert_dir
    with pytest.raises(ModelLoadError, match="no such folder"):
        Reranker(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="no such folder"):
        Reranker.shared(tmp_path / "missing")
    reranker = Reranker(Path(bert_dir), device="cpu")
    try:
        assert reranker.score("q", ["d"])[0] > 0
    finally:
        reranker.close()


@pytest.mark.parametrize(
    ("files", "missing"),
    [
        ((), "config.json"),
        (("config.json",), "model.safetensors"),
        (("config.json", "pytorch_model.bin"), "model.safetensors"),
        (("config.json", "model.safetensors"), "tokenizer.json"),
    ],
)
def test_a_folder_that_is_not_a_model_names_the_missing_file(
    tmp_path: Path, files: tuple[str, ...], missing: str, no_hub: None
) -> None:
    for name in files:
        (tmp_path / name).write_text("{}")
    with pytest.raises(ModelLoadError) as info:
        check_model_reference(str(tmp_path))
    message = str(info.value)
    assert message.startswith(f"{tmp_path} is not a model folder: it has no {missing}")
    if "pytorch_model.bin" in files:
        assert "safetensors only" in message


def test_a_parent_of_model_folders_names_them(tiny_models: dict[str, Path]) -> None:
    parent = str(next(iter(tiny_models.values())).parent)
    with pytest.raises(ModelLoadError, match=r"these folders in it have one: bert, bert2, xlmr"):
        check_model_reference(parent)


@pytest.fixture
def home_with_model(bert_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$HOME`` is a temporary folder holding the tiny BERT model as ``~/models/bert``."""
    import shutil

    shutil.copytree(bert_dir, tmp_path / "models" / "bert")
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path / "models" / "bert"


def test_a_home_folder_loads_wherever_a_model_is_named(
    home_with_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rag_rerank.cli import main

    assert RerankerOptions(model="~/models/bert").model == str(home_with_model)
    assert check_model_reference("~/models/bert") == str(home_with_model)
    reranker = Reranker("~/models/bert", device="cpu")
    try:
        assert reranker.score("q", ["d"])[0] > 0
    finally:
        reranker.close()
    assert main(["score", "--model", "~/models/bert", "-q", "q", "d"]) == 0, capsys.readouterr().err
    monkeypatch.setenv("RAG_RERANK_MODEL", "~/models/bert")
    assert main(["score", "-q", "q", "d"]) == 0, capsys.readouterr().err


def test_train_checks_base_and_teacher_like_any_model(
    home_with_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_hub: None
) -> None:
    from rag_rerank.cli import main
    from rag_rerank.errors import TrainingError
    from rag_rerank.training import train

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "Pandas eat bamboo."}\n')
    for flag in ("--base", "--teacher"):
        argv = ["train", str(corpus), "--out", str(tmp_path / "o"), flag, "./nope"]
        assert main(argv) == 2
        assert capsys.readouterr().err == f"rag-rerank: error: {flag}: no such folder: ./nope\n"
    for option in ("base", "teacher"):
        models = {"base": "~/models/bert", option: "./nope"}
        with pytest.raises(TrainingError, match=rf"^{option}: no such folder: ./nope$"):
            train(corpus, out=tmp_path / "o", **models)  # type: ignore[arg-type]


def test_a_hub_id_that_could_be_a_path_says_no_such_folder_is_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as info:
        Reranker("models/my-reranker")
    assert f"there is no folder models/my-reranker here ({tmp_path})" in str(info.value)


def test_hub_offline_answers_without_a_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "_probe", lambda _: pytest.fail("probed while offline"))
    started = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        Reranker("no-such-org/no-such-reranker")
    message = str(info.value)
    assert message.startswith("HF_HUB_OFFLINE is set, and 'no-such-org/no-such-reranker' is not")
    assert "--model ./no-such-reranker" in message and "RAG_RERANK_MODEL" in message
    assert "python -m rag_rerank.testing" in message and "\n" not in message
    assert time.perf_counter() - started < 5


def _free_closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_hub_is_one_line_in_seconds_with_no_retry_noise(tmp_path: Path) -> None:
    # A hub endpoint nobody listens on: the CLI must not spend 30 s in five retries.
    env = {
        **os.environ,
        "HF_ENDPOINT": f"http://127.0.0.1:{_free_closed_port()}",
        "HF_HOME": str(tmp_path / "hf"),  # an empty cache
    }
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("RAG_RERANK_MODEL", None)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "rag_rerank.cli", "score"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    elapsed = time.perf_counter() - started
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("rag-rerank: error: cannot reach http://127.0.0.1:")
    assert "--model ./bge-reranker-v2-m3" in lines[0]
    assert "python -m rag_rerank.testing /tmp/rr-models" in lines[0]
    assert elapsed < 20  # import time on a loaded 2-core box; the probe itself is < 4 s


def test_no_loading_weights_bars_unless_verbose(bert_dir: str) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS"):
        env.pop(name, None)  # an in-process main() of another test may have set them
    quiet = subprocess.run(
        [sys.executable, "-m", "rag_rerank.cli", "score", "--model", bert_dir],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert quiet.returncode == 0, quiet.stderr
    assert "Loading weights" not in quiet.stderr and quiet.stderr == ""
    verbose = subprocess.run(
        [sys.executable, "-m", "rag_rerank.cli", "score", "--model", bert_dir, "--verbose"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert verbose.returncode == 0, verbose.stderr
    assert "Loading weights" in verbose.stderr
