"""The padding-free CPU forward's oneDNN path (fused bias, GELU and residual adds) computes what
the model's own modules compute, and runs only a bounded set of shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.profiler import profile

from rag_rerank import Reranker, testing
from rag_rerank.core.packed import TOKEN_BUCKET, PackedEncoder
from reference import PlainCrossEncoder

QUERY = "what does a cross-encoder do in retrieval"
DOCUMENTS = [
    "A cross-encoder reads the query and the passage together.",
    "Pandas eat bamboo.",
    "Retrieval-augmented generation grounds a language model in retrieved passages. " * 6,
    "x",
]


def _packed_logits(rr: Reranker, encoder: PackedEncoder) -> torch.Tensor:
    model = rr.engine.model
    rows = model.tokenizer([QUERY] * len(DOCUMENTS), DOCUMENTS)
    types = rows.get("token_type_ids")
    with torch.inference_mode():
        return encoder(model.collate(rows["input_ids"], types))[:, 0]


@pytest.mark.parametrize("family", ["bert_dir", "xlmr_dir"])
@pytest.mark.parametrize(("dtype", "tolerance"), [("fp32", 1e-5), ("bf16", 0.1)])
def test_onednn_path_equals_the_modules_path(
    family: str, dtype: str, tolerance: float, request: pytest.FixtureRequest
) -> None:
    rr = Reranker(request.getfixturevalue(family), device="cpu", dtype=dtype, cache=None)
    model = rr.engine.model.model
    fused = _packed_logits(rr, PackedEncoder(model))
    modules = _packed_logits(rr, PackedEncoder(model, onednn=False))
    assert fused.dtype == torch.float32
    assert torch.allclose(fused, modules, atol=tolerance, rtol=0)


@pytest.mark.parametrize("family", ["bert_dir", "xlmr_dir"])
@pytest.mark.parametrize(("dtype", "tolerance"), [("fp32", 1e-5), ("bf16", 0.05)])
@pytest.mark.parametrize("onednn", [True, False])
def test_last_layer_on_first_tokens_equals_the_whole_last_layer(
    family: str, dtype: str, tolerance: float, onednn: bool, request: pytest.FixtureRequest
) -> None:
    # The classifier reads each row's first token, so the forward's last layer computes only those.
    rr = Reranker(request.getfixturevalue(family), device="cpu", dtype=dtype, cache=None)
    encoder = PackedEncoder(rr.engine.model.model, onednn=onednn)
    model = rr.engine.model
    rows = model.tokenizer([QUERY] * len(DOCUMENTS), DOCUMENTS)
    batch = model.collate(rows["input_ids"], rows.get("token_type_ids"))
    with torch.inference_mode():
        first_tokens = encoder(batch)
        whole = encoder.classify(encoder.hidden_states(batch), batch["lengths"].tolist())
    assert first_tokens.shape == whole.shape == (len(DOCUMENTS), 1)
    assert torch.allclose(first_tokens, whole, atol=tolerance, rtol=0)
    rr.close()


def test_a_tanh_gelu_model_keeps_its_own_activation(tmp_path: Path) -> None:
    # oneDNN fuses the erf GELU only; "gelu_new" (tanh) differs by up to ~1e-3 per activation.
    tokenizer = testing.bert_tokenizer()
    model = testing.random_cross_encoder(
        "bert",
        tokenizer,
        vocab_size=tokenizer.vocab_size,
        max_position_embeddings=512,
        hidden_act="gelu_new",
        **testing.TINY,
    )
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    plain = PlainCrossEncoder(str(tmp_path))
    expected = [plain.score(QUERY, d) for d in DOCUMENTS]
    assert Reranker(str(tmp_path), cache=None).score(QUERY, DOCUMENTS) == pytest.approx(
        expected, abs=1e-5
    )


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_products_see_only_bucketed_row_counts(dtype: str, bert_dir: str) -> None:
    # Issue 25 item 8: oneDNN products keep code per row count, so one shape per batch (the real
    # token count) grew resident memory by hundreds of MB; padded batches use few shapes.
    rr = Reranker(bert_dir, device="cpu", dtype=dtype, cache=None)
    model = rr.engine.model
    rows_seen: set[int] = set()
    for words in (1, 3, 17, 40):
        documents = [" ".join(["river"] * words)] * 3
        rows = model.tokenizer([QUERY] * len(documents), documents)
        batch = model.collate(rows["input_ids"], rows.get("token_type_ids"))
        with profile(record_shapes=True) as prof, torch.inference_mode():
            logits = model.forward(batch)
        assert logits.shape == (len(documents),)
        assert torch.isfinite(logits).all()
        products = [e for e in prof.events() if e.name == "mkldnn::_linear_pointwise"]
        assert products
        rows_seen.update(e.input_shapes[0][0] for e in products)
    assert all(rows % TOKEN_BUCKET == 0 for rows in rows_seen), rows_seen
    assert len(rows_seen) <= 3


@pytest.mark.parametrize(("dtype", "tolerance"), [("fp32", 1e-5), ("bf16", 1e-2)])
def test_llm_decoder_runs_onednn_products_equal_to_its_own_layers(
    dtype: str, tolerance: float, qwen3_dir: str
) -> None:
    # Issue 29: an LLM reranker on the CPU runs its decoder's Linear layers as oneDNN products
    # (torch's fp32 product is 2x slower on some CPUs) on bucketed row counts only (oneDNN keeps
    # code per shape: torch's bf16 product on exact row counts grows resident memory).
    rr = Reranker(qwen3_dir, device="cpu", dtype=dtype, cache=None)
    model = rr.engine.model
    batches = []
    for words in (1, 3, 17, 40):
        documents = [" ".join(["river"] * words), "Pandas eat bamboo."]
        encoded = model.encode([QUERY] * 2, documents, max_length=512, windows=True)
        batches.append(model.collate(encoded.input_ids, encoded.extra))
    with profile(record_shapes=True) as prof:
        fused = [model.forward(batch) for batch in batches]
    products = [e for e in prof.events() if e.name == "mkldnn::_linear_pointwise"]
    assert products
    rows_seen = {e.input_shapes[0][0] for e in products}
    assert all(rows % TOKEN_BUCKET == 0 for rows in rows_seen), rows_seen
    for module in model.model.modules():  # back to each layer's own nn.Linear.forward
        module.__dict__.pop("forward", None)
    own = [model.forward(batch) for batch in batches]
    for a, b in zip(fused, own, strict=True):
        assert torch.allclose(a, b, atol=tolerance, rtol=0)
    rr.close()
