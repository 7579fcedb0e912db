"""The benchmark harness (benchmarks/harness/): workload shapes, the FLOPs formula, and
benchmarks/bench_rerank.py end to end."""

import runpy
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from harness.measure import pair_flops
from harness.shapes import Shape, build_model
from harness.workloads import TextMaker, pair_token_lengths

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


def main(argv: list[str]) -> int:
    """Run ``python benchmarks/bench_rerank.py ARGV`` in this process; return its exit code."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", [str(BENCHMARKS / "bench_rerank.py"), *argv])
        with pytest.raises(SystemExit) as exited:
            runpy.run_path(str(BENCHMARKS / "bench_rerank.py"), run_name="__main__")
    return int(exited.value.code or 0)


def test_pair_lengths_follow_the_rag_chunk_mix():
    lengths = pair_token_lengths(np.random.default_rng(0), 50)
    assert len(lengths) == 50
    assert lengths.min() >= 64 and lengths.max() <= 512
    assert 190 <= np.median(lengths) <= 210


@pytest.mark.parametrize("family", ["bert_dir", "xlmr_dir"])
def test_text_maker_hits_the_pair_lengths(family, request):
    tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue(family))
    maker = TextMaker(tokenizer, seed=1)
    targets = np.array([64, 100, 200, 512])
    workload = maker.workload(2, 4, lambda n: targets[:n])
    assert workload.pairs == 8
    for got in workload.pair_tokens:
        assert np.all(np.abs(got - targets) <= 2)


def test_flops_formula():
    # 2 x params x L + 4 x L^2 x hidden x layers, summed over pairs
    assert pair_flops(np.array([10, 20]), 100, 8, 2) == (
        2 * 100 * 10 + 4 * 100 * 8 * 2 + 2 * 100 * 20 + 4 * 400 * 8 * 2
    )


def test_bench_command_reports_every_peer_with_its_score_difference(bert_dir, tmp_path, capsys):
    report = tmp_path / "RESULTS.md"
    code = main(
        [
            "--model",
            bert_dir,
            "--device",
            "cpu",
            "--workload",
            "latency",
            "--runs",
            "2",
            "--warmup",
            "0",
            "--peers",
            "st,plain",
            "--int8",
            "--before",
            "--output",
            str(report),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    rows = {line.split(" | ")[0].lstrip("| "): line for line in out.splitlines() if "| " in line}
    for peer in (
        "rag-rerank Reranker",
        "rag-rerank Reranker int8",
        "rag-rerank before",
        "sentence-transformers CrossEncoder.predict",
        "plain transformers forward",
    ):
        assert peer in rows
    # fp32 peers agree with the plain forward; the diff column is the 5th cell
    for peer in ("rag-rerank Reranker", "sentence-transformers CrossEncoder.predict"):
        assert float(rows[peer].split(" | ")[4]) < 1e-5
    assert report.read_text().strip() in out
    assert f"sentence-transformers {version('sentence-transformers')}" in out
    assert "the closest two of its top 6 are" in out
    # The ratio column is the peer's time over ours: below 1x is faster, and the header says so
    # (it read "faster by 0.78x" for the faster int8 peer).
    assert "faster by" not in out and "| p50 vs rag-rerank Reranker |" in out
    assert rows["rag-rerank Reranker"].split(" | ")[3] == "1.00x"


def test_bench_says_which_asked_for_peer_is_not_installed(bert_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "FlagEmbedding", None)  # as if not installed
    argv = ["--model", bert_dir, "--device", "cpu", "--workload", "latency"]
    code = main([*argv, "--runs", "1", "--warmup", "0", "--peers", "flag"])
    assert code == 0
    out = capsys.readouterr().out
    assert "- not run (not installed): FlagEmbedding (pip install FlagEmbedding)" in out
    assert "FlagEmbedding FlagReranker |" not in out


def test_xlmr_shapes_build_offline_with_their_own_tokenizer(tmp_path):
    from rag_rerank import Reranker

    tiny = Shape("tiny-xlmr", "BAAI/bge-reranker-v2-m3", "xlmr", 32, 2, 2, 64, 250002, 514)
    folder = build_model(tiny, tmp_path / "m")
    assert build_model(tiny, folder) == folder  # cached
    rr = Reranker(str(folder))
    assert rr.engine.model.model.config.vocab_size == 250002
    assert len(rr.score("query words", ["a passage", "another passage"])) == 2
