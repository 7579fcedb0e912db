"""The interface the engine drives (:class:`PairModel`) and the loading steps every model kind
shares (config, fast tokenizer, quiet hub, error lines).

Every kind (:class:`~rag_rerank.core.model.CrossEncoderModel`, the LLM rerankers of
:mod:`rag_rerank.core.llm`, :class:`~rag_rerank.core.head.PruningHeadModel`) turns (query,
document) pairs into token rows (:meth:`PairModel.encode`), rows into tensors (``collate``) and
tensors into fp32 relevance logits (``forward``); none knows anything about batching or queues.
The kinds import this module; which kind a name loads as is chosen in
:mod:`rag_rerank.core.kinds`, above them all.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel

from ..api.references import (
    local_copy_hint,
    looks_like_path,
    no_folder_here,
    unreachable_message,
)
from ..errors import ModelLoadError
from .hub import hub_unreachable
from .windows import truncate_at_token

__all__ = [
    "EncodedPairs",
    "PairModel",
    "load_config",
    "load_tokenizer",
    "truncate_queries",
]


@dataclass(eq=False)
class EncodedPairs:
    """One job's pairs as token rows (a long document gives several rows, its windows)."""

    input_ids: list[list[int]]
    extra: list[Any] | None
    """Per-row data ``collate`` takes back beside the ids: segment ids (BERT), the length of the
    prefix a row shares with the other rows of its query (LLM rerankers), or ``None``."""
    owner: np.ndarray
    """Index of the pair each row belongs to."""
    lengths: np.ndarray
    """Tokens each row costs a forward pass (what the engine's token budgets count)."""


class PairModel(Protocol):
    """What the engine and :class:`~rag_rerank.Reranker` need of a loaded model."""

    name: str
    model: PreTrainedModel
    device: torch.device
    dtype: torch.dtype
    quantize: str | None
    packed: bool
    max_length: int
    default_max_length: int
    template: str | None

    def encode(
        self, queries: Sequence[str], documents: Sequence[str], *, max_length: int, windows: bool
    ) -> EncodedPairs: ...

    def collate(self, input_ids: Sequence[Sequence[int]], extra: Sequence[Any] | None) -> Any: ...

    def forward(self, inputs: Any) -> torch.Tensor | tuple[torch.Tensor, list[Any]]:
        """fp32 relevance logits, one per row; a model with a per-row output beside them (a
        pruning head's token logits) returns ``(logits, outputs)``."""


def load_config(name_or_path: str, common: dict[str, Any]) -> PretrainedConfig:
    """The model's config; ``common`` gains ``local_files_only`` when the hub is unreachable."""
    offline = None if looks_like_path(name_or_path) else hub_unreachable()
    if offline:  # the local cache only: no retries against a hub that is not there
        common["local_files_only"] = True
    try:
        with quiet_hub():
            return AutoConfig.from_pretrained(name_or_path, **common)
    except Exception as exc:  # hub, network and file errors come in many classes
        if offline:
            raise ModelLoadError(unreachable_message(name_or_path, offline)) from None
        raise ModelLoadError(_unreachable_message(name_or_path, exc)) from exc


def load_tokenizer(name_or_path: str, common: dict[str, Any]) -> Any:
    """The model's fast tokenizer.

    Raises:
        ModelLoadError: it cannot be loaded or is not a fast (Rust) tokenizer.
    """
    try:
        with quiet_hub():
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, **common)
    except Exception as exc:
        raise ModelLoadError(
            f"could not load the tokenizer of {name_or_path!r}: {first_line(exc)}"
        ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"{name_or_path!r} has no fast (Rust) tokenizer; rag-rerank needs tokenizer.json"
        )
    return tokenizer


def _unreachable_message(name: str, exc: Exception) -> str:
    if Path(name).expanduser().exists():
        return f"could not read the model folder {name!r}: {first_line(exc)}"
    return (
        f"could not load the model {name!r}{no_folder_here(name)}: {first_line(exc)}. "
        f"{local_copy_hint(name)}"
    )


@contextlib.contextmanager
def quiet_hub() -> Iterator[None]:
    """Unless the ``transformers`` logger is at INFO or below (``--verbose``), no "Loading
    weights" progress bars and no hub retry warnings while a model loads."""
    from transformers.utils import logging as hf_logging

    if hf_logging.get_verbosity() <= logging.INFO:
        yield
        return
    bars = hf_logging.is_progress_bar_enabled()
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hf_logging.disable_progress_bar()
    hub_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_logger.setLevel(level)
        if bars:
            hf_logging.enable_progress_bar()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300].rstrip(".")


def truncate_queries(tokenizer: Any, queries: Sequence[str], limit: int) -> list[str]:
    """Cut queries longer than ``limit`` tokens at a token boundary (each distinct query once)."""
    distinct = list(dict.fromkeys(queries))
    encoded = tokenizer(
        distinct,
        add_special_tokens=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    cut = {
        query: truncate_at_token(query, offsets, limit)
        for query, offsets in zip(distinct, encoded["offset_mapping"], strict=True)
    }
    return [cut[query] for query in queries]
