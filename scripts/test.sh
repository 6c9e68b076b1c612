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

echo "== runtime install only (no nbdev, no fastcore) with ipywidgets 7, as on Colab"
v=.venv-ipywidgets7
[ -x $v/bin/python ] || "${PYTHON:-python3}" -m venv $v
$v/bin/python -m pip install -q --disable-pip-version-check "torch==${TORCH_VERSION:-2.13.0}"
$v/bin/python -m pip install -q --disable-pip-version-check "ipywidgets>=7.6,<8" pytest -e .
if $v/bin/python -c "import nbdev" 2>/dev/null || $v/bin/python -c "import fastcore" 2>/dev/null; then
  echo "the runtime install pulled in nbdev or fastcore" >&2; exit 1
fi
$v/bin/python -m pytest tests/test_runner.py tests/test_data.py tests/test_liveplot.py -q -p no:cacheprovider -W ignore::DeprecationWarning

if [ -f bench/loop_overhead.py ]; then
  echo "== quick benchmark"
  python bench/loop_overhead.py --quick
fi
