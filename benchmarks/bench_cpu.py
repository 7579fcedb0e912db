"""CPU precision benchmark: fp32, bf16 and int8 side by side, against the machine's matmul rates.

Prints the machine's measured fp32 and bf16 matmul rates (what "how close to the limit" is measured
against: the better of ``torch.matmul`` and a oneDNN product, which on CPUs
where torch's fp32 matmul takes a slow path is the silicon's rate), whether this CPU multiplies
bf16 natively (what ``dtype=None`` picks), then, on the MiniLM-L6 shape (see benchmarks/harness/),
one run with every row timed interleaved:

- latency, 1 query x 50 passages: sentence-transformers ``CrossEncoder.predict`` (fp32), rag-rerank
  fp32, bf16 and int8; p50, the time against rag-rerank fp32, the fp32 or bf16 floor (model FLOPs
  / matmul rate) and how close to it each row runs; drift from the fp32 plain transformers forward:
  max |logit diff|, whether the top 5 is the same, and the smallest gap between adjacent ranks in
  that reference's top 6 (a drift larger than it can reorder the top 5);
- scaling: pairs/s for 10 / 50 / 200 passages and 128 / 512 / 2048-token passages in fp32, bf16,
  int8;
- with ``--before``: fp32 and bf16 with the padding-free forward at each earlier step, in the same
  run (``before profiling``: each row's attention reshaped and concatenated, the classifier in the
  model's dtype; ``nn.Linear``: the modules' own Linear layers, before the oneDNN products and
  their fused bias, GELU and residual adds); and the forward alone at each step, each against the
  step before, in CPU seconds on one thread (steady on a shared machine, where wall times are not)
  and against the one-thread floor, on the latency workload and on 50 passages of 256 tokens;
- with ``--profile``: torch.profiler's busiest operators of one fp32 and one bf16 forward;
- with ``--steps-only``: only the forward at each step (the last table of ``--before``; minutes).

Examples:
    python benchmarks/bench_cpu.py                         # the issue's table, ~10 min on 2 cores
    python benchmarks/bench_cpu.py --runs 3 --passages 10,50 --lengths 128,512 --before --profile 15
    python benchmarks/bench_cpu.py --steps-only --runs 3
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch

from harness import SHAPES, build_model
from harness.measure import (
    max_diff,
    non_embedding_params,
    pair_flops,
    time_interleaved,
    top5_same,
    top_gap,
)
from harness.peers import Peer, plain_peer, rag_rerank_peer, sentence_transformers_peer
from harness.report import device_text, versions
from harness.workloads import TextMaker, Workload, constant_lengths, pair_token_lengths
from rag_rerank.core.device import cpu_bf16, precision_note, resolve_dtype
from rag_rerank.core.packed import PackedEncoder

CPU = torch.device("cpu")


def main(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = SHAPES[args.shape]
    folder = str(build_model(shape, Path(args.workdir).expanduser() / shape.name))
    check = cpu_bf16()
    auto = resolve_dtype(CPU, None)
    print(f"### {shape.name} ({shape.mimics} architecture, random weights) on {device_text('cpu')}")
    print()
    print(f"- versions: {versions()}")
    print(
        f"- torch CPU capability: {torch.backends.cpu.get_cpu_capability()}; bf16: "
        f"{'native' if check.native else 'not native'} ({check.source}); "
        f"dtype=None picks {precision_note(CPU, auto)}"
    )
    sources = {name: matmul_rates(dtype, args.matmul_n) for name, dtype in PRECISIONS}
    rates = {name: max(by.values()) for name, by in sources.items()}
    print(
        f"- matmul rate, {torch.get_num_threads()} threads ({args.matmul_n}^3, best of 10): "
        + "; ".join(
            f"{name} {rates[name] / 1e9:.0f} GFLOP/s ("
            + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in by.items())
            + ")"
            for name, by in sources.items()
        )
        + f"; bf16 / fp32 {rates['bf16'] / rates['fp32']:.2f}x (measured again after the latency "
        "runs, the table uses the best)"
    )

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    maker = TextMaker(tokenizer)
    if args.steps_only:
        _steps_cpu_seconds(folder, _step_workloads(maker), args.runs, args.matmul_n)
        return 0
    reference, reference_model = plain_peer(folder, "cpu", torch.float32)
    params = non_embedding_params(reference_model)
    hidden, layers = reference_model.config.hidden_size, reference_model.config.num_hidden_layers
    peers: list[Peer] = []
    if "st" in args.peers:
        st = sentence_transformers_peer(folder, "cpu", torch.float32)
        st.name = "sentence-transformers CrossEncoder fp32"
        peers.append(st)
    peers += [
        rag_rerank_peer(folder, "cpu", torch.float32, "rag-rerank fp32"),
        rag_rerank_peer(folder, "cpu", torch.bfloat16, "rag-rerank bf16"),
        rag_rerank_peer(folder, "cpu", torch.float32, "rag-rerank int8", quantize="int8"),
    ]
    if args.before:
        peers += [
            rag_rerank_peer(folder, "cpu", dtype, f"rag-rerank {name} {step}", prepare=_step(step))
            for name, dtype in PRECISIONS
            for step in STEPS[:-1]
        ]
    print("- peers: " + "; ".join(f"{p.name} ({p.note})" for p in peers if p.note))
    print()

    w = maker.workload(1, 50, lambda n: pair_token_lengths(maker.rng, n))
    tokens = int(np.concatenate(w.pair_tokens).sum())
    flops = pair_flops(np.concatenate(w.pair_tokens), params, hidden, layers)
    times, logits = time_interleaved(peers, w, "cpu", args.warmup, args.runs)
    for name, dtype in PRECISIONS:
        # Again after the timed runs, best of both: a busy machine's rate understates the floor.
        rates[name] = max(rates[name], *matmul_rates(dtype, args.matmul_n).values())
    ref = reference.score(w)
    base = statistics.median(times["rag-rerank fp32"])
    print(
        f"#### latency: 1 query x 50 passages ({tokens} tokens, {flops / 1e9:.0f} GFLOP), "
        f"median of {args.runs} interleaved runs after {args.warmup} warm-up"
    )
    print()
    print(
        "| what | p50 s | vs rag-rerank fp32 | floor s | of floor | max \\|logit diff\\| "
        "| top-5 same |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in ("fp32", "bf16"):
        print(
            f"| {name} matmul rate | {rates[name] / 1e9:.0f} GFLOP/s | | "
            f"{flops / rates[name]:.2f} | | | |"
        )
    for p in peers:
        p50 = statistics.median(times[p.name])
        # Every row in fp32 or bf16 against that precision's floor (int8 has no matmul rate here).
        rate = next((rates[word] for word in p.name.split() if word in rates), None)
        floor = f"{flops / rate:.2f} | {100 * flops / rate / p50:.0f}%" if rate else " | "
        print(
            f"| {p.name} | {p50:.2f} | {base / p50:.2f}x | {floor} | "
            f"{max_diff(logits[p.name], ref):.2e} | "
            f"{'yes' if top5_same(logits[p.name], ref) == 1 else 'NO'} |"
        )
    print()
    print(
        "floor: the workload's model FLOPs at the measured matmul rate of the row's precision "
        "(above 100%: the rate was measured while other jobs slowed it)."
    )
    print(
        f"Smallest gap between adjacent ranks in the reference top 6: {top_gap(ref):.4f} "
        "(a drift larger than this can reorder the top 5). Reference: plain transformers fp32."
    )
    print()

    scaling = [
        p
        for p in peers
        if p.name.startswith("rag-rerank") and not p.name.endswith(tuple(STEPS[:-1]))
    ]
    print(f"#### scaling: pairs/s (median of {args.scaling_runs} interleaved runs after 1 warm-up)")
    print()
    print("| workload | " + " | ".join(p.name for p in scaling) + " |")
    print("| --- |" + " ---: |" * len(scaling))
    rows: list[tuple[str, int, Callable[[int], np.ndarray]]] = [
        (f"1 query x {n} passages (64-512 tokens)", n, lambda k: pair_token_lengths(maker.rng, k))
        for n in args.passages
    ] + [
        (
            f"1 query x 50 passages of {length} tokens",
            50,
            lambda k, length=length: constant_lengths(length, k),
        )
        for length in args.lengths
    ]
    for label, n, lengths in rows:
        sw = maker.workload(1, n, lengths, max_length=max(512, max(args.lengths)))
        sw_times, _ = time_interleaved(scaling, sw, "cpu", 1, args.scaling_runs)
        cells = [f"{n / statistics.median(sw_times[p.name]):.1f}" for p in scaling]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    if args.before:
        _steps_cpu_seconds(folder, _step_workloads(maker, w), args.runs, args.matmul_n)
    if args.profile:
        _profile(folder, w, args.profile)
    for p in peers:
        if p.close:
            p.close()
    return 0


PRECISIONS = (("fp32", torch.float32), ("bf16", torch.bfloat16))
STEPS = ("before profiling", "nn.Linear", "oneDNN", "attention kernel", "first tokens")
"""The padding-free forward's steps, oldest first (see :func:`_forward_at`)."""


