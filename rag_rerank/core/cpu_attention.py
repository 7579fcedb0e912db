"""Attention over packed rows in one compiled call per layer, on AVX-512 CPUs.

:class:`~rag_rerank.core.packed.PackedEncoder` ran attention pair by pair in torch's SDPA, at
about 60 GFLOP/s on a 2-core AMD EPYC (fp32 and bf16 alike: it takes no bf16 dot products there):
at the MiniLM shape, attention took 0.5 of the forward's 2.0 CPU seconds for 50 passages of 256
tokens, for a tenth of its FLOPs. The kernel in ``cpu_attention.c`` takes the query, key and value
products as the Linear layers write them (``[tokens, hidden]``, no transposes), runs every (pair,
head) of the batch on torch's thread count, and writes the context in the same layout: fp32
2.0-2.3x and bf16 3.2-4.1x the rate of per-pair SDPA on that CPU, for head sizes 32 and 64
(``python benchmarks/bench_cpu_tries.py attention``; docs/results/cpu-speed.md).
:meth:`CpuAttention.decoder` runs an LLM reranker's attention with the same code, as
transformers calls it (:mod:`rag_rerank.core.llm.attention`).

Numerics: scores and softmax in fp32; in bf16 the two products are AVX-512 BF16 dot products
with fp32 sums and the probabilities are rounded to bf16 for the weighted sum of values, as
torch's CPU flash attention does (the same max and mean error against fp32 attention as SDPA's
bf16, on the same inputs).

It is C, compiled at first use with the machine's C compiler (``$CC``, else ``cc`` or ``gcc``;
under a second) into :func:`~rag_rerank.core.folders.cache_folder` ``/kernels``, keyed by the
source and the compiler, then loaded with :mod:`ctypes`. Without a compiler, off Linux x86-64,
on a CPU without AVX-512 (fp32) or AVX-512 BF16 (bf16), for head sizes that are not a multiple
of 16, or with ``RAG_RERANK_CPU_KERNELS=0``, attention stays torch's SDPA; :func:`kernel_build`
logs which, once. On AMX CPUs :func:`attention_kernel` times it against SDPA first.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional

from ..errors import InvalidInputError
from .device import has_amx
from .folders import cache_folder

__all__ = [
    "BUILD_TIMEOUT",
    "CPU_KERNELS_ENV",
    "CpuAttention",
    "KernelBuild",
    "attention_kernel",
    "cpu_attention",
    "kernel_build",
]

logger = logging.getLogger(__name__)

CPU_KERNELS_ENV = "RAG_RERANK_CPU_KERNELS"
"""Environment variable: ``0`` keeps attention in torch's SDPA (no compiler is run); ``1`` uses
the kernel wherever it builds and runs; unset, the same, except on AMX CPUs, where it is timed
against SDPA at load (:func:`attention_kernel`)."""

BUILD_TIMEOUT = 120.0
"""Seconds the compiler may take before the kernel is given up (it takes under one)."""

_SOURCE = Path(__file__).with_name("cpu_attention.c")
_FLAGS = ("-O3", "-shared", "-fPIC", "-pthread")
_OFF = ("0", "false", "no", "off")
_ON = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class KernelBuild:
    """What :func:`kernel_build` found: the kernel, or why attention stays in SDPA."""

    kernel: CpuAttention | None
    reason: str
    """``"built in 0.7 s: <path>"``, ``"loaded <path>"``, or why there is no kernel."""


class CpuAttention:
    """The loaded kernel. Call it with the query, key and value products of a packed batch."""

    def __init__(self, library: ctypes.CDLL, path: Path) -> None:
        self.path = path
        self._run = library.rr_attention
        self._run.restype = ctypes.c_int
        pointer, number = ctypes.c_void_p, ctypes.c_int
        # q, k, v, out, starts, lengths; pairs, heads, d; ld, scale, bf16, threads
        self._run.argtypes = [pointer] * 6 + [number] * 3 + [ctypes.c_long, ctypes.c_float]
        self._run.argtypes += [number, number]
        self._decoder = library.rr_decoder_attention
        self._decoder.restype = ctypes.c_int
        # q, k, v, out, mask; mask kind; strides; batch, heads, kv heads, q len, kv len, d, causal;
        # scale; bf16, threads
        self._decoder.argtypes = [
            *(pointer,) * 5,
            number,
            pointer,
            *(number,) * 7,
            ctypes.c_float,
            number,
            number,
        ]
        supported = library.rr_supported
        supported.restype = ctypes.c_int
        self.dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.bfloat16)[: supported()]
        """The dtypes this CPU runs it in: fp32 with AVX-512, bf16 too with AVX-512 BF16."""

    def runs(self, dtype: torch.dtype, head_dim: int) -> bool:
        """Whether a model of this dtype and head size can use it."""
        return dtype in self.dtypes and head_dim % 16 == 0 and head_dim > 0

    def __call__(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        lengths: list[int],
        heads: int,
    ) -> torch.Tensor:
        """``[tokens, hidden]`` context of a packed batch: each pair (``lengths`` tokens, end to
        end from row 0) attends to itself only, with scale ``1 / sqrt(head_dim)``; rows after
        the last pair are zeros. ``query``, ``key``, ``value``: contiguous ``[tokens, hidden]``
        CPU tensors of one dtype the kernel :meth:`runs`."""
        tokens, hidden = query.shape
        head_dim = hidden // heads
        if not (
            self.runs(query.dtype, head_dim)
            and hidden == heads * head_dim
            and all(
                x.shape == query.shape
                and x.dtype == query.dtype
                and x.device.type == "cpu"
                and x.is_contiguous()
                for x in (query, key, value)
            )
            and sum(lengths) <= tokens
            and min(lengths, default=1) >= 0
        ):
            raise ValueError("cpu_attention: inputs it does not take (see CpuAttention.runs)")
        sizes = torch.tensor(lengths, dtype=torch.int64)
        starts = torch.cumsum(sizes, 0) - sizes
        context = torch.empty_like(query)
        context[sum(lengths) :].zero_()
        status = self._run(
            query.data_ptr(),
            key.data_ptr(),
            value.data_ptr(),
            context.data_ptr(),
            starts.data_ptr(),
            sizes.data_ptr(),
            len(lengths),
            heads,
            head_dim,
            hidden,
            head_dim**-0.5,
            int(query.dtype == torch.bfloat16),
            torch.get_num_threads(),
        )
        _check(status)
        return context

    def decoder(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None,
        *,
        causal: bool,
        scale: float,
    ) -> torch.Tensor:
        """A decoder's attention as transformers calls it, ``[batch, q_len, heads, head_dim]``
        (contiguous): ``query`` ``[batch, heads, q_len, head_dim]``, ``key`` and ``value``
        ``[batch, kv_heads, kv_len, head_dim]`` (head h reads kv head h // (heads / kv_heads)),
        views in any strides whose last dimension is contiguous, on the CPU in one dtype the
        kernel :meth:`runs`. ``mask``: ``None``, or ``[batch or 1, 1, q_len, kv_len]``, bool
        (True: attend) or additive fp32. ``causal``: query row i sees keys up to
        i + kv_len - q_len only (with a mask too: both apply). Scores are
        ``query . key * scale``; a row with every key masked gets the mean of the values."""
        batch, heads, q_len, head_dim = query.shape
        _, kv_heads, kv_len, _ = key.shape
        if not (
            self.runs(query.dtype, head_dim)
            and key.shape == value.shape == (batch, kv_heads, kv_len, head_dim)
            and heads % kv_heads == 0
            and all(
                x.dtype == query.dtype and x.device.type == "cpu" and x.stride(-1) == 1
                for x in (query, key, value)
            )
            and (mask is None or mask.dtype in (torch.bool, torch.float32))
        ):
            raise ValueError("cpu_attention: inputs it does not take (see CpuAttention.decoder)")
        mask_strides = [0, 0]
        if mask is not None:
            mask = mask.expand(batch, 1, q_len, kv_len)
            if mask.stride(-1) != 1:
                mask = mask.contiguous()
            mask_strides = [mask.stride(0), mask.stride(2)]
        strides = [s for x in (query, key, value) for s in x.stride()[:3]] + mask_strides
        strides_tensor = torch.tensor(strides, dtype=torch.int64)
        out = torch.empty(batch, q_len, heads, head_dim, dtype=query.dtype)
        status = self._decoder(
            query.data_ptr(),
            key.data_ptr(),
            value.data_ptr(),
            out.data_ptr(),
            None if mask is None else mask.data_ptr(),
            0 if mask is None else 1 if mask.dtype == torch.bool else 2,
            strides_tensor.data_ptr(),
            batch,
            heads,
            kv_heads,
            q_len,
            kv_len,
            head_dim,
            int(causal),
            scale,
            int(query.dtype == torch.bfloat16),
            torch.get_num_threads(),
        )
        _check(status)
        return out


def _check(status: int) -> None:
    """Raise for a kernel call's status: -2 out of memory, any other nonzero refused inputs."""
    if status == -2:
        raise MemoryError("cpu_attention: no memory for the kernel's scratch")
    if status:
        raise RuntimeError(f"cpu_attention: the kernel refused its inputs (status {status})")


def cpu_attention() -> CpuAttention | None:
    """The attention kernel, built or loaded on the first call (logged), or ``None`` where
    attention stays in SDPA (the reason logged once; :func:`kernel_build` gives it).

    Raises:
        InvalidInputError: :data:`CPU_KERNELS_ENV` is set to something other than 0 or 1.
    """
    if _setting() in _OFF:
        return None
    return kernel_build().kernel


def attention_kernel(dtype: torch.dtype, heads: int, head_dim: int) -> CpuAttention | None:
    """The kernel for a model's attention (``heads`` of ``head_dim`` in ``dtype``), or ``None``
    for torch's SDPA: where :func:`cpu_attention` has none or it does not run that dtype or head
    size; and on a CPU with AMX tiles (with :data:`CPU_KERNELS_ENV` unset), where SDPA ran a batch
    of that shape faster when both were timed (once per shape and process, at load, in
    milliseconds, logged). torch's SDPA multiplies on AMX tiles there, and this project has not
    measured such a CPU; on AVX-512 CPUs without them the kernel ran 2-4x SDPA's rate."""
    kernel = cpu_attention()
    if kernel is None or not kernel.runs(dtype, head_dim):
        return None
    if _setting() in _ON or not has_amx():
        return kernel
    return kernel if _kernel_is_faster(kernel, dtype, heads, head_dim) else None


def _setting() -> str:
    setting = os.environ.get(CPU_KERNELS_ENV, "").strip().lower()
    if setting and setting not in _OFF + _ON:
        raise InvalidInputError(
            CPU_KERNELS_ENV, f"expected 0 (torch's attention) or 1 (the kernel), got {setting!r}"
        )
    return setting


@functools.cache
def _kernel_is_faster(kernel: CpuAttention, dtype: torch.dtype, heads: int, head_dim: int) -> bool:
    """Time the kernel and per-pair SDPA on 4 pairs of 128 tokens, best of 3 each, alternated,
    on torch's threads; the kernel unless SDPA took under 90% of its time (both feel whatever
    else the machine runs, so a busy machine can tip a close call)."""
    generator = torch.Generator().manual_seed(0)
    lengths = [128] * 4
    q, k, v = (
        torch.randn(sum(lengths), heads * head_dim, generator=generator).to(dtype) for _ in range(3)
    )
    qh, kh, vh = (x.view(-1, heads, head_dim).transpose(0, 1)[None] for x in (q, k, v))

    def sdpa() -> None:
        for start in range(0, sum(lengths), 128):
            rows = slice(start, start + 128)
            functional.scaled_dot_product_attention(qh[:, :, rows], kh[:, :, rows], vh[:, :, rows])

    def ours() -> None:
        kernel(q, k, v, lengths, heads)

    best = {"kernel": float("inf"), "sdpa": float("inf")}
    with torch.inference_mode():
        for round_ in range(4):  # the first round warms up both
            for name, run in (("kernel", ours), ("sdpa", sdpa)):
                started = time.perf_counter()
                run()
                if round_:
                    best[name] = min(best[name], time.perf_counter() - started)
    faster = best["sdpa"] >= 0.9 * best["kernel"]
    logger.info(
        "CPU attention for %s, %d heads of %d: %s (kernel %.2f ms, SDPA %.2f ms, 4 x 128 tokens)",
        str(dtype).removeprefix("torch."),
        heads,
        head_dim,
        "the kernel" if faster else "SDPA",
        1e3 * best["kernel"],
        1e3 * best["sdpa"],
    )
    return faster


@functools.cache
def kernel_build() -> KernelBuild:
    """Build (or load the cached build of) the kernel once per process, and log the outcome."""
    build = _build()
    if build.kernel is None:
        logger.info("CPU attention stays in torch's SDPA: %s", build.reason)
    else:
        logger.info("CPU attention kernel %s", build.reason)
    return build


def _build() -> KernelBuild:
    if not sys.platform.startswith("linux") or platform.machine().lower() not in (
        "x86_64",
        "amd64",
    ):
        return KernelBuild(None, f"no kernel for {sys.platform} {platform.machine()}")
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        return KernelBuild(None, "no C compiler ($CC, cc or gcc) to build the kernel")
    source = _SOURCE.read_bytes()
    try:
        version = subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.splitlines()[:1]
    except (OSError, subprocess.SubprocessError) as exc:
        return KernelBuild(None, f"the C compiler {compiler!r} did not run: {exc}")
    key = hashlib.sha256(b"\0".join([source, *(s.encode() for s in (*version, *_FLAGS))]))
    folder = cache_folder() / "kernels"
    path = folder / f"cpu_attention-{key.hexdigest()[:16]}.so"
    started = time.perf_counter()
    reason = f"loaded {path}"
    if not path.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder) as scratch:
                built = Path(scratch) / path.name
                subprocess.run(
                    [compiler, *_FLAGS, str(_SOURCE), "-o", str(built)],
                    capture_output=True,
                    text=True,
                    timeout=BUILD_TIMEOUT,
                    check=True,
                )
                os.replace(built, path)  # atomic: another process may build it too
        except subprocess.CalledProcessError as exc:
            return KernelBuild(None, f"{compiler} failed: {exc.stderr.strip()[-500:]}")
        except (OSError, subprocess.SubprocessError) as exc:
            return KernelBuild(None, f"building into {folder} failed: {exc}")
        reason = f"built in {time.perf_counter() - started:.1f} s: {path}"
    try:
        kernel = CpuAttention(ctypes.CDLL(str(path)), path)
    except (OSError, AttributeError) as exc:
        return KernelBuild(None, f"loading {path} failed: {exc}")
    if not kernel.dtypes:
        return KernelBuild(None, "this CPU has no AVX-512")
    return KernelBuild(kernel, reason)
