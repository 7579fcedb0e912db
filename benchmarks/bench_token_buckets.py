"""What padding packed batches to a multiple of ``TOKEN_BUCKET`` tokens costs (issue 25, item 8).

Times the padding-free CPU forward of one batch at its exact token count and padded, alternating,
for a few batch sizes, on the benchmarks' random MiniLM-L6 shape (6 layers, hidden 384):

    python benchmarks/bench_token_buckets.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

from harness import SHAPES, build_model
from rag_rerank import Reranker
from rag_rerank.core.packed import TOKEN_BUCKET

BATCHES = ((1, 70), (5, 110), (17, 110))  # (pairs, words per document)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        build_model(SHAPES["minilm-l6"], Path(folder))
        for dtype in ("fp32", "bf16"):
            rr = Reranker(folder, device="cpu", dtype=dtype, cache=None, show_progress=False)
            loaded = rr.engine.model
            encoder = loaded.packed_encoder
            assert encoder is not None
            for pairs, words in BATCHES:
                rows = loaded.tokenizer(["q"] * pairs, [" ".join(["river"] * words)] * pairs)
                batch = loaded.collate(rows["input_ids"], rows.get("token_type_ids"))
                times: dict[int, list[float]] = {1: [], TOKEN_BUCKET: []}
                with torch.inference_mode():
                    for repeat in range(23):
                        for bucket in times:
                            encoder.bucket = bucket
                            start = time.perf_counter()
                            loaded.forward(batch)
                            if repeat >= 2:  # the first two build each shape's code
                                times[bucket].append(time.perf_counter() - start)
                exact, padded = (statistics.median(t) * 1e3 for t in times.values())
                print(
                    f"{dtype} {batch['input_ids'].shape[1]} tokens: exact {exact:.1f} ms, "
                    f"padded {padded:.1f} ms ({padded / exact:.2f}x)",
                    flush=True,
                )
            rr.close()


if __name__ == "__main__":
    main()