def _forward_at(step: str, model: Any) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """The packed forward of ``model`` as it was at ``step``: ``before profiling``, ``nn.Linear``
    (per-pair SDPA into one context, the modules' own Linear layers), ``oneDNN`` (oneDNN products
    with the bias, GELU and residual adds fused, attention still per-pair SDPA), ``attention
    kernel`` (every pair and head of a batch in one call of rag_rerank/core/cpu_attention.c,
    where it builds) or ``first tokens`` (today's: the last layer computes only each row's first
    token, the one the classifier reads)."""
    if step == "before profiling":
        return _ForwardBefore(model)
    encoder = PackedEncoder(model, onednn=step != "nn.Linear", kernel=step in STEPS[3:])
    if step == "first tokens":
        return encoder
    return lambda x: encoder.classify(encoder.hidden_states(x), x["lengths"].tolist())


def _step(step: str) -> Callable[[Any], str]:
    """A peer ``prepare`` that gives the reranker the packed forward as it was at ``step``."""

    def prepare(reranker: Any) -> str:
        model = reranker.engine.model
        model.packed_encoder = _forward_at(step, model.model)
        return f"forward at step {step!r}"

    return prepare


def matmul_rates(
    dtype: torch.dtype, n: int, clock: Callable[[], float] = time.perf_counter
) -> dict[str, float]:
    """FLOP/s of an ``n x n x n`` product in ``dtype``, best of 10 timed by ``clock``, by kernel:
    ``torch.matmul``, and oneDNN (what the packed forward runs; on some CPUs
    torch's fp32 matmul takes a much slower path)."""
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    packed = torch.ops.mkldnn._reorder_linear_weight(b, n)
    kernels: dict[str, Callable[[], object]] = {
        "torch.matmul": lambda: a @ b,
        "oneDNN": lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], ""),
    }
    rates = {}
    for name, run in kernels.items():
        for _ in range(3):
            run()
        best = float("inf")
        for _ in range(10):
            start = clock()
            run()
            best = min(best, clock() - start)
        rates[name] = 2.0 * n**3 / best
    return rates


