"""Padding-free execution of BERT / RoBERTa / XLM-R cross-encoders (the CPU path).

Every pair's tokens go end to end through the model's layers as one ``[tokens, hidden]`` matrix:
Linear layers, layer norms and activations work per token, so they need no padding; only attention
is per pair. The weights are the model's own and the math is its forward, so scores match the
padded forward to float rounding (parity tests).

Where the CPU allows it (oneDNN, fp32 or bf16 Linear layers with biases), the Linear layers run as
oneDNN products on the modules' own weights, with the bias and, where the model has one, the
residual add or the (erf) GELU in the same call. Attention runs every pair and head of a batch in
one call of :mod:`~rag_rerank.core.cpu_attention`'s compiled kernel where it builds (AVX-512),
else pair by pair in SDPA on views of the query, key and value products. The last layer computes
only each row's first token (the classifier reads nothing else). Measured choices, on a 2-core AMD
EPYC (AVX-512 BF16, no AMX; docs/results/cpu-speed.md): oneDNN ran the forward 1.7x (fp32) and
1.1x (bf16) faster than ``nn.Linear``, whose fp32 product runs at under half this CPU's rate; the
attention kernel then 1.2x (fp32) and 1.4x (bf16), and the first-token last layer 1.1-1.2x;
weights pre-packed for oneDNN at load bought under 3% and would double their memory, so they are
not; one batched SDPA call over equal-length pairs took the same time as one call per pair; a
bf16 attention as three torch kernels (scores, softmax, weighted sum) was 1.7x faster than SDPA
but rounds the scores to bf16 and drifted further from fp32, so it is not used (the kernel keeps
them in fp32). ``torch.compile`` (inductor's CPU backend, torch 2.13) did not pay either:
attention as one compiled ``flex_attention`` per layer over the packed tokens with a document mask
ran 0.84x (fp32) and 0.77x (bf16) of per-pair SDPA; the layer's part after attention compiled
(``freezing``, with or without ``max_autotune``) picked the same oneDNN products in bf16 (0.96x)
and torch's slower fp32 product in fp32 (0.62x), after 5-60 s of compilation per packed size.

:func:`onednn_linears` gives the LLM rerankers' decoders the same oneDNN products on bucketed rows.
"""

from __future__ import annotations

import copy
import functools
import itertools
from typing import Any

import torch
from torch.nn import functional
from transformers import PreTrainedModel

from .cpu_attention import CpuAttention, attention_kernel

__all__ = ["TOKEN_BUCKET", "PackedEncoder", "onednn_linears", "packed_position_offset"]

_PACKED_CLASSES = {
    "BertForSequenceClassification",
    "RobertaForSequenceClassification",
    "XLMRobertaForSequenceClassification",
}

_ONEDNN_DTYPES = (torch.float32, torch.bfloat16)

