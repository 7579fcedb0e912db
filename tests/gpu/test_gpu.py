"""GPU behaviour: automatic precision, out-of-memory split and retry, bf16 vs fp32 agreement.

Skipped without CUDA. Run on a GPU machine with ``python -m pytest tests/gpu``.
"""

import pytest
import torch

from rag_rerank import Reranker
from reference import PlainCrossEncoder

QUERY = "what do giant pandas eat"
DOCS = [f"passage {i}: " + "bamboo forest panda bear china " * (1 + i % 30) for i in range(64)]


def test_auto_device_and_dtype(xlmr_dir):
    rr = Reranker(xlmr_dir)
    assert rr.device.type == "cuda"
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert rr.dtype == expected


def test_bf16_close_to_fp32_and_keeps_the_top5(xlmr_dir):
    fp32 = Reranker(xlmr_dir, dtype="fp32")
    bf16 = Reranker(xlmr_dir, dtype="bf16")
    plain = PlainCrossEncoder(xlmr_dir)
    reference = [plain.score(QUERY, d) for d in DOCS[:8]]
    assert fp32.score(QUERY, DOCS[:8]) == pytest.approx(reference, abs=1e-4)
    exact = fp32.score(QUERY, DOCS)
    assert bf16.score(QUERY, DOCS) == pytest.approx(exact, abs=1e-2)
    # bf16 may swap near-ties (a random model has many), never promote a clearly worse passage:
    # everything in its top 5 is within twice the tolerance of fp32's fifth best.
    fifth = sorted(exact, reverse=True)[4]
    top_bf16 = [r.index for r in bf16.rerank(QUERY, DOCS, top_n=5)]
    assert all(exact[i] >= fifth - 2e-2 for i in top_bf16)


def test_out_of_memory_splits_and_retries(xlmr_dir):
    rr = Reranker(xlmr_dir, dtype="fp32", batch_tokens=10_000_000, max_length=512)
    docs = ["panda bamboo " * 300] * 4096  # every pair fills the 512-token window
    expected = Reranker(xlmr_dir, dtype="fp32", batch_tokens=8192).score(QUERY, docs[:4])
    free, _ = torch.cuda.mem_get_info()
    # Leave 512 MiB. One batch of every window (at least 4096 x 512 tokens) cannot fit: each fp32
    # hidden-state tensor alone is 4096 * 512 * 32 * 4 B = 268 MB, and the embedding layer holds
    # several. (Attention scores are no guide: SDPA's kernels need not materialize them.)
    hog = torch.empty(max(0, free - 512 * 2**20), dtype=torch.uint8, device="cuda")
    try:
        scores = rr.score(QUERY, docs)
    finally:
        del hog
        torch.cuda.empty_cache()
    assert rr.engine.stats.oom_splits > 0
    assert rr.batch_tokens < 10_000_000
    assert scores[:4] == pytest.approx(expected, abs=1e-4)
    assert len(scores) == 4096
