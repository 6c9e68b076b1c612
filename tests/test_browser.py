"""Real-browser end-to-end test of the LivePlotCallback widgets (issue 4).

Starts JupyterLab 4 and Notebook 7 (one parametrized case each) on 127.0.0.1 in a
temporary, isolated Jupyter environment, drives the system Chromium
(/usr/bin/chromium) through Playwright, runs the notebook below cell by cell and
checks, from the page DOM:

  1. while a fit runs, the training trace gains points in >= 3 separate redraws;
  2. after a fit: traces named for training / validation / metric, one validation
     point per epoch, and the panel lists every callback with its cost;
  3. switching a callback off and running the next fit leaves it out, switch stays off;
  4. clicking a switch during a fit shows "applies at next fit" and the running fit
     is unchanged (Python's `enabled` flag follows the switch once it is processed);
  5. no JavaScript errors in the console.

A screenshot of every step goes to tests/browser_screenshots/.

To test the real library instead of the stand-in, replace the source strings in
NOTEBOOK_CELLS (keep the roles/indices below) and the names in TRACES /
CALLBACKS / CALLBACK_OUTPUT_MARKERS / CHECK_ENABLED_RE.

Run:  .venv/bin/python -m pytest tests/test_browser.py -x -q
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import browser_support as bs  # noqa: E402

pytestmark = pytest.mark.browser

# ----------------------------------------------------------------------------------
# The notebook under test. STAND-IN until the library is ready: it mimics
# `LivePlotCallback` (plotly FigureWidget + ipywidgets panel of on/off switches).
# ----------------------------------------------------------------------------------

PRELUDE = """\
import os, sys
print('KERNEL_PYTHON', sys.executable)
print('KERNEL_PID', os.getpid())
"""

SETUP = """\
import asyncio, time
import numpy as np
import ipywidgets as W
import plotly.graph_objects as go
from IPython.display import display

fig = go.FigureWidget(layout=dict(height=320, margin=dict(l=40, r=10, t=10, b=30)))
for name in ('train loss', 'valid loss', 'valid accuracy'):
    fig.add_scatter(x=[], y=[], name=name, mode='lines+markers')

class Callback:
    def __init__(self, name): self.name, self.enabled, self.cost = name, True, None

class AvgStats(Callback):
    def after_epoch(self, epoch, losses): print(f'train: [{epoch}, {np.mean(losses):.4f}]')

cbs = [AvgStats('avg_stats')]
running = False
status = W.Label('')
costs = {}
rows = []
for cb in cbs:
    box = W.Checkbox(value=cb.enabled, description=cb.name, indent=False)
    costs[cb.name] = W.Label(f'{cb.name}: – ms')
    def on_toggle(change, cb=cb):
        cb.enabled = change['new']          # Python follows the switch ...
        if running:                         # ... but a running fit keeps its callbacks
            status.value = 'applies at next fit'
    box.observe(on_toggle, 'value')
    rows.append(W.HBox([box, costs[cb.name]]))
panel = W.VBox(rows + [status])
display(W.VBox([panel, fig]))

async def fit(epochs=3, steps=10, dt=0.2):
    # A fit is `async` so that ipykernel 7 dispatches comm messages (switch clicks)
    # while it runs: see the report / test docstring.
    global running
    active = [cb for cb in cbs if cb.enabled]  # snapshot: changes apply at next fit
    running, status.value = True, ''
    spent = {cb.name: 0.0 for cb in active}
    xs, ys, vx, vy, ax, ay = [], [], [], [], [], []
    with fig.batch_update():
        for tr in fig.data: tr.x, tr.y = [], []
    try:
        for epoch in range(epochs):
            losses = []
            for step in range(steps):
                await asyncio.sleep(dt)
                losses.append(1.0 / (1 + epoch * steps + step) + 0.05 * np.random.rand())
                xs.append(epoch + step / steps); ys.append(losses[-1])
                with fig.batch_update():
                    fig.data[0].x, fig.data[0].y = np.array(xs, dtype=float), np.array(ys, dtype=float)
            vx.append(epoch + 1.0); vy.append(float(np.mean(losses)) * 1.1)
            ax.append(epoch + 1.0); ay.append(0.5 + 0.1 * epoch)
            with fig.batch_update():
                fig.data[1].x, fig.data[1].y = np.array(vx), np.array(vy)
                fig.data[2].x, fig.data[2].y = np.array(ax), np.array(ay)
            for cb in active:
                t0 = time.perf_counter(); cb.after_epoch(epoch, losses)
                spent[cb.name] += time.perf_counter() - t0
            print(f'epoch {epoch} done')
    finally:
        running = False
    for name, s in spent.items():
        costs[name].value = f'{name}: {1000 * s / epochs:.3f} ms/epoch'
