"""A cross-encoder with a per-token pruning head: the relevance logit and the logit of every
document token in one forward pass (the Provence / OpenProvence layout).

The model folder is an ordinary sequence-classification cross-encoder (any other reranker loads
it and ignores the head) plus :data:`HEAD_FILE`, a ``Linear(hidden, 1)`` over the last layer's
token states, and ``"reranker_kind": "pruning-head"`` in its ``config.json``
(:data:`KIND_FIELD`), which makes :func:`~rag_rerank.core.kinds.load_model` load it as a
:class:`PruningHeadModel`. Its ``forward`` returns the relevance logits and, per row, the
:class:`~rag_rerank.core.token_scores.TokenScores` of its document tokens, which
:func:`~rag_rerank.core.token_scores.sentence_scores` averages per sentence. ``rag-rerank train
--prune`` trains such a head (:mod:`rag_rerank.training.pruning`); :func:`save_pruning_head`
writes one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PretrainedConfig

from ..errors import ModelLoadError
from .loading import EncodedPairs, first_line
from .model import CrossEncoderModel
from .token_scores import TokenScores

__all__ = [
    "HEAD_FILE",
    "KIND",
    "KIND_FIELD",
    "PruningHeadModel",
    "is_pruning_head",
    "save_pruning_head",
]

HEAD_FILE = "pruning_head.safetensors"
"""The head's weights in the model folder: ``weight`` ``[1, hidden]`` and ``bias`` ``[1]``."""

KIND_FIELD = "reranker_kind"
"""The ``config.json`` field that names a model kind."""

KIND = "pruning-head"
"""Its value for a cross-encoder with a pruning head."""


def is_pruning_head(config: PretrainedConfig) -> bool:
    """Whether ``config`` names a cross-encoder with a pruning head."""
    return getattr(config, KIND_FIELD, None) == KIND