class _ForwardBefore:
    """The padding-free forward before profiling: each row's attention output reshaped and
    concatenated, the pooler and classifier in the model's dtype."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @torch.inference_mode()
    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        model = self.model
        base = model.base_model
        lengths = inputs["lengths"].tolist()
        hidden = base.embeddings(
            input_ids=inputs["input_ids"],
            token_type_ids=inputs["token_type_ids"],
            position_ids=inputs["position_ids"],
        )[0]
        sdpa = torch.nn.functional.scaled_dot_product_attention
        for layer in base.encoder.layer:
            attention = layer.attention
            heads = attention.self.num_attention_heads
            query = attention.self.query(hidden).split(lengths)
            key = attention.self.key(hidden).split(lengths)
            value = attention.self.value(hidden).split(lengths)
            context = torch.cat(
                [
                    sdpa(_heads(q, heads), _heads(k, heads), _heads(v, heads))[0]
                    .transpose(0, 1)
                    .reshape(q.shape)
                    for q, k, v in zip(query, key, value, strict=True)
                ]
            )
            hidden = attention.output(context, hidden)
            hidden = layer.output(layer.intermediate(hidden), hidden)
        starts = [0, *itertools.accumulate(lengths)][:-1]
        first = hidden[starts][:, None, :]
        if model.config.model_type == "bert":
            return model.classifier(model.dropout(base.pooler(first)))
        return model.classifier(first)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x.view(x.shape[0], heads, -1).transpose(0, 1)[None]


def _packed_inputs(rr: Any, w: Workload) -> list[dict[str, torch.Tensor]]:
    """The engine's packed batches of the workload's first query, collated."""
    from rag_rerank.core.batching import packed_batches

    model = rr.engine.model
    enc = model.tokenizer(
        [w.queries[0]] * len(w.passages[0]),
        w.passages[0],
        truncation="only_second",
        max_length=512,
    )
    ids, types = enc["input_ids"], enc.get("token_type_ids")
    batches = packed_batches([len(x) for x in ids], rr.batch_tokens)
    return [
        model.collate([ids[i] for i in b], [types[i] for i in b] if types else None)
        for b in batches
    ]


def _step_workloads(maker: TextMaker, mixed: Workload | None = None) -> dict[str, Workload]:
    """The workloads of the step table: the latency workload (1 query x 50 passages of 64-512
    tokens; ``mixed`` when the latency table already made it) and 50 passages of 256 tokens."""
    if mixed is None:
        mixed = maker.workload(1, 50, lambda n: pair_token_lengths(maker.rng, n))
    return {
        "1 query x 50 passages (64-512 tokens)": mixed,
        "1 query x 50 passages of 256 tokens": maker.workload(
            1, 50, lambda n: constant_lengths(256, n)
        ),
    }


def _first_token_savings(lengths: np.ndarray, hidden: int, intermediate: int) -> float:
    """FLOPs the ``first tokens`` step does not compute: the last layer's query, output and
    feed-forward products and attention for every token but each row's first (keys and values
    are still computed for every token)."""
    per_token = 2.0 * (2 * hidden * hidden + 2 * hidden * intermediate)  # query, out, up, down
    lengths = np.asarray(lengths, dtype=np.float64)
    return float(np.sum(per_token * (lengths - 1) + 4.0 * hidden * lengths * (lengths - 1)))


def _steps_cpu_seconds(
    folder: str, workloads: dict[str, Workload], runs: int, matmul_n: int
) -> None:
    """The forward alone at each of :data:`STEPS`, alternated, in CPU seconds of one thread; each
    step against the one before, and against the one-thread floor (FLOPs at the one-thread
    matmul rate, timed the same way)."""
    from rag_rerank import Reranker

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # torch then runs in this thread: thread_time() counts all its work
    print(
        f"#### the forward at each step: CPU seconds on 1 thread, median of {runs} alternated runs"
    )
    print()
    print(
        "| workload | precision | step | CPU s | vs step before | floor s | of floor "
        "| work done, of its floor |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, dtype in PRECISIONS:
        rate = max(matmul_rates(dtype, matmul_n, time.thread_time).values())
        rr = Reranker(folder, device="cpu", dtype=dtype, cache=None, show_progress=False)
        model = rr.engine.model
        forwards = {step: _forward_at(step, model.model) for step in STEPS}
        params = non_embedding_params(model.model)
        config = model.model.config
        for label, w in workloads.items():
            inputs = _packed_inputs(rr, w)
            lengths = np.concatenate(w.pair_tokens)
            flops = pair_flops(lengths, params, config.hidden_size, config.num_hidden_layers)
            skipped = _first_token_savings(lengths, config.hidden_size, config.intermediate_size)
            seconds: dict[str, list[float]] = {step: [] for step in STEPS}
            with torch.inference_mode():
                for run in range(runs + 1):
                    for step in STEPS if run % 2 else STEPS[::-1]:
                        start = time.thread_time()
                        for x in inputs:
                            forwards[step](x)
                        if run:  # the first round warms up
                            seconds[step].append(time.thread_time() - start)
            previous = None
            for step in STEPS:
                median = statistics.median(seconds[step])
                versus = f"{previous / median:.2f}x faster" if previous else ""
                done = flops - (skipped if step == "first tokens" else 0.0)
                print(
                    f"| {label} | {name} | {step} | {median:.3f} | {versus} | "
                    f"{flops / rate:.3f} | {100 * flops / rate / median:.0f}% | "
                    f"{100 * done / rate / median:.0f}% |"
                )
                previous = median
        rr.close()
    print()
    print(
        "One-thread floor: the workload's model FLOPs at the best one-thread matmul rate of the "
        "precision (torch.matmul or oneDNN, timed in CPU seconds). Work done, of its floor: the "
        "FLOPs the step computes (first tokens skips most of the last layer) at that rate."
    )
    print()
    torch.set_num_threads(threads)


def _profile(folder: str, w: Workload, rows: int) -> None:
    """The busiest operators of the packed forward (in this thread, on the engine's batches)."""
    from torch.profiler import ProfilerActivity, profile

    from rag_rerank import Reranker

    for dtype in (torch.float32, torch.bfloat16):
        rr = Reranker(folder, device="cpu", dtype=dtype, cache=None, show_progress=False)
        model = rr.engine.model
        inputs = _packed_inputs(rr, w)
        for x in inputs:  # warm-up
            model.forward(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for x in inputs:
                model.forward(x)
        print(f"#### profile: {precision_note(CPU, dtype)}, one forward of the 50 passages")
        print()
        print("```")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))
        print("```")
        print()
        rr.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="minilm-l6")
    parser.add_argument("--runs", type=int, default=10, help="timed latency runs (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    parser.add_argument("--scaling-runs", type=int, default=3)
    parser.add_argument("--passages", default="10,50,200", help="scaling: passages per query")
    parser.add_argument("--lengths", default="128,512,2048", help="scaling: passage tokens")
    parser.add_argument("--peers", default="st", help="'st' adds sentence-transformers; '' none")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    parser.add_argument("--matmul-n", type=int, default=2048, help="matmul size for the rates")
    parser.add_argument("--before", action="store_true", help="also the forward before profiling")
    parser.add_argument(
        "--steps-only", action="store_true", help="only the forward at each step, one thread"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="ROWS",
        help="print this many busiest operators of an fp32 and a bf16 forward",
    )
    parser.add_argument("--workdir", default="~/.cache/rag-rerank/bench")
    args = parser.parse_args(argv)
    args.passages = [int(x) for x in args.passages.split(",") if x]
    args.lengths = [int(x) for x in args.lengths.split(",") if x]
    return args


if __name__ == "__main__":
    sys.exit(main(parse_args()))
