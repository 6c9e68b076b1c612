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
python bench/picture.py --reps 3 --fits 100
python bench/instructions.py --child c 1 640   # what bench/instructions.py has valgrind count, run once without it

echo "== runtime install only (no nbdev, no fastcore) with ipywidgets 7.8, and its front ends"
# JupyterLab 3.6 and Notebook 6.5 in the same venv: tests/test_views.py runs them from it
v=.venv-ipywidgets7
bash scripts/setup.sh $v ".[ipywidgets7,frontends7]"
if $v/bin/python -c "import nbdev" 2>/dev/null || $v/bin/python -c "import fastcore" 2>/dev/null; then
  echo "the runtime install pulled in nbdev or fastcore" >&2; exit 1
fi
$v/bin/python -m pytest tests/test_runner.py tests/test_data.py tests/test_liveplot.py tests/test_figure.py tests/test_faults.py tests/test_experiments.py -q -p no:cacheprovider -W ignore::DeprecationWarning

echo "== Colab's versions: installing the package keeps them; headless tests and the Quick start there"
# Colab ships these preinstalled (settings.ini's colab_requirements): they go in first, then the package, which must
# change none of them. The tests that read widget messages through a comm of their own (marker own_comm) need
# ipywidgets >= 7.8, so they are left out there.
v=.venv-colab
pins=$(sed -n 's/^colab_requirements = //p' settings.ini)
[ -x $v/bin/python ] || "${PYTHON:-python3}" -m venv $v
$v/bin/python -m pip install -q --disable-pip-version-check "torch==${TORCH_VERSION:-2.13.0}" $pins pytest 2>&1 | { grep -v '^WARNING: Location' || true; }
$v/bin/python -m pip install -q --disable-pip-version-check -e . 2>&1 | { grep -v '^WARNING: Location' || true; }
$v/bin/python -c "
import importlib.metadata as m, sys
changed = [f'{p} is now {m.version(p.split(\"==\")[0])}' for p in sys.argv[1:] if m.version(p.split('==')[0]) != p.split('==')[1]]
sys.exit('installing callbacks_widget changed Colab\'s versions: ' + ', '.join(changed) if changed else 0)" $pins
$v/bin/python -m pytest tests/test_picture.py tests/test_runner.py tests/test_data.py tests/test_faults.py tests/test_figure.py \
  tests/test_experiments.py tests/test_readme.py::test_quick_start_runs_as_written -q -p no:cacheprovider -W ignore::DeprecationWarning \
  -m "not own_comm"

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
