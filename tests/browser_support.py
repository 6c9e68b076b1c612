"""Helpers for the real-browser end-to-end test (`tests/test_browser.py`).

Nothing here knows about the notebook under test: it starts/stops a Jupyter
server (JupyterLab 3/4, Notebook 7, classic Notebook 6, Voila) with any venv's
Python in an isolated temporary Jupyter environment, launches the system Chromium
through Playwright, and offers small page helpers for the two notebook DOMs:
JupyterLab 3/4 and Notebook 7 (`LAB`: `.jp-Notebook .jp-Cell`, `.jp-InputPrompt`,
`.jp-OutputArea-output`) and the classic Notebook 6 (`CLASSIC`: `#notebook .cell`,
`.input_prompt`, `.output_subarea`).
Used by `tests/test_browser.py` and `tests/test_views.py`.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CALLBACKS_WIDGET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-gpu", "--no-first-run", "--disable-sync"]

# Browser errors that are NOT about widgets and are ignored. Everything else logged at
# level "error", and every uncaught page error, fails the test. Matched against the
# message text plus (for page errors) the stack.
#   - favicon requests that 404;
#   - the JupyterLab "news"/"update check" feature (disabled anyway);
#   - Voila: Notebook 7's lab extension, which Voila loads and which cannot work there;
#   - Notebook 7.6.5 only: "TypeError: Cannot read properties of undefined (reading
#     'schema')" thrown from notebook_core.*.js by the keyboard-shortcuts settings
#     handler (`settingRegistry.pluginChanged` -> `plugins[id].schema[...]`) the first
#     time a cell is run. It happens with a notebook whose only cell is `print(1)`,
#     i.e. without any widget, plotly or anywidget code on the page.
IGNORED_CONSOLE_PATTERNS = [
    re.compile(r"favicon", re.I),
    re.compile(r"jupyterlab\.github\.io|/lab/api/news", re.I),
    re.compile(r"Cannot read properties of undefined \(reading 'schema'\)"
               r"[\s\S]*/static/notebook/notebook_core\.[0-9a-f]+\.js"),
    # Voila 0.5 loads every lab extension of the venv, Notebook 7's too, which cannot load
    # outside Notebook 7 (module federation: "The getter for the shared module is not a function").
    re.compile(r"RUNTIME-012[\s\S]*/voila/labextensions/@jupyter-notebook/lab-extension/"),
]


@pytest.fixture(scope="module")
def chromium_path():
    """The system Chromium; a browser test fails (is not skipped) without it."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: the browser tests need Debian's chromium "
                    "(apt-get install -y chromium) -- they are not skipped on purpose.")
    return CHROMIUM


def is_ignored(text: str) -> bool:
    return any(p.search(text) for p in IGNORED_CONSOLE_PATTERNS)


def write_notebook(path: Path, cells: list[str]) -> Path:
    """Write a minimal nbformat-4 notebook with one code cell per source string."""
    nb = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": f"cell-{i}",
                   "metadata": {}, "outputs": [], "source": src} for i, src in enumerate(cells)],
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4, "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb, indent=1))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class JupyterServer:
    flavor: str                 # "lab", "notebook" (Notebook 7), "notebook6" (classic) or "voila"
    root: Path
    port: int
    token: str
    proc: subprocess.Popen
    log_path: Path
    kernel_pids: list[int] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notebook_url(self, name: str) -> str:
        if self.flavor == "voila":   # serves the one notebook it was started with
            return f"{self.base}/?token={self.token}"
        route = "lab/tree" if self.flavor == "lab" else "notebooks"
        return f"{self.base}/{route}/{name}?token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 5):
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
            return json.loads(body) if body else None

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no server log>"


