"""Choose the device and precision a model runs in."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..api.options import DTYPE_NAMES
from ..errors import InvalidInputError

__all__ = [
    "CPU_BF16_ENV",
    "CpuBf16",
    "cpu_bf16",
    "free_memory",
    "has_amx",
    "precision_note",
    "resolve_device",
    "resolve_dtype",
]

_DTYPES = {alias: getattr(torch, name) for alias, name in DTYPE_NAMES.items()}

CPU_BF16_ENV = "RAG_RERANK_CPU_BF16"
"""Environment variable that overrides the CPU's bf16 check: ``0`` makes ``dtype=None`` (auto)
pick fp32 on any CPU (the test suite sets it, so parity tests stay exact everywhere, subprocesses
included); ``1`` makes it pick bf16 as on a CPU with native bf16."""

_OFF = ("0", "false", "no", "off")
_ON = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class CpuBf16:
    """Whether this CPU multiplies bf16 natively, and what says so."""

    native: bool
    """True with AMX tiles or AVX-512 BF16 (or ``RAG_RERANK_CPU_BF16=1``)."""
    source: str
    """What decided: ``"AMX"``, ``"AVX-512 BF16"``, ``"no AVX-512 BF16 or AMX"``, or the
    environment variable's setting."""


def cpu_bf16() -> CpuBf16:
    """Ask torch whether this CPU runs bf16 matmuls natively (AMX or AVX-512 BF16), unless
    :data:`CPU_BF16_ENV` says otherwise.

    Other CPUs (AVX2, AVX-512 without BF16, ARM) emulate bf16 through fp32 conversions, slower
    than plain fp32, so there ``dtype=None`` stays fp32.

    Raises:
        InvalidInputError: :data:`CPU_BF16_ENV` is set to something other than 0 or 1.
    """
    setting = os.environ.get(CPU_BF16_ENV, "").strip().lower()
    if setting:
        if setting not in _OFF + _ON:
            raise InvalidInputError(
                CPU_BF16_ENV, f"expected 0 (auto picks fp32) or 1 (bf16), got {setting!r}"
            )
        return CpuBf16(setting in _ON, f"{CPU_BF16_ENV}={setting}")
    if has_amx():
        return CpuBf16(True, "AMX")
    if _torch_says("_is_avx512_bf16_supported"):
        return CpuBf16(True, "AVX-512 BF16")
    return CpuBf16(False, "no AVX-512 BF16 or AMX")


def has_amx() -> bool:
    """Whether this CPU has AMX tiles, as torch reports it."""
    return _torch_says("_is_amx_tile_supported")


def _torch_says(name: str) -> bool:
    """A private but stable torch.cpu helper's answer (torch >= 2.1); absent on other builds
    means no."""
    check = getattr(torch.cpu, name, None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:  # a build without the CPU feature probe
        return False


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


def resolve_dtype(
    device: torch.device, dtype: str | torch.dtype | None = None, *, quantize: str | None = None
) -> torch.dtype:
    """Return the precision to run in.

    Auto (``None`` or ``"auto"``): bf16 on GPUs that support it (Ampere and newer), fp16 on older
    GPUs and MPS; on the CPU bf16 where it multiplies bf16 natively (:func:`cpu_bf16`), else
    fp32, and always fp32 with ``quantize`` (int8 layers take fp32 activations). A string such as
    ``"bf16"``, ``"float16"`` or ``"fp32"`` or a ``torch.dtype`` picks one explicitly. Logits,
    scores and ranking are fp32 in every precision.
    """
    if dtype is None or (isinstance(dtype, str) and dtype.strip().lower() == "auto"):
        if quantize is not None and device.type == "cpu":
            return torch.float32
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.bfloat16 if cpu_bf16().native else torch.float32
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in _DTYPES:
        resolved = _DTYPES[dtype.lower().removeprefix("torch.")]
    else:
        raise InvalidInputError("dtype", f"expected one of auto, bf16, fp16, fp32, got {dtype!r}")
    if resolved not in (torch.float32, torch.float16, torch.bfloat16):
        raise InvalidInputError("dtype", f"unsupported dtype {resolved}")
    return resolved


def precision_note(device: torch.device, dtype: torch.dtype) -> str:
    """The precision a model runs in and, on a CPU, whether the CPU multiplies bf16 natively: for
    the model line of the CLI, the server's log and ``/info``, and the benchmarks.

    Example: ``"bfloat16; CPU bf16 native (AMX)"``, ``"float32; CPU bf16 not native"``.
    """
    name = str(dtype).removeprefix("torch.")
    if device.type != "cpu":
        return name
    check = cpu_bf16()
    if check.native:
        return f"{name}; CPU bf16 native ({check.source})"
    detail = f" ({check.source})" if check.source.startswith(CPU_BF16_ENV) else ""
    return f"{name}; CPU bf16 not native{detail}"


def free_memory(device: torch.device | str) -> int | None:
    """Bytes free on ``device``: CUDA's free memory, or the host's ``MemAvailable`` for the CPU
    (and any other device); ``None`` when unknown. For the start-up check that the models to
    serve fit (:mod:`rag_rerank.server.memory`)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
