"""Side-by-side reranker speed benchmark (see rag_rerank/bench.py for what it measures).

Examples:
    python benchmarks/bench_rerank.py --shape minilm-l6 --device cpu --int8 --scale 0.05
    python benchmarks/bench_rerank.py --shape bge-m3 --device cuda  # H100/H200, bf16
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag_rerank.bench import add_arguments, main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
