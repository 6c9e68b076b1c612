"""The live plot in every other view, in a real browser (issue 11, tests 2-4).

Drives the system Chromium (/usr/bin/chromium) through Playwright against:

  * the ipywidgets-7 front ends, run from their own venv (`.venv-ipywidgets7`, extras
    `ipywidgets7,frontends7`; made by scripts/test.sh): JupyterLab 3.6 with
    jupyterlab_widgets 1.x, and the classic Notebook 6.5 with widgetsnbextension 3.6.
    `run.live_plot` as a cell's last expression shows the panel and the figure, the
    'train loss' curve grows while a fit runs, and a click on a panel switch reaches Python;
  * Voila (default mode) serving a notebook that fits: the final curves are drawn and the
    panel says 'finished';
  * a notebook executed by nbconvert with its widget state saved, exported to HTML and
    opened with no kernel: the widget manager (`@jupyter-widgets/html-manager`), require.js
    and the widget modules are answered from local copies of their npm packages (made by
    scripts/test.sh in `.cache/widget-js`) and no request leaves the machine; the final
    curves are drawn. The size of the saved widget state is written to
    tests/browser_screenshots/views-widget-state.json.

Curves are read from the plotly graph's own data in the page (the graph div's `.data`), not
from pixels; no JavaScript error may be logged. Screenshots and console logs go to
tests/browser_screenshots/ (prefix `views-`).

Run:  .venv/bin/python -m pytest tests/test_views.py -x -q
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import browser_support as bs  # noqa: E402
from browser_support import chromium_path  # noqa: E402,F401 -- a fixture
from callbacks_widget.picture import PICTURE_MARK  # noqa: E402

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
VENV7 = Path(os.environ.get("CALLBACKS_WIDGET_VENV7", REPO / ".venv-ipywidgets7"))
WIDGET_JS = Path(os.environ.get("CALLBACKS_WIDGET_JS", REPO / ".cache" / "widget-js"))
SCREENSHOTS = Path(__file__).parent / "browser_screenshots"
CASE_TIMEOUT = 480  # seconds, hard bound per case (watchdog kills browser + server)
CELL_TIMEOUT = 180  # seconds, bound for one fit cell (a shared, loaded machine can be slow)
EPOCHS = 2

# ----------------------------------------------------------------------------------
# The notebook under test
# ----------------------------------------------------------------------------------

PRELUDE = """\
import os, sys
import ipywidgets, callbacks_widget
print('KERNEL_PYTHON', sys.executable)
print('KERNEL_PID', os.getpid())
print('LIBRARY', callbacks_widget.__file__)
print('IPYWIDGETS', ipywidgets.__version__)
"""

# The demo's learner, built here rather than by `demo_setup`, whose runner would add a second
# live plot to the page and to the saved widget state.
SETUP = """\
import time
from callbacks_widget.all import *

class Slow(Callback):
    "10 ms per batch: a fit lasts long enough to watch it redraw."
    def after_batch(self): time.sleep(0.01)

torch.manual_seed(0)
x_train, y_train, x_valid, y_valid = get_data()
data = DataBunch(*get_dls(Dataset(x_train, y_train), Dataset(x_valid, y_valid), 64), c=int(y_train.max()) + 1)
learn = Learner(*get_model(data, lr=0.5), F.cross_entropy, data)
run = Runner(cb_funcs=[partial(AvgStatsCallback, accuracy), Slow, partial(LivePlotCallback, every=0.2)])
print('BATCHES', len(learn.data.train_dl), len(learn.data.valid_dl))
run.live_plot
"""

FIT = f"run.fit({EPOCHS}, learn)\n"
CHECK = "print('AVG_STATS_ENABLED', run.avg_stats.enabled)\n"
C_PRELUDE, C_SETUP, C_FIT, C_CHECK = range(4)
NOTEBOOK_CELLS = [PRELUDE, SETUP, FIT, CHECK]

TRAIN, METRICS = "train loss", ("train_accuracy", "valid_accuracy")
CALLBACKS = ["train_eval", "avg_stats", "slow", "live_plot"]   # switch descriptions
TOGGLED = "avg_stats"


# ----------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------

def needs(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.fail(f"{path} not found: {what} (scripts/test.sh makes it) -- not skipped on purpose.")
    return path


def wait_until(cond, timeout: float, every: float = 0.2):
    """The first truthy value of `cond()` within `timeout` seconds (exceptions count as falsy), else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception:
            pass
        time.sleep(every)
    return None


