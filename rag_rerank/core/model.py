"""Load a Hugging Face cross-encoder and run its forward pass.

The model is any ``AutoModelForSequenceClassification`` with one or two labels. This module knows
nothing about batching or queues: it turns (query, document) pairs into token rows and rows into
fp32 relevance logits, through the interface the engine drives (:mod:`.loading`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel

from ..errors import InvalidInputError, ModelLoadError
from .loading import (
    EncodedPairs,
    first_line,
    load_tokenizer,
    quiet_hub,
    truncate_queries,
)
from .packed import PackedEncoder, packed_position_offset
from .windows import query_token_limit, window_overlap

__all__ = [
    "DEFAULT_WINDOW",
    "CrossEncoderModel",
    "check_quantize",
    "quantize_int8",
]

DEFAULT_WINDOW = 512
"""Tokens per window of a cross-encoder when ``max_length`` is not given."""

logger = logging.getLogger(__name__)

# Models whose position ids start at padding_idx + 1, so the window is that much shorter.
_OFFSET_POSITION_MODELS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "xmod"}


class CrossEncoderModel:
    """A loaded sequence-classification cross-encoder and its fast tokenizer.

    Use :meth:`load`; the constructor takes already-built objects.
    """

    def __init__(
        self,
        name: str,
        model: PreTrainedModel,
        tokenizer: Any,
        device: torch.device,
        quantize: str | None = None,
    ) -> None:
        self.name = name
        self.quantize = quantize
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.dtype: torch.dtype = model.dtype
        self.num_labels = int(model.config.num_labels or 1)
        self.max_length: int = _window_limit(model.config, tokenizer)
        self.default_max_length = min(DEFAULT_WINDOW, self.max_length)
        self.template: str | None = None  # no prompt: the tokenizer's own pair template
        self.uses_token_type_ids = "token_type_ids" in tokenizer.model_input_names
        pad_id = tokenizer.pad_token_id
        self.pad_token_id: int = 0 if pad_id is None else int(pad_id)
        # Padding-free execution (see forward_packed): on the CPU, where padding is pure waste.
        self.position_offset = packed_position_offset(model)
        self.packed = device.type == "cpu" and self.position_offset is not None
        self.packed_encoder = PackedEncoder(model) if self.packed else None

    @classmethod
    def load(
        cls,
        name_or_path: str,
        config: PretrainedConfig,
        *,
        device: torch.device,
        dtype: torch.dtype,
        common: dict[str, Any],
        quantize: str | None = None,
    ) -> CrossEncoderModel:
        """Load weights (safetensors only) and the fast tokenizer from a hub id or local folder,
        whose ``config`` :func:`~.kinds.load_model` read (with the same ``common`` keywords:
        revision, trust_remote_code, local_files_only).

        With ``quantize="int8"`` the encoder's Linear layers are dynamically quantized to int8 (see
        :func:`quantize_int8`; CPU and fp32 only).

        Raises:
            InvalidInputError: ``quantize`` is unknown, or asked for off the CPU or outside fp32.
            ModelLoadError: the model cannot be fetched or read, is not a sequence classifier with
                one or two labels, or has no fast tokenizer.
        """
        check_quantize(quantize, device, dtype)
        _check_config(name_or_path, config)
        tokenizer = load_tokenizer(name_or_path, common)
        try:
            with quiet_hub():
                model = _load_weights(name_or_path, dtype, common)
        except Exception as exc:
            raise ModelLoadError(
                f"could not load the weights of {name_or_path!r}: {first_line(exc)} "
                "(rag-rerank reads safetensors weights only)"
            ) from exc
        model.to(device)  # type: ignore[arg-type]  # transformers' stubs miss torch.device
        model.eval()
        if quantize == "int8":
            quantize_int8(model)
        return cls(name_or_path, model, tokenizer, device, quantize)

    def encode(
        self, queries: Sequence[str], documents: Sequence[str], *, max_length: int, windows: bool
    ) -> EncodedPairs:
        """Token rows of the pairs through the tokenizer's pair template: queries cut to a
        quarter of ``max_length``, documents truncated to fit, or with ``windows`` cut into
        overlapping windows (the tokenizer's overflow with a stride). ``extra`` holds the
        segment ids where the model takes them."""
        encoded, owner = self._tokenize(queries, documents, max_length, windows, offsets=False)
        ids = encoded["input_ids"]
        lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
        types = encoded["token_type_ids"] if self.uses_token_type_ids else None
        return EncodedPairs(ids, types, owner, lengths)

    def _tokenize(
        self,
        queries: Sequence[str],
        documents: Sequence[str],
        max_length: int,
        windows: bool,
        *,
        offsets: bool,
    ) -> tuple[Any, np.ndarray]:
        """The tokenizer's encoding of the pairs (with ``offsets``, each token's character
        offsets too) and the pair each row belongs to."""
        tokenizer = self.tokenizer
        cut = truncate_queries(tokenizer, queries, query_token_limit(max_length))
        overlap = window_overlap(max_length, tokenizer.num_special_tokens_to_add(True))
        encoded = tokenizer(
            cut,
            list(documents),
            truncation="only_second",
            max_length=max_length,
            stride=overlap if windows else 0,
            return_overflowing_tokens=windows,
            return_attention_mask=False,
            return_token_type_ids=self.uses_token_type_ids,
            return_offsets_mapping=offsets,
        )
        if windows:
            owner = np.asarray(encoded["overflow_to_sample_mapping"], dtype=np.int64)
        else:
            owner = np.arange(len(documents), dtype=np.int64)
        return encoded, owner

    def collate(
        self, input_ids: Sequence[Sequence[int]], token_type_ids: Sequence[Sequence[int]] | None
    ) -> dict[str, torch.Tensor]:
        """Tensors on the model's device for a batch of token id lists: right-padded rows, or
        with :attr:`packed`, every row's tokens end to end (see :meth:`forward_packed`)."""
        if self.packed:
            return self._collate_packed(input_ids, token_type_ids)
        width = max(len(ids) for ids in input_ids)
        ids = np.full((len(input_ids), width), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(input_ids), width), dtype=np.int64)
        for row, seq in enumerate(input_ids):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        arrays = {"input_ids": ids, "attention_mask": mask}
        if self.uses_token_type_ids and token_type_ids is not None:
            types = np.zeros((len(input_ids), width), dtype=np.int64)
            for row, seq in enumerate(token_type_ids):
                types[row, : len(seq)] = seq
            arrays["token_type_ids"] = types
        return {name: self._to_device(array) for name, array in arrays.items()}

    def _collate_packed(
        self, input_ids: Sequence[Sequence[int]], token_type_ids: Sequence[Sequence[int]] | None
    ) -> dict[str, torch.Tensor]:
        lengths = np.fromiter((len(seq) for seq in input_ids), dtype=np.int64, count=len(input_ids))
        starts = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        ids = np.concatenate([np.asarray(seq, dtype=np.int64) for seq in input_ids])
        # Positions restart at every row (XLM-R's start after its padding index).
        positions = np.arange(len(ids), dtype=np.int64) - np.repeat(starts, lengths)
        positions += self.position_offset or 0
        if self.uses_token_type_ids and token_type_ids is not None:
            types = np.concatenate([np.asarray(seq, dtype=np.int64) for seq in token_type_ids])
        else:
            types = np.zeros_like(ids)
        arrays = {
            "input_ids": ids[None],
            "position_ids": positions[None],
            "token_type_ids": types[None],
            "lengths": lengths,
        }
        return {name: self._to_device(array) for name, array in arrays.items()}

    @torch.inference_mode()
    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Relevance logits in fp32, one per row: the logit for one-label models, the log-odds of
        the positive class (``logit[1] - logit[0]``) for two-label models."""
        if "lengths" in inputs:
            logits = self.forward_packed(inputs).float()
        else:
            logits = self.model(**inputs).logits.float()
        if self.num_labels == 1:
            return logits[:, 0]
        return logits[:, 1] - logits[:, 0]

    def forward_packed(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits of a :meth:`collate`-d packed batch (see :class:`~.packed.PackedEncoder`)."""
        if self.packed_encoder is None:
            self.packed_encoder = PackedEncoder(self.model)
        return self.packed_encoder(inputs)

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array)
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)


