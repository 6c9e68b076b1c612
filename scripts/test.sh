#!/usr/bin/env bash
# Set up, then run every check: the package is what the notebooks export, the notebooks run
# (nbdev_test), the quick benchmarks run, the runtime install works with ipywidgets 7, and the test suite
# passes (pytest, real-browser and two-process tests included).
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

echo "== quick benchmarks (print, assert nothing)"
python bench/loop_overhead.py --quick
python bench/plot_update.py --quick
python bench/instructions.py --child c 1 640   # what bench/instructions.py has valgrind count, run once without it

echo "== runtime install only (no nbdev, no fastcore) with ipywidgets 7, as on Colab"
v=.venv-ipywidgets7
bash scripts/setup.sh $v ".[ipywidgets7]"
if $v/bin/python -c "import nbdev" 2>/dev/null || $v/bin/python -c "import fastcore" 2>/dev/null; then
  echo "the runtime install pulled in nbdev or fastcore" >&2; exit 1
fi
$v/bin/python -m pytest tests/test_runner.py tests/test_data.py tests/test_liveplot.py -q -p no:cacheprovider -W ignore::DeprecationWarning

echo "== pytest (last, so its summary closes the run)"
python -m pytest tests -q -p no:cacheprovider
