"""Timing (interleaved runs), FLOPs and matmul peak, and how far a peer's logits and ranking are
from the reference's."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from .peers import Peer
from .workloads import Workload


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_interleaved(
    peers: Sequence[Peer], workload: Workload, device: str, warmup: int, runs: int
) -> tuple[dict[str, list[float]], dict[str, list[np.ndarray]]]:
    """Seconds per run for each peer, runs interleaved (order rotates), and each peer's logits."""
    times: dict[str, list[float]] = {p.name: [] for p in peers}
    logits: dict[str, list[np.ndarray]] = {}
    for p in peers:
        for _ in range(warmup):
            logits[p.name] = p.score(workload)
    for run_index in range(runs):
        k = run_index % len(peers)
        for p in list(peers[k:]) + list(peers[:k]):
            _sync(device)
            start = time.perf_counter()
            result = p.score(workload)
            _sync(device)
            times[p.name].append(time.perf_counter() - start)
            logits.setdefault(p.name, result)
    return times, logits


def non_embedding_params(model: torch.nn.Module) -> int:
    """Parameters outside the embedding tables (what the FLOPs formula counts)."""
    total = sum(p.numel() for p in model.parameters())
    embeddings = sum(
        p.numel() for name, p in model.named_parameters() if ".embeddings." in f".{name}"
    )
    return total - embeddings


def pair_flops(lengths: np.ndarray, params: int, hidden: int, layers: int) -> float:
    """Model FLOPs of pairs of ``lengths`` real tokens: 2 N L + 4 L^2 d layers each."""
    lengths = np.asarray(lengths, dtype=np.float64)
    return float(np.sum(2.0 * params * lengths + 4.0 * lengths**2 * hidden * layers))


def matmul_peak(device: str, dtype: torch.dtype = torch.bfloat16, n: int = 8192) -> float:
    """Measured dense matmul FLOP/s on ``device`` (best of 10 runs of an n x n x n product)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(10):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(max(np.max(np.abs(x - y)) for x, y in zip(a, b, strict=True)))


def top5_overlap(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Mean share of the reference's top 5 that is also in the peer's top 5."""
    shared = [
        len(set(np.argsort(-x, kind="stable")[:5]) & set(np.argsort(-y, kind="stable")[:5])) / 5
        for x, y in zip(a, b, strict=True)
    ]
    return sum(shared) / len(shared)


def logit_spread(ref: list[np.ndarray]) -> float:
    """Median over queries of the reference logits' range (to read the max |diff| against)."""
    return float(np.median([np.ptp(x) for x in ref]))


def top_gap(ref: list[np.ndarray]) -> float:
    """Median over queries of the smallest gap between adjacent ranks in the reference top 6: a
    variant whose logits move by more than this can reorder the top 5."""
    return float(np.median([np.min(-np.diff(np.sort(x)[::-1][:6])) for x in ref]))


def top5_same(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    same = [
        np.array_equal(np.argsort(-x, kind="stable")[:5], np.argsort(-y, kind="stable")[:5])
        for x, y in zip(a, b, strict=True)
    ]
    return sum(same) / len(same)
