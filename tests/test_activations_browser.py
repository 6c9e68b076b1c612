"""The live plot's activations view in JupyterLab 4 (issue 27): its heat maps grow during a fit, one column a batch, and a
reload of the saved notebook draws them again from the widget's state."""
import re
import pytest
import browser_support as bs
from browser_support import chromium_path  # noqa: F401 -- a fixture
from test_browser import PRELUDE, CELL_TIMEOUT, SCREENSHOTS, lab_notebook, wait_until

pytestmark = pytest.mark.browser

SETUP = """\
import time
from callbacks_widget.all import *
from callbacks_widget.demo import demo_setup

class Slow(Callback):
    "20 ms per batch: the fit lasts long enough to see its heat maps grow."
    def after_batch(self): time.sleep(0.02)

_, learn = demo_setup()
run = Runner(cb_funcs=[Slow, ActivationStats, partial(LivePlotCallback, every=0.2)])
run.live_plot.view = 'activations'
print('BATCHES', len(learn.data.train_dl))
run.live_plot
"""
FIT = "run.fit(1, learn)\nprint('DONE', len(run.activation_stats.record), len(run.live_plot.fig.column('activations/hx')))\n"

# The heat maps of the first graph of a cell as plotly draws them: their number and columns (`len(z[0])`).
JS_HEAT = r"""
(i) => {
  const gd = document.querySelectorAll('.jp-Notebook .jp-Cell')[i].querySelector('.js-plotly-plot');
  if (!gd || !gd.data) return null;
  const heat = Array.from(gd.data).filter((t) => t.type === 'heatmap');
  return {n: heat.length, columns: heat.map((t) => (t.z && t.z.length) ? t.z[0].length : 0), rows: heat.map((t) => t.z ? t.z.length : 0)};
}
"""


@pytest.fixture
def activations_page(chromium_path, tmp_path):
    with lab_notebook("activations", [PRELUDE, SETUP, FIT], chromium_path, tmp_path) as page:
        yield page


def test_activations_view_grows_during_a_fit_and_survives_a_reload(activations_page):
    server, (page, js_errors, ignored) = activations_page
    heat = lambda: page.evaluate(JS_HEAT, 1) or {'n': 0, 'columns': [0], 'rows': [0]}
    n_train = bs.run_plot_cell(page, 1, CELL_TIMEOUT)

    started, seen = bs.start_cell(page, 2), []
    def growing():
        h = heat()
        if h['n'] and h['columns'][0] and (not seen or h['columns'][0] != seen[-1]): seen.append(h['columns'][0])
        return len(seen) >= 3
    assert wait_until(growing, 60), seen   # three sizes drawn while the fit ran
    page.screenshot(path=str(SCREENSHOTS / "lab-activations-01-growing.png"), timeout=15_000)
    bs.wait_cell_done(page, 2, started, timeout=CELL_TIMEOUT)
    m = re.search(r"DONE (\d+) (\d+)", bs.output_text(page, 2))
    assert m and int(m.group(1)) == n_train, bs.output_text(page, 2)
    assert wait_until(lambda: heat()['columns'][0] == int(m.group(2)), 30), (heat(), m.group(2))   # the kernel's columns, all drawn
    assert heat()['n'] == 2 and set(heat()['rows']) == {40}, heat()   # a heat map a layer (the MLP's two linears), 40 bins
    done = heat()

    page.keyboard.press("Control+s")
    assert wait_until(lambda: page.locator(".jp-mod-dirty").count() == 0, 30), "the notebook was not saved"
    page.reload(wait_until="domcontentloaded", timeout=60_000)
    bs.cell(page, 1).locator(".js-plotly-plot").first.wait_for(timeout=120_000)
    assert wait_until(lambda: heat() == done, 60), f"after a reload: {heat()}"
    page.screenshot(path=str(SCREENSHOTS / "lab-activations-02-reloaded.png"), timeout=15_000)
    assert not js_errors, "JavaScript errors in the browser:\n" + "\n".join(js_errors)