def traces(page, where) -> dict:
    return {t["name"]: t for t in (page.evaluate(bs.JS_TRACES, where) or [])}


def assert_final_curves(tr: dict, n_train: int, epochs: int = EPOCHS):
    """Every batch of the fit on the train-loss trace, one point per epoch on each metric trace."""
    assert TRAIN in tr, f"no {TRAIN!r} trace; traces: {list(tr)}"
    assert tr[TRAIN]["nx"] == tr[TRAIN]["fy"] == tr[TRAIN]["drawn"] == epochs * n_train, tr[TRAIN]
    assert tr[TRAIN]["last"] == epochs * n_train, tr[TRAIN]
    for name in METRICS:
        assert name in tr, f"no {name!r} trace; traces: {list(tr)}"
        assert tr[name]["fy"] == epochs, tr[name]


def one_figure(page, where, graphs: int = 1) -> dict:
    """What `where` shows: `graphs` live graphs and no picture (their pictures are there, hidden)."""
    f = bs.figures(page, where, PICTURE_MARK)
    return {"graphs": f["graphs"], "pictures": f["pictures"], "hidden": f["hidden"]}


def record_failed_requests(page) -> list:
    """The URLs of the page's requests that fail (filled in as they fail)."""
    failed = []
    page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
    return failed


def no_js_errors(label: str, errors: list, ignored: list, failed: list, local: str):
    """No JavaScript error, and no failed request to `local` (our server, our files).
    Chromium logs each failed request as a console error 'Failed to load resource': those of
    requests elsewhere (a CDN's MathJax with no network, a require.js probe) are kept apart,
    and `failed` lists them."""
    network = [e for e in errors if "Failed to load resource" in e]
    (SCREENSHOTS / f"{label}-ignored-console-errors.json").write_text(
        json.dumps({"ignored": ignored, "network": network, "failed_requests": failed}, indent=1))
    assert not [u for u in failed if u.startswith(local)], f"requests to {local} failed: {failed}"
    errors = [e for e in errors if e not in network]
    assert not errors, "JavaScript errors in the browser:\n" + "\n".join(errors)


def screenshots(page, label: str):
    """`shot(name)` writes the page to tests/browser_screenshots/<label>-NN-<name>.png."""
    SCREENSHOTS.mkdir(exist_ok=True)
    for old in SCREENSHOTS.glob(f"{label}-*.png"):
        old.unlink()
    step = iter(range(1, 100))
    return lambda name: page.screenshot(path=str(SCREENSHOTS / f"{label}-{next(step):02d}-{name}.png"), timeout=15_000)


def library_is_ours(text: str):
    """The kernel imports the package this pytest process imports (so PYTHONPATH=/a/copy tests that copy)."""
    import callbacks_widget
    library = re.search(r"LIBRARY (\S+)", text).group(1)
    assert Path(library).resolve() == Path(callbacks_widget.__file__).resolve(), (
        f"the kernel imports {library}, pytest imports {callbacks_widget.__file__}")


# ----------------------------------------------------------------------------------
# 1. ipywidgets 7: JupyterLab 3.6 and the classic Notebook 6.5
# ----------------------------------------------------------------------------------

FRONT_ENDS7 = {"lab3": ("lab", bs.LAB), "nb6": ("notebook6", bs.CLASSIC)}


