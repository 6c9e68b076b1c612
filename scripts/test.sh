#!/usr/bin/env bash
# Set up, then run every check: the package is what the notebooks export, the notebooks run
# (nbdev_test), the test suite passes (pytest, real-browser tests included), and the quick benchmark runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -x /usr/bin/chromium ]; then  # the browser tests drive Debian's Chromium
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export PATH="$PWD/.venv/bin:$PATH"

echo "== nbdev_export leaves the package unchanged"
nbdev_export
if [ -d .git ] && ! git diff --quiet -- callbacks_widget; then
  git --no-pager diff --stat -- callbacks_widget
  echo "callbacks_widget/ differs from what nbs/ exports: run nbdev_export and commit" >&2
  exit 1
fi

echo "== nbdev_test"
nbdev_test --path nbs --n_workers 2

echo "== pytest"
python -m pytest tests -q -p no:cacheprovider

if [ -f bench/loop_overhead.py ]; then
  echo "== quick benchmark"
  python bench/loop_overhead.py --quick
fi
