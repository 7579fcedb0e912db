"""Padding-free execution of BERT / RoBERTa / XLM-R cross-encoders (the CPU path).

Every pair's tokens go end to end through the model's own layers as one ``[tokens, hidden]``
matrix: Linear layers, layer norms and activations work per token, so they need no padding; only
attention is per pair. The math is the model's forward, in the same modules, so scores match the
padded forward to float rounding (parity tests).
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import torch
from transformers import PreTrainedModel

__all__ = ["PackedEncoder", "packed_position_offset"]

_PACKED_CLASSES = {
    "BertForSequenceClassification",
    "RobertaForSequenceClassification",
    "XLMRobertaForSequenceClassification",
}


def packed_position_offset(model: PreTrainedModel) -> int | None:
    """First position id of a row if :class:`PackedEncoder` can run ``model`` exactly (BERT,
    RoBERTa, XLM-R encoders with absolute positions), else ``None``."""
    config = model.config
    if type(model).__name__ not in _PACKED_CLASSES:
        return None
    if getattr(config, "position_embedding_type", "absolute") not in (None, "absolute"):
        return None
    if config.is_decoder or getattr(config, "add_cross_attention", False):
        return None
    if getattr(config, "chunk_size_feed_forward", 0):
        return None
    base = model.base_model
    if config.model_type == "bert":
        return 0 if getattr(base, "pooler", None) is not None else None
    return int(config.pad_token_id) + 1


class PackedEncoder:
    """Runs a model that :func:`packed_position_offset` accepts on packed batches.

    Attention runs pair by pair into one context matrix (no concatenation), and the pooler and
    classifier run in fp32, so a bf16 model's logits are not rounded to bf16 (1/128 at 1.0).
    """

    def __init__(self, model: PreTrainedModel) -> None:
        self.model: Any = model
        self.head = _fp32_head(model)

    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[rows, labels]`` fp32 logits of a packed batch: ``input_ids``, ``token_type_ids`` and
        ``position_ids`` of shape ``[1, tokens]``, and each row's token count in ``lengths``."""
        return self.classify(self.hidden_states(inputs), inputs["lengths"].tolist())

    def classify(self, hidden: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """``[rows, labels]`` fp32 logits from the last layer's ``[tokens, hidden]`` states."""
        starts = [0, *itertools.accumulate(lengths)][:-1]
        first = hidden[starts][:, None, :].float()  # each row's [CLS] / <s> token
        return self.head(first)

    def hidden_states(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The last layer's ``[tokens, hidden]`` states of a packed batch (rows end to end)."""
        base = self.model.base_model
        lengths = inputs["lengths"].tolist()
        hidden = base.embeddings(
            input_ids=inputs["input_ids"],
            token_type_ids=inputs["token_type_ids"],
            position_ids=inputs["position_ids"],
        )[0]
        for layer in base.encoder.layer:
            attention = layer.attention
            heads = attention.self.num_attention_heads
            parts = [getattr(attention.self, n)(hidden) for n in ("query", "key", "value")]
            context = torch.empty_like(hidden)
            start = 0
            for length in lengths:
                end = start + length
                q, k, v = (_heads(part[start:end], heads) for part in parts)
                row = torch.nn.functional.scaled_dot_product_attention(q, k, v)[0]
                context[start:end].view(length, heads, -1).copy_(row.transpose(0, 1))
                start = end
            hidden = attention.output(context, hidden)
            hidden = layer.output(layer.intermediate(hidden), hidden)
        return hidden


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[tokens, hidden]`` -> ``[1, heads, tokens, head_dim]`` (4-D: SDPA's fast CPU kernel)."""
    return x.view(x.shape[0], heads, -1).transpose(0, 1)[None]


def _fp32_head(model: Any) -> torch.nn.Module:
    """``[rows, 1, hidden]`` first-token states -> logits, in fp32: BERT's pooler and classifier
    (its dropout between them is off in eval), or RoBERTa's classification head. The model's own
    modules when it is fp32, else fp32 copies (a few hidden x hidden weights)."""
    if model.config.model_type == "bert":
        head = torch.nn.Sequential(model.base_model.pooler, model.classifier)
    else:
        head = torch.nn.Sequential(model.classifier)
    if model.dtype == torch.float32:
        return head
    return copy.deepcopy(head).float().eval()
