"""Side-by-side reranker speed benchmark (see benchmarks/harness/ for what it measures).

Examples:
    python benchmarks/bench_rerank.py --shape minilm-l6 --device cpu --int8 --scale 0.05
    python benchmarks/bench_rerank.py --shape bge-m3 --device cuda  # H100/H200, bf16
    python benchmarks/bench_rerank.py --model FOLDER --int8  # your own cross-encoder
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The harness package sits beside this script; rag_rerank is imported from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import add_arguments, main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
