#!/usr/bin/env bash
# Set up, then run both benchmarks and write bench/results.md, bench/overhead.png and the README's
# benchmark section. Pass --peers to compare with pytorch-ignite and PyTorch Lightning (installed here).
set -euo pipefail
cd "$(dirname "$0")/.."
extras=bench; [[ " $* " == *" --peers "* ]] && extras=bench,peers
bash scripts/setup.sh .venv ".[dev,$extras]"
.venv/bin/python bench/run_all.py "$@"
