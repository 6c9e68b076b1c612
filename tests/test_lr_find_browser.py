"The lr finder view draws in JupyterLab: its columns are binary with their dtype (before, they went as JSON lists and its view threw)."
import pytest
import browser_support as bs
from browser_support import chromium_path  # noqa: F401 -- a fixture
from test_browser import PRELUDE, CELL_TIMEOUT, SCREENSHOTS, demo_setup_cell, lab_notebook, wait_until

pytestmark = pytest.mark.browser

SETUP = demo_setup_cell("partial(AvgStatsCallback, accuracy), LR_Find, LivePlotCallback")
FIT = "run.fit(1, learn)\nprint('VIEW', run.live_plot.view)\n"


@pytest.fixture
def lr_find_page(chromium_path, tmp_path):
    with lab_notebook("lr", [PRELUDE, SETUP, FIT], chromium_path, tmp_path) as page:
        yield page


def test_lr_find_view_draws(lr_find_page):
    "A fit with LR_Find switches the live plot to its lr finder view, which draws the fit's loss against the learning rate."
    server, (page, js_errors, ignored) = lr_find_page
    bs.run_plot_cell(page, 1, CELL_TIMEOUT)
    assert "VIEW lr_find" in bs.run_cell(page, 2, timeout=CELL_TIMEOUT, expect="VIEW")

    def drawn(p):
        "Each trace as drawn: name -> finite points."
        return {t["name"]: t["fy"] for t in p.evaluate(bs.JS_TRACES, 1) or []}

    assert wait_until(lambda: drawn(page).get("fit 1", 0) > 10 and drawn(page).get("fit 1 · loss", 0) > 10, 60), drawn(page)
    page.screenshot(path=str(SCREENSHOTS / "lab-lr-find.png"), timeout=15_000)
    assert not js_errors, "JavaScript errors in the browser:\n" + "\n".join(js_errors)
