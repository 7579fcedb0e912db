"""Opt-in int8 dynamic quantization on CPU: close scores, same API, clear errors elsewhere."""

import numpy as np
import pytest
import torch

from rag_rerank import Reranker
from rag_rerank.core.model import check_quantize
from rag_rerank.errors import InvalidInputError

QUERY = "what does a cross-encoder do in retrieval"
DOCUMENTS = [
    "A cross-encoder reads the query and the passage together.",
    "Pandas eat bamboo.",
    "Retrieval-augmented generation grounds a language model in retrieved passages. " * 6,
    "The Eiffel Tower is in Paris.",
    "Python is a programming language that lets you work quickly.",
    "苹果公司发布了新的手机。 Apple released a phone.",
]


@pytest.fixture(scope="module", params=["bert_dir", "xlmr_dir"])
def folder(request):
    return request.getfixturevalue(request.param)


def _linear_kinds(rr: Reranker) -> set[str]:
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    return {
        "int8" if isinstance(m, dynamic) else "fp32"
        for m in rr.engine.model.model.modules()
        if isinstance(m, (dynamic, torch.nn.Linear))
    }


def test_int8_quantizes_the_encoder_and_keeps_the_head_fp32(folder):
    rr = Reranker(folder, quantize="int8")
    assert rr.quantize == "int8"
    kinds = _linear_kinds(rr)
    assert "int8" in kinds
    assert "fp32" in kinds  # the classification head stays fp32
    assert rr.dtype == torch.float32


def test_int8_scores_stay_close_to_fp32_and_rank_alike(folder):
    fp32 = Reranker(folder)
    int8 = Reranker(folder, quantize="int8")
    exact = np.array([r.raw_score for r in sorted(fp32.rerank(QUERY, DOCUMENTS), key=_index)])
    approx = np.array([r.raw_score for r in sorted(int8.rerank(QUERY, DOCUMENTS), key=_index)])
    assert approx.shape == exact.shape
    assert np.all(np.isfinite(approx))
    # Tiny random test models drift more than real ones (benchmarks/RESULTS.md has real figures).
    spread = exact.max() - exact.min()
    assert np.max(np.abs(approx - exact)) < 0.25 * spread
    assert int(np.argmax(exact)) in np.argsort(-approx)[:3].tolist()


def test_int8_results_do_not_depend_on_batching(folder):
    a = Reranker(folder, quantize="int8", batch_tokens=1).score(QUERY, DOCUMENTS)
    b = Reranker(folder, quantize="int8", batch_tokens=100_000).score(QUERY, DOCUMENTS)
    # Activations are quantized per batch, so batching moves scores a little, never the shape.
    assert len(a) == len(b) == len(DOCUMENTS)
    assert a == pytest.approx(b, abs=0.05)


def test_shared_keeps_int8_and_fp32_apart(bert_dir):
    plain = Reranker.shared(bert_dir)
    quantized = Reranker.shared(bert_dir, quantize="int8")
    assert plain is not quantized
    assert plain.quantize is None and quantized.quantize == "int8"
    assert Reranker.shared(bert_dir, quantize="int8") is quantized


@pytest.mark.parametrize("value", ["int4", "INT8", 8, True])
def test_unknown_quantize_value_names_the_option(bert_dir, value):
    with pytest.raises(InvalidInputError, match="quantize") as info:
        Reranker(bert_dir, quantize=value)
    assert info.value.field == "quantize"


def test_int8_refuses_half_precision(bert_dir):
    with pytest.raises(InvalidInputError, match="fp32") as info:
        Reranker(bert_dir, dtype="bf16", quantize="int8")
    assert info.value.field == "quantize"


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_int8_on_a_gpu_says_to_use_half_precision_instead(device):
    with pytest.raises(InvalidInputError, match="bf16") as info:
        check_quantize("int8", torch.device(device), torch.bfloat16)
    assert info.value.field == "quantize"


def _index(result):
    return result.index