@pytest.mark.parametrize("front_end", list(FRONT_ENDS7))
def test_ipywidgets7_front_end(front_end, chromium_path, tmp_path):
    flavor, dom = FRONT_ENDS7[front_end]
    python = needs(VENV7 / "bin" / "python", "the ipywidgets-7 venv with JupyterLab 3.6 and Notebook 6.5")
    label = f"views-{front_end}"
    root = tmp_path / "root"
    root.mkdir()
    bs.write_notebook(root / "live_plot.ipynb", NOTEBOOK_CELLS)
    with bs.jupyter_server(flavor, root, tmp_path / "jupyter", python=str(python), start_timeout=120) as server, \
            bs.chromium_page(label, lambda: bs.stop_server(server, grace=1), CASE_TIMEOUT, SCREENSHOTS,
                             chromium_path) as (page, errors, ignored):
        shot, failed = screenshots(page, label), record_failed_requests(page)
        page.goto(server.notebook_url("live_plot.ipynb"), wait_until="domcontentloaded", timeout=60_000)
        page.locator(dom.cell).nth(len(NOTEBOOK_CELLS) - 1).wait_for(timeout=60_000)
        shot("opened")

        # the kernel is the ipywidgets-7 venv's, importing our package
        out = bs.run_first_cell(page, C_PRELUDE, "KERNEL_PYTHON", server, dom=dom)
        server.kernel_pids.append(int(re.search(r"KERNEL_PID (\d+)", out).group(1)))
        assert Path(re.search(r"KERNEL_PYTHON (\S+)", out).group(1)).parent == python.parent, out
        assert re.search(r"IPYWIDGETS 7\.", out), out
        library_is_ours(out)

        # `run.live_plot` as the last expression: panel and figure
        setup_out = bs.run_cell(page, C_SETUP, timeout=CELL_TIMEOUT, dom=dom, expect="BATCHES")
        shot("setup")
        assert "Error" not in setup_out, f"the setup cell failed:\n{setup_out}"
        n_train = int(re.search(r"BATCHES (\d+) (\d+)", setup_out).group(1))
        bs.cell(page, C_SETUP, dom).locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        for name in CALLBACKS:
            bs.checkbox(page, C_SETUP, name, dom).wait_for(timeout=30_000)
        where = [dom.cell, C_SETUP]

        # the train-loss curve grows while the fit runs
        seen, shown = set(), []
        assert wait_until(lambda: one_figure(page, where)["hidden"] == 1, 30), one_figure(page, where)
        before = bs.start_cell(page, C_FIT, dom=dom)
        deadline = time.monotonic() + CELL_TIMEOUT
        while time.monotonic() < deadline:
            running = bs.is_running(page, C_FIT, dom)
            n = (traces(page, where).get(TRAIN) or {}).get("nx", 0)
            shown.append(one_figure(page, where))
            if running and 0 < n < EPOCHS * n_train:
                seen.add(n)
            if not running and bs.prompt(page, C_FIT, dom) not in ("", before):
                break
            time.sleep(0.1)
        bs.wait_cell_done(page, C_FIT, before, timeout=10, dom=dom)
        shot("fit-done")
        assert len(seen) >= 2, f"while the fit ran, {TRAIN!r} showed these point counts only: {sorted(seen)}"
        assert wait_until(lambda: traces(page, where)[TRAIN]["nx"] == EPOCHS * n_train, 30), traces(page, where)
        assert_final_curves(traces(page, where), n_train)
        assert wait_until(lambda: "finished" in bs.output_text(page, C_SETUP, dom), 30), bs.output_text(page, C_SETUP, dom)
        shown.append(one_figure(page, where))
        assert all(f == {"graphs": 1, "pictures": 0, "hidden": 1} for f in shown), shown   # one figure, during and after the fit

        # a click on a switch reaches Python
        bs.checkbox(page, C_SETUP, TOGGLED, dom).click()
        assert not bs.checkbox(page, C_SETUP, TOGGLED, dom).is_checked()
        time.sleep(1.0)  # the kernel gets the change before the next execute request
        assert f"{TOGGLED.upper()}_ENABLED False" in bs.run_cell(page, C_CHECK, timeout=60, dom=dom,
                                                                 expect="_ENABLED")
        shot("clicked")
        no_js_errors(label, errors, ignored, failed, server.base)


