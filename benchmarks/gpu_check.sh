#!/usr/bin/env bash
# The GPU check (docs/containers.md): fingerprint and reference profiles, the CUDA images' view of
# the GPUs, one workload's step time per framework against AlgoPerf's A100 figures, and the
# clock's wait for the device, in one JSON file. Under 8 minutes on a GPU machine.
#
#   benchmarks/gpu_check.sh [--cpu] [--output FILE] [--workload NAME] [--steps N]
#
# --cpu: the dry run on a CPU machine (CI). Exit 1 if a check failed. The logic is in
# benchmarks/gpu_check.py; PYTHON picks the interpreter (default: the checkout's .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
exec "$PYTHON" benchmarks/gpu_check.py "$@"
