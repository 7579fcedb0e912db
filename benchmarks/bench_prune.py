"""Pruning benchmark (issue 26): what pruning removes, what it keeps, and what it costs.

1. On the labelled multi-sentence demo set (rag_rerank.evaluation.pruning: 62 questions, each
   reranked with its document of 3-5 sentences): the share of LLM context tokens removed and the
   share of answer sentences kept, with pruning off, by sentence scoring and by the model's
   one-pass pruning head (when it has one). Targets: >= 50% removed with >= 90% kept.
2. The time pruning adds to a request of 50 passages (the question's document and 49 others of
   the set), top 5 kept and pruned, against the same request without pruning: the median over
   the questions, the methods taking turns on each after an untimed run of the request.
   Targets: sentence scoring <= +50%, the head <= +10%.

No score cache (every request pays for its passes). Timing is wall time on this machine.

Examples:
    python benchmarks/bench_prune.py --model ./demo-reranker-with-head --device cpu
    python benchmarks/bench_prune.py --model /tmp/tiny-head --questions 10   # a quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _request_times(reranker, examples, methods, passages: int, top_n: int, questions: int):
    """Median seconds of one request per method: the question against ``passages`` documents."""
    from rag_rerank import PruneOptions

    documents = list(dict.fromkeys(e.document for e in examples))
    times: dict[str, list[float]] = {m: [] for m in methods}
    for q, example in enumerate(examples[:questions]):
        others = [d for d in documents if d != example.document]
        start = (q * 7) % len(others)
        candidates = [example.document, *(others[start:] + others[:start])[: passages - 1]]
        # Untimed first: a CPU's bf16 kernels are built for each new batch shape on first use.
        reranker.rerank(example.question, candidates, top_n=top_n)
        turn = q % len(methods)
        for method in methods[turn:] + methods[:turn]:
            prune = None if method == "off" else PruneOptions(method=method)
            began = time.perf_counter()
            reranker.rerank(example.question, candidates, top_n=top_n, prune=prune)
            times[method].append(time.perf_counter() - began)
    return {m: statistics.median(t) for m, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="reranker folder (with a pruning head)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="fp32, bf16, fp16 (default: the device's)")
    parser.add_argument("--passages", type=int, default=50, help="per request (default: 50)")
    parser.add_argument("--top-n", type=int, default=5, help="kept and pruned (default: 5)")
    parser.add_argument("--questions", type=int, default=62, help="requests timed (default: 62)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the set (default: 3)")
    args = parser.parse_args(argv)

    import torch

    from rag_rerank import Reranker
    from rag_rerank.evaluation.pruning import evaluate_pruning, load_prune_set, prune_table

    examples = load_prune_set()
    with Reranker(args.model, device=args.device, dtype=args.dtype, cache=None) as reranker:
        methods = ["off", "sentences"] + (["head"] if reranker.pruning_head else [])
        print(
            f"model: {args.model} on {reranker.device} ({str(reranker.dtype).split('.')[-1]}), "
            f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs"
        )
        runs = evaluate_pruning(reranker, examples, methods, repeats=args.repeats)
        print(f"\n1. the labelled set: {len(examples)} questions, each with its document")
        print(prune_table(runs))
        for run in runs[1:]:
            m = run.measures
            verdict = "met" if m.tokens_removed >= 0.5 and m.answer_survival >= 0.9 else "missed"
            print(f"   {run.method}: target >= 50% removed with >= 90% kept: {verdict}")
        median = _request_times(
            reranker, examples, methods, args.passages, args.top_n, args.questions
        )
    print(
        f"\n2. one request of {args.passages} passages, top {args.top_n} pruned: median of "
        f"{min(args.questions, len(examples))} questions"
    )
    off = median["off"]
    for method in methods:
        if method == "off":
            print(f"   off        {off * 1000:8.1f} ms")
            continue
        added = median[method] / off - 1
        target = 0.5 if method == "sentences" else 0.1
        verdict = "met" if added <= target else "missed"
        print(
            f"   {method:<10} {median[method] * 1000:8.1f} ms  {added:+.0%} "
            f"(target <= +{target:.0%}: {verdict})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
