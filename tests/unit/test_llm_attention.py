"""An LLM reranker's attention on the CPU runs in the compiled kernel: the decoder entry point
equals torch's SDPA on what transformers passes (grouped-query heads, causal, padding masks, a
shared prefix's keys), LLM rerankers score the same with it as with SDPA, and what it does not
take runs SDPA."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional
from transformers import Gemma2Config, Gemma2ForCausalLM

from rag_rerank import Reranker
from rag_rerank.core import cpu_attention as kernels
from rag_rerank.core.llm.attention import ATTENTION_NAME, cpu_attention_forward, use_cpu_attention

KERNEL = kernels.cpu_attention()


def _needs(dtype: torch.dtype) -> None:
    if KERNEL is None or dtype not in KERNEL.dtypes:
        pytest.skip(f"no kernel for {dtype} here: {kernels.kernel_build().reason}")


def _inputs(
    batch: int, heads: int, kv_heads: int, q_len: int, kv_len: int, head_dim: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query, key, value as transformers passes them: [batch, heads, rows, d] views of
    [batch, rows, heads, d] projections."""
    generator = torch.Generator().manual_seed(seed)

    def view(rows: int, n: int) -> torch.Tensor:
        return (2 * torch.randn(batch, rows, n, head_dim, generator=generator)).transpose(1, 2)

    return view(q_len, heads), view(kv_len, kv_heads), view(kv_len, kv_heads)


def _padding_mask(lengths: list[int], q_len: int, kv_len: int) -> torch.Tensor:
    """transformers' SDPA mask for right-padded rows after a shared prefix of kv_len - q_len
    keys: [batch, 1, q_len, kv_len] bool, causal, padding keys masked."""
    prefix = kv_len - q_len
    keys = torch.arange(kv_len)
    causal = keys[None, :] <= torch.arange(q_len)[:, None] + prefix
    real = torch.stack([keys < prefix + n for n in lengths])
    return (causal[None] & real[:, None, :])[:, None]


def _sdpa(q, k, v, mask, causal):
    """torch's SDPA, heads repeated; with a mask, the mask alone (it is causal where asked)."""
    group = q.shape[1] // k.shape[1]
    k, v = (x.repeat_interleave(group, 1) for x in (k, v))
    causal = causal and mask is None
    out = functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    return out.transpose(1, 2)


CASES = {  # batch, heads, kv heads, q_len, kv_len, mask (None, "padding", "float"), causal
    # (8+ MFLOP each: the kernel starts a second thread for 4 MFLOP per thread)
    "causal, grouped heads": (2, 4, 2, 67, 67, None, True),
    "padding rows": (3, 4, 1, 53, 53, "padding", True),
    "shared prefix": (3, 4, 1, 41, 90, "padding", True),
    "padding mask alone": (3, 2, 2, 41, 90, "padding", False),
    "additive mask": (2, 4, 2, 48, 97, "float", False),
}


def _case(name: str, head_dim: int):
    batch, heads, kv_heads, q_len, kv_len, kind, causal = CASES[name]
    q, k, v = _inputs(batch, heads, kv_heads, q_len, kv_len, head_dim, seed=head_dim + q_len)
    mask = None
    if kind is not None:
        mask = _padding_mask([q_len - 3 * i for i in range(batch)], q_len, kv_len)
        if kind == "float":
            mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    return q, k, v, mask, causal


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("head_dim", [128, 64])
@pytest.mark.parametrize("name", list(CASES))
def test_fp32_equals_sdpa(name: str, head_dim: int, threads: int) -> None:
    _needs(torch.float32)
    q, k, v, mask, causal = _case(name, head_dim)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ours = KERNEL.decoder(q, k, v, mask, causal=causal, scale=head_dim**-0.5)
    finally:
        torch.set_num_threads(before)
    assert ours.shape == (q.shape[0], q.shape[2], q.shape[1], head_dim) and ours.is_contiguous()
    assert torch.allclose(ours, _sdpa(q, k, v, mask, causal), atol=1e-5, rtol=0)


