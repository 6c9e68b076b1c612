#!/usr/bin/env bash
# Set up, then run both benchmarks and write bench/results.md, bench/overhead.png and the README's
# benchmark section. Pass --peers to compare with pytorch-ignite and PyTorch Lightning (installed here).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
extras=bench; [[ " $* " == *" --peers "* ]] && extras=bench,peers
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==${TORCH_VERSION:-2.13.0}" -e ".[$extras]"
.venv/bin/python bench/run_all.py "$@"
