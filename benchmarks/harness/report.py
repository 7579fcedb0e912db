"""One benchmark run: build or load the model, time every peer on each workload, write Markdown."""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import gc
import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from .measure import (
    logit_spread,
    matmul_peak,
    max_diff,
    non_embedding_params,
    pair_flops,
    time_interleaved,
    top5_overlap,
    top5_same,
    top_gap,
)
from .peers import Peer, flag_reranker_peer, plain_peer, rag_rerank_peer, sentence_transformers_peer
from .shapes import SHAPES, build_model
from .workloads import MAX_LENGTH, TextMaker, Workload, constant_lengths, pair_token_lengths


@dataclass
class Options:
    shape: str = "minilm-l6"
    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    workloads: tuple[str, ...] = ("latency", "throughput", "scaling")
    runs: int = 30
    warmup: int = 3
    throughput_runs: int = 3
    scaling_runs: int = 3
    scale: float = 1.0
    passages: tuple[int, ...] = (10, 50, 200, 1000)
    lengths: tuple[int, ...] = (128, 512, 2048)
    int8: bool = False
    before: bool = False
    workdir: str = "~/.cache/rag-rerank/bench"
    peers: tuple[str, ...] = ("st", "flag", "plain")


def versions() -> str:
    """The report's versions line: python, torch, transformers, tokenizers, rag-rerank and the
    installed peers."""
    import tokenizers
    import transformers

    from rag_rerank import __version__ as ours

    parts = [
        f"python {platform.python_version()}",
        f"torch {torch.__version__}",
        f"transformers {transformers.__version__}",
        f"tokenizers {tokenizers.__version__}",
        f"rag-rerank {ours}",
    ]
    # Distribution metadata, not __version__: FlagEmbedding has none.
    for dist in ("sentence-transformers", "FlagEmbedding"):
        with contextlib.suppress(PackageNotFoundError):
            parts.append(f"{dist} {version(dist)}")
    return ", ".join(parts)