def check_quantize(quantize: object, device: torch.device, dtype: torch.dtype) -> None:
    """Raise :class:`InvalidInputError` unless ``quantize`` (``None`` or ``"int8"``, checked by
    :class:`~rag_rerank.RerankerOptions`) can run on ``device`` in ``dtype``."""
    if quantize is None:
        return
    if device.type != "cpu":
        raise InvalidInputError(
            "quantize",
            f"'int8' is dynamic int8 quantization for the CPU; on {device.type} leave "
            "quantize=None "
            "and use dtype='bf16' or 'fp16' (the default on GPUs), which is faster there",
        )
    if dtype != torch.float32:
        raise InvalidInputError(
            "quantize", f"'int8' needs dtype fp32 activations (the CPU default), got {dtype}"
        )


def quantize_int8(model: PreTrainedModel) -> None:
    """Dynamically quantize the encoder's attention and FFN-input ``nn.Linear`` layers to int8.

    Weights are stored in int8 with one scale per output channel; activations are quantized on the
    fly, and the matmuls run in int8 (fbgemm/oneDNN VNNI kernels on x86). Embeddings, layer norms,
    each layer's FFN output projection (whose inputs carry the outlier activations that cost the
    most accuracy) and the classification head stay fp32. Scores move slightly; the benchmark
    reports by how much (benchmarks/RESULTS.md). In place.
    """
    quantize_dynamic = getattr(torch.ao.quantization, "quantize_dynamic", None)
    if quantize_dynamic is None:
        raise InvalidInputError(
            "quantize", f"this torch ({torch.__version__}) has no dynamic int8 quantization"
        )
    spec = {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
    base = getattr(model, "base_model", model)
    encoder = getattr(base, "encoder", base)
    layers = getattr(encoder, "layer", None)
    targets: list[torch.nn.Module] = [encoder]
    if layers is not None and all(
        hasattr(layer, "attention") and hasattr(layer, "intermediate") for layer in layers
    ):
        targets = [part for layer in layers for part in (layer.attention, layer.intermediate)]
    with warnings.catch_warnings():
        # torch marks torch.ao.quantization deprecated (moving to torchao) but it still works.
        warnings.simplefilter("ignore")
        for target in targets:
            quantize_dynamic(target, spec, dtype=torch.qint8, inplace=True)


def _load_weights(name_or_path: str, dtype: torch.dtype, common: dict[str, Any]) -> PreTrainedModel:
    kwargs = {**common, "dtype": dtype, "use_safetensors": True}
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            name_or_path, attn_implementation="sdpa", **kwargs
        )
    except (ValueError, ImportError) as exc:
        if "sdpa" not in str(exc).lower() and "attn_implementation" not in str(exc):
            raise
        logger.info("%s does not support SDPA attention; using its default", name_or_path)
        return AutoModelForSequenceClassification.from_pretrained(name_or_path, **kwargs)