"""

FIT = "await fit(3)\n"

CHECK = "print('ENABLED', {cb.name: cb.enabled for cb in cbs})\n"

# Cell roles (indices into NOTEBOOK_CELLS)
C_PRELUDE, C_SETUP, C_FIT1, C_FIT2, C_FIT3, C_CHECK = range(6)
NOTEBOOK_CELLS = [PRELUDE, SETUP, FIT, FIT, FIT, CHECK]
EPOCHS_PER_FIT = 3

# What the assertions key on
TRACES = {"train": "train loss", "valid": "valid loss", "metric": "valid accuracy"}
CALLBACKS = ["avg_stats"]                            # checkbox descriptions
TOGGLED = "avg_stats"                                # the callback switched in steps 3/4
CALLBACK_OUTPUT_MARKERS = {"avg_stats": "train:"}    # cell output proving it ran
COST_RE = r"\d+(\.\d+)?\s*(µs|us|ms|s)\b"            # "<name> ... <number> <unit>"
PENDING_TEXT = "applies at next fit"
CHECK_ENABLED_RE = r"'avg_stats': (True|False)"

SCREENSHOTS = Path(__file__).parent / "browser_screenshots"
CASE_TIMEOUT = 240  # seconds, hard bound per flavor (watchdog kills browser + server)


# ----------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium_path():
    if not Path(bs.CHROMIUM).exists():
        pytest.fail(f"{bs.CHROMIUM} not found: the browser test needs Debian's chromium "
                    "(apt-get install -y chromium) -- it is not skipped on purpose.")
    return bs.CHROMIUM


@pytest.fixture(params=["lab", "notebook"])
def server(request, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    bs.write_notebook(root / "live_plot.ipynb", NOTEBOOK_CELLS)
    with bs.jupyter_server(request.param, root, tmp_path / "jupyter") as srv:
        yield srv


@pytest.fixture
def browser_page(chromium_path, server):
    from playwright.sync_api import sync_playwright
    errors, ignored, console = [], [], []

    def on_console(msg):
        console.append(f"{msg.type}: {msg.text}")
        if msg.type == "error":
            text = f"console.error: {msg.text} @ {msg.location}"
            (ignored if bs.is_ignored(text) else errors).append(text)

    def on_pageerror(exc):
        text = f"pageerror: {exc}\n{getattr(exc, 'stack', '')}"
        console.append(text)
        (ignored if bs.is_ignored(text) else errors).append(text)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=bs.CHROMIUM_ARGS,
                                    timeout=30_000)
        page = None
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.on("console", on_console)
            page.on("pageerror", on_pageerror)

            def expire():
                try:
                    bs.stop_server(server, grace=1)
                finally:
                    browser.close()
            with bs.Watchdog(CASE_TIMEOUT, expire) as dog:
                yield page, errors, ignored
            assert not dog.expired, f"test case exceeded {CASE_TIMEOUT}s"
        finally:
            SCREENSHOTS.mkdir(exist_ok=True)
            (SCREENSHOTS / f"{server.flavor}-console.log").write_text("\n".join(console))
            try:
                if page is not None and not page.is_closed():
                    page.screenshot(path=str(SCREENSHOTS / f"{server.flavor}-99-final.png"), timeout=10_000)
            except Exception:
                pass
            browser.close()


# ----------------------------------------------------------------------------------
# The test
# ----------------------------------------------------------------------------------

def test_live_plot_widgets(server, browser_page):
    page, js_errors, ignored = browser_page
    flavor = server.flavor
    SCREENSHOTS.mkdir(exist_ok=True)
    for old in SCREENSHOTS.glob(f"{flavor}-*.png"):
        old.unlink()
    step = iter(range(1, 100))

    def shot(name):
        page.screenshot(path=str(SCREENSHOTS / f"{flavor}-{next(step):02d}-{name}.png"), timeout=15_000)

    def traces():
        return {t["name"]: t for t in (page.evaluate(bs.JS_TRACES, C_SETUP) or [])}

    def box(name):
        return bs.checkbox(page, C_SETUP, name)

    page.goto(server.notebook_url("live_plot.ipynb"), wait_until="domcontentloaded", timeout=60_000)
    page.locator(bs.CELL).nth(len(NOTEBOOK_CELLS) - 1).wait_for(timeout=60_000)
    shot("opened")

    # --- kernel is the venv's python --------------------------------------------
    out = ""
    deadline = time.monotonic() + 90
    while "KERNEL_PYTHON" not in out and time.monotonic() < deadline:
        # the first Ctrl+Enter may arrive before the kernel is connected; retry
        try:
            out = bs.run_cell(page, C_PRELUDE, timeout=30)
        except TimeoutError:
            out = ""
    assert "KERNEL_PYTHON" in out, f"prelude cell gave no output: {out!r}\n{server.log_tail()}"
    kernel_python = re.search(r"KERNEL_PYTHON (\S+)", out).group(1)
    server.kernel_pids.append(int(re.search(r"KERNEL_PID (\d+)", out).group(1)))
    assert Path(kernel_python).parent == Path(sys.executable).parent, (kernel_python, sys.executable)

    # --- setup: figure + panel rendered -----------------------------------------
    bs.run_cell(page, C_SETUP, timeout=60)
    bs.cell(page, C_SETUP).locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    for name in CALLBACKS:
        box(name).wait_for(timeout=30_000)
        assert box(name).is_checked()
    shot("setup")

    # --- 1. live redraws during the first fit ------------------------------------
    page.evaluate(bs.JS_START_RECORDER, [C_SETUP, C_FIT1, TRACES["train"]])
    before = bs.start_cell(page, C_FIT1)
    time.sleep(1.5)
    shot("fit1-running")
    bs.wait_cell_done(page, C_FIT1, before, timeout=120)
    time.sleep(0.5)  # let the last redraw land
    rec = page.evaluate(bs.JS_STOP_RECORDER)
    shot("fit1-done")
    live_lengths = sorted({s["n"] for s in rec["samples"] if s["running"] and s["n"] > 0})
    raw_x = page.evaluate("""(i) => { const gd = document.querySelectorAll('.jp-Notebook .jp-Cell')[i]
        .querySelector('.js-plotly-plot'); const x = gd.data[0].x;
        return {ctor: x && x.constructor && x.constructor.name, keys: x && !Array.isArray(x) && !ArrayBuffer.isView(x) ? Object.keys(x) : null}; }""", C_SETUP)
    (SCREENSHOTS / f"{flavor}-fit1-redraws.json").write_text(
        json.dumps({"live_lengths": live_lengths, "x_type": raw_x, "recorder": rec}, indent=1))
    assert len(live_lengths) >= 3, (
        f"training trace grew in only {len(live_lengths)} redraws while the fit ran: {rec}")

    # --- 2. traces, validation points, panel with costs --------------------------
    tr = traces()
    for role, name in TRACES.items():
        assert name in tr, f"no {role} trace named {name!r}; traces: {list(tr)}"
    assert tr[TRACES["valid"]]["nx"] == EPOCHS_PER_FIT, tr
    assert tr[TRACES["valid"]]["ny"] == EPOCHS_PER_FIT, tr
    assert tr[TRACES["train"]]["nx"] >= live_lengths[-1], tr
    fit1_train_points = tr[TRACES["train"]]["nx"]
    panel_text = bs.output_text(page, C_SETUP)
    for name in CALLBACKS:
        assert re.search(rf"{re.escape(name)}\b.*?{COST_RE}", panel_text), (
            f"panel shows no cost for {name!r}: {panel_text!r}")
    fit1_out = bs.output_text(page, C_FIT1)
    assert fit1_out.count(CALLBACK_OUTPUT_MARKERS[TOGGLED]) == EPOCHS_PER_FIT, fit1_out

    # --- 3. switch a callback off, next fit leaves it out ------------------------
    box(TOGGLED).click()
    assert not box(TOGGLED).is_checked()
    shot("switched-off")
    fit2_out = bs.run_cell(page, C_FIT2, timeout=120)
    shot("fit2-done")
    assert CALLBACK_OUTPUT_MARKERS[TOGGLED] not in fit2_out, fit2_out
    assert not box(TOGGLED).is_checked(), "switch no longer shows the callback off"
    assert PENDING_TEXT not in bs.output_text(page, C_SETUP)
    fit2_train_points = traces()[TRACES["train"]]["nx"]
    assert fit2_train_points == fit1_train_points

    # --- 4. click during a fit: 'applies at next fit', running fit unchanged -----
    before = bs.start_cell(page, C_FIT3)
    time.sleep(1.0)
    assert bs.is_running(page, C_FIT3), "fit finished too early to click during it"
    box(TOGGLED).click()
    bs.cell(page, C_SETUP).locator(".jp-OutputArea-output").get_by_text(PENDING_TEXT).first.wait_for(
        timeout=10_000)
    assert bs.is_running(page, C_FIT3), "the pending-change text only appeared after the fit"
    assert box(TOGGLED).is_checked()
    shot("fit3-clicked-while-running")
    bs.wait_cell_done(page, C_FIT3, before, timeout=120)
    shot("fit3-done")
    fit3_out = bs.output_text(page, C_FIT3)
    assert CALLBACK_OUTPUT_MARKERS[TOGGLED] not in fit3_out, (
        f"the running fit picked up the switch change: {fit3_out!r}")
    tr = traces()
    assert tr[TRACES["train"]]["nx"] == fit1_train_points, tr
    assert tr[TRACES["valid"]]["nx"] == EPOCHS_PER_FIT, tr
    assert box(TOGGLED).is_checked()
    check_out = bs.run_cell(page, C_CHECK, timeout=30)
    shot("python-state")
    assert re.search(CHECK_ENABLED_RE, check_out).group(1) == "True", check_out

    # --- 5. no JavaScript errors -------------------------------------------------
    (SCREENSHOTS / f"{flavor}-ignored-console-errors.json").write_text(json.dumps(ignored, indent=1))
    assert not js_errors, "JavaScript errors in the browser:\n" + "\n".join(js_errors)
