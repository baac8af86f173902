#!/usr/bin/env bash
# The GPU check of issue 18, from a fresh clone on any machine with an NVIDIA GPU (about 8 minutes):
#
#   bash scripts/gpu_check.sh OUTDIR              # OUTDIR defaults to $OUT
#   bash scripts/gpu_check.sh --dry-run OUTDIR    # no GPU needed: what CI runs (tests/test_gpu_check.py)
#
# 1. Setup is the README's: `make setup` creates .venv/ and pip-installs the pins of pyproject.toml
#    (re-installing only when pyproject.toml changed). torch is pinned to 2.13.0: on Linux x86_64 the
#    PyPI wheel of that version is the CUDA build (its CUDA runtime and cuDNN come as nvidia-* wheels,
#    a few GB), which is what this check expects; a .venv holding a CPU build (2.13.0+cpu) makes the
#    first step fail, saying how to replace it. --no-setup skips this (an environment that is already
#    installed, e.g. a machine without network; PY=/path/to/python picks its interpreter).
# 2. scripts/gpu_check.py does the rest: the tests marked `cuda`, lecture 7's language model at the full
#    budget, bench_cells on CUDA, lecture 7 end to end at the default and full budgets. Every number goes
#    to OUTDIR/gpu_check.json, a short summary to OUTDIR/summary.txt (see that script's docstring).
set -euo pipefail
cd "$(dirname "$0")/.."
setup=1
args=()
for a in "$@"; do
    if [ "$a" = "--no-setup" ]; then setup=0; else args+=("$a"); fi
done
if [ "$setup" = 1 ]; then
    make setup
fi
exec "${PY:-.venv/bin/python}" scripts/gpu_check.py ${args[@]+"${args[@]}"}
