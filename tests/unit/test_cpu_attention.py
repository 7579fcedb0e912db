"""The CPU attention kernel computes each pair's own attention, as torch's SDPA does, is what the
padding-free forward runs where it builds, and falls back to SDPA, saying why, where it cannot."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch.nn import functional

from rag_rerank import Reranker, testing
from rag_rerank.core import cpu_attention as kernels
from rag_rerank.core.packed import PackedEncoder
from rag_rerank.errors import InvalidInputError

KERNEL = kernels.cpu_attention()


def _needs(dtype: torch.dtype) -> None:
    if KERNEL is None or dtype not in KERNEL.dtypes:
        pytest.skip(f"no kernel for {dtype} here: {kernels.kernel_build().reason}")


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths: list[int], heads: int):
    """Each pair's attention by torch's SDPA, on the same [tokens, hidden] layout."""
    tokens, hidden = q.shape
    views = [x.view(tokens, heads, hidden // heads).transpose(0, 1)[None] for x in (q, k, v)]
    context = torch.zeros_like(q).view(tokens, heads, -1)
    start = 0
    for length in lengths:
        end = start + length
        pair = functional.scaled_dot_product_attention(*(x[:, :, start:end] for x in views))
        context[start:end] = pair[0].transpose(0, 1)
        start = end
    return context.view(tokens, hidden)


SHAPES = [(2, 16), (12, 32), (3, 48), (16, 64)]  # (heads, head size)
LENGTHS = [[1], [15, 16, 17], [3, 200, 511, 64], [31, 2, 33]]


@pytest.mark.parametrize(("heads", "head_dim"), SHAPES)
@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("threads", [1, 2])
def test_fp32_equals_sdpa_pair_by_pair(
    heads: int, head_dim: int, lengths: list[int], threads: int
) -> None:
    _needs(torch.float32)
    generator = torch.Generator().manual_seed(len(lengths) * head_dim)
    tokens = sum(lengths) + 7  # padding rows after the last pair come back as zeros
    q, k, v = (3 * torch.randn(tokens, heads * head_dim, generator=generator) for _ in range(3))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        context = KERNEL(q, k, v, lengths, heads)
    finally:
        torch.set_num_threads(before)
    expected = _sdpa(q, k, v, lengths, heads)
    assert torch.allclose(context, expected, atol=1e-5, rtol=1e-5)
    assert not context[sum(lengths) :].any()


@pytest.mark.parametrize(("heads", "head_dim"), SHAPES)
@pytest.mark.parametrize("lengths", LENGTHS)
def test_bf16_is_as_close_to_fp32_attention_as_sdpa_in_bf16(
    heads: int, head_dim: int, lengths: list[int]
) -> None:
    _needs(torch.bfloat16)
    generator = torch.Generator().manual_seed(head_dim + sum(lengths))
    tokens = sum(lengths)
    q, k, v = (
        (3 * torch.randn(tokens, heads * head_dim, generator=generator)).bfloat16()
        for _ in range(3)
    )
    exact = _sdpa(q.float(), k.float(), v.float(), lengths, heads)
    ours = (KERNEL(q, k, v, lengths, heads).float() - exact).abs()
    torch_s = (_sdpa(q, k, v, lengths, heads).float() - exact).abs()
    # Both round the same inputs and their output to bf16 (1/128 at 1.0); no more than that.
    assert ours.max() <= max(1.25 * torch_s.max().item(), 1e-2)
    assert ours.mean() <= 1.25 * torch_s.mean().item() + 1e-4


def test_inputs_it_does_not_take_are_refused() -> None:
    _needs(torch.float32)
    q = torch.randn(10, 32)
    with pytest.raises(ValueError, match="does not take"):
        KERNEL(q, q, torch.randn(10, 16), [10], 2)  # value of another shape
    with pytest.raises(ValueError, match="does not take"):
        KERNEL(q, q, q, [6, 6], 2)  # more tokens than rows
    with pytest.raises(ValueError, match="does not take"):
        KERNEL(q, q, q, [10], 4)  # head size 8: not a multiple of 16
    with pytest.raises(ValueError, match="does not take"):
        KERNEL(q.t().contiguous().t(), q, q, [10], 2)  # not row-major
    assert not KERNEL.runs(torch.float16, 32)


@pytest.mark.parametrize("family", ["bert_dir", "xlmr_dir"])
@pytest.mark.parametrize(("dtype", "tolerance"), [("fp32", 1e-5), ("bf16", 0.05)])
def test_the_padding_free_forward_runs_it_and_scores_as_with_sdpa(
    family: str,
    dtype: str,
    tolerance: float,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(kernels.CPU_KERNELS_ENV, "1")  # no timing against SDPA, even on AMX
    rr = Reranker(request.getfixturevalue(family), device="cpu", dtype=dtype, cache=None)
    _needs(rr.engine.model.model.dtype)
    documents = ["Pandas eat bamboo.", "x", "A cross-encoder reads both texts together. " * 20]
    encoder = rr.engine.model.packed_encoder
    assert encoder.attention_kernel
    with_kernel = rr.score("what do pandas eat", documents)
    rr.engine.model.packed_encoder = PackedEncoder(rr.engine.model.model, kernel=False)
    assert not rr.engine.model.packed_encoder.attention_kernel
    with_sdpa = rr.score("what do pandas eat", documents)
    rr.close()
    assert with_kernel == pytest.approx(with_sdpa, abs=tolerance)


@pytest.fixture
def fresh_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Each test's own kernel build, in its own cache folder; the process's is restored after."""
    monkeypatch.setenv("RAG_RERANK_CACHE", str(tmp_path))
    kernels.kernel_build.cache_clear()
    yield tmp_path
    kernels.kernel_build.cache_clear()


