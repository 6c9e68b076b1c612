"""Real-browser end-to-end test of `LivePlotCallback` and its `CallbackPanel` (issue 4).

Starts JupyterLab 4 and Notebook 7 (one parametrized case each) on 127.0.0.1 in a
temporary, isolated Jupyter environment, drives the system Chromium
(/usr/bin/chromium) through Playwright, runs the notebook below cell by cell -- the
real library: `Runner` with `AvgStatsCallback`, `Recorder`, a slow callback and
`LivePlotCallback` on the demo's embedded digits -- and checks, from the page DOM
and from Python state printed by the last cell:

  1. while a fit runs, the 'train loss' trace gains points in >= 3 separate redraws
     in the middle of an epoch (epoch-end redraws alone do not count);
  2. after the fit: training, smoothed, validation, lr and metric traces, one
     validation point per epoch at the epoch's last iteration, and the panel lists
     every callback with its cost in µs/batch, the fit 'finished' and a full progress;
  3. switching avg_stats off and then running the next fit leaves it out: nothing
     printed by it, 'valid_accuracy' gains no point while 'valid loss' does, the
     switch stays off and its cost reads 'off';
  4. clicking switches during a fit: avg_stats back on and slow off (its first
     click) both show 'applies at next fit'
     during that fit, and the fit runs unchanged (avg_stats prints nothing and adds
     no metric point; slow, switched off during it, runs in every training
     batch of it, see the final check cell); after the fit the note is gone;
  5. JupyterLab: the notebook saved and the page reloaded (kernel still running), then the
     notebook opened in a second tab: each view draws the widget's synced state -- every
     training point, the validation and metric traces with their points, the fit labels --
     and shows one figure (the picture of the fits, saved in the notebook, hidden);
  6. no JavaScript errors in the console.

The prelude cell prints `callbacks_widget.__file__` and the test requires it to be
the package this pytest process imports, so running with
`PYTHONPATH=/some/copy` tests that copy in the kernel too.

A screenshot of every step goes to tests/browser_screenshots/.

Run:  .venv/bin/python -m pytest tests/test_browser.py -x -q
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from contextlib import contextmanager
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import browser_support as bs  # noqa: E402
from browser_support import chromium_path  # noqa: E402,F401 -- a fixture
from callbacks_widget.picture import PICTURE_MARK  # noqa: E402

pytestmark = pytest.mark.browser

# ----------------------------------------------------------------------------------
# The notebook under test
# ----------------------------------------------------------------------------------

FIT_EPOCHS = (2, 1, 2)      # epochs of fits 1, 2 and 3

PRELUDE = """\
import os, sys
import callbacks_widget
print('KERNEL_PYTHON', sys.executable)
print('KERNEL_PID', os.getpid())
print('LIBRARY', callbacks_widget.__file__)
"""

SETUP = """\
import time
from callbacks_widget.all import *
from callbacks_widget.demo import demo_setup

class Slow(Callback):
    "10 ms per batch: a fit lasts long enough to watch it redraw and to click during it; counts its training batches."
    def begin_fit(self): self.n = 0
    def after_batch(self):
        self.n += self.in_train
        time.sleep(0.01)

_, learn = demo_setup()
run = Runner(cb_funcs=[partial(AvgStatsCallback, accuracy), Recorder, Slow, partial(LivePlotCallback, every=0.2)])
print('BATCHES', len(learn.data.train_dl), len(learn.data.valid_dl))
run.live_plot
"""

FIT1 = f"run.fit({FIT_EPOCHS[0]}, learn)\n"
FIT2 = f"print('AVG_STATS_ENABLED', run.avg_stats.enabled)\nrun.fit({FIT_EPOCHS[1]}, learn)\n"
FIT3 = f"run.fit({FIT_EPOCHS[2]}, learn)\n"

CHECK = """\
import json
h = run.live_plot.history
print('STATE', json.dumps(dict(
    enabled={cb.name: cb.enabled for cb in run.cbs},
    recorder_losses=len(run.recorder.losses), slow_batches=run.slow.n,
    history_batches=h.n_iter,
    fit_starts=h.fit_starts,
    series={n: len(h.epoch_series(n)[0]) for n in h.epoch_stats},
    status=run.live_plot.panel.status,
    live_plot_seconds=run.cb_seconds['live_plot'], fit_seconds=run.live_plot.panel._t1 - run.live_plot.panel._t0,
    batches=run.n_batches)))
