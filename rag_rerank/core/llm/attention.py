"""An LLM reranker's attention on the CPU through the compiled kernel of :mod:`..cpu_attention`.

transformers' SDPA ran about a third of the bf16 LLM forward on a 2-core AMD EPYC (padded
batches with a mask, no bf16 dot products there). :func:`use_cpu_attention` registers
:func:`cpu_attention_forward` with transformers under :data:`ATTENTION_NAME`, with the mask
SDPA gets (bool, or none where SDPA's causal flag does), and sets it on a model loaded on the
CPU; anything the kernel does not take runs transformers' own SDPA function.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedModel

from ..cpu_attention import attention_kernel, kernel_build

try:  # a transformers without these interfaces (older than 5.24 may lack them) keeps SDPA
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    _INTERFACES = True
except ImportError:  # pragma: no cover - the tested transformers has them
    _INTERFACES = False

__all__ = ["ATTENTION_NAME", "cpu_attention_forward", "use_cpu_attention"]

ATTENTION_NAME = "rag_rerank_cpu"
"""The name the kernel's attention function is registered under in transformers."""


def use_cpu_attention(model: PreTrainedModel) -> bool:
    """Run ``model``'s attention (a decoder on the CPU) through the kernel where
    :func:`~rag_rerank.core.cpu_attention.attention_kernel` gives one for its dtype and head
    size, and it has no attention logit soft-capping (Gemma-2's, which the kernel does not do).
    Returns whether it does; otherwise the model keeps its attention (SDPA)."""
    config = model.config
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    if getattr(config, "attn_logit_softcapping", None) is not None:
        return False
    if not _INTERFACES or not hasattr(model, "set_attn_implementation"):
        return False
    kernel = attention_kernel(model.dtype, heads, head_dim)
    if kernel is None:
        return False
    AttentionInterface.register(ATTENTION_NAME, cpu_attention_forward)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    model.set_attn_implementation(ATTENTION_NAME)
    return True


def cpu_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature (as ``sdpa_attention_forward``): the
    attention output ``[batch, q_len, heads, head_dim]``. The kernel runs it where it can (CPU
    tensors of the kernel's dtypes, no autograd, no dropout, soft-capping, sliding window or
    position bias); transformers' SDPA function runs the rest, the same inputs. For a causal
    module, a mask is taken to be causal too (as the Qwen3 and Gemma decoders' masks are)."""
    kernel = kernel_build().kernel  # built at load by use_cpu_attention (cached)
    if (
        kernel is None
        or dropout > 0
        or any(kwargs.get(name) is not None for name in ("softcap", "sliding_window"))
        or kwargs.get("position_bias") is not None
        or (torch.is_grad_enabled() and any(x.requires_grad for x in (query, key, value)))
        or query.device.type != "cpu"
        or not (query.dtype == key.dtype == value.dtype and key.shape == value.shape)
        or not kernel.runs(query.dtype, query.shape[-1])
        or key.shape[-1] != query.shape[-1]
        or any(x.stride(-1) != 1 for x in (query, key, value))
        or not (
            attention_mask is None
            or (
                attention_mask.dtype in (torch.bool, torch.float32)
                and attention_mask.dim() == 4
                and attention_mask.shape[1] == 1  # one mask for every head
            )
        )
    ):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs
        )
    q_len = query.shape[2]
    causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    if attention_mask is None:
        # SDPA's rule without a mask: causal for more than one query row, aligned top-left
        # (transformers gives no mask only where that equals bottom-right, or where keys past
        # q_len are a static cache's empty tail)
        causal = causal and q_len > 1
        if causal and key.shape[2] > q_len:
            key, value = key[:, :, :q_len], value[:, :, :q_len]
    # With a mask, SDPA reads the mask alone; these decoders' masks are causal (and padding), so
    # the causal limit changes nothing and lets the kernel skip the keys no query row sees.
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    with torch.profiler.record_function("rag_rerank::cpu_attention"):  # named in profiles
        output = kernel.decoder(query, key, value, attention_mask, causal=causal, scale=scale)
    return output, None
