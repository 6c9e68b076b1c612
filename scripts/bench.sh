#!/usr/bin/env bash
# Set up, then run the benchmarks and write bench/results.md, bench/overhead.png and the README's
# benchmark section (about 40 minutes; --no-instructions skips the ~20 minutes of valgrind counts).
# Pass --peers to compare with pytorch-ignite and PyTorch Lightning (installed here).
set -euo pipefail
cd "$(dirname "$0")/.."
extras=bench; [[ " $* " == *" --peers "* ]] && extras=bench,peers
bash scripts/setup.sh .venv ".[dev,$extras]"
# valgrind counts instructions (bench/instructions.py); without it that part is skipped
if ! command -v valgrind >/dev/null && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq valgrind >/dev/null) || echo "could not install valgrind; no instruction counts"
fi
.venv/bin/python bench/run_all.py "$@"
