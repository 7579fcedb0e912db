"""CPU precision: ``dtype=None`` (auto) picks bf16 where the CPU multiplies bf16 natively, fp32
elsewhere; an explicit dtype always wins; logits and scores stay fp32.

Native bf16 is simulated with ``RAG_RERANK_CPU_BF16=1``, the documented override of the CPU
check (tests/conftest.py sets it to 0 for the rest of the suite, so parity tests stay fp32).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rag_rerank import InvalidInputError, Reranker, RerankerOptions
from rag_rerank.cli.output import model_line
from rag_rerank.core.device import CPU_BF16_ENV, cpu_bf16, precision_note, resolve_dtype

QUERY = "how do pandas eat bamboo"
DOCS = [
    "The giant panda eats bamboo shoots and leaves for most of the day.",
    "Stock markets closed lower on Friday after a volatile week.",
    "Pandas have a pseudo-thumb that helps them grip bamboo stems.",
    "A short note.",
    "Red pandas are not closely related to giant pandas, though both eat bamboo in the wild "
    "and live in the mountain forests of Asia.",
    "Bamboo grows quickly and is used for building in many countries.",
]
BF16_TOLERANCE = 0.1
"""Largest logit difference allowed between bf16 and fp32 on the tiny random models, whose logits
for these documents span about 2-3 units (measured here: 0.02-0.07; random weights drift more than
a trained model's, see benchmarks/bench_cpu.py for the MiniLM shape)."""

CPU = torch.device("cpu")


def logits(rr: Reranker) -> np.ndarray:
    return np.array([r.raw_score for r in sorted(rr.rerank(QUERY, DOCS), key=lambda r: r.index)])


@pytest.fixture(params=["bert", "bert2", "xlmr"])
def folder(request: pytest.FixtureRequest, tiny_models: dict[str, object]) -> str:
    return str(tiny_models[request.param])


def test_auto_is_bf16_on_a_cpu_with_native_bf16_and_close_to_fp32(
    folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    auto = Reranker(folder, device="cpu", cache=None)
    exact = Reranker(folder, device="cpu", dtype="fp32", cache=None)
    assert auto.dtype == torch.bfloat16
    assert auto.options.dtype == "bfloat16"
    got, want = logits(auto), logits(exact)
    assert got.dtype == np.float64  # raw_score is a Python float: the logit in fp32
    assert np.max(np.abs(got - want)) < BF16_TOLERANCE
    assert np.argmax(got) == np.argmax(want)
    # The classifier runs in fp32: logits are not rounded to bf16's 8-bit mantissa.
    as_bf16 = torch.tensor(got, dtype=torch.float32).bfloat16().float().numpy()
    assert np.any(as_bf16 != got.astype(np.float32))
    scores = [r.score for r in auto.rerank(QUERY, DOCS)]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_auto_is_fp32_and_exact_on_a_cpu_without_native_bf16(
    folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    auto = Reranker(folder, device="cpu", cache=None)
    exact = Reranker(folder, device="cpu", dtype="fp32", cache=None)
    assert auto.dtype == torch.float32
    np.testing.assert_array_equal(logits(auto), logits(exact))


@pytest.mark.parametrize(
    ("native", "asked", "expected"),
    [
        ("1", "fp32", torch.float32),
        ("1", "float16", torch.float16),
        ("1", torch.float32, torch.float32),
        ("0", "bf16", torch.bfloat16),
        ("0", torch.bfloat16, torch.bfloat16),
        ("1", "auto", torch.bfloat16),
        ("0", "auto", torch.float32),
    ],
)
def test_an_explicit_dtype_always_wins(
    native: str, asked: str | torch.dtype, expected: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CPU_BF16_ENV, native)
    assert resolve_dtype(CPU, asked) == expected


def test_explicit_dtype_wins_through_the_reranker(
    bert_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    assert Reranker(bert_dir, device="cpu", dtype="fp32", cache=None).dtype == torch.float32
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    assert Reranker(bert_dir, device="cpu", dtype="bf16", cache=None).dtype == torch.bfloat16


def test_auto_is_fp32_for_int8_even_with_native_bf16(
    bert_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    rr = Reranker(bert_dir, device="cpu", quantize="int8", cache=None)
    assert rr.dtype == torch.float32
    assert len(rr.rerank(QUERY, DOCS)) == len(DOCS)


def test_auto_is_a_spelling_of_none() -> None:
    assert RerankerOptions(dtype="auto").dtype is None
    assert RerankerOptions(dtype="AUTO").dtype is None


def test_a_bad_dtype_names_the_field() -> None:
    with pytest.raises(InvalidInputError) as info:
        RerankerOptions(dtype="int4")
    assert info.value.field == "dtype"
    assert "auto" in str(info.value)


def test_a_bad_override_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CPU_BF16_ENV, "maybe")
    with pytest.raises(InvalidInputError) as info:
        resolve_dtype(CPU, None)
    assert info.value.field == CPU_BF16_ENV
    assert "'maybe'" in str(info.value)


def test_without_the_override_torch_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    native = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    check = cpu_bf16()
    assert check.native == native
    assert resolve_dtype(CPU, None) == (torch.bfloat16 if native else torch.float32)
    assert ("native" if native else "not native") in precision_note(CPU, torch.float32)


def test_the_model_line_says_the_choice(bert_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    rr = Reranker(bert_dir, device="cpu", cache=None)
    assert model_line(rr).endswith(f"on cpu (bfloat16; CPU bf16 native ({CPU_BF16_ENV}=1))")
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    rr = Reranker(bert_dir, device="cpu", cache=None)
    assert model_line(rr).endswith(f"on cpu (float32; CPU bf16 not native ({CPU_BF16_ENV}=0))")


def test_info_says_the_choice(bert_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from rag_rerank.server import create_app

    monkeypatch.setenv(CPU_BF16_ENV, "1")
    rr = Reranker(bert_dir, device="cpu", cache=None)
    with TestClient(create_app(rr)) as client:
        info = client.get("/info").json()
    assert info["model_dtype"] == "bfloat16"
    assert info["precision"] == f"bfloat16; CPU bf16 native ({CPU_BF16_ENV}=1)"