def isolated_jupyter_env(tmp: Path) -> dict:
    """Environment with every per-user Jupyter dir pointed into `tmp`.

    Kernelspecs, lab extensions and server-extension config are then found only in
    the venv (sys.prefix/share/jupyter, sys.prefix/etc/jupyter), so the kernel
    'python3' is the venv's ipykernel (its argv[0] 'python' is replaced by the
    server's sys.executable by jupyter_client) and nothing global is read or written.
    """
    env = dict(os.environ)
    for var, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython"),
                     ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"),
                     ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces")]:
        d = tmp / sub
        d.mkdir(parents=True, exist_ok=True)
        env[var] = str(d)
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_PREFER_ENV_PATH", None)
    # No news / update-check toast over the notebook.
    notif = tmp / "lab-settings" / "@jupyterlab" / "apputils-extension"
    notif.mkdir(parents=True, exist_ok=True)
    (notif / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def server_command(flavor: str, python: str, root: Path, port: int, token: str,
                   notebook: str | None = None) -> list[str]:
    """The command line of a server of `flavor` run by `python` (a venv's interpreter).
    The classic Notebook 6 is a `NotebookApp`; the others are `jupyter_server` apps."""
    app = {"notebook6": "NotebookApp", "voila": "Voila"}.get(flavor, "ServerApp")
    if flavor == "voila":
        cmd = [python, "-m", "voila", str(root / notebook), "--no-browser", f"--port={port}",
               "--Voila.ip=127.0.0.1", f"--Voila.root_dir={root}"]
    else:
        cmd = [python, "-m", "jupyter", "notebook" if flavor == "notebook6" else flavor,
               f"--{app}.ip=127.0.0.1", f"--{app}.port={port}", f"--{app}.port_retries=0",
               "--no-browser", "--KernelSpecManager.ensure_native_kernel=True"]
        cmd.append(f"--NotebookApp.notebook_dir={root}" if flavor == "notebook6" else f"--ServerApp.root_dir={root}")
    # `ServerApp.token` is deprecated in jupyter_server 2 (still read) and the only name in 1.x
    cmd.append(f"--{app}.token={token}")
    if os.geteuid() == 0 and flavor != "voila":  # CI containers often run as root
        cmd.append("--allow-root")
    return cmd


@contextmanager
def jupyter_server(flavor: str, root: Path, tmp: Path, start_timeout: float = 60,
                   python: str = sys.executable, notebook: str | None = None):
    """Start a server of `flavor` ("lab", "notebook", "notebook6", "voila" serving `notebook`)
    on 127.0.0.1 rooted at `root`, run by `python`; always stop it."""
    assert flavor in ("lab", "notebook", "notebook6", "voila")
    port, token = free_port(), secrets.token_hex(16)
    tmp.mkdir(parents=True, exist_ok=True)
    log_path = tmp / f"jupyter-{flavor}.log"
    cmd = server_command(flavor, python, root, port, token, notebook)
    log = open(log_path, "wb")
    env = isolated_jupyter_env(tmp)
    # `python -m jupyter lab` runs the `jupyter-lab` it finds on PATH: the venv's own, not another venv's first
    env["PATH"] = os.pathsep.join([str(Path(python).parent), env.get("PATH", "")])
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    server = JupyterServer(flavor, root, port, token, proc, log_path)
    # Voila's pages execute the notebook, so it is only asked whether its port is open.
    probe = ((lambda: socket.create_connection(("127.0.0.1", port), timeout=2).close())
             if flavor == "voila" else (lambda: server.api("/api/status", timeout=2)))
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter {flavor} exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                probe()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"jupyter {flavor} did not answer within {start_timeout}s:\n{server.log_tail()}")
            time.sleep(0.25)
        yield server
    finally:
        stop_server(server)
        log.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop_server(server: JupyterServer, grace: float = 10) -> None:
    """Stop kernels and the server: REST shutdown, then SIGTERM/SIGKILL of the
    server's process group and of every kernel pid the test recorded (jupyter_client
    starts kernels in their own session, so killing the server's group alone
    would not reach them)."""
    proc = server.proc
    if proc.poll() is None:
        try:
            server.api("/api/shutdown", method="POST", timeout=3)
        except Exception:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
    for pid in server.kernel_pids:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not _alive(pid):
                break
            try:
                os.killpg(pid, sig)       # kernels lead their own process group
            except (ProcessLookupError, PermissionError):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
            for _ in range(20):
                if not _alive(pid):
                    break
                time.sleep(0.1)


class Watchdog:
    """Hard upper bound for one test case: after `seconds`, call `on_expire`
    (which kills the browser and the server, so every pending Playwright call fails)."""

    def __init__(self, seconds: float, on_expire):
        self.expired = False

        def fire():
            self.expired = True
            on_expire()
        self._timer = threading.Timer(seconds, fire)
        self._timer.daemon = True

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()