def _check_config(name: str, config: PretrainedConfig) -> None:
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith("ForCausalLM") for a in architectures):
        raise ModelLoadError(
            f"{name!r} is a {architectures[0]} without a known reranker prompt; for an LLM "
            "reranker say which template it was trained with: prompt_format='qwen3' "
            "(Qwen3-Reranker) or 'bge-gemma' (bge-reranker-v2-gemma)"
        )
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ModelLoadError(
            f"{name!r} is a {architectures[0]}, not a sequence-classification cross-encoder; "
            "a reranker needs a model such as BAAI/bge-reranker-v2-m3 or "
            "cross-encoder/ms-marco-MiniLM-L-6-v2"
        )
    if config.num_labels not in (1, 2):
        raise ModelLoadError(
            f"{name!r} has {config.num_labels} labels; a cross-encoder reranker has 1 (a relevance "
            "logit) or 2 (irrelevant, relevant)"
        )


def _window_limit(config: PretrainedConfig, tokenizer: Any) -> int:
    limit = int(getattr(config, "max_position_embeddings", 512) or 512)
    if config.model_type in _OFFSET_POSITION_MODELS:
        pad = getattr(config, "pad_token_id", None)
        limit -= (1 if pad is None else int(pad)) + 1
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 1_000_000:
        limit = min(limit, tokenizer_limit)
    return limit