"""

# Cell roles (indices into NOTEBOOK_CELLS)
C_PRELUDE, C_SETUP, C_FIT1, C_FIT2, C_FIT3, C_CHECK = range(6)
NOTEBOOK_CELLS = [PRELUDE, SETUP, FIT1, FIT2, FIT3, CHECK]

# What the assertions key on
TRACES = {"train": "train loss", "smoothed": "train loss (smoothed)", "valid": "valid loss",
          "lr": "lr", "train_metric": "train_accuracy", "metric": "valid_accuracy"}
CALLBACKS = ["train_eval", "avg_stats", "recorder", "slow", "live_plot"]  # switch descriptions
LOCKED = "train_eval"                          # switch disabled, always on
TOGGLED = "avg_stats"                          # off between fits 1 and 2, on during fit 3
TOGGLED_LIVE = "slow"                          # switched off while fit 3 runs (step 4)
CALLBACK_OUTPUT_MARKERS = {"avg_stats": ("train:", "valid:")}  # cell output proving it ran
COST_RE = r"\d+(\.\d+)?\s*µs/batch"
PENDING_TEXT = "applies at next fit"
MAX_POINTS = 1000                              # LivePlotCallback's default downsampling bound

# Per trace of the first plotly graph in a cell's output: how many of its y values are finite (the
# per-epoch traces share one x column, with NaN where an epoch lacks the stat).
JS_FINITE = r"""
(cellIndex) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[cellIndex];
  const gd = cell && cell.querySelector('.js-plotly-plot');
  if (!gd || !gd.data) return null;
  return Object.fromEntries(Array.from(gd.data).map((t) => [t.name, Array.from(t.y || []).filter(Number.isFinite).length]));
}
"""

SCREENSHOTS = Path(__file__).parent / "browser_screenshots"
CASE_TIMEOUT = 660  # seconds, hard bound per flavor (watchdog kills browser + server); lab also reloads and opens a second tab
CELL_TIMEOUT = 180  # seconds, bound for one fit cell (a shared, loaded machine can be slow)


# ----------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------

@pytest.fixture(params=["lab", "notebook"])
def server(request, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    bs.write_notebook(root / "live_plot.ipynb", NOTEBOOK_CELLS)
    with bs.jupyter_server(request.param, root, tmp_path / "jupyter") as srv:
        yield srv


@pytest.fixture
def browser_page(chromium_path, server):
    with bs.chromium_page(server.flavor, lambda: bs.stop_server(server, grace=1), CASE_TIMEOUT,
                          SCREENSHOTS, chromium_path) as page_errors_ignored:
        yield page_errors_ignored


# ----------------------------------------------------------------------------------
# The test
# ----------------------------------------------------------------------------------

def wait_until(cond, timeout: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return True
        except Exception:
            pass
        time.sleep(every)
    return False


def test_live_plot_widgets(server, browser_page):
    import callbacks_widget
    page, js_errors, ignored = browser_page
    flavor = server.flavor
    SCREENSHOTS.mkdir(exist_ok=True)
    for old in SCREENSHOTS.glob(f"{flavor}-*.png"):
        old.unlink()
    step = iter(range(1, 100))
    e1, e2, e3 = FIT_EPOCHS

    def shot(name):
        page.screenshot(path=str(SCREENSHOTS / f"{flavor}-{next(step):02d}-{name}.png"), timeout=15_000)

    def traces():
        return {t["name"]: t for t in (page.evaluate(bs.JS_TRACES, C_SETUP) or [])}

    def setup_text():
        "The setup cell's output text; retried, as the widget's output can be re-rendered while read on a loaded machine."
        for _ in range(10):
            try:
                return bs.output_text(page, C_SETUP)
            except Exception:
                time.sleep(1)
        return bs.output_text(page, C_SETUP)

    def finite():
        return page.evaluate(JS_FINITE, C_SETUP) or {}

    def train_last():
        return traces()[TRACES["train"]]["last"] or 0

    def box(name):
        return bs.checkbox(page, C_SETUP, name)

    def row(name):
        return bs.row_text(page, C_SETUP, name)

    page.goto(server.notebook_url("live_plot.ipynb"), wait_until="domcontentloaded", timeout=60_000)
    page.locator(bs.CELL).nth(len(NOTEBOOK_CELLS) - 1).wait_for(timeout=60_000)
    shot("opened")

    # --- kernel is the venv's python, and imports the package pytest imports -----
    out = bs.run_first_cell(page, C_PRELUDE, "KERNEL_PYTHON", server, timeout=90)
    kernel_python = re.search(r"KERNEL_PYTHON (\S+)", out).group(1)
    server.kernel_pids.append(int(re.search(r"KERNEL_PID (\d+)", out).group(1)))
    assert Path(kernel_python).parent == Path(sys.executable).parent, (kernel_python, sys.executable)
    library = re.search(r"LIBRARY (\S+)", out).group(1)
    assert Path(library).resolve() == Path(callbacks_widget.__file__).resolve(), (
        f"the kernel imports {library}, pytest imports {callbacks_widget.__file__}")

    # --- setup: panel + figure rendered -----------------------------------------
    bs.wait_cell_done(page, C_SETUP, bs.start_cell(page, C_SETUP), timeout=CELL_TIMEOUT)
    setup_out = setup_text()
    m = re.search(r"BATCHES (\d+) (\d+)", setup_out)
    assert m, f"setup cell: {setup_out!r}"
    n_train, n_valid = int(m.group(1)), int(m.group(2))
    bs.cell(page, C_SETUP).locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    for name in CALLBACKS:
        box(name).wait_for(timeout=30_000)
        assert box(name).is_checked(), f"switch {name!r} starts off"
    assert box(LOCKED).is_disabled(), f"{LOCKED}'s switch can be clicked"
    shot("setup")

    # --- 1. live redraws during the first fit ------------------------------------
    page.evaluate(bs.JS_START_RECORDER, [C_SETUP, C_FIT1, TRACES["train"]])
    t_fit = time.monotonic()
    before = bs.start_cell(page, C_FIT1)
    wait_until(lambda: train_last() > n_train // 3 or not bs.is_running(page, C_FIT1), 60)
    shot("fit1-running")
    bs.wait_cell_done(page, C_FIT1, before, timeout=CELL_TIMEOUT)
    fit1_seconds = time.monotonic() - t_fit
    time.sleep(0.5)  # let the last redraw land
    rec = page.evaluate(bs.JS_STOP_RECORDER)
    shot("fit1-done")
    running_lengths = sorted({s["n"] for s in rec["samples"] if s["running"] and s["n"] > 0})
    mid_epoch = [n for n in running_lengths if n % n_train]
    (SCREENSHOTS / f"{flavor}-fit1-redraws.json").write_text(json.dumps(
        {"fit1_seconds": fit1_seconds, "n_train": n_train, "running_lengths": running_lengths,
         "mid_epoch_lengths": mid_epoch, "recorder": rec}, indent=1))
    assert len(mid_epoch) >= 3, (
        f"while fit 1 ran ({fit1_seconds:.1f} s), '{TRACES['train']}' gained points in only "
        f"{len(mid_epoch)} redraws in the middle of an epoch; point counts seen while it ran: "
        f"{running_lengths} (one epoch = {n_train} batches)")

    # --- 2. traces, validation points, panel with costs --------------------------
    wait_until(lambda: train_last() == e1 * n_train, 30)  # a busy page draws the last update late
    tr = traces()
    for role, name in TRACES.items():
        assert name in tr, f"no {role} trace named {name!r}; traces: {list(tr)}"
    valid = tr[TRACES["valid"]]
    assert valid["nx"] == valid["ny"] == e1, f"{e1} epochs, validation trace: {valid}"
    assert valid["xs"] == [float(n_train * (k + 1)) for k in range(e1)], valid
    for role in ("metric", "train_metric"):
        assert tr[TRACES[role]]["nx"] == tr[TRACES[role]]["ny"] == finite()[TRACES[role]] == e1, tr[TRACES[role]]
    assert e1 * n_train <= MAX_POINTS
    for role in ("train", "smoothed", "lr"):
        assert tr[TRACES[role]]["nx"] == e1 * n_train, tr[TRACES[role]]
    assert tr[TRACES["train"]]["last"] == e1 * n_train, tr[TRACES["train"]]
    rows = {name: row(name) for name in CALLBACKS}
    for name, text in rows.items():
        assert re.search(COST_RE, text), f"panel shows no cost for {name!r}: {text!r}"
    assert "always on" in rows[LOCKED], rows[LOCKED]
    panel_text = setup_text()
    total = e1 * (n_train + n_valid)
    assert f"epoch {e1}/{e1} · batch {total}/{total}" in panel_text, panel_text
    assert "finished" in panel_text, panel_text
    fit1_out = bs.output_text(page, C_FIT1)
    for marker in CALLBACK_OUTPUT_MARKERS[TOGGLED]:
        assert fit1_out.count(marker) == e1, fit1_out

    # --- 3. switch a callback off, next fit leaves it out ------------------------
    box(TOGGLED).click()
    assert not box(TOGGLED).is_checked()
    time.sleep(1.0)  # the kernel gets the change before the next execute request
    shot("switched-off")
    fit2_out = bs.run_cell(page, C_FIT2, timeout=CELL_TIMEOUT)
    shot("fit2-done")
    for marker in CALLBACK_OUTPUT_MARKERS[TOGGLED]:
        assert marker not in fit2_out, (
            f"{TOGGLED} was switched off before fit 2, but fit 2 printed {marker!r}: {fit2_out!r}")
    assert f"{TOGGLED.upper()}_ENABLED False" in fit2_out, fit2_out
    wait_until(lambda: train_last() == (e1 + e2) * n_train, 30)  # a busy page draws the last update late
    tr = traces()
    assert tr[TRACES["valid"]]["nx"] == e1 + e2, f"'valid loss' after fit 2: {tr[TRACES['valid']]}"
    for role in ("metric", "train_metric"):
        assert finite()[TRACES[role]] == e1, (
            f"{TOGGLED} off, yet {TRACES[role]!r} gained a point in fit 2: {tr[TRACES[role]]}")
    assert tr[TRACES["train"]]["last"] == (e1 + e2) * n_train, tr[TRACES["train"]]
    assert "fit 2" in page.evaluate(bs.JS_ANNOTATIONS, C_SETUP)
    assert not box(TOGGLED).is_checked(), "switch no longer shows the callback off"
    assert "off" in row(TOGGLED).split(" | "), f"{TOGGLED}'s row: {row(TOGGLED)!r}"
    assert PENDING_TEXT not in setup_text()

    # --- 4. click during a fit: 'applies at next fit', running fit unchanged -----
    # TOGGLED (switched off in step 3) goes back on, and TOGGLED_LIVE goes off, while
    # fit 3 runs. The note must show for both during the fit. TOGGLED_LIVE's switch is
    # clicked for the first time here: ipykernel 7.4 would route that first message to
    # the busy main shell, and the panel routes it to the browser's subshell instead.
    before = bs.start_cell(page, C_FIT3)
    started = wait_until(lambda: train_last() > (e1 + e2) * n_train + 5, 60)
    assert started and bs.is_running(page, C_FIT3), (
        f"fit 3 did not draw within 60 s, or ended before the click (running={bs.is_running(page, C_FIT3)})")
    box(TOGGLED).click()
    box(TOGGLED_LIVE).click()
    assert box(TOGGLED).is_checked() and not box(TOGGLED_LIVE).is_checked()
    t_click = time.monotonic()
    bs.row(page, C_SETUP, TOGGLED).get_by_text(PENDING_TEXT).first.wait_for(timeout=30_000)
    note_seconds = time.monotonic() - t_click
    x_at_note = train_last()
    assert bs.is_running(page, C_FIT3), "the pending-change note only appeared after the fit"
    live_note = wait_until(lambda: PENDING_TEXT in row(TOGGLED_LIVE), 30)
    live_note_running = bs.is_running(page, C_FIT3)
    assert live_note and live_note_running, (
        f"{TOGGLED_LIVE}'s first click during the fit did not show {PENDING_TEXT!r} while it ran")
    shot("fit3-clicked-while-running")
    bs.wait_cell_done(page, C_FIT3, before, timeout=CELL_TIMEOUT)
    time.sleep(0.5)
    shot("fit3-done")
    (SCREENSHOTS / f"{flavor}-fit3-notes.json").write_text(json.dumps(
        {TOGGLED: {"note_after_s": note_seconds, "train_x_at_note": x_at_note},
         TOGGLED_LIVE: {"note_during_fit": live_note and live_note_running}}, indent=1))
    assert x_at_note < (e1 + e2 + e3) * n_train, "the note appeared only after the last batch"
    panel_text = setup_text()
    assert PENDING_TEXT not in panel_text, f"note still shown after the fit: {panel_text!r}"
    assert "finished" in panel_text, panel_text
    assert box(TOGGLED).is_checked() and not box(TOGGLED_LIVE).is_checked()
    fit3_out = bs.output_text(page, C_FIT3)
    for marker in CALLBACK_OUTPUT_MARKERS[TOGGLED]:
        assert marker not in fit3_out, (
            f"{TOGGLED}, switched on during fit 3, joined the running fit: {fit3_out!r}")
    wait_until(lambda: train_last() == (e1 + e2 + e3) * n_train, 30)  # a busy page draws the last update late
    tr = traces()
    assert tr[TRACES["train"]]["last"] == (e1 + e2 + e3) * n_train, tr[TRACES["train"]]
    assert tr[TRACES["valid"]]["nx"] == e1 + e2 + e3, tr[TRACES["valid"]]
    assert finite()[TRACES["metric"]] == e1, (
        f"{TOGGLED}, switched on during fit 3, added a metric point to it: {tr[TRACES['metric']]}")

    # --- Python-side state ----------------------------------------------------------
    check_out = bs.run_cell(page, C_CHECK, timeout=60)
    shot("python-state")
    m = re.search(r"STATE (\{.*\})", check_out)
    assert m, check_out
    state = json.loads(m.group(1))
    (SCREENSHOTS / f"{flavor}-live-plot-cost.json").write_text(json.dumps(  # the kernel's time in the live plot, fit 3
        {k: state[k] for k in ("live_plot_seconds", "fit_seconds", "batches")}, indent=1))
    expected_enabled = {name: name != TOGGLED_LIVE for name in CALLBACKS}
    assert state["enabled"] == expected_enabled, state
    assert state["slow_batches"] == state["recorder_losses"] == e3 * n_train, (
        f"{TOGGLED_LIVE} switched off during fit 3 must still run in all {e3 * n_train} training batches of it, "
        f"and the recorder record them: {state}")
    assert state["history_batches"] == (e1 + e2 + e3) * n_train, state
    assert state["fit_starts"] == [0, e1 * n_train, (e1 + e2) * n_train], state
    assert state["series"] == {"valid_loss": e1 + e2 + e3, "train_accuracy": e1,
                               "valid_accuracy": e1}, state
    assert state["status"] == "finished", state

    # --- 5. a reload and a second tab draw the synced state -------------------------
    if flavor == "lab":
        total_train = (e1 + e2 + e3) * n_train
        expected = {TRACES["train"]: min(total_train, MAX_POINTS), TRACES["valid"]: e1 + e2 + e3,
                    TRACES["metric"]: e1, TRACES["train_metric"]: e1}

        def drawn(p):
            tr = {t["name"]: t for t in (p.evaluate(bs.JS_TRACES, C_SETUP) or [])}
            fin = p.evaluate(JS_FINITE, C_SETUP) or {}
            return ({name: fin.get(name) for name in expected}, tr.get(TRACES["train"], {}).get("last"),
                    p.evaluate(bs.JS_ANNOTATIONS, C_SETUP))

        def shows_state(p):   # and one figure: the picture of the fits is hidden
            counts, last, labels = drawn(p)
            figures = bs.figures(p, [bs.LAB.cell, C_SETUP], PICTURE_MARK)
            return (counts == expected and last == total_train and labels == ["fit 2", "fit 3"]
                    and (figures["graphs"], figures["pictures"], figures["hidden"]) == (1, 0, 1))

        before_reload = drawn(page)
        assert shows_state(page), before_reload
        page.keyboard.press("Control+s")
        assert wait_until(lambda: page.locator(".jp-mod-dirty").count() == 0, 30), "the notebook was not saved"
        page.reload(wait_until="domcontentloaded", timeout=60_000)
        bs.cell(page, C_SETUP).locator(".js-plotly-plot").first.wait_for(timeout=120_000)
        assert wait_until(lambda: shows_state(page), 60), f"after a reload: {drawn(page)}; before: {before_reload}"
        shot("reloaded")
        second = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})  # a second window
        try:
            second.goto(server.notebook_url("live_plot.ipynb"), wait_until="domcontentloaded", timeout=60_000)
            bs.cell(second, C_SETUP).locator(".js-plotly-plot").first.wait_for(timeout=120_000)
            assert wait_until(lambda: shows_state(second), 60), f"in a second tab: {drawn(second)}"
            second.screenshot(path=str(SCREENSHOTS / f"{flavor}-{next(step):02d}-second-tab.png"), timeout=15_000)
        finally:
            second.close()

    # --- 6. no JavaScript errors -------------------------------------------------
    (SCREENSHOTS / f"{flavor}-ignored-console-errors.json").write_text(json.dumps(ignored, indent=1))
    assert not js_errors, "JavaScript errors in the browser:\n" + "\n".join(js_errors)


# ----------------------------------------------------------------------------------
# The compare view after a reload (issue 14): JupyterLab only
# ----------------------------------------------------------------------------------

def demo_setup_cell(cb_funcs: str) -> str:
    "A set-up cell: the demo's learner and a `Runner` with `cb_funcs` (their source); it prints the training batches and shows the live plot."
    return f"""\
