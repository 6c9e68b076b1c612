#!/usr/bin/env bash
# Set up, then run every check: the package is what the notebooks export, the notebooks run
# (nbdev_test), the quick benchmarks run, the runtime install works with ipywidgets 7, and the test suite
# passes (pytest, real-browser and two-process tests included; the browser tests of the other views
# use the ipywidgets-7 venv's JupyterLab 3.6 and Notebook 6.5, Voila, and the npm packages in .cache/).
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

echo "== runtime install only (no nbdev, no fastcore) with ipywidgets 7, as on Colab, and its front ends"
# JupyterLab 3.6 and Notebook 6.5 in the same venv: tests/test_views.py runs them from it
v=.venv-ipywidgets7
bash scripts/setup.sh $v ".[ipywidgets7,frontends7]"
if $v/bin/python -c "import nbdev" 2>/dev/null || $v/bin/python -c "import fastcore" 2>/dev/null; then
  echo "the runtime install pulled in nbdev or fastcore" >&2; exit 1
fi
$v/bin/python -m pytest tests/test_runner.py tests/test_data.py tests/test_liveplot.py tests/test_figure.py tests/test_faults.py tests/test_experiments.py -q -p no:cacheprovider -W ignore::DeprecationWarning

echo "== local copies of the widget manager's npm packages (tests/test_views.py serves them to an HTML export)"
js=.cache/widget-js
specs="@jupyter-widgets/html-manager@1.0.15 requirejs@2.3.8 anywidget@$(python -c 'import anywidget; print(anywidget.__version__)')"
if [ "$(cat $js/specs 2>/dev/null)" != "$specs" ]; then
  command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
  rm -rf $js && mkdir -p $js/node_modules
  for spec in $specs; do  # the package's files only: its dist is bundled, no dependencies needed
    name=${spec%@*}
    tgz=$(cd $js && npm pack --silent "$spec")
    mkdir -p "$js/node_modules/$name" && tar xzf "$js/$tgz" -C "$js/node_modules/$name" --strip-components=1 && rm "$js/$tgz"
  done
  echo "$specs" > $js/specs
fi

echo "== pytest (last, so its summary closes the run)"
python -m pytest tests -q -p no:cacheprovider