@contextmanager
def chromium_page(label: str, on_expire, case_timeout: float, logs: Path, chromium: str = CHROMIUM):
    """Chromium (through Playwright) with one page; yields (page, errors, ignored): every
    console error and uncaught page error, split by `is_ignored`. After `case_timeout`
    seconds `on_expire()` runs (it stops the servers) and the browser closes, so every
    pending Playwright call fails. Always writes `logs/<label>-console.log` and a final
    screenshot, and closes the browser."""
    from playwright.sync_api import sync_playwright
    errors, ignored, console = [], [], []

    def on_console(msg):
        console.append(f"{msg.type}: {msg.text}")
        if msg.type == "error":
            text = f"console.error: {msg.text} @ {msg.location}"
            (ignored if is_ignored(text) else errors).append(text)

    def on_pageerror(exc):
        text = f"pageerror: {exc}\n{getattr(exc, 'stack', '')}"
        console.append(text)
        (ignored if is_ignored(text) else errors).append(text)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=30_000)
        page = None
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.on("console", on_console)
            page.on("pageerror", on_pageerror)

            def expire():
                try:
                    on_expire()
                finally:
                    browser.close()
            with Watchdog(case_timeout, expire) as dog:
                yield page, errors, ignored
            assert not dog.expired, f"test case exceeded {case_timeout}s"
        finally:
            logs.mkdir(exist_ok=True)
            (logs / f"{label}-console.log").write_text("\n".join(console))
            try:
                if page is not None and not page.is_closed():
                    page.screenshot(path=str(logs / f"{label}-99-final.png"), timeout=10_000)
            except Exception:
                pass
            browser.close()


# ----------------------------------------------------------------------------------
# Page helpers: `dom` is LAB (JupyterLab 3/4, Notebook 7; the default) or CLASSIC (Notebook 6)
# ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dom:
    """Selectors of one notebook front end's DOM."""
    cell: str       # every cell of the notebook, in order
    prompt: str     # a cell's input prompt: '[3]', '[*]'
    editor: str     # a cell's code editor (clicked to select it)
    output: str     # one output of a cell


LAB = Dom(".jp-Notebook .jp-Cell", ".jp-InputPrompt", ".jp-InputArea-editor", ".jp-OutputArea-output")
CLASSIC = Dom("#notebook .cell", ".input_prompt", ".CodeMirror", ".output_subarea")
CELL = LAB.cell
PROMPT_RE = re.compile(r"\[(\s*\d+|\*)\]")


def cell(page, i: int, dom: Dom = LAB):
    return page.locator(dom.cell).nth(i)


def prompt(page, i: int, dom: Dom = LAB) -> str:
    txt = cell(page, i, dom).locator(dom.prompt).first.inner_text(timeout=15_000)
    m = PROMPT_RE.search(txt)
    return m.group(0).replace(" ", "") if m else ""


def is_running(page, i: int, dom: Dom = LAB) -> bool:
    return prompt(page, i, dom) == "[*]"


def start_cell(page, i: int, timeout: float = 15, dom: Dom = LAB) -> str:
    """Select cell i, run it with Ctrl+Enter (run, do not advance) and wait until it
    is queued/running or already finished. Returns the prompt seen before running."""
    before = prompt(page, i, dom)
    c = cell(page, i, dom)
    c.scroll_into_view_if_needed(timeout=10_000)
    c.locator(dom.editor).first.click(timeout=10_000)
    page.keyboard.press("Control+Enter")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = prompt(page, i, dom)
        if p == "[*]" or (p and p != before):
            return before
        time.sleep(0.05)
    raise TimeoutError(f"cell {i} did not start (prompt {prompt(page, i, dom)!r})")


def wait_cell_done(page, i: int, before: str, timeout: float = 60, dom: Dom = LAB) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = prompt(page, i, dom)
        if p not in ("", "[*]", before):
            return p
        time.sleep(0.1)
    raise TimeoutError(f"cell {i} still not finished after {timeout}s (prompt {prompt(page, i, dom)!r})")


def run_cell(page, i: int, timeout: float = 60, dom: Dom = LAB, expect: str | None = None) -> str:
    """Run cell i; its output text, once it holds `expect` (within 30 s more): the prompt can
    show the cell done before its output is drawn (the reply and the output travel apart)."""
    before = start_cell(page, i, dom=dom)
    wait_cell_done(page, i, before, timeout, dom)
    deadline = time.monotonic() + 30
    while expect and expect not in output_text(page, i, dom) and time.monotonic() < deadline:
        time.sleep(0.1)
    return output_text(page, i, dom)


def run_first_cell(page, i: int, marker: str, server: JupyterServer, timeout: float = 120, dom: Dom = LAB) -> str:
    """Run cell i, again until its output holds `marker` (the first Ctrl+Enter may arrive
    before the kernel is connected); its output."""
    out, deadline = "", time.monotonic() + timeout
    while marker not in out and time.monotonic() < deadline:
        try:
            out = run_cell(page, i, timeout=30, dom=dom, expect=marker)
        except TimeoutError:
            out = ""
    assert marker in out, f"cell {i} gave no {marker!r}: {out!r}\n{server.log_tail()}"
    return out