@pytest.mark.parametrize("head_dim", [128, 64])
@pytest.mark.parametrize("name", list(CASES))
def test_bf16_is_as_close_to_fp32_attention_as_sdpa_in_bf16(name: str, head_dim: int) -> None:
    _needs(torch.bfloat16)
    q, k, v, mask, causal = _case(name, head_dim)
    q, k, v = (x.bfloat16() for x in (q, k, v))
    exact = _sdpa(q.float(), k.float(), v.float(), mask, causal)
    ours = KERNEL.decoder(q, k, v, mask, causal=causal, scale=head_dim**-0.5)
    ours_error = (ours.float() - exact).abs()
    bf16_mask = mask if mask is None or mask.dtype == torch.bool else mask.bfloat16()
    torch_error = (_sdpa(q, k, v, bf16_mask, causal).float() - exact).abs()
    assert ours_error.max() <= max(1.25 * torch_error.max().item(), 1e-2)
    assert ours_error.mean() <= 1.25 * torch_error.mean().item() + 1e-4


def test_a_row_with_every_key_masked_is_finite() -> None:
    _needs(torch.float32)
    q, k, v = _inputs(2, 2, 1, 5, 9, 64, seed=1)
    mask = torch.ones(2, 1, 5, 9, dtype=torch.bool)
    mask[1, 0, 2] = False
    out = KERNEL.decoder(q, k, v, mask, causal=False, scale=0.125)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[0], _sdpa(q, k, v, None, False)[0], atol=1e-5)


def test_what_the_kernel_does_not_take_runs_sdpa() -> None:
    _needs(torch.float32)
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 2, True  # type: ignore[assignment]
    q, k, v = _inputs(1, 2, 1, 6, 6, 32, seed=2)
    q.requires_grad_(True)
    out, _ = cpu_attention_forward(module, q, k, v, None, scaling=32**-0.5)
    out.sum().backward()  # SDPA ran: autograd follows it
    assert q.grad is not None
    assert torch.allclose(out, _sdpa(q, k, v, None, True), atol=1e-6)
    per_head = torch.rand(1, 2, 6, 6) > 0.3  # a mask per head: SDPA takes it
    per_head[..., 0] = True
    out, _ = cpu_attention_forward(module, q.detach(), k, v, per_head, scaling=32**-0.5)
    assert torch.allclose(out, _sdpa(q.detach(), k, v, per_head, False), atol=1e-6)
    with pytest.raises(ValueError, match="softcap"):  # transformers' SDPA refuses it too
        cpu_attention_forward(module, q.detach(), k, v, None, softcap=50.0)
    with pytest.raises(ValueError, match="does not take"):
        KERNEL.decoder(q.detach().double(), k, v, None, causal=True, scale=1.0)


@pytest.mark.parametrize("fixture", ["qwen3_dir", "gemma_dir"])
@pytest.mark.parametrize("share_prefix", [True, False])
def test_llm_rerankers_score_the_same_as_with_sdpa(
    fixture: str, share_prefix: bool, request: pytest.FixtureRequest, monkeypatch
) -> None:
    _needs(torch.float32)
    folder = request.getfixturevalue(fixture)
    query = "which bank pays the best interest"
    documents = ["Savings accounts pay interest. " * 9, "cats", "Banks lend money. " * 4] * 2
    scores = {}
    for setting in ("0", "1"):
        monkeypatch.setenv(kernels.CPU_KERNELS_ENV, setting)
        rr = Reranker(folder, device="cpu", dtype="fp32", cache=None, batch_tokens=400)
        model = rr.engine.model
        model.share_prefix = share_prefix
        expected = ATTENTION_NAME if setting == "1" else "sdpa"
        assert model.model.config._attn_implementation == expected
        scores[setting] = rr.score(query, documents)
        # It is the kernel that runs: the forward's profile names it.
        encoded = model.encode([query] * 2, documents[:2], max_length=512, windows=True)
        with torch.profiler.profile() as profile:
            model.forward(model.collate(encoded.input_ids, encoded.extra))
        names = {event.key for event in profile.key_averages()}
        assert ("rag_rerank::cpu_attention" in names) == (setting == "1")
        rr.close()
    assert scores["1"] == pytest.approx(scores["0"], abs=1e-5)


def test_a_model_with_attention_soft_capping_keeps_sdpa() -> None:
    config = Gemma2Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        attn_logit_softcapping=50.0,
    )
    model = Gemma2ForCausalLM(config).eval()
    assert not use_cpu_attention(model)
    assert model.config._attn_implementation != ATTENTION_NAME