def device_text(device: str) -> str:
    """The report's device: the GPU's name, or the CPU model, core count and torch threads."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"CPU {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def run(options: Options, print_fn: Callable[[str], None] = print) -> str:
    """Run the benchmark; print and return its Markdown report."""
    from rag_rerank.core.device import precision_note, resolve_device, resolve_dtype

    device = str(resolve_device(options.device))
    dtype = resolve_dtype(torch.device(device), options.dtype)
    on_gpu = device.startswith("cuda")
    if options.model:
        folder, label = options.model, options.model
        shape = None
    else:
        shape = SHAPES[options.shape]
        folder = str(build_model(shape, Path(options.workdir).expanduser() / shape.name))
        label = f"{shape.name} (random weights, {shape.mimics} architecture)"

    lines: list[str] = []

    def out(text: str = "") -> None:
        lines.append(text)
        print_fn(text)

    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)
    maker = TextMaker(tokenizer)

    peers: list[Peer] = [rag_rerank_peer(folder, device, dtype, "rag-rerank Reranker")]
    if options.int8 and not on_gpu:
        peers.append(
            # int8 layers take fp32 activations, whatever the other rows run in.
            rag_rerank_peer(
                folder, device, torch.float32, "rag-rerank Reranker int8", quantize="int8"
            )
        )
    if options.before:
        # The core's settings before the speed work: CPU budget 8192, no padding limit.
        budget = 65536 if on_gpu else 8192
        peers.append(
            rag_rerank_peer(
                folder, device, dtype, "rag-rerank before", max_padding=None, batch_tokens=budget
            )
        )
    if "st" in options.peers:
        peers.append(sentence_transformers_peer(folder, device, dtype))
    missing = []
    if "flag" in options.peers:
        flag = flag_reranker_peer(folder, device)
        if flag is not None:
            peers.append(flag)
        else:
            missing.append("FlagEmbedding (pip install FlagEmbedding)")
    reference, reference_model = plain_peer(folder, device, dtype)
    if "plain" in options.peers:
        peers.append(reference)
    params = non_embedding_params(reference_model)
    peak = matmul_peak(device) if on_gpu else None

    precision = precision_note(torch.device(device), dtype)
    out(f"### {label} on {device_text(device)}, {precision}")
    out()
    out(f"- date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    out(f"- versions: {versions()}")
    out(f"- non-embedding parameters: {params / 1e6:.1f} M")
    out("- score cache: off for every rag-rerank row (each figure measures the model)")
    if peak:
        out(f"- measured bf16 matmul peak: {peak / 1e12:.0f} TFLOP/s (8192^3, best of 10)")
    out("- peers: " + "; ".join(f"{p.name} ({p.note})" for p in peers if p.note))
    if missing:
        out("- not run (not installed): " + ", ".join(missing))
    out("- max |diff| is the largest logit difference from the plain padded transformers forward")
    out()

    def mfu(seconds: float, w: Workload) -> str:
        if not peak:
            return ""
        flops = pair_flops(
            np.concatenate(w.pair_tokens), params, config.hidden_size, config.num_hidden_layers
        )
        return f" | {100 * flops / seconds / peak:.1f}%"

    mfu_head = " | MFU" if peak else ""
    mfu_rule = " | ---:" if peak else ""
    first = peers[0].name

    if "latency" in options.workloads:
        w = maker.workload(1, 50, lambda n: pair_token_lengths(maker.rng, n))
        tokens = int(np.concatenate(w.pair_tokens).sum())
        times, logits = time_interleaved(peers, w, device, options.warmup, options.runs)
        ref = logits[reference.name] if reference in peers else reference.score(w)
        out(
            f"#### (a) latency: 1 query x 50 passages ({tokens} tokens, pair lengths "
            f"{int(np.min(w.pair_tokens))}-{int(np.max(w.pair_tokens))}, median "
            f"{int(np.median(w.pair_tokens))}), {options.runs} interleaved runs after "
            f"{options.warmup} warm-up"
        )
        out()
        out(
            f"| peer | p50 ms | p95 ms | p50 vs {first} | max \\|diff\\| | "
            f"top-5 same | top-5 overlap"
            f"{mfu_head} |"
        )
        out(f"| --- | ---: | ---: | ---: | ---: | ---: | ---:{mfu_rule} |")
        ours_p50 = statistics.median(times[first])
        for p in peers:
            t = times[p.name]
            p50 = statistics.median(t)
            p95 = float(np.percentile(t, 95))
            out(
                f"| {p.name} | {1e3 * p50:.1f} | {1e3 * p95:.1f} | {p50 / ours_p50:.2f}x | "
                f"{max_diff(logits[p.name], ref):.2e} | "
                f"{'yes' if top5_same(logits[p.name], ref) == 1 else 'NO'} | "
                f"{100 * top5_overlap(logits[p.name], ref):.0f}%{mfu(p50, w)} |"
            )
        out()
        out(
            f"Reference logits span {logit_spread(ref):.2f} (max - min over the 50 passages); the "
            f"closest two of its top 6 are {top_gap(ref):.3f} apart."
        )
        out()

    if "throughput" in options.workloads:
        n_queries = max(1, round(256 * options.scale))
        w = maker.workload(n_queries, 50, lambda n: pair_token_lengths(maker.rng, n))
        tokens = int(np.concatenate(w.pair_tokens).sum())
        times, logits = time_interleaved(peers, w, device, 1, options.throughput_runs)
        ref = logits[reference.name] if reference in peers else reference.score(w)
        out(
            f"#### (b) throughput: {n_queries} queries x 50 passages ({w.pairs} pairs, {tokens} "
            f"tokens), median of {options.throughput_runs} interleaved runs after 1 warm-up"
        )
        out()
        out(
            f"| peer | pairs/s | tokens/s | time vs {first} | max \\|diff\\| | "
            f"top-5 same | top-5 overlap"
            f"{mfu_head} |"
        )
        out(f"| --- | ---: | ---: | ---: | ---: | ---: | ---:{mfu_rule} |")
        ours_t = statistics.median(times[first])
        for p in peers:
            median = statistics.median(times[p.name])
            out(
                f"| {p.name} | {w.pairs / median:.0f} | {tokens / median:.0f} | "
                f"{median / ours_t:.2f}x | {max_diff(logits[p.name], ref):.2e} | "
                f"{100 * top5_same(logits[p.name], ref):.0f}% | "
                f"{100 * top5_overlap(logits[p.name], ref):.0f}%{mfu(median, w)} |"
            )
        out()
        out(
            f"Reference logits span {logit_spread(ref):.2f} per query (median of max - min); the "
            f"closest two of a query's top 6 are {top_gap(ref):.3f} apart (median)."
        )
        out()

    if "scaling" in options.workloads:
        scaling_peers = [p for p in peers if p is not reference]
        out(
            f"#### (c) scaling: pairs/s (median of {options.scaling_runs} interleaved runs after "
            "1 warm-up)"
        )
        out()
        out("| workload | " + " | ".join(p.name for p in scaling_peers) + " |")
        out("| --- |" + " ---: |" * len(scaling_peers))
        for n in options.passages:
            w = maker.workload(1, n, lambda k: pair_token_lengths(maker.rng, k))
            times, _ = time_interleaved(scaling_peers, w, device, 1, options.scaling_runs)
            cells = [f"{n / statistics.median(times[p.name]):.0f}" for p in scaling_peers]
            out(f"| 1 query x {n} passages (64-512 tokens) | " + " | ".join(cells) + " |")
        for length in options.lengths:
            w = maker.workload(1, 50, functools.partial(constant_lengths, length))
            windows = len(
                tokenizer(
                    [w.queries[0]] * 50,
                    w.passages[0],
                    truncation="only_second",
                    max_length=MAX_LENGTH,
                    stride=64,
                    return_overflowing_tokens=True,
                )["input_ids"]
            )
            times, _ = time_interleaved(scaling_peers, w, device, 1, options.scaling_runs)
            cells = [f"{50 / statistics.median(times[p.name]):.0f}" for p in scaling_peers]
            out(
                f"| 1 query x 50 passages, {length}-token pairs ({windows} windows of <= 512) | "
                + " | ".join(cells)
                + " |"
            )
        out()
        out(
            "Passages longer than the 512-token window: rag-rerank scores every overlapping "
            "window and keeps the best; the peers truncate, so they read less text."
        )
        out()

    for p in peers:
        if p.close:
            p.close()
    gc.collect()
    return "\n".join(lines)