def test_built_once_into_the_cache_folder_then_loaded(
    fresh_build: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if KERNEL is None:
        pytest.skip(f"no kernel here: {kernels.kernel_build().reason}")
    with caplog.at_level(logging.INFO, logger=kernels.__name__):
        first = kernels.kernel_build()
    assert first.kernel is not None and first.reason.startswith("built in ")
    assert first.kernel.path.parent == fresh_build / "kernels"
    assert "CPU attention kernel built in" in caplog.text
    kernels.kernel_build.cache_clear()
    again = kernels.kernel_build()
    assert again.reason == f"loaded {first.kernel.path}"


def test_without_a_compiler_attention_stays_in_sdpa(
    fresh_build: Path, monkeypatch: pytest.MonkeyPatch, bert_dir: str
) -> None:
    monkeypatch.setenv("CC", str(fresh_build / "no-such-compiler"))
    build = kernels.kernel_build()
    assert build.kernel is None
    assert "no-such-compiler" in build.reason
    rr = Reranker(bert_dir, device="cpu", dtype="fp32", cache=None)
    assert not rr.engine.model.packed_encoder.attention_kernel
    assert rr.score("q", ["a passage"])[0] == pytest.approx(
        Reranker(bert_dir, device="cpu", dtype="fp32", cache=None).score("q", ["a passage"])[0]
    )


def test_a_source_that_does_not_compile_says_what_the_compiler_said(
    fresh_build: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = fresh_build / "broken.c"
    broken.write_text("this is not C\n")
    monkeypatch.setattr(kernels, "_SOURCE", broken)
    build = kernels.kernel_build()
    if build.reason.startswith("no "):  # no compiler or not x86-64 Linux: nothing compiled
        pytest.skip(build.reason)
    assert build.kernel is None
    assert "failed" in build.reason and "error" in build.reason


def test_the_environment_variable_turns_it_off(
    monkeypatch: pytest.MonkeyPatch, bert_dir: str
) -> None:
    monkeypatch.setenv(kernels.CPU_KERNELS_ENV, "0")
    assert kernels.cpu_attention() is None
    rr = Reranker(bert_dir, device="cpu", dtype="fp32", cache=None)
    assert not rr.engine.model.packed_encoder.attention_kernel
    monkeypatch.setenv(kernels.CPU_KERNELS_ENV, "sometimes")
    with pytest.raises(InvalidInputError, match=kernels.CPU_KERNELS_ENV):
        kernels.cpu_attention()


def test_a_head_size_it_does_not_take_keeps_sdpa(tmp_path: Path) -> None:
    tokenizer = testing.bert_tokenizer()
    config = {**testing.TINY, "num_attention_heads": 4}  # 32 hidden / 4 heads: head size 8
    model = testing.random_cross_encoder(
        "bert", tokenizer, vocab_size=tokenizer.vocab_size, max_position_embeddings=512, **config
    )
    assert not PackedEncoder(model).attention_kernel


def test_on_amx_it_is_timed_against_sdpa_and_the_choice_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _needs(torch.float32)
    monkeypatch.setattr(kernels, "has_amx", lambda: True)
    kernels._kernel_is_faster.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger=kernels.__name__):
            chosen = kernels.attention_kernel(torch.float32, 12, 32)
        lines = [r.getMessage() for r in caplog.records if "heads of 32" in r.getMessage()]
        assert len(lines) == 1, lines
        timed = re.search(r"\(kernel ([0-9.]+) ms, SDPA ([0-9.]+) ms", lines[0])
        assert timed, lines[0]
        kernel_ms, sdpa_ms = map(float, timed.groups())
        assert (chosen is not None) == (sdpa_ms >= 0.9 * kernel_ms)
        assert lines[0].split(": ")[1].startswith("the kernel" if chosen else "SDPA")
        caplog.clear()
        monkeypatch.setenv(kernels.CPU_KERNELS_ENV, "1")  # asked for: no timing, the kernel
        assert kernels.attention_kernel(torch.float32, 12, 48) is not None
        assert not caplog.records
    finally:
        kernels._kernel_is_faster.cache_clear()


def test_without_amx_the_kernel_is_used_untimed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _needs(torch.float32)
    monkeypatch.setattr(kernels, "has_amx", lambda: False)
    with caplog.at_level(logging.INFO, logger=kernels.__name__):
        assert kernels.attention_kernel(torch.float32, 12, 32) is not None
    assert not caplog.records
    assert kernels.attention_kernel(torch.float16, 12, 32) is None  # a dtype it does not run
    assert kernels.attention_kernel(torch.float32, 4, 8) is None  # a head size it does not take
