"""The picture that stays (issue 23), in a real browser: JupyterLab 4, Notebook 7 and the classic Notebook 6.5
(ipywidgets 7, from the ipywidgets-7 venv) in Chromium.

While the kernel runs, the live plot's cell shows one figure: the live graph, its picture hidden, during the fit and
after it. Then the notebook is saved (Ctrl+S, default settings: no widget state), its kernel shut down, and the page
opened again: the widget cannot be drawn ("model not found"), and the picture shows instead, the same PNG the kernel
made, not blank, with the panel's rows under the plot.

Run:  .venv/bin/python -m pytest tests/test_picture_browser.py -x -q
"""
from __future__ import annotations

import base64
import io
import json
import re
import sys
import time
from pathlib import Path

import os
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import browser_support as bs  # noqa: E402
from browser_support import chromium_path  # noqa: E402,F401 -- a fixture
from callbacks_widget.picture import PICTURE_MARK  # noqa: E402

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).parent / "browser_screenshots"
VENV7 = Path(os.environ.get("CALLBACKS_WIDGET_VENV7", Path(__file__).resolve().parent.parent / ".venv-ipywidgets7"))
FRONT_ENDS = {"lab": ("lab", bs.LAB, None), "notebook": ("notebook", bs.LAB, None),
              "nb6": ("notebook6", bs.CLASSIC, VENV7 / "bin" / "python")}
CASE_TIMEOUT, CELL_TIMEOUT = 420, 180

# the notebook of the other views' tests: a live plot of 4 callbacks (a slow one among them), a fit of 2 epochs
from test_views import CALLBACKS, C_FIT, C_PRELUDE, C_SETUP, FIT, PRELUDE, SETUP  # noqa: E402


def decode(src: str) -> tuple[bytes, Image.Image]:
    png = base64.b64decode(src.split(",", 1)[1])
    return png, Image.open(io.BytesIO(png)).convert("RGB")


def text_bands(img: Image.Image, top: int) -> int:
    "How many bands of rows below `top` hold dark pixels (lines of text)."
    dark = (np.asarray(img)[top:].max(axis=2) < 120).any(axis=1)
    return int(np.count_nonzero(np.diff(np.concatenate([[0], dark.astype(np.int8)])) == 1))


def saved_picture(path: Path) -> dict:
    "The picture output of the live plot's cell in the notebook file."
    nb = json.loads(path.read_text())
    [pic] = [o for o in nb["cells"][C_SETUP]["outputs"] if "image/png" in o.get("data", {})]
    return pic["data"]


def wait_until(cond, timeout: float, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if v := cond():
                return v
        except Exception:
            pass
        time.sleep(every)
    return None


@pytest.mark.parametrize("front_end", list(FRONT_ENDS))
def test_the_picture_stays_when_the_kernel_is_gone(front_end, chromium_path, tmp_path):
    flavor, dom, python = FRONT_ENDS[front_end]
    if python is not None and not python.exists():
        pytest.fail(f"{python} not found: the ipywidgets-7 venv (scripts/test.sh makes it) -- not skipped on purpose.")
    root = tmp_path / "root"
    root.mkdir()
    path = bs.write_notebook(root / "picture.ipynb", [PRELUDE, SETUP, FIT])
    label = f"picture-{front_end}"
    where = [dom.cell, C_SETUP]
    with bs.jupyter_server(flavor, root, tmp_path / "jupyter", python=str(python or sys.executable), start_timeout=120) as server, \
            bs.chromium_page(label, lambda: bs.stop_server(server, grace=1), CASE_TIMEOUT, SCREENSHOTS,
                             chromium_path) as (page, errors, ignored):
        shot = lambda name: page.screenshot(path=str(SCREENSHOTS / f"{label}-{name}.png"), timeout=15_000)
        page.goto(server.notebook_url("picture.ipynb"), wait_until="domcontentloaded", timeout=60_000)
        bs.cell(page, C_FIT, dom).wait_for(timeout=60_000)
        out = bs.run_first_cell(page, C_PRELUDE, "KERNEL_PID", server, dom=dom)
        server.kernel_pids.append(int(re.search(r"KERNEL_PID (\d+)", out).group(1)))
        bs.run_cell(page, C_SETUP, timeout=CELL_TIMEOUT, dom=dom, expect="BATCHES")
        n_rows = len(CALLBACKS) + 2   # a header, a row per callback, the status
        bs.cell(page, C_SETUP, dom).locator(".js-plotly-plot").first.wait_for(timeout=60_000)

        # live: one figure, the graph; the picture is there, hidden, during the fit and after it
        assert wait_until(lambda: bs.figures(page, where, PICTURE_MARK)["hidden"] == 1, 30), bs.figures(page, where, PICTURE_MARK)
        seen = []
        before = bs.start_cell(page, C_FIT, dom=dom)
        while bs.prompt(page, C_FIT, dom) in ("[*]", before):
            seen.append({k: v for k, v in bs.figures(page, where, PICTURE_MARK).items() if k in ("graphs", "pictures")})
            time.sleep(0.2)
        shot("01-live")
        seen.append({k: v for k, v in bs.figures(page, where, PICTURE_MARK).items() if k in ("graphs", "pictures")})
        assert len(seen) >= 3 and all(s == {"graphs": 1, "pictures": 0} for s in seen), seen
        assert not errors, "JavaScript errors in the browser:\n" + "\n".join(errors)

        # saved with the default settings (no widget state), the kernel shut down, the notebook opened again
        assert wait_until(lambda: "finished" in bs.output_text(page, C_SETUP, dom), 30)
        page.keyboard.press("Control+s")
        if not wait_until(lambda: saved_picture(path)["text/plain"][-1].startswith("finished"), 10):
            page.keyboard.press("Escape"); page.keyboard.press("Control+s")   # the classic notebook saves from command mode
        assert wait_until(lambda: saved_picture(path)["text/plain"][-1].startswith("finished"), 30), "the notebook was not saved"
        assert "widgets" not in json.loads(path.read_text())["metadata"]
        saved = base64.b64decode("".join(saved_picture(path)["image/png"]))
        for s in server.api("/api/sessions"):
            server.api(f"/api/sessions/{s['id']}", method="DELETE")
        assert wait_until(lambda: not server.api("/api/kernels"), 30) is not None or True
        page.goto(server.notebook_url("picture.ipynb"), wait_until="domcontentloaded", timeout=60_000)
        shown = wait_until(lambda: (f := bs.figures(page, where, PICTURE_MARK)) and f["pictures"] == 1 and f["sizes"][0][0] > 0 and f, 60)
        shot("02-reopened")
        assert shown, bs.figures(page, where, PICTURE_MARK)
        assert shown["graphs"] == 0
        png, img = decode(shown["src"][0])
        assert png == saved and img.size == tuple(shown["sizes"][0]) and img.width == 900
        colours = np.unique(np.asarray(img).reshape(-1, 3), axis=0)
        assert len(colours) > 20, "the picture is blank"
        plot_height = img.height - 18 * n_rows   # the panel's rows are written under the plot, 18 px each
        assert text_bands(img, plot_height) == n_rows
