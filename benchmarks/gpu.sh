#!/usr/bin/env bash
# The GPU benchmark and GPU tests on a machine with no network (the device tool's H100/H200).
#
#   bash benchmarks/gpu.sh wheels             # here, with network: FlagEmbedding and what it
#                                             # imports that such a machine lacks, into .whl/
#   bash benchmarks/gpu.sh run [WORKLOAD...]  # there: install .whl/, run tests/gpu, then the
#                                             # bge-reranker-v2-m3-shape benchmark (bf16)
#   bash benchmarks/gpu.sh llm                # there: the LLM reranker benchmark, Qwen3-Reranker-
#                                             # 0.6B shape, all 28 layers, bf16 (needs no .whl/)
#
# The device tool sends the working tree; name .whl in its `carry`. WORKLOAD is latency,
# throughput or scaling (default: all three; one command may only run 10 minutes, so split them
# across calls if needed). Reports go to $OUT (or ./gpu-out) as gpu-<workload>.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# FlagEmbedding 1.4.2 imports datasets, which imports dill and multiprocess; the GPU image has the
# rest (torch, transformers, sentence-transformers, accelerate, peft, pandas, pyarrow, xxhash).
WHEELS=(flagembedding==1.4.2 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19)

case "${1:-}" in
wheels)
    mkdir -p .whl
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
    ;;
run)
    shift
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
    out="${OUT:-gpu-out}"
    mkdir -p "$out"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
    # A failing GPU test is reported, and the benchmark still runs.
    python3 -m pytest tests/gpu -q -p no:cacheprovider 2>&1 | tee "$out/gpu-tests.txt" ||
        echo "tests/gpu FAILED: see $out/gpu-tests.txt"
    workloads=("$@")
    [ ${#workloads[@]} -gt 0 ] || workloads=(latency throughput scaling)
    for workload in "${workloads[@]}"; do
        python3 benchmarks/bench_rerank.py --shape bge-m3 --device cuda --before \
            --workload "$workload" --workdir /tmp/rr-bench 2>&1 | tee "$out/gpu-$workload.md"
    done
    ;;
llm)
    export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
    out="${OUT:-gpu-out}"
    mkdir -p "$out"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
    python3 benchmarks/bench_llm.py --layers 28 --device cuda --repeats 10 \
        --workdir /tmp/rr-bench-llm 2>&1 | tee "$out/gpu-llm.md"
    ;;
*)
    sed -n '2,13p' "$0"
    exit 2
    ;;
esac