def open_notebook(page, server: JupyterServer, name: str, n_cells: int, dom: Dom = LAB) -> str:
    """Open notebook `name` of `n_cells` cells and run its first cell, a prelude that prints `KERNEL_PYTHON` and
    `KERNEL_PID` (the pid is recorded, so that `stop_server` ends the kernel); the prelude's output."""
    page.goto(server.notebook_url(name), wait_until="domcontentloaded", timeout=60_000)
    page.locator(dom.cell).nth(n_cells - 1).wait_for(timeout=60_000)
    out = run_first_cell(page, 0, "KERNEL_PYTHON", server, timeout=90, dom=dom)
    server.kernel_pids.append(int(re.search(r"KERNEL_PID (\d+)", out).group(1)))
    return out


def run_plot_cell(page, i: int, timeout: float, dom: Dom = LAB) -> int:
    """Run cell i, which prints `BATCHES <training batches>` and shows a live plot; the training batches, once the
    plot is drawn."""
    out = run_cell(page, i, timeout=timeout, dom=dom, expect="BATCHES")
    m = re.search(r"BATCHES (\d+)", out)
    assert m, f"cell {i} printed no BATCHES: {out!r}"
    cell(page, i, dom).locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    return int(m.group(1))


def output_text(page, i: int, dom: Dom = LAB) -> str:
    # one read of every output: a front end may replace an output while it is read
    return "\n".join(cell(page, i, dom).locator(dom.output).all_inner_texts())


def checkbox(page, cell_index: int, description: str, dom: Dom = LAB):
    """The <input> of the ipywidgets Checkbox whose description is `description`.
    ipywidgets 7 and 8 DOM: div.widget-checkbox > label > input[type=checkbox] + span(description)."""
    box = cell(page, cell_index, dom).locator(".widget-checkbox").filter(
        has=page.locator("span", has_text=re.compile(rf"^\s*{re.escape(description)}\s*$")))
    return box.locator("input[type=checkbox]")


def row(page, cell_index: int, description: str, dom: Dom = LAB):
    """The ipywidgets HBox (one panel row) that holds the Checkbox `description`."""
    # `has=` takes a locator relative to the row, hence not `checkbox(...)` itself
    box = page.locator(".widget-checkbox").filter(
        has=page.locator("span", has_text=re.compile(rf"^\s*{re.escape(description)}\s*$")))
    return cell(page, cell_index, dom).locator(".widget-hbox").filter(has=box).first


def row_text(page, cell_index: int, description: str, dom: Dom = LAB) -> str:
    """The texts of one panel row's children (switch, order, events, cost, note), ' | '-joined."""
    return " | ".join(t.strip() for t in row(page, cell_index, description, dom)
                      .locator(":scope > *").all_inner_texts())


# JS run in the page: trace summary of the first plotly graph in a cell's output. The
# argument is a LAB cell index, or [selector, index]: the index-th element matching the
# selector (e.g. [CLASSIC.cell, 2], or ['body', 0] for a page with one graph).
# `gd.data[i].x` can be a plain array, a typed array, or a plotly.js "typed array spec"
# ({dtype, bdata, shape}); `gd._fullData[i]._length` is plotly's own count of drawn points.
# `last` is the last x value and `xs` every x value of traces with at most 50 points; `fy`
# counts the finite y values (traces that share an x column have NaN where they lack a point).
JS_TRACES = r"""
(where) => {
  const [sel, idx] = Array.isArray(where) ? where : ['.jp-Notebook .jp-Cell', where];
  const cell = document.querySelectorAll(sel)[idx];
  const gd = cell && cell.querySelector('.js-plotly-plot');
  if (!gd || !gd.data) return null;
  const SZ = {f8: 8, f4: 4, i4: 4, u4: 4, i2: 2, u2: 2, i1: 1, u1: 1, float64: 8, float32: 4,
              int32: 4, uint32: 4, int16: 2, uint16: 2, int8: 1, uint8: 1};
  const CT = {f8: Float64Array, float64: Float64Array, f4: Float32Array, float32: Float32Array,
              i4: Int32Array, int32: Int32Array, u4: Uint32Array, uint32: Uint32Array,
              i2: Int16Array, int16: Int16Array, u2: Uint16Array, uint16: Uint16Array,
              i1: Int8Array, int8: Int8Array, u1: Uint8Array, uint8: Uint8Array};
  const arr = (a) => {
    if (a == null) return [];
    if (Array.isArray(a) || ArrayBuffer.isView(a)) return a;
    if (a.bdata) {
      const bin = atob(a.bdata), bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      return new (CT[a.dtype] || Float64Array)(bytes.buffer);
    }
    return [];
  };
  const len = (a) => {
    if (a == null) return 0;
    if (Array.isArray(a) || ArrayBuffer.isView(a)) return a.length;
    if (a.shape) return Array.isArray(a.shape) ? a.shape[0] : Number(String(a.shape).split(',')[0]);
    if (a.bdata) return Math.floor(atob(a.bdata).length / (SZ[a.dtype] || 8));
    return a.length || 0;
  };
  return Array.from(gd.data).map((t, k) => {
    const x = arr(t.x);
    return {
      name: t.name, nx: len(t.x), ny: len(t.y), fy: Array.from(arr(t.y)).filter(Number.isFinite).length,
      last: x.length ? Number(x[x.length - 1]) : null,
      xs: x.length <= 50 ? Array.from(x, Number) : null,
      drawn: gd._fullData && gd._fullData[k] ? gd._fullData[k]._length : null,
    };
  });
}
"""

