"""Choose the device and precision a model runs in."""

from __future__ import annotations

import torch

from ..api.options import DTYPE_NAMES
from ..errors import InvalidInputError

__all__ = ["resolve_device", "resolve_dtype"]

_DTYPES = {alias: getattr(torch, name) for alias, name in DTYPE_NAMES.items()}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return the device to run on: the one asked for, else cuda > mps > cpu."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError("device", f"not a torch device: {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device", f"{device!r} was asked for but CUDA is not available")
    return resolved


def resolve_dtype(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    """Return the precision to run in.

    Auto (``None``): bf16 on GPUs that support it (Ampere and newer), fp16 on older GPUs and MPS,
    fp32 on CPU. A string such as ``"bf16"``, ``"float16"`` or ``"fp32"`` or a ``torch.dtype`` picks
    one explicitly.
    """
    if dtype is None:
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in _DTYPES:
        resolved = _DTYPES[dtype.lower().removeprefix("torch.")]
    else:
        raise InvalidInputError("dtype", f"expected one of bf16, fp16, fp32, got {dtype!r}")
    if resolved not in (torch.float32, torch.float16, torch.bfloat16):
        raise InvalidInputError("dtype", f"unsupported dtype {resolved}")
    return resolved
