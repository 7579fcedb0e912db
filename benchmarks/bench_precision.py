"""Precision benchmark: what bf16 and dynamic int8 do to a trained reranker's logits and rankings
on the CPU, against fp32, on the demo questions over the whole demo corpus (253 passages).

A random test model's logits sit close together, so its precision figures mean little; this runs
on a model with real margins: the small trained test model (built and cached by
``rag_rerank.training.fixture``, as the test suite's ``trained_dir``), or any ``--model``, such as
the demo reranker ``rag-rerank demo --train`` caches. Figures per precision: max logit drift,
top-1 same, top-5 overlap, exact top-5 order.

Examples:
    python benchmarks/bench_precision.py                      # the cached small trained model
    python benchmarks/bench_precision.py --model ~/.cache/rag-rerank/demo-reranker
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the test model)")
    parser.add_argument(
        "--cache",
        default=str(Path(tempfile.gettempdir()) / "rag-rerank-bench"),
        help="where the test model is built and kept (default: %(default)s)",
    )
    parser.add_argument(
        "--dtypes", default="bf16,int8", help="precisions against fp32 (default: %(default)s)"
    )
    args = parser.parse_args()

    from rag_rerank.rag.demo import load_demo_corpus, load_demo_questions
    from rag_rerank.training.demo import describe
    from rag_rerank.training.fixture import build_trained_test_model, precision_drift

    model = args.model or str(build_trained_test_model(args.cache, show_progress=True))
    questions = [q.question for q in load_demo_questions()]
    documents = [p.text for p in load_demo_corpus()]
    print(f"model: {model}")
    made = describe(model)
    if made:
        print(made)
    print(f"{len(questions)} demo questions x {len(documents)} passages, CPU\n")
    print(
        f"{'dtype':<6} {'max drift':>10} {'fp32 spread':>12} {'top-1 same':>11} "
        f"{'top-5 overlap':>14} {'exact top-5':>12}"
    )
    for d in precision_drift(model, questions, documents, args.dtypes.split(",")):
        print(
            f"{d.dtype:<6} {d.max_logit_drift:>10.3f} {d.logit_spread:>12.2f} "
            f"{d.top1_same:>6}/{d.queries:<4} {d.top5_overlap:>14.2f} {d.top5_exact:>7}/{d.queries}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