# Texts of the layout annotations of the first plotly graph in a cell's output (argument as JS_TRACES).
JS_ANNOTATIONS = r"""
(where) => {
  const [sel, idx] = Array.isArray(where) ? where : ['.jp-Notebook .jp-Cell', where];
  const cell = document.querySelectorAll(sel)[idx];
  const gd = cell && cell.querySelector('.js-plotly-plot');
  return ((gd && gd.layout && gd.layout.annotations) || []).map((a) => a.text);
}
"""

# Start sampling (every 40 ms) the point count of trace `traceName` in the plot of cell
# `plotCell`, together with whether cell `runCell` is still running. Also counts
# 'plotly_afterplot' events (one per redraw).
JS_START_RECORDER = r"""
([plotCell, runCell, traceName]) => {
  if (window.__cwRecorder) clearInterval(window.__cwRecorder);
  const rec = window.__cwRec = {samples: [], afterplots: 0, hooked: false};
  const cells = () => document.querySelectorAll('.jp-Notebook .jp-Cell');
  const len = (a) => (a == null ? 0 : (Array.isArray(a) || ArrayBuffer.isView(a)) ? a.length
      : (a.shape ? (Array.isArray(a.shape) ? a.shape[0] : Number(String(a.shape).split(',')[0])) : (a.length || 0)));
  window.__cwRecorder = setInterval(() => {
    const c = cells();
    const gd = c[plotCell] && c[plotCell].querySelector('.js-plotly-plot');
    const p = c[runCell] && c[runCell].querySelector('.jp-InputPrompt');
    const running = !!p && p.textContent.includes('*');
    if (!gd || !gd.data) return;
    if (!rec.hooked && gd.on) { gd.on('plotly_afterplot', () => { rec.afterplots += 1; }); rec.hooked = true; }
    const t = Array.from(gd.data).find((tr) => tr.name === traceName);
    const n = t ? len(t.x) : -1;
    const last = rec.samples[rec.samples.length - 1];
    if (!last || last.n !== n || last.running !== running)
      rec.samples.push({t: performance.now(), n, running, afterplots: rec.afterplots});
  }, 40);
}
"""

JS_STOP_RECORDER = r"""
() => { clearInterval(window.__cwRecorder); window.__cwRecorder = null; return window.__cwRec; }
"""

# What a cell (or a page) shows of the live plot: its plotly graphs and its pictures (PNG images whose data holds
# the picture mark, `callbacks_widget.picture.PICTURE_MARK`), counted as shown or hidden. The argument is
# [selector, index, mark]: the index-th element matching the selector.
JS_FIGURES = r"""
([sel, idx, mark]) => {
  const root = document.querySelectorAll(sel)[idx];
  if (!root) return null;
  const shown = (e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';
  const pics = [...root.querySelectorAll('img')].filter((i) => i.src.includes(mark));
  return {graphs: [...root.querySelectorAll('.js-plotly-plot')].filter(shown).length,
          pictures: pics.filter(shown).length, hidden: pics.filter((i) => !shown(i)).length,
          sizes: pics.filter(shown).map((i) => [i.naturalWidth, i.naturalHeight]),
          src: pics.filter(shown).map((i) => i.src)};
}
"""


def figures(page, where: list, mark: str) -> dict:
    """How many live graphs and pictures `where` ([selector, index]) shows, and the shown pictures' sizes and data URLs."""
    return page.evaluate(JS_FIGURES, [*where, mark])
