"""LLM reranker benchmark: shared-prefix reuse vs the plain forward vs sentence-transformers.

One query x 50 documents of 100-400 tokens on the Qwen3-Reranker-0.6B shape with random weights
(hidden 1024, 16 heads, 8 key/value heads, 3072 FFN, vocab 151669; ``--layers`` of its 28, since
every layer costs the same), in one run on one machine:

- rag-rerank, shared prefix (the default): system prompt + instruction + query run once a batch;
- rag-rerank, plain: every row runs whole (``share_prefix = False``);
- sentence-transformers ``CrossEncoder`` on the one-label seq-cls conversion of the same weights,
  given the same template (query side: system prompt + instruction + query; document side:
  document + answer suffix).

The tokenizer is the tiny byte-level BPE of ``rag_rerank.testing.build_qwen3`` (trained on the
template, whose words are single tokens); document lengths are counted in its tokens. Reported:
tokens through the decoder per run, the share no longer computed, median seconds per request,
and the largest score difference to the plain path.

Examples:
    python benchmarks/bench_llm.py --layers 4 --device cpu           # the 2-core CPU run
    python benchmarks/bench_llm.py --layers 28 --device cuda --repeats 10   # benchmarks/gpu.sh
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QWEN3_06B = {
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151669,
    "max_position_embeddings": 40960,
    "initializer_range": 0.02,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000,
}

WORDS = (
    "bank loan money river water boat interest account fish stream panda bamboo city capital "
    "bear mountain rate deposit credit savings harbour sail engine ticket train station"
).split()


def _documents(tokenizer, count: int, low: int, high: int, seed: int) -> list[str]:
    """``count`` texts of ``low``-``high`` tokens (uniform), counted by ``tokenizer``."""
    rng = random.Random(seed)
    docs = []
    for _ in range(count):
        target = rng.randint(low, high)
        words = [rng.choice(WORDS) for _ in range(target)]
        ids = tokenizer(" ".join(words), add_special_tokens=False)["input_ids"][:target]
        docs.append(tokenizer.decode(ids))
    return docs


def _time(paths: dict[str, object], repeats: int) -> dict[str, tuple[float, object]]:
    """Median seconds and last result of each path, the paths taking turns (a warm-up round
    first), so that load from other processes on a shared machine falls on all of them."""
    times: dict[str, list[float]] = {name: [] for name in paths}
    results: dict[str, object] = {}
    for round_ in range(repeats + 1):
        for name, function in paths.items():
            start = time.perf_counter()
            results[name] = function()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), results[name]) for name in paths}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4, help="decoder layers (0.6B: 28)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--dtype",
        default=None,
        help="default: the reranker's (bf16 on GPU; on a CPU bf16 where native, else fp32)",
    )
    parser.add_argument("--documents", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-st", action="store_true", help="skip sentence-transformers")
    parser.add_argument("--workdir", default=None, help="where the random model is written")
    args = parser.parse_args(argv)

    import torch

    from rag_rerank import Reranker
    from rag_rerank.core.llm.templates import _QWEN3_ASSISTANT, _QWEN3_SYSTEM, FORMATS
    from rag_rerank.testing import build_qwen3

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-llm-"))
    shape = {**QWEN3_06B, "num_hidden_layers": args.layers}
    causal = build_qwen3(work / "Qwen3-Reranker-shape", **shape)
    seq_cls = build_qwen3(work / "Qwen3-Reranker-shape-seq-cls", seq_cls=True, **shape)

    options = {"device": args.device, "dtype": args.dtype, "cache": None, "show_progress": False}
    shared = Reranker(causal, **options)
    plain = Reranker(causal, **options)
    plain.engine.model.share_prefix = False
    tokenizer = shared.engine.model.tokenizer
    query = "which bank pays the best interest rate on savings accounts"
    docs = _documents(tokenizer, args.documents, 100, 400, seed=0)

    def shared_request() -> list[float]:
        shared.engine.model.clear_prefix_cache()  # one request's cost, not a repeated query's
        return shared.score(query, docs)

    paths = {
        "rag-rerank, shared prefix": shared_request,
        "rag-rerank, plain": lambda: plain.score(query, docs),
    }
    st_tokens = 0
    if not args.no_st:
        from sentence_transformers import CrossEncoder

        encoder = CrossEncoder(str(seq_cls), device=args.device, max_length=8192)
        if encoder.model.dtype != shared.dtype:
            encoder.model.to(shared.dtype)
        task = FORMATS["qwen3"].default_instruction
        head = f"{_QWEN3_SYSTEM}<Instruct>: {task}\n<Query>: {query}\n<Document>: "
        pairs = [(head, doc + _QWEN3_ASSISTANT) for doc in docs]
        paths["sentence-transformers CrossEncoder (seq-cls)"] = lambda: list(
            map(float, encoder.predict(pairs, batch_size=16, show_progress_bar=False))
        )
        encoded = encoder.tokenizer([p[0] for p in pairs], [p[1] for p in pairs])
        st_tokens = sum(len(ids) for ids in encoded["input_ids"])
    before = {rr: rr.engine.model.tokens_run for rr in (shared, plain)}
    timed = _time(paths, args.repeats)
    runs = args.repeats + 1
    tokens = {
        "rag-rerank, shared prefix": (shared.engine.model.tokens_run - before[shared]) // runs,
        "rag-rerank, plain": (plain.engine.model.tokens_run - before[plain]) // runs,
        "sentence-transformers CrossEncoder (seq-cls)": st_tokens,
    }
    rows = [(name, tokens[name], seconds) for name, (seconds, _) in timed.items()]
    results = {name: result for name, (_, result) in timed.items()}

    reference = results["rag-rerank, plain"]
    plain_tokens, plain_seconds = rows[1][1], rows[1][2]
    prefix = shared.engine.model.encode([query] * 2, docs[:2], max_length=8192, windows=True)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(
        f"## LLM reranker, Qwen3-Reranker-0.6B shape ({args.layers} of 28 layers), "
        f"{args.documents} documents of 100-400 tokens, {shared.dtype}, {device}, "
        f"torch threads {torch.get_num_threads()}, median of {args.repeats}; shared prefix "
        f"{prefix.extra[0]} tokens\n"
    )
    print("| path | tokens run | tokens saved | s / request | vs plain | max score diff |")
    print("|---|---|---|---|---|---|")
    for name, tokens, seconds in rows:
        diff = max(abs(a - b) for a, b in zip(results[name], reference, strict=True))
        saved = 1 - tokens / plain_tokens
        print(
            f"| {name} | {tokens} | {saved:.1%} | {seconds:.3f} | "
            f"{plain_seconds / seconds:.2f}x | {diff:.1e} |"
        )
    shared.close()
    plain.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
