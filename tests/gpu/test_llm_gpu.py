"""LLM rerankers on a GPU: bf16 by default, close to fp32, the shared prefix equal to the plain
path, and a model too big for the free memory refused at load time with the size it needs.

Skipped without CUDA. Run on a GPU machine with ``python -m pytest tests/gpu``.
"""

import pytest
import torch

from rag_rerank import ModelLoadError, Reranker
from rag_rerank.core.llm.model import check_fits

QUERY = "what do giant pandas eat"
DOCS = [f"passage {i}: " + "bamboo forest panda bear china " * (1 + i % 30) for i in range(64)]


@pytest.mark.parametrize("fixture", ["qwen3_dir", "gemma_dir"])
def test_bf16_by_default_close_to_fp32_and_prefix_reuse_exact(request, fixture):
    folder = request.getfixturevalue(fixture)
    bf16 = Reranker(folder, cache=None)
    assert bf16.device.type == "cuda" and bf16.dtype in (torch.bfloat16, torch.float16)
    fp32 = Reranker(folder, dtype="fp32", cache=None)
    plain = Reranker(folder, dtype="fp32", cache=None)
    plain.engine.model.share_prefix = False
    exact = plain.score(QUERY, DOCS)
    assert fp32.score(QUERY, DOCS) == pytest.approx(exact, abs=1e-4)
    assert bf16.score(QUERY, DOCS) == pytest.approx(exact, abs=3e-2)


def test_a_model_bigger_than_the_free_memory_says_the_size_needed():
    free, _ = torch.cuda.mem_get_info()
    with pytest.raises(ModelLoadError, match="GiB"):
        check_fits("Qwen/Qwen3-Reranker-8B", 2 * free, torch.device("cuda"))
