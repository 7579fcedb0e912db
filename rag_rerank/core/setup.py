"""Setting a :class:`~rag_rerank.Reranker` up: its options resolved for this machine, its forward
pass's default token budget, its calibration checked against its model, and its model's identity
for the score cache."""

from __future__ import annotations

import logging
import threading
import warnings
import weakref
from typing import Any

import torch

from ..api import Calibration, RerankerOptions
from .cache_keys import model_identity
from .device import resolve_device, resolve_dtype
from .loading import PairModel

__all__ = [
    "cache_identity",
    "default_batch_tokens",
    "load_calibration",
    "options_of",
    "resolved_options",
]

logger = logging.getLogger(__name__)

# Tokens per forward pass. CPU: padding-free batches of 2048 real tokens (bigger ones fall out of
# cache; measured in benchmarks/RESULTS.md); GPU: big padded batches keep the device busy.
_DEFAULT_BATCH_TOKENS = {"cuda": 65536, "mps": 16384, "cpu": 2048}

_identity_lock = threading.Lock()  # not the shared registry's: Reranker.shared holds it to load
_identities: weakref.WeakKeyDictionary[PairModel, str | None] = weakref.WeakKeyDictionary()


def default_batch_tokens(device: torch.device) -> int:
    """Tokens per forward pass on ``device`` when the options name none."""
    return _DEFAULT_BATCH_TOKENS.get(device.type, 2048)


def cache_identity(model: PairModel) -> str | None:
    """The model's cache identity, computed once per loaded model."""
    with _identity_lock:
        if model not in _identities:
            config = model.model.config
            _identities[model] = model_identity(
                model.name,
                getattr(config, "_commit_hash", None),
                dtype=str(model.dtype).removeprefix("torch."),
                quantize=model.quantize,
                device_type=model.device.type,
                template=model.template,
            )
            if _identities[model] is None:
                logger.warning(
                    "%s: no hub commit known for these weights; scoring without a cache",
                    model.name,
                )
        return _identities[model]


def options_of(model: object, options: dict[str, Any]) -> RerankerOptions:
    """``model`` (an id, a folder or options) with ``options`` (keyword overrides) as options."""
    if isinstance(model, RerankerOptions):
        return model.replace(**options) if options else model
    return RerankerOptions.from_kwargs(model=model, **options)  # type: ignore[arg-type]


def load_calibration(
    options: RerankerOptions, model_name: str, max_length: int
) -> Calibration | None:
    """The calibration named by the options, checked against the model it will calibrate."""
    if options.calibration is None:
        return None
    calibration = Calibration.load(options.calibration)
    calibration.check_model(model_name, options.revision)
    # Other windows or long-document handling move the logits a little: allowed, but said.
    for name, fitted, used in (
        ("max_length", calibration.max_length, max_length),
        ("long_documents", calibration.long_documents, options.long_documents),
    ):
        if fitted is not None and fitted != used:
            warnings.warn(
                f"{options.calibration}: fitted with {name}={fitted!r}, used with {used!r}; "
                "the calibrated scores may be off",
                stacklevel=4,
            )
    return calibration


def resolved_options(options: RerankerOptions) -> RerankerOptions:
    """``options`` with the device and dtype that ``None`` stands for on this machine, by name,
    so that ``device=None`` and ``device="cpu"`` share one model on a CPU-only machine."""
    device = resolve_device(options.device)
    dtype = resolve_dtype(device, options.dtype, quantize=options.quantize)
    return options.replace(device=str(device), dtype=str(dtype).removeprefix("torch."))