# ----------------------------------------------------------------------------------
# 2. Voila
# ----------------------------------------------------------------------------------

def test_voila(chromium_path, tmp_path):
    if subprocess.run([sys.executable, "-c", "import voila"], capture_output=True).returncode:
        pytest.fail("voila is not installed in this venv (dev extra) -- not skipped on purpose.")
    label = "views-voila"
    root = tmp_path / "root"
    root.mkdir()
    bs.write_notebook(root / "live_plot.ipynb", [PRELUDE, SETUP, FIT])
    with bs.jupyter_server("voila", root, tmp_path / "jupyter", notebook="live_plot.ipynb",
                           start_timeout=120) as server, \
            bs.chromium_page(label, lambda: bs.stop_server(server, grace=1), CASE_TIMEOUT, SCREENSHOTS,
                             chromium_path) as (page, errors, ignored):
        shot, failed = screenshots(page, label), record_failed_requests(page)
        page.goto(server.notebook_url("live_plot.ipynb"), wait_until="domcontentloaded",
                  timeout=CELL_TIMEOUT * 1000)
        text = wait_until(lambda: (t := page.inner_text("body")) and "KERNEL_PID" in t and t, CELL_TIMEOUT)
        assert text, f"voila showed no output\n{server.log_tail()}"
        server.kernel_pids.append(int(re.search(r"KERNEL_PID (\d+)", text).group(1)))
        library_is_ours(text)
        n_train = int(re.search(r"BATCHES (\d+) (\d+)", text).group(1))
        page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        wait_until(lambda: "finished" in page.inner_text("body"), 60)
        wait_until(lambda: traces(page, ["body", 0])[TRAIN]["nx"] > 0, 30)
        shot("shown")
        assert "finished" in page.inner_text("body"), page.inner_text("body")
        assert_final_curves(traces(page, ["body", 0]), n_train)
        assert wait_until(lambda: one_figure(page, ["body", 0]) == {"graphs": 1, "pictures": 0, "hidden": 1}, 30), one_figure(page, ["body", 0])
        no_js_errors(label, errors, ignored, failed, server.base)


# ----------------------------------------------------------------------------------
# 3. nbconvert: executed with widget state, exported to HTML, opened with no kernel
# ----------------------------------------------------------------------------------

PAGE_URL = "http://export.invalid/live_plot.html"
CDN_HOSTS = {"unpkg.com": "", "cdn.jsdelivr.net": "/npm"}     # host: path prefix before <package>@<range>
REQUIRE_JS = "cdnjs.cloudflare.com/ajax/libs/require.js/"


def local_file(url: str) -> Path | None:
    """The file of the local npm cache that answers a CDN request, or None."""
    u = urlparse(url)
    if url.split("://", 1)[-1].startswith(REQUIRE_JS):
        return WIDGET_JS / "node_modules" / "requirejs" / "require.js"
    if u.hostname not in CDN_HOSTS or not u.path.startswith(CDN_HOSTS[u.hostname] + "/"):
        return None
    m = re.match(r"/((?:@[^/]+/)?[^/@]+)@[^/]+/(.+)", u.path[len(CDN_HOSTS[u.hostname]):])
    if not m:
        return None
    package = WIDGET_JS / "node_modules" / m.group(1)
    for f in (package / m.group(2), package / (m.group(2) + ".js")):
        if f.is_file() and f.resolve().is_relative_to(package.resolve()):
            return f
    return None


def nbconvert(*args: str, cwd: Path, env: dict):
    r = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=CELL_TIMEOUT * 2)
    assert r.returncode == 0, f"nbconvert {args} failed:\n{r.stdout}\n{r.stderr}"


# two more live plots: three saved with widget state hold plotly.js once
MORE_PLOTS = [f"run{k} = Runner(cb_funcs=LivePlotCallback)\nrun{k}.fit(1, learn)\nrun{k}.live_plot\n" for k in (2, 3)]


