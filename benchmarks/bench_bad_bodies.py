"""What a hostile request body costs the server: time to its answer and peak memory.

Each case runs in a fresh Python process (so its peak RSS is its own): the app of
``rag_rerank.server.create_app`` on a tiny model, one POST through ASGI (no socket), the status
code, the seconds to the answer, and the growth of the process's peak RSS in MB. Cases:

- ``ints``: ``/rerank`` whose ``texts`` is ~8 MiB of integers (millions of bad items);
- ``objects``: ``/v1/rerank`` whose ``documents`` is ~8 MiB of ``{}``;
- ``deep``: 100,000 nested lists;
- ``valid``: ~8 MiB of one-letter texts (2 million valid items: parsed and checked in full,
  then refused as too much work: 413), the cost of a valid body of that size.

Before the fix the first two took about a minute and gigabytes for a 422 naming one item.

Examples:
    python benchmarks/bench_bad_bodies.py                      # builds a tiny model in /tmp
    python benchmarks/bench_bad_bodies.py --model /tmp/tiny/bert
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

LIMIT = 8 * 1024 * 1024
CASES = ("ints", "objects", "deep", "valid")


def body(case: str) -> tuple[str, bytes]:
    """The route and a body just under :data:`LIMIT` bytes for ``case``."""
    if case == "ints":
        items = b"0," * ((LIMIT - 64) // 2)
        return "/rerank", b'{"query":"q","texts":[' + items + b"0]}"
    if case == "objects":
        items = b"{}," * ((LIMIT - 64) // 3)
        return "/v1/rerank", b'{"query":"q","documents":[' + items + b"{}]}"
    if case == "deep":
        return "/rerank", b'{"query":"q","texts":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    items = b'"a",' * ((LIMIT - 64) // 4)  # as many items as "ints", all valid
    return "/rerank", b'{"query":"q","texts":[' + items + b'"a"]}'


def run_case(case: str, model: str) -> dict[str, object]:
    """One POST of ``case`` in this process; status, seconds, peak RSS growth in MB."""
    import asyncio

    import httpx

    from rag_rerank import Reranker
    from rag_rerank.server import create_app

    reranker = Reranker(model, show_progress=False, cache=None)
    app = create_app(reranker, max_documents=10**7, max_body_bytes=LIMIT)
    route, content = body(case)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    async def post() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(
                route, content=content, headers={"content-type": "application/json"}, timeout=600
            )
            return response.status_code

    start = time.perf_counter()
    status = asyncio.run(post())
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reranker.close()
    return {
        "case": case,
        "bytes": len(content),
        "status": status,
        "seconds": round(seconds, 2),
        "peak_rss_growth_mb": round((peak - before) / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a cross-encoder folder (default: a tiny random one)")
    parser.add_argument("--case", choices=CASES, help="run one case in this process")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.model)))
        return
    model = args.model
    if model is None:
        from rag_rerank.testing import build_all

        model = str(build_all(Path(tempfile.mkdtemp()))["bert"])
    for case in CASES:
        result = subprocess.run(
            [sys.executable, __file__, "--case", case, "--model", model],
            capture_output=True,
            text=True,
            check=True,
        )
        print(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