def save_pruning_head(
    folder: str | os.PathLike[str], weight: torch.Tensor, bias: torch.Tensor
) -> Path:
    """Write a pruning head into a saved cross-encoder's ``folder``: its weights
    (:data:`HEAD_FILE`, fp32) and the kind in ``config.json``. Returns the folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tensors = {
        "weight": weight.detach().float().reshape(1, -1).contiguous().cpu(),
        "bias": bias.detach().float().reshape(1).contiguous().cpu(),
    }
    save_file(tensors, str(folder / HEAD_FILE))
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config[KIND_FIELD] = KIND
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return folder


@dataclass(frozen=True, eq=False, slots=True)
class _Row:
    """A row's segment ids (BERT) and its document tokens: their positions in the row and their
    character offsets in the document."""

    types: list[int] | None
    positions: np.ndarray
    offsets: np.ndarray


@dataclass(eq=False)
class _Batch:
    inputs: dict[str, torch.Tensor]
    rows: list[_Row]


class PruningHeadModel(CrossEncoderModel):
    """A :class:`~rag_rerank.core.model.CrossEncoderModel` whose ``forward`` also gives the
    pruning head's logits of every document token. Use :meth:`load`."""

    def __init__(self, *args: Any, head: torch.nn.Linear, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pruning_head = head.to(self.device).float().eval()
        self.template = KIND  # another cache identity than the same weights without the head

    @classmethod
    def load(  # type: ignore[override]
        cls,
        name_or_path: str,
        config: PretrainedConfig,
        *,
        device: torch.device,
        dtype: torch.dtype,
        common: dict[str, Any],
        quantize: str | None = None,
    ) -> PruningHeadModel:
        """Load the cross-encoder as :meth:`CrossEncoderModel.load` does, and its head.

        Raises:
            ModelLoadError: As :meth:`CrossEncoderModel.load`, or the head's file is missing or
                does not fit the encoder's hidden size.
        """
        base = CrossEncoderModel.load(
            name_or_path, config, device=device, dtype=dtype, common=common, quantize=quantize
        )
        head = _load_head(name_or_path, int(config.hidden_size), common)
        return cls(base.name, base.model, base.tokenizer, device, quantize, head=head)

    def encode(
        self, queries: Sequence[str], documents: Sequence[str], *, max_length: int, windows: bool
    ) -> EncodedPairs:
        """As :meth:`CrossEncoderModel.encode`; ``extra`` also holds where each row's document
        tokens sit, in the row and in the document."""
        encoded, owner = self._tokenize(queries, documents, max_length, windows, offsets=True)
        ids = encoded["input_ids"]
        rows = []
        for i in range(len(ids)):
            sequence = np.asarray([s == 1 for s in encoded.sequence_ids(i)], dtype=bool)
            positions = np.flatnonzero(sequence)
            offsets = np.asarray(encoded["offset_mapping"][i], dtype=np.int64).reshape(-1, 2)
            types = encoded["token_type_ids"][i] if self.uses_token_type_ids else None
            rows.append(_Row(types, positions, offsets[positions]))
        lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
        return EncodedPairs(ids, rows, owner, lengths)

    def collate(  # type: ignore[override]
        self, input_ids: Sequence[Sequence[int]], extra: Sequence[Any] | None
    ) -> _Batch:
        rows: list[_Row] = list(extra or [])
        types = [row.types for row in rows] if self.uses_token_type_ids else None
        return _Batch(super().collate(input_ids, types), rows)  # type: ignore[arg-type]

    @torch.inference_mode()
    def forward(  # type: ignore[override]
        self, inputs: _Batch
    ) -> tuple[torch.Tensor, list[TokenScores]]:
        """Relevance logits in fp32, one per row (as :meth:`CrossEncoderModel.forward`), and
        each row's document token logits from the same pass."""
        tensors = inputs.inputs
        if "lengths" in tensors:  # packed: every row's tokens end to end
            assert self.packed_encoder is not None
            lengths = tensors["lengths"].tolist()
            hidden = self.packed_encoder.hidden_states(tensors)
            logits = self.packed_encoder.classify(hidden, lengths).float()
            token_logits = self.pruning_head(hidden.float())[:, 0].cpu().numpy()
            starts = np.cumsum([0, *lengths[:-1]])
            picked = [
                token_logits[start + row.positions]
                for start, row in zip(starts, inputs.rows, strict=True)
            ]
        else:
            out = self.model(**tensors, output_hidden_states=True)
            logits = out.logits.float()
            token_logits = self.pruning_head(out.hidden_states[-1].float())[..., 0].cpu().numpy()
            picked = [token_logits[i, row.positions] for i, row in enumerate(inputs.rows)]
        scores = [
            TokenScores(row.offsets, values.astype(np.float32))
            for row, values in zip(inputs.rows, picked, strict=True)
        ]
        if self.num_labels == 1:
            return logits[:, 0], scores
        return logits[:, 1] - logits[:, 0], scores


def _load_head(name_or_path: str, hidden: int, common: dict[str, Any]) -> torch.nn.Linear:
    from safetensors.torch import load_file

    try:
        path = Path(name_or_path) / HEAD_FILE
        if not path.is_file():
            from huggingface_hub import hf_hub_download

            path = Path(
                hf_hub_download(
                    name_or_path,
                    HEAD_FILE,
                    revision=common.get("revision"),
                    local_files_only=bool(common.get("local_files_only")),
                )
            )
        tensors = load_file(str(path))
    except Exception as exc:
        raise ModelLoadError(
            f"{name_or_path!r} names a pruning head in its config ({KIND_FIELD}={KIND!r}) but "
            f"its {HEAD_FILE} cannot be read: {first_line(exc)}"
        ) from exc
    weight, bias = tensors.get("weight"), tensors.get("bias")
    if weight is None or bias is None or tuple(weight.shape) != (1, hidden):
        raise ModelLoadError(
            f"{name_or_path!r}: {HEAD_FILE} must hold 'weight' [1, {hidden}] and 'bias' [1], "
            f"got { ({k: tuple(v.shape) for k, v in tensors.items()}) }"
        )
    head = torch.nn.Linear(hidden, 1)
    with torch.no_grad():
        head.weight.copy_(weight.float())
        head.bias.copy_(bias.float().reshape(1))
    return head