def test_saved_widget_state_html(chromium_path, tmp_path):
    needs(WIDGET_JS / "node_modules" / "@jupyter-widgets" / "html-manager" / "dist" / "embed-amd.js",
          "local copies of the widget manager's npm packages")
    label = "views-html"
    env = bs.isolated_jupyter_env(tmp_path / "jupyter")
    bs.write_notebook(tmp_path / "live_plot.ipynb", [PRELUDE, SETUP, FIT, *MORE_PLOTS])
    nbconvert("--to", "notebook", "--execute", "--ExecutePreprocessor.store_widget_state=True",
              f"--ExecutePreprocessor.timeout={CELL_TIMEOUT}", "--output", "executed.ipynb",
              "live_plot.ipynb", cwd=tmp_path, env=env)
    executed = tmp_path / "executed.ipynb"
    nb = json.loads(executed.read_text())
    outputs = "".join(t for c in nb["cells"] for o in c.get("outputs", []) for t in o.get("text", []))
    library_is_ours(outputs)
    n_train = int(re.search(r"BATCHES (\d+) (\d+)", outputs).group(1))
    state = nb["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json")
    assert state and state["state"], "nbconvert saved no widget state"
    sizes = {"notebook_bytes": executed.stat().st_size,
             "widget_state_bytes": len(json.dumps(nb["metadata"]["widgets"]).encode()),
             "widget_models": len(state["state"])}
    SCREENSHOTS.mkdir(exist_ok=True)
    (SCREENSHOTS / f"{label}-widget-state.json").write_text(json.dumps(sizes, indent=1))
    nbconvert("--to", "html", "executed.ipynb", cwd=tmp_path, env=env)
    html = (tmp_path / "executed.html").read_bytes()

    served, blocked = [], []

    def answer(route):
        url = route.request.url
        if url == PAGE_URL:
            return route.fulfill(status=200, content_type="text/html", body=html)
        f = local_file(url)
        if f is None:  # nothing leaves the machine
            blocked.append(url)
            return route.abort("blockedbyclient")
        served.append(url)
        kind = "application/javascript" if f.suffix == ".js" else None
        return route.fulfill(status=200, path=str(f), **({"content_type": kind} if kind else {}))

    with bs.chromium_page(label, lambda: None, CASE_TIMEOUT, SCREENSHOTS, chromium_path) as (page, errors, ignored):
        shot, failed = screenshots(page, label), record_failed_requests(page)
        page.route("**/*", answer)
        try:
            page.goto(PAGE_URL, wait_until="load", timeout=60_000)
            assert wait_until(lambda: page.locator(".js-plotly-plot").count(), 60), "no plotly graph in the page"
            wait_until(lambda: traces(page, ["body", 0])[TRAIN]["nx"] > 0, 30)
            shot("shown")
        finally:
            (SCREENSHOTS / f"{label}-requests.json").write_text(
                json.dumps({"served": served, "blocked": blocked}, indent=1))
        assert any("html-manager" in u for u in served), served
        assert_final_curves(traces(page, ["body", 0]), n_train)
        for k in (1, 2):   # the other live plots draw their fit too
            assert wait_until(lambda: page.evaluate("(k) => document.querySelectorAll('.js-plotly-plot')[k].data[0].x.length", k), 30)
        assert wait_until(lambda: one_figure(page, ["body", 0], graphs=3) == {"graphs": 3, "pictures": 0, "hidden": 3}, 30), \
            one_figure(page, ["body", 0])
        assert sizes["notebook_bytes"] < 2_400_000, sizes   # 2.32 MB measured (2026-12-03), each panel with the recorder's row: one plotly.js, not three
        assert "finished" in page.inner_text("body")
        widget_requests = [u for u in blocked if urlparse(u).hostname in CDN_HOSTS]
        assert not widget_requests, f"widget modules asked for that the local npm cache lacks: {widget_requests}"
        no_js_errors(label, errors, ignored, failed, PAGE_URL)
