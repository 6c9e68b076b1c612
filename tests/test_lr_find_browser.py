"The lr finder view draws in JupyterLab: its columns are binary with their dtype (before, they went as JSON lists and its view threw)."
import re
import pytest
import browser_support as bs
from browser_support import chromium_path  # noqa: F401 -- a fixture
from test_browser import PRELUDE, CELL_TIMEOUT, SCREENSHOTS, lab_notebook, wait_until

pytestmark = pytest.mark.browser

SETUP = """\
from callbacks_widget.all import *
from callbacks_widget.demo import demo_setup
_, learn = demo_setup()
run = Runner(cb_funcs=[partial(AvgStatsCallback, accuracy), LR_Find, LivePlotCallback])
run.live_plot
"""
FIT = "run.fit(1, learn)\nprint('VIEW', run.live_plot.view)\n"


@pytest.fixture
def lr_find_page(chromium_path, tmp_path):
    with lab_notebook("lr", [PRELUDE, SETUP, FIT], chromium_path, tmp_path) as page:
        yield page


def test_lr_find_view_draws(lr_find_page):
    "A fit with LR_Find switches the live plot to its lr finder view, which draws the fit's loss against the learning rate."
    server, (page, js_errors, ignored) = lr_find_page
    SCREENSHOTS.mkdir(exist_ok=True)
    page.goto(server.notebook_url("lr.ipynb"), wait_until="domcontentloaded", timeout=60_000)
    page.locator(bs.CELL).nth(2).wait_for(timeout=60_000)
    out = bs.run_first_cell(page, 0, "KERNEL_PYTHON", server, timeout=90)
    server.kernel_pids.append(int(re.search(r"KERNEL_PID (\d+)", out).group(1)))
    bs.run_cell(page, 1, timeout=CELL_TIMEOUT)
    bs.cell(page, 1).locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    assert "VIEW lr_find" in bs.run_cell(page, 2, timeout=CELL_TIMEOUT, expect="VIEW")

    def drawn(p):
        "Each trace as drawn: name -> finite points."
        return {t["name"]: t["fy"] for t in p.evaluate(bs.JS_TRACES, 1) or []}

    assert wait_until(lambda: drawn(page).get("fit 1", 0) > 10 and drawn(page).get("fit 1 · loss", 0) > 10, 60), drawn(page)
    page.screenshot(path=str(SCREENSHOTS / "lab-lr-find.png"), timeout=15_000)
    assert not js_errors, "JavaScript errors in the browser:\n" + "\n".join(js_errors)
