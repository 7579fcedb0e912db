"""Issue 29's later tries on the CPU forward, each against today's forward in one run.

CPU seconds on one thread (``time.thread_time()`` with ``torch.set_num_threads(1)``: steady on a
shared machine, where wall times are not), the forwards alternated, median of ``--runs``:

- ``compile``: the packed cross-encoder forward (MiniLM-L6 shape, random weights, 1 query x 50
  passages of 256 tokens) as it is, and with ``torch.compile`` (inductor, CPU): ``flex``, attention
  as one compiled ``flex_attention`` per layer over the packed tokens with a document mask (instead
  of one SDPA per pair); ``frozen``, each layer's part after attention (output product, layer norm,
  intermediate product and GELU, output product, layer norm) compiled with ``freezing``;
  ``autotune``, the same with ``max_autotune`` and inductor's C++ GEMM templates. Per precision:
  the wall time of the first pass (cold compilation, in a fresh inductor cache), CPU seconds,
  and max |logit diff| to today's fp32 forward.
- ``llm``: an LLM reranker's forward (Qwen3-Reranker-0.6B shape, ``--layers`` of its 28, random
  weights, 1 query x 50 documents of 100-400 tokens), fp32 and bf16, each with the decoder's
  ``nn.Linear`` layers and with the oneDNN products on bucketed rows of
  :func:`rag_rerank.core.packed.onednn_linears`, attention in transformers' SDPA, and the oneDNN
  products with attention in the compiled kernel (:mod:`rag_rerank.core.llm.attention`; what
  rag-rerank runs where it builds): CPU seconds, max score diff to fp32 ``nn.Linear``, and the
  busiest operators of each.
- ``memory``: the LLM reranker's resident memory over ``--requests`` requests of different
  sizes, with ``nn.Linear`` and with the oneDNN products on bucketed rows (oneDNN keeps code for
  every shape it sees), each in a fresh process.
- ``attention``: a layer's attention over 8 packed pairs, per-pair SDPA against the compiled
  kernel of :mod:`rag_rerank.core.cpu_attention` (what rag-rerank runs where it builds), for the
  head shapes of MiniLM (12 x 32), bge-reranker-base and v2-m3 (12 and 16 x 64) and pairs of 128,
  256, 512 and 64-512 tokens: GFLOP/s of attention FLOPs (4 L^2 d per pair) and max |diff| to
  fp32 SDPA on the same (rounded) inputs.

Examples:
    python benchmarks/bench_cpu_tries.py compile --runs 3
    python benchmarks/bench_cpu_tries.py llm --runs 3 --layers 2
    python benchmarks/bench_cpu_tries.py memory --requests 120 --layers 2
    python benchmarks/bench_cpu_tries.py attention --runs 5
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from harness.report import device_text, versions

PRECISIONS = (("fp32", torch.float32), ("bf16", torch.bfloat16))


def alternated(forwards: dict[str, Callable[[], Any]], runs: int) -> dict[str, float]:
    """Median CPU seconds (this thread) of each forward, alternated, after one untimed round."""
    seconds: dict[str, list[float]] = {name: [] for name in forwards}
    names = list(forwards)
    for run in range(runs + 1):
        for name in names if run % 2 else names[::-1]:
            start = time.thread_time()
            forwards[name]()
            if run:
                seconds[name].append(time.thread_time() - start)
    return {name: statistics.median(values) for name, values in seconds.items()}


def compile_tries(args: argparse.Namespace) -> None:
    """Today's packed forward against three ``torch.compile`` variants (see the module doc)."""
    import torch._dynamo
    from bench_cpu import _packed_inputs

    from harness import SHAPES, build_model
    from harness.workloads import TextMaker, constant_lengths
    from rag_rerank import Reranker
    from rag_rerank.core.packed import PackedEncoder

    torch._dynamo.config.recompile_limit = 64  # 6 layers x a few row counts, one code object
    # A fresh inductor cache, so that the first pass times a cold compilation (as at load).
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-cpu-tries-inductor-")
    shape = SHAPES["minilm-l6"]
    folder = str(build_model(shape, Path(args.workdir).expanduser() / shape.name))
    from transformers import AutoTokenizer

    maker = TextMaker(AutoTokenizer.from_pretrained(folder))
    w = maker.workload(1, 50, lambda n: constant_lengths(256, n))
    reference = None
    print(
        "| precision | forward | first pass s (compile) | CPU s | vs today | max \\|logit diff\\| |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, dtype in PRECISIONS:
        rr = Reranker(folder, device="cpu", dtype=dtype, cache=None, show_progress=False)
        model = rr.engine.model.model
        inputs = _packed_inputs(rr, w)
        options: dict[str, dict[str, Any]] = {
            "frozen": {"freezing": True},
            "autotune": {
                "freezing": True,
                "max_autotune": True,
                "max_autotune_gemm_backends": "CPP,ATEN",
            },
        }
        encoders = {"today": PackedEncoder(model), "flex": PackedEncoder(model)}
        flex = _FlexAttention()
        for layer in encoders["flex"].layers:
            layer._attention = functools.partial(flex, layer)
        for variant, opts in options.items():
            encoders[variant] = encoder = PackedEncoder(model)
            encoder.layers = [
                functools.partial(
                    _compiled_layer, layer, torch.compile(_AfterAttention(layer), options=opts)
                )
                for layer in encoder.layers
            ]
        logits: dict[str, torch.Tensor] = {}
        first: dict[str, float] = {}
        with torch.inference_mode():
            for variant, encoder in encoders.items():
                start = time.perf_counter()
                logits[variant] = torch.cat([encoder(x) for x in inputs])
                first[variant] = time.perf_counter() - start
            times = alternated(
                {v: functools.partial(_run_all, e, inputs) for v, e in encoders.items()}, args.runs
            )
        if reference is None:
            reference = logits["today"]
        for variant in encoders:
            diff = float((logits[variant] - reference).abs().max())
            print(
                f"| {name} | {variant} | {first[variant]:.1f} | {times[variant]:.3f} | "
                f"{times['today'] / times[variant]:.2f}x | {diff:.1e} |"
            )
        rr.close()


class _FlexAttention:
    """A packed layer's attention as one compiled ``flex_attention`` over all its tokens, each
    token seeing only its own pair's (a document mask; padding rows see nothing)."""

    def __init__(self) -> None:
        from torch.nn.attention.flex_attention import flex_attention

        self.flex = torch.compile(flex_attention, dynamic=False)  # dynamic: C++ codegen fails
        self.masks: dict[tuple[int, ...], Any] = {}  # one block mask per batch, for every layer

    def __call__(self, layer: Any, hidden: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        tokens = hidden.shape[0]
        q, k, v = (
            f(hidden).view(tokens, layer.heads, layer.head_dim).transpose(0, 1)[None]
            for f in (layer.query, layer.key, layer.value)
        )
        key = (tokens, *lengths)
        if key not in self.masks:
            self.masks[key] = _document_mask(tokens, lengths)
        out = self.flex(q, k, v, block_mask=self.masks[key])
        return out[0].transpose(0, 1).reshape(tokens, -1)


def _document_mask(tokens: int, lengths: list[int]) -> Any:
    from torch.nn.attention.flex_attention import create_block_mask

    document = torch.full((tokens,), -1, dtype=torch.int32)
    document[: sum(lengths)] = torch.repeat_interleave(
        torch.arange(len(lengths), dtype=torch.int32), torch.tensor(lengths)
    )

    def same(b: Any, h: Any, i: Any, j: Any) -> Any:
        return (document[i] == document[j]) & (document[i] >= 0)

    return create_block_mask(same, None, None, tokens, tokens, device="cpu")


class _AfterAttention(torch.nn.Module):
    """A packed layer's part after attention, on the layer's own modules, for ``torch.compile``."""

    def __init__(self, layer: Any) -> None:
        super().__init__()
        self.out, self.up, self.down = layer.out.module, layer.up.module, layer.down.module
        self.norm1, self.norm2, self.activation = layer.norm1, layer.norm2, layer.activation

    def forward(self, hidden: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        hidden = self.norm1(self.out(context) + hidden)
        return self.norm2(self.down(self.activation(self.up(hidden))) + hidden)


def _compiled_layer(layer: Any, after: Any, hidden: torch.Tensor, lengths: list[int]) -> Any:
    return after(hidden, layer._attention(hidden, lengths))


def _run_all(encoder: Any, inputs: list[dict[str, torch.Tensor]]) -> None:
    for x in inputs:
        encoder(x)


def llm_tries(args: argparse.Namespace) -> None:
    """An LLM reranker's fp32 forward with ``nn.Linear`` against oneDNN products, bf16 beside."""
    from bench_llm import QWEN3_06B, _documents
    from torch.profiler import profile

    from rag_rerank import Reranker
    from rag_rerank.core.batching import token_budget_batches
    from rag_rerank.core.engine import MAX_PADDING
    from rag_rerank.core.llm.attention import ATTENTION_NAME, use_cpu_attention
    from rag_rerank.testing import build_qwen3

    folder = build_qwen3(
        Path(tempfile.mkdtemp(prefix="bench-cpu-tries-")) / "Qwen3-Reranker-shape",
        **{**QWEN3_06B, "num_hidden_layers": args.layers},
    )
    query = "which bank pays the best interest rate on savings accounts"
    rerankers = {
        name: Reranker(str(folder), device="cpu", dtype=dtype, cache=None, show_progress=False)
        for name, dtype in PRECISIONS
    }
    model = rerankers["fp32"].engine.model
    kernel = all(use_cpu_attention(rr.engine.model.model) for rr in rerankers.values())
    documents = _documents(model.tokenizer, 50, 100, 400, seed=0)

    onednn = {  # the oneDNN forwards onednn_linears set at load, by model and module
        rr.engine.model: {
            module: module.__dict__["forward"]
            for module in rr.engine.model.model.modules()
            if "forward" in module.__dict__
        }
        for rr in rerankers.values()
    }

    def request(rr: Any, linear: bool, attention: str = "sdpa") -> torch.Tensor:
        """One request's forward in this thread: the engine's batches, prefix cache cleared;
        ``linear``: the model's own ``nn.Linear.forward`` instead of oneDNN's; ``attention``:
        transformers' ``sdpa`` or the kernel's name."""
        m = rr.engine.model
        m.clear_prefix_cache()
        m.model.set_attn_implementation(attention)
        for module, forward in onednn[m].items():
            if linear:
                module.__dict__.pop("forward", None)
            else:
                module.forward = forward
        encoded = m.encode([query] * len(documents), documents, max_length=8192, windows=True)
        extra = encoded.extra
        out = []
        for batch in token_budget_batches(
            encoded.lengths, rr.batch_tokens, max_padding=MAX_PADDING["cpu"]
        ):
            rows = [encoded.input_ids[i] for i in batch]
            out.append(m.forward(m.collate(rows, [extra[i] for i in batch])))
        return torch.cat(out)

    paths = {
        "fp32, nn.Linear": functools.partial(request, rerankers["fp32"], True),
        "fp32, oneDNN": functools.partial(request, rerankers["fp32"], False),
        "bf16, nn.Linear": functools.partial(request, rerankers["bf16"], True),
        "bf16, oneDNN on bucketed rows": functools.partial(request, rerankers["bf16"], False),
    }
    if kernel:  # attention in the compiled kernel where it builds (rag-rerank's default)
        for name, rr in rerankers.items():
            paths[f"{name}, oneDNN, kernel attention (rag-rerank)"] = functools.partial(
                request, rr, False, ATTENTION_NAME
            )
    else:
        print("(no attention kernel here: SDPA only)")
    scores = {name: path() for name, path in paths.items()}
    times = alternated(paths, args.runs)
    reference = scores["fp32, nn.Linear"]
    tokens = sum(
        len(ids)
        for ids in model.encode([query] * 50, documents, max_length=8192, windows=True).input_ids
    )
    print(
        f"Qwen3-Reranker-0.6B shape, {args.layers} of 28 layers, 50 documents of 100-400 "
        f"tokens ({tokens} template tokens before prefix sharing); "
        f"{len(onednn[model])} oneDNN products"
    )
    print()
    print("| forward | CPU s | vs fp32 nn.Linear | max score diff |")
    print("| --- | ---: | ---: | ---: |")
    for name, seconds in times.items():
        diff = float((scores[name] - reference).abs().max())
        print(
            f"| {name} | {seconds:.3f} | {times['fp32, nn.Linear'] / seconds:.2f}x | {diff:.1e} |"
        )
    print()
    for name, path in paths.items():
        with profile() as prof:
            path()
        print(f"#### profile: {name}")
        print()
        print("```")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile))
        print("```")
        print()
    for rr in rerankers.values():
        rr.close()


def memory_tries(args: argparse.Namespace) -> None:
    """Resident memory of an LLM reranker over many requests of different sizes, with the
    decoder's ``nn.Linear`` layers and with :func:`rag_rerank.core.packed.onednn_linears`'
    oneDNN products on bucketed rows, each in a fresh process (oneDNN keeps code per shape)."""
    import multiprocessing

    from bench_llm import QWEN3_06B

    from rag_rerank.testing import build_qwen3

    folder = build_qwen3(
        Path(tempfile.mkdtemp(prefix="bench-cpu-tries-")) / "Qwen3-Reranker-shape",
        **{**QWEN3_06B, "num_hidden_layers": args.layers},
    )
    marks = sorted({1, args.requests // 4, args.requests // 2, args.requests})
    print(
        f"Qwen3-Reranker-0.6B shape, {args.layers} of 28 layers; requests of 3-12 documents of "
        "20-400 tokens; RSS growth from the first request on, MB"
    )
    print()
    print("| precision | Linear layers | " + " | ".join(f"after {n}" for n in marks) + " | CPU s |")
    print("| --- | --- |" + " ---: |" * (len(marks) + 1))
    context = multiprocessing.get_context("spawn")
    for name, _ in PRECISIONS:
        for onednn in (False, True):
            with context.Pool(1) as pool:
                growth, seconds = pool.apply(_rss_growth, (str(folder), name, onednn, marks))
            layer = "oneDNN on bucketed rows (rag-rerank)" if onednn else "nn.Linear"
            cells = " | ".join(f"+{mb}" for mb in growth)
            print(f"| {name} | {layer} | {cells} | {seconds:.1f} |")


def _rss_growth(folder: str, name: str, onednn: bool, marks: list[int]) -> tuple[list[int], float]:
    """MB of resident memory gained after each of ``marks`` requests, and the CPU seconds."""
    import random

    import psutil
    from bench_llm import _documents

    from rag_rerank import Reranker
    from rag_rerank.core.batching import token_budget_batches
    from rag_rerank.core.engine import MAX_PADDING

    torch.set_num_threads(1)
    rr = Reranker(folder, device="cpu", dtype=name, cache=None, show_progress=False)
    model = rr.engine.model
    if not onednn:
        for module in model.model.modules():
            module.__dict__.pop("forward", None)
    rng = random.Random(0)
    requests = [
        _documents(model.tokenizer, rng.randint(3, 12), 20, 400, seed=seed)
        for seed in range(marks[-1])
    ]
    query = "which bank pays the best interest rate on savings accounts"
    process = psutil.Process()
    start, clock = process.memory_info().rss, time.thread_time()
    growth = []
    with torch.inference_mode():
        for i, documents in enumerate(requests, 1):
            model.clear_prefix_cache()
            encoded = model.encode(
                [query] * len(documents), documents, max_length=8192, windows=True
            )
            for batch in token_budget_batches(
                encoded.lengths, rr.batch_tokens, max_padding=MAX_PADDING["cpu"]
            ):
                rows = [encoded.input_ids[j] for j in batch]
                model.forward(model.collate(rows, [encoded.extra[j] for j in batch]))
            if i in marks:
                growth.append((process.memory_info().rss - start) >> 20)
    return growth, time.thread_time() - clock


def attention_tries(args: argparse.Namespace) -> None:
    """Per-pair SDPA against the attention kernel (see the module doc)."""
    import random

    from torch.nn import functional

    from rag_rerank.core.cpu_attention import cpu_attention, kernel_build

    kernel = cpu_attention()
    print(f"kernel: {kernel_build().reason}")
    print()
    print("| precision | heads x size | pairs | SDPA GFLOP/s | kernel GFLOP/s | kernel / SDPA "
          "| max \\|diff\\| SDPA | kernel |")  # fmt: skip
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    rng = random.Random(0)
    workloads = {f"8 x {n}": [n] * 8 for n in (128, 256, 512)}
    workloads["8 x 64-512"] = [rng.randint(64, 512) for _ in range(8)]
    for name, dtype in PRECISIONS:
        for heads, size in ((12, 32), (12, 64), (16, 64)):
            for label, lengths in workloads.items():
                generator = torch.Generator().manual_seed(sum(lengths))
                exact = [
                    torch.randn(sum(lengths), heads * size, generator=generator).to(dtype)
                    for _ in range(3)
                ]
                q, k, v = exact
                views = [x.view(-1, heads, size).transpose(0, 1)[None] for x in exact]

                def sdpa(views: list[torch.Tensor] = views, lengths: list[int] = lengths) -> Any:
                    out, start = [], 0
                    for length in lengths:
                        rows = slice(start, start + length)
                        pair = functional.scaled_dot_product_attention(
                            views[0][:, :, rows], views[1][:, :, rows], views[2][:, :, rows]
                        )
                        out.append(pair[0].transpose(0, 1).reshape(length, -1))
                        start += length
                    return torch.cat(out)

                forwards = {"sdpa": sdpa}
                if kernel is not None and kernel.runs(dtype, size):
                    forwards["kernel"] = functools.partial(kernel, q, k, v, lengths, heads)
                seconds = alternated(forwards, args.runs)
                flops = sum(4.0 * heads * size * n * n for n in lengths)
                reference = [x.float().view(-1, heads, size).transpose(0, 1)[None] for x in exact]
                truth = sdpa(reference)
                diffs = {f: (forwards[f]().float() - truth).abs().max().item() for f in forwards}
                rate = {f: flops / seconds[f] / 1e9 for f in forwards}
                ours = f"{rate['kernel']:.0f}" if "kernel" in rate else "-"
                ratio = f"{rate['kernel'] / rate['sdpa']:.2f}x" if "kernel" in rate else "-"
                ours_diff = f"{diffs['kernel']:.1e}" if "kernel" in diffs else "-"
                print(
                    f"| {name} | {heads} x {size} | {label} | {rate['sdpa']:.0f} | {ours} | "
                    f"{ratio} | {diffs['sdpa']:.1e} | {ours_diff} |"
                )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("part", choices=["compile", "llm", "memory", "attention"])
    parser.add_argument("--runs", type=int, default=3, help="timed alternated runs (default 3)")
    parser.add_argument("--layers", type=int, default=2, help="llm, memory: decoder layers")
    parser.add_argument("--profile", type=int, default=8, help="llm: operators shown per path")
    parser.add_argument("--requests", type=int, default=120, help="memory: requests run")
    parser.add_argument("--workdir", default="~/.cache/rag-rerank/bench")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)  # torch then runs in this thread: thread_time() counts all its work
    print(f"### {args.part} on {device_text('cpu')}; {versions()}; CPU seconds on 1 thread")
    print()
    parts = {
        "compile": compile_tries,
        "llm": llm_tries,
        "memory": memory_tries,
        "attention": attention_tries,
    }
    parts[args.part](args)
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