TOKEN_BUCKET = 64
"""A packed batch's token count is padded up to a multiple of this (rows of zeros that attention
skips and the head never reads). The CPU's oneDNN products keep code built for every row count
they see, never freed: with one shape per batch, resident memory grew by ~550 MB (fp32 and bf16
alike) over the first few hundred requests (docs/how-to/engine-limits.md). Buckets bound the
shapes to ``batch_tokens / 64`` (32 at the CPU default of 2,048), for under 64 rows of extra work
per batch."""


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

    The pooler and classifier run in fp32, so a bf16 model's logits are not rounded to bf16
    (1/128 at 1.0). Holds no copy of the encoder's weights.
    """

    def __init__(self, model: PreTrainedModel, onednn: bool = True, kernel: bool = True) -> None:
        """``onednn=False`` calls the modules' own Linear layers (what int8-quantized models and
        dtypes other than fp32 / bf16 get anyway); ``kernel=False`` runs attention in torch's SDPA
        pair by pair instead of :mod:`~rag_rerank.core.cpu_attention`'s kernel (as it does anyway
        where :func:`~rag_rerank.core.cpu_attention.attention_kernel` gives none): the steps
        before, for benchmarks."""
        self.model: Any = model
        self.head = _fp32_head(model)
        gelu = model.config.hidden_act == "gelu"  # erf GELU: what oneDNN fuses
        base: Any = model.base_model
        config = model.config
        heads = config.num_attention_heads
        attention = (
            attention_kernel(model.dtype, heads, config.hidden_size // heads) if kernel else None
        )
        self.layers = [
            _PackedLayer(layer, gelu, onednn, attention, model.dtype)
            for layer in base.encoder.layer
        ]
        self.attention_kernel = any(layer.kernel is not None for layer in self.layers)
        """Whether attention runs in the compiled kernel (else torch's SDPA)."""
        self.bucket = TOKEN_BUCKET

    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[rows, labels]`` fp32 logits of a packed batch: ``input_ids``, ``token_type_ids`` and
        ``position_ids`` of shape ``[1, tokens]``, and each row's token count in ``lengths``.

        The classifier reads only each row's first token, so the last layer computes only those:
        keys and values for every token, the rest (query, attention, output, feed-forward, norms)
        for one token per row (:meth:`_PackedLayer.first_tokens`); the same values as
        :meth:`classify` of :meth:`hidden_states`, for about five sixths of a layer's work less."""
        lengths = inputs["lengths"].tolist()
        hidden = self._embed(inputs)
        for layer in self.layers[:-1]:
            hidden = layer(hidden, lengths)
        first = self.layers[-1].first_tokens(hidden, lengths, self.bucket)
        return self.head(first[: len(lengths), None, :].float())

    def classify(self, hidden: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """``[rows, labels]`` fp32 logits from the last layer's ``[tokens, hidden]`` states."""
        starts = [0, *itertools.accumulate(lengths)][:-1]
        first = hidden[starts][:, None, :].float()  # each row's [CLS] / <s> token
        return self.head(first)

    def hidden_states(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The last layer's ``[tokens, hidden]`` states of a packed batch (rows end to end)."""
        lengths = inputs["lengths"].tolist()
        hidden = self._embed(inputs)
        for layer in self.layers:
            hidden = layer(hidden, lengths)
        return hidden[: inputs["input_ids"].shape[1]]

    def _embed(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The embeddings' ``[tokens, hidden]`` output, with zero rows up to a multiple of
        :data:`TOKEN_BUCKET`."""
        hidden = self.model.base_model.embeddings(
            input_ids=inputs["input_ids"],
            token_type_ids=inputs["token_type_ids"],
            position_ids=inputs["position_ids"],
        )[0]
        return _pad_rows(hidden, self.bucket)


class _PackedLayer:
    """One encoder layer on ``[tokens, hidden]``, with the layer's own weights and norms."""

    def __init__(
        self,
        layer: Any,
        gelu: bool,
        onednn: bool,
        kernel: CpuAttention | None,
        dtype: torch.dtype,
    ) -> None:
        attention = layer.attention.self
        self.heads: int = attention.num_attention_heads
        self.head_dim: int = attention.attention_head_size
        runs = kernel is not None and kernel.runs(dtype, self.head_dim)
        self.kernel = kernel if runs else None
        self.norm1 = layer.attention.output.LayerNorm
        self.norm2 = layer.output.LayerNorm
        self.activation = layer.intermediate.intermediate_act_fn
        linears = [
            attention.query,
            attention.key,
            attention.value,
            layer.attention.output.dense,
            layer.intermediate.dense,
            layer.output.dense,
        ]
        onednn = onednn and all(map(_onednn_can_run, linears))
        self.fused_gelu = onednn and gelu
        self.query, self.key, self.value, self.out, self.up, self.down = (
            _Linear(m, onednn) for m in linears
        )

    def __call__(self, hidden: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        return self._feed_forward(self._attention(hidden, lengths), hidden)

    def first_tokens(self, hidden: torch.Tensor, lengths: list[int], bucket: int) -> torch.Tensor:
        """This layer's output for each row's first token only (``[rows, hidden]``, then zero rows
        up to a multiple of ``bucket``, which bounds the products' shapes as TOKEN_BUCKET does):
        each first token attends to its whole row, as in :meth:`__call__`."""
        starts = [0, *itertools.accumulate(lengths)][:-1]
        first = _pad_rows(hidden[starts], bucket)
        shape = (1, -1, self.heads, self.head_dim)  # [1, tokens, heads, head_dim]
        query = self.query(first).view(shape).transpose(1, 2)
        key, value = (f(hidden).view(shape).transpose(1, 2) for f in (self.key, self.value))
        context = torch.zeros_like(first)
        for row, (start, length) in enumerate(zip(starts, lengths, strict=True)):
            end = start + length
            pair = functional.scaled_dot_product_attention(
                query[:, :, row : row + 1], key[:, :, start:end], value[:, :, start:end]
            )
            context[row] = pair.reshape(-1)
        return self._feed_forward(context, first)

    def _feed_forward(self, context: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """The layer after attention: output product, residual and norm, feed-forward, residual
        and norm."""
        hidden = self.norm1(self.out(context, residual=hidden))
        inner = self.up(hidden, gelu=self.fused_gelu)
        if not self.fused_gelu:
            inner = self.activation(inner)
        return self.norm2(self.down(inner, residual=hidden))

    def _attention(self, hidden: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """``[tokens, hidden]`` attention context, pair by pair (each pair sees only itself);
        zeros for the padding rows after the last pair."""
        if (
            self.kernel is not None
            and hidden.dtype in self.kernel.dtypes
            and not (torch.is_grad_enabled() and hidden.requires_grad)  # it has no backward
        ):
            query, key, value = (f(hidden) for f in (self.query, self.key, self.value))
            return self.kernel(query, key, value, lengths, self.heads)
        tokens = hidden.shape[0]
        q, k, v = (  # [heads, tokens, head_dim] views
            f(hidden).view(tokens, self.heads, self.head_dim).transpose(0, 1)
            for f in (self.query, self.key, self.value)
        )
        context = hidden.new_empty(tokens, self.heads, self.head_dim)
        start = 0
        for length in lengths:
            end = start + length
            row = functional.scaled_dot_product_attention(
                q[None, :, start:end], k[None, :, start:end], v[None, :, start:end]
            )[0]
            context[start:end].copy_(row.transpose(0, 1))
            start = end
        context[start:].zero_()
        return context.view(tokens, -1)


class _Linear:
    """One Linear layer: a oneDNN product on the module's own weights (no copy), with the bias and a
    residual add or GELU in the same call, or the module itself."""

    def __init__(self, module: Any, onednn: bool) -> None:
        self.module = module
        self.onednn = onednn
        if onednn:
            self.weight = module.weight.detach()
            self.bias = module.bias.detach()

    def __call__(
        self, x: torch.Tensor, residual: torch.Tensor | None = None, gelu: bool = False
    ) -> torch.Tensor:
        """``x @ weight.T + bias``, plus ``residual`` when given; ``gelu`` (oneDNN only): then the
        erf GELU, in the same call."""
        if not self.onednn:
            y = self.module(x)
            return y if residual is None else y + residual
        if residual is not None:
            binary = torch.ops.mkldnn._linear_pointwise.binary
            return binary(x, residual, self.weight, self.bias, "add")
        # Unary post-ops: "none", or "gelu" whose algorithm "none" is erf (not tanh).
        fused, algorithm = ("gelu", "none") if gelu else ("none", "")
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, fused, [], algorithm)


def onednn_linears(model: torch.nn.Module) -> int:
    """Run ``model``'s fp32 and bf16 CPU ``nn.Linear`` layers as oneDNN products on row counts
    padded to a multiple of :data:`TOKEN_BUCKET` (the LLM rerankers' decoders); returns how many.
    In place, on the modules' own weights (no copy).

    fp32: on CPUs where torch's fp32 product takes a slow path (a 2-core AMD EPYC: 90 against
    210 GFLOP/s), this ran a Qwen3-0.6B-shaped decoder's forward 1.7x faster, for about 250 MB
    more resident memory. bf16: torch's own product already runs in oneDNN, but on each batch's
    exact row count, and oneDNN keeps code for every shape it sees: resident memory grew by 1.1
    GB over 120 requests of different sizes and kept growing, against 265 MB, level, on padded
    rows, for 3-8% more time (docs/results/cpu-speed.md). A call the product cannot take
    (autograd, a weight moved off the CPU or cast to another dtype) runs the layer's own
    ``nn.Linear.forward``; a layer whose forward is already replaced (accelerate's hooks) is left
    alone.
    """
    count = 0
    for module in model.modules():
        if (
            type(module) is torch.nn.Linear
            and "forward" not in vars(module)  # already wrapped (here, or by accelerate's hooks)
            and module.weight.device.type == "cpu"
            and module.weight.dtype in _ONEDNN_DTYPES
            and _onednn_runs(module.weight.dtype)
        ):
            module.forward = functools.partial(_onednn_forward, module)  # type: ignore[method-assign]
            count += 1
    return count


def _onednn_forward(module: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` as one oneDNN product over ``x``'s rows padded to :data:`TOKEN_BUCKET`."""
    weight, bias = module.weight, module.bias
    if (
        x.dtype != weight.dtype
        or weight.dtype not in _ONEDNN_DTYPES
        or x.device.type != "cpu"
        or weight.device.type != "cpu"
        or x.numel() == 0
        or (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
    ):
        return torch.nn.Linear.forward(module, x)
    flat = x.reshape(-1, x.shape[-1])
    rows = flat.shape[0]
    padding = -rows % TOKEN_BUCKET
    if padding:
        flat = torch.cat([flat, flat.new_zeros(padding, flat.shape[1])])
    y = torch.ops.mkldnn._linear_pointwise(flat, weight, bias, "none", [], "")
    return y[:rows].view(*x.shape[:-1], weight.shape[0])


def _onednn_can_run(module: Any) -> bool:
    """A plain fp32 / bf16 ``nn.Linear`` with a bias (not an int8-quantized one), on a torch
    whose oneDNN runs that dtype's fused products."""
    return (
        type(module) is torch.nn.Linear
        and module.bias is not None
        and module.weight.device.type == "cpu"
        and module.weight.dtype in _ONEDNN_DTYPES
        and _onednn_runs(module.weight.dtype)
    )


@functools.cache
def _onednn_runs(dtype: torch.dtype) -> bool:
    """Whether this torch build and CPU run oneDNN's fused Linear products in ``dtype`` (tried
    once on a 1 x 1 product: builds without oneDNN, or CPUs it does not support, fall back)."""
    if not torch.backends.mkldnn.is_available():
        return False
    one = torch.ones(1, 1, dtype=dtype)
    try:
        with torch.inference_mode():
            torch.ops.mkldnn._linear_pointwise(one, one, one[0], "gelu", [], "none")
            torch.ops.mkldnn._linear_pointwise.binary(one, one, one, one[0], "add")
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    return True


def _pad_rows(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` with zero rows appended up to a multiple of ``multiple`` rows (see TOKEN_BUCKET)."""
    padding = -x.shape[0] % multiple
    return torch.cat([x, x.new_zeros(padding, x.shape[1])]) if padding else x


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