from callbacks_widget.all import *
from callbacks_widget.demo import demo_setup
_, learn = demo_setup()
run = Runner(cb_funcs=[{cb_funcs}])
print('BATCHES', len(learn.data.train_dl))
run.live_plot
"""


COMPARE_SETUP = demo_setup_cell("partial(AvgStatsCallback, accuracy), Recorder, LivePlotCallback")
COMPARE_FITS_CELL = "run.fit(1, learn); run.fit(1, learn)\nrun.avg_stats.enabled = False\nrun.fit(1, learn)\nprint('FITS', len(run.live_plot.history.fit_starts))\n"
COMPARE_CHECK = "print('VIEW', run.live_plot.view)\n"
COMPARE_NAMES = ["fit 1", "fit 2 · same", "fit 3 · −avg_stats"]


@contextmanager
def lab_notebook(name: str, cells: list, chromium_path, tmp_path):
    """JupyterLab serving `name`.ipynb made of `cells` (the first `PRELUDE`), and a Chromium page with it open and its
    prelude run: `(server, (page, js_errors, ignored))`."""
    root = tmp_path / "root"
    root.mkdir()
    bs.write_notebook(root / f"{name}.ipynb", cells)
    SCREENSHOTS.mkdir(exist_ok=True)
    with bs.jupyter_server("lab", root, tmp_path / "jupyter") as srv:
        with bs.chromium_page(f"lab-{name}", lambda: bs.stop_server(srv, grace=1), CASE_TIMEOUT, SCREENSHOTS, chromium_path) as p:
            bs.open_notebook(p[0], srv, f"{name}.ipynb", len(cells))
            yield srv, p


@pytest.fixture
def compare_page(chromium_path, tmp_path):
    with lab_notebook("compare", [PRELUDE, COMPARE_SETUP, COMPARE_FITS_CELL, COMPARE_CHECK], chromium_path, tmp_path) as page:
        yield page


def test_compare_view_survives_a_reload(compare_page):
    "Three fits, the second switch changed before the third; 'compare fits' clicked; a reload draws the same three named fits."
    server, (page, js_errors, ignored) = compare_page
    n_train = bs.run_plot_cell(page, 1, CELL_TIMEOUT)
    assert "FITS 3" in bs.run_cell(page, 2, timeout=CELL_TIMEOUT, expect="FITS")

    def fits(p):
        "Each fit's curve (its legend entry) as drawn: name -> last x."
        tr = p.evaluate(bs.JS_TRACES, 1) or []
        return {t["name"]: t["last"] for t in tr if " · lr" not in t["name"] and " · valid loss" not in t["name"]}

    expected = {name: n_train for name in COMPARE_NAMES}
    bs.cell(page, 1).get_by_role("button", name="compare fits").click()
    assert wait_until(lambda: fits(page) == expected, 60), fits(page)
    assert "VIEW compare" in bs.run_cell(page, 3, timeout=60, expect="VIEW")
    page.screenshot(path=str(SCREENSHOTS / "lab-compare-01-clicked.png"), timeout=15_000)
    page.keyboard.press("Control+s")
    assert wait_until(lambda: page.locator(".jp-mod-dirty").count() == 0, 30), "the notebook was not saved"
    page.reload(wait_until="domcontentloaded", timeout=60_000)
    bs.cell(page, 1).locator(".js-plotly-plot").first.wait_for(timeout=120_000)
    assert wait_until(lambda: fits(page) == expected, 60), f"after a reload: {fits(page)}"
    assert bs.cell(page, 1).get_by_role("button", name="compare fits").get_attribute("class").count("mod-active"), "the buttons lost the view"
    page.screenshot(path=str(SCREENSHOTS / "lab-compare-02-reloaded.png"), timeout=15_000)
    assert not js_errors, "JavaScript errors in the browser:\n" + "\n".join(js_errors)
