"""Which kind of model a name loads as: :func:`load_model` picks an LLM reranker
(Qwen3-Reranker, bge-reranker-v2-gemma; see :mod:`rag_rerank.core.llm`) when the model is
recognised as one, a :class:`~rag_rerank.core.head.PruningHeadModel` when its config names a
pruning head, else a :class:`~rag_rerank.core.model.CrossEncoderModel`.

It imports every kind; the kinds import only the shared steps of :mod:`.loading`.
"""

from __future__ import annotations

from typing import Any

import torch

from ..api.references import check_model_reference
from ..errors import InvalidInputError
from .head import PruningHeadModel, is_pruning_head
from .llm import LLMRerankerModel, recognise
from .loading import PairModel, load_config
from .model import CrossEncoderModel

__all__ = ["load_model"]


def load_model(
    name_or_path: str,
    *,
    device: torch.device,
    dtype: torch.dtype,
    revision: str | None = None,
    trust_remote_code: bool = False,
    quantize: str | None = None,
    prompt_format: str | None = None,
    instruction: str | None = None,
) -> PairModel:
    """Load ``name_or_path`` as an LLM reranker when it is one (by ``prompt_format``, its config
    or its id), else as a :class:`~rag_rerank.core.model.CrossEncoderModel`, or a
    :class:`~rag_rerank.core.head.PruningHeadModel` when its config names a pruning head.

    Raises:
        InvalidInputError: ``prompt_format`` does not fit the model, ``instruction`` without an
            LLM reranker, or a bad ``quantize``.
        ModelLoadError: the model cannot be loaded (see
            :meth:`~rag_rerank.core.model.CrossEncoderModel.load`).
    """
    name_or_path = check_model_reference(name_or_path)
    common: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
    config = load_config(name_or_path, common)
    prompt = recognise(name_or_path, config, prompt_format)
    if prompt is None:
        if instruction is not None:
            raise InvalidInputError(
                "instruction",
                f"is for LLM rerankers (prompt_format='qwen3' or 'bge-gemma'); {name_or_path!r} "
                "is a cross-encoder without a prompt",
            )
        kind = PruningHeadModel if is_pruning_head(config) else CrossEncoderModel
        return kind.load(
            name_or_path, config, device=device, dtype=dtype, common=common, quantize=quantize
        )
    if quantize is not None:
        raise InvalidInputError("quantize", "int8 is for encoder cross-encoders, not LLM rerankers")
    return LLMRerankerModel.load(
        name_or_path, config, prompt, instruction, device=device, dtype=dtype, common=common
    )
