"""A loaded LLM reranker: template rows in, fp32 relevance logits out, query prefixes run once.

The forward pass runs the decoder (without its output head) and reads the last real token of
each row; only the vocabulary rows the template reads (``yes``/``no``, or ``Yes``) are multiplied,
not the whole vocabulary. Rows of one query share their leading tokens (system prompt,
instruction, query): within a batch that prefix runs once and its key/value cache is reused by
every row, which then runs only its own tokens (document and answer suffix). The last few
prefixes' caches are kept, so the next batches of the same query (and repeated queries) skip it.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    DynamicCache,
    PretrainedConfig,
    PreTrainedModel,
)

from ...errors import InvalidInputError, ModelLoadError
from ..loading import EncodedPairs, first_line, load_tokenizer, quiet_hub
from ..packed import onednn_linears
from .attention import use_cpu_attention
from .templates import FORMATS, PromptFormat, recognise_format, shared_prefixes, split_windows

__all__ = ["LLMRerankerModel", "recognise"]


def recognise(
    name: str, config: PretrainedConfig, prompt_format: str | None
) -> PromptFormat | None:
    """The template of an LLM reranker, or ``None`` for a cross-encoder.

    ``prompt_format`` (the option) wins, then ``config.prompt_format``, then the family's hub id
    (``Qwen3-Reranker``, ``bge-reranker-v2-gemma``) on a model of the family's type.

    Raises:
        InvalidInputError: ``prompt_format`` names a template the model was not trained with.
    """
    model_type = str(getattr(config, "model_type", ""))
    if prompt_format is None:
        return recognise_format(name, model_type, getattr(config, "prompt_format", None))
    fmt = FORMATS[prompt_format]  # the option's value is checked by RerankerOptions
    if model_type not in fmt.model_types:
        raise InvalidInputError(
            "prompt_format",
            f"{prompt_format!r} is the template of {'/'.join(fmt.model_types)} models; "
            f"{name!r} is a {model_type or 'model of unknown type'}"
            + ("" if model_type not in _TYPES else f" (its template: {_TYPES[model_type]!r})"),
        )
    return fmt


_TYPES = {model_type: fmt.name for fmt in FORMATS.values() for model_type in fmt.model_types}


@dataclass(eq=False)
class _Part:
    """Rows of a batch that run together: with ``prefix``, after it, reusing its cache."""

    rows: torch.Tensor  # positions in the batch
    key: tuple[int, ...]  # the shared prefix's token ids (empty: none)
    prefix: torch.Tensor | None  # [1, shared tokens]
    input_ids: torch.Tensor  # [rows, longest own part], right-padded
    attention_mask: torch.Tensor  # [rows, shared + longest own part]
    last: torch.Tensor  # index of each row's last real token in input_ids
    tokens: int  # each row's own real tokens


class LLMRerankerModel:
    """A causal LM (or its one-label sequence-classification conversion) with a prompt template.

    Use :meth:`load`. :attr:`share_prefix` (default on) runs each query's shared prefix once per
    batch; off, every row runs whole (the reference path, for tests and benchmarks).
    """

    packed = False  # padded batches: causal attention with a cache, not the packed encoder path
    quantize: str | None = None

    def __init__(
        self,
        name: str,
        model: PreTrainedModel,
        tokenizer: Any,
        prompt: PromptFormat,
        instruction: str | None,
        device: torch.device,
    ) -> None:
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.instruction = instruction
        self.device = device
        self.dtype: torch.dtype = model.dtype
        self.share_prefix = True
        self.tokens_run = 0  # real tokens through the decoder, shared prefixes once (a counter)
        self.prefix_cache_size = 8
        self._prefixes: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]]
        self._prefixes = OrderedDict()  # the worker thread's alone: no lock
        config = model.config
        self.max_length = int(getattr(config, "max_position_embeddings", prompt.card_max_length))
        self.default_max_length = min(prompt.card_max_length, self.max_length)
        self.template: str | None = f"{prompt.name}\0{instruction}"
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(0 if pad is None else pad)
        self.base: Any = model.base_model
        # transformers 5.24 renamed the decoder's ``past_key_values`` (in and out) to ``cache``;
        # the old name warns and goes away in 5.40. Use whichever this transformers has.
        parameters = inspect.signature(self.base.forward).parameters
        self._cache_name = "cache" if "cache" in parameters else "past_key_values"
        head: Any = getattr(model, "score", None)
        if head is not None:  # sequence-classification conversion: its score rows
            weight = head.weight
            self._combine = "label" if weight.shape[0] == 1 else "two-labels"
        else:
            ids = prompt.answer_ids(tokenizer)
            weight = model.get_output_embeddings().weight[ids]  # type: ignore[union-attr]
            self._combine = "difference" if len(ids) == 2 else "logit"
        self.head = weight.detach().float().clone()  # [read rows, hidden], fp32
        self.softcap = getattr(config, "final_logit_softcapping", None) if head is None else None

    @classmethod
    def load(
        cls,
        name_or_path: str,
        config: PretrainedConfig,
        prompt: PromptFormat,
        instruction: str | None,
        *,
        device: torch.device,
        dtype: torch.dtype,
        common: dict[str, Any],
    ) -> LLMRerankerModel:
        """Load the weights (safetensors) and fast tokenizer of an LLM reranker.

        Raises:
            ModelLoadError: the weights cannot be read, or do not fit the GPU's free memory
                (the message gives the size needed).
        """
        tokenizer = load_tokenizer(name_or_path, common)
        architectures = getattr(config, "architectures", None) or []
        auto: Any = AutoModelForCausalLM
        if any(a.endswith("ForSequenceClassification") for a in architectures):
            auto = AutoModelForSequenceClassification
        check_fits(name_or_path, weight_bytes(auto, config, dtype), device)
        try:
            with quiet_hub():
                model = auto.from_pretrained(
                    name_or_path, dtype=dtype, use_safetensors=True, **common
                )
        except Exception as exc:
            raise ModelLoadError(
                f"could not load the weights of {name_or_path!r}: {first_line(exc)} "
                "(rag-rerank reads safetensors weights only)"
            ) from exc
        model.to(device)
        model.eval()
        onednn_linears(model.base_model)  # fp32 on the CPU: oneDNN products (issue 29)
        if device.type == "cpu":
            use_cpu_attention(model)  # the compiled attention kernel where it runs (issue 29)
        return cls(name_or_path, model, tokenizer, prompt, instruction, device)

    def encode(
        self, queries: Sequence[str], documents: Sequence[str], *, max_length: int, windows: bool
    ) -> Any:
        """Template rows of the pairs (see :mod:`.templates`); ``extra`` holds each row's shared
        prefix length and ``lengths`` the tokens it runs itself."""
        rows = self.prompt.rows(self.tokenizer, self.instruction, queries, documents, max_length)
        input_ids, owner = split_windows(rows, windows)
        shared = [0] * len(input_ids)
        if self.share_prefix:
            shared = shared_prefixes(input_ids, [queries[pair] for pair in owner])
        lengths = np.asarray([len(ids) for ids in input_ids], dtype=np.int64)
        return EncodedPairs(input_ids, shared, owner, lengths - np.asarray(shared, dtype=np.int64))

    def collate(self, input_ids: Sequence[Sequence[int]], extra: Sequence[Any] | None) -> Any:
        """The batch as parts: rows with the same shared prefix together, the rest as one."""
        shared = list(extra) if extra is not None else [0] * len(input_ids)
        groups: dict[tuple[int, ...], list[int]] = {}
        for row, (ids, n) in enumerate(zip(input_ids, shared, strict=True)):
            groups.setdefault(tuple(ids[:n]), []).append(row)
        parts: list[tuple[tuple[int, ...], list[int]]] = []
        whole: list[int] = []  # rows that share nothing in this batch run whole, together
        for prefix, rows in groups.items():
            if prefix and len(rows) > 1:
                parts.append((prefix, rows))
            else:
                whole.extend(rows)
        if whole:
            parts.append(((), whole))
        return [
            self._part(prefix, rows, [input_ids[row][len(prefix) :] for row in rows])
            for prefix, rows in parts
        ]

    def _part(self, prefix: tuple[int, ...], rows: list[int], own: list[Sequence[int]]) -> _Part:
        width = max(len(ids) for ids in own)
        ids = np.full((len(own), width), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(own), len(prefix) + width), dtype=np.int64)
        mask[:, : len(prefix)] = 1
        for i, seq in enumerate(own):
            ids[i, : len(seq)] = seq
            mask[i, len(prefix) : len(prefix) + len(seq)] = 1
        last = np.asarray([len(seq) - 1 for seq in own], dtype=np.int64)
        device = self.device
        return _Part(
            rows=torch.as_tensor(rows, device=device),
            key=prefix,
            prefix=torch.as_tensor([prefix], device=device) if prefix else None,
            input_ids=torch.from_numpy(ids).to(device),
            attention_mask=torch.from_numpy(mask).to(device),
            last=torch.from_numpy(last).to(device),
            tokens=sum(len(seq) for seq in own),
        )

    @torch.inference_mode()
    def forward(self, inputs: Any) -> torch.Tensor:
        """Relevance logits in fp32 for a collated batch, in its row order."""
        parts: list[_Part] = inputs
        total = sum(len(part.rows) for part in parts)
        out = torch.empty(total, dtype=torch.float32, device=self.device)
        for part in parts:
            out[part.rows] = self._score(self._last_hidden(part))
        return out

    def _last_hidden(self, part: _Part) -> torch.Tensor:
        rows = len(part.rows)
        self.tokens_run += part.tokens
        if part.prefix is None:
            hidden = self.base(
                input_ids=part.input_ids, attention_mask=part.attention_mask, use_cache=False
            ).last_hidden_state
        else:
            cache = DynamicCache(config=self.model.config)
            for layer, (keys, values) in enumerate(self._prefix_cache(part.key, part.prefix)):
                cache.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1), layer)
            start = part.prefix.shape[1]
            positions = torch.arange(start, start + part.input_ids.shape[1], device=self.device)
            hidden = self.base(
                input_ids=part.input_ids,
                attention_mask=part.attention_mask,
                position_ids=positions.expand(rows, -1),
                use_cache=True,
                **{self._cache_name: cache},
            ).last_hidden_state
        return hidden[torch.arange(rows, device=self.device), part.last]

    def clear_prefix_cache(self) -> None:
        """Forget the kept prefix caches (the next batch of every query runs its prefix)."""
        self._prefixes.clear()

    def _prefix_cache(
        self, key: tuple[int, ...], prefix: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's keys and values for ``prefix`` (one row): kept from an earlier batch, or
        computed now; the last :attr:`prefix_cache_size` prefixes are kept."""
        cached = self._prefixes.pop(key, None)
        if cached is None:
            self.tokens_run += len(key)
            cache = self.base(input_ids=prefix, use_cache=True)[self._cache_name]
            cached = [(layer.keys, layer.values) for layer in cache.layers]
        self._prefixes[key] = cached
        while len(self._prefixes) > self.prefix_cache_size:
            self._prefixes.popitem(last=False)
        return cached

    def _score(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = hidden.float() @ self.head.T  # only the rows read: [rows, 1 or 2]
        if self.softcap:  # Gemma-2's final logit soft-capping
            logits = torch.tanh(logits / self.softcap) * self.softcap
        if self._combine == "difference":  # Qwen3: logit(yes) - logit(no)
            return logits[:, 0] - logits[:, 1]
        if self._combine == "two-labels":
            return logits[:, 1] - logits[:, 0]
        return logits[:, 0]


def weight_bytes(auto: Any, config: PretrainedConfig, dtype: torch.dtype) -> int:
    """Bytes the model's weights take in ``dtype`` (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = auto.from_config(config)
    itemsize = torch.empty((), dtype=dtype).element_size()
    return sum(p.numel() for p in model.parameters()) * itemsize


def check_fits(name: str, needed: int, device: torch.device) -> None:
    """Raise :class:`ModelLoadError` when ``needed`` bytes of weights (plus a tenth for
    activations) exceed the free memory of CUDA ``device``; other devices are not checked."""
    if device.type != "cuda":
        return
    free, _ = torch.cuda.mem_get_info(device)
    if needed * 1.1 > free:
        gib = 2**30
        raise ModelLoadError(
            f"{name!r} needs about {needed * 1.1 / gib:.1f} GiB on {device} "
            f"({needed / gib:.1f} GiB of weights), and {free / gib:.1f} GiB is free; use a GPU "
            "with more memory, a smaller model of the family, or dtype='bf16'"
        )
