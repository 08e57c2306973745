#!/bin/bash
# Run benchmarks/bench.py on a GPU machine from the repo root: bash benchmarks/run_gpu.sh [bench.py arguments]
# Wheels for what the machine lacks (diffusers 0.42.1, importlib_metadata) are taken from .whl-bench/ when present:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl-bench diffusers==0.42.1 importlib_metadata==8.7.0
# The package is mapped as `videodit` without importing the ComfyUI nodes (only videodit.model is needed).
set -o pipefail
if compgen -G ".whl-bench/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl-bench/*.whl || exit 1
fi
mkdir -p /tmp/pkg/videodit && touch /tmp/pkg/videodit/__init__.py && ln -sfn "$PWD/model" /tmp/pkg/videodit/model
export PYTHONPATH=/tmp/pkg:/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv | tee "$out/gpu.txt"
python3 benchmarks/bench.py --out "$out" "$@" 2>&1 | tee "$out/bench.log"
