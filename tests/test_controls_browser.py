"""The live plot's settings and Stop button in JupyterLab 4 (issue 26): the log toggle changes the graph's own axis type, the
smoothing slider moved redraws the smoothed curve, Stop clicked during a fit ends it within one batch of the click's arrival
("stopped") and the next fit runs, a height set from code and a narrower page resize the graph."""
import json, re, time
import pytest
import browser_support as bs
from browser_support import chromium_path  # noqa: F401 -- a fixture
from test_browser import PRELUDE, CELL_TIMEOUT, SCREENSHOTS, lab_notebook, wait_until

pytestmark = pytest.mark.browser

SETUP = """\
import json, time
from callbacks_widget.all import *
from callbacks_widget.demo import demo_setup

class Slow(Callback):
    "20 ms per batch: a fit lasts long enough to click Stop during it; counts its training batches."
    def begin_fit(self): self.n = 0
    def after_batch(self):
        self.n += self.in_train
        time.sleep(0.02)

_, learn = demo_setup()
run = Runner(cb_funcs=[partial(AvgStatsCallback, accuracy), Slow, partial(LivePlotCallback, every=0.2)])
arrived = []   # the training batches done when a Stop click reached the kernel
run.live_plot.panel.stop_button.on_click(lambda b: arrived.append(run.slow.n))
print('BATCHES', len(learn.data.train_dl))
run.live_plot
"""
FIT1 = "run.fit(1, learn)\n"
LONG_FIT = "run.fit(5, learn)\nprint('STOPPED', json.dumps(dict(arrived=arrived, n=run.slow.n, status=run.live_plot.panel.status)))\n"
NEXT_FIT = "run.fit(1, learn)\nprint('NEXT', run.live_plot.panel.status, run.slow.n, run.live_plot.beta, run.live_plot.log_y)\n"
HEIGHT = "run.live_plot.height = 700\n"
C_SETUP, C_FIT1, C_LONG, C_NEXT, C_HEIGHT = range(1, 6)

# The first graph of a cell as plotly laid it out: its size, the loss row's axis type, and the smoothed curve's y values.
JS_GRAPH = r"""
(i) => {
  const gd = document.querySelectorAll('.jp-Notebook .jp-Cell')[i].querySelector('.js-plotly-plot');
  if (!gd || !gd._fullLayout) return null;
  const smooth = Array.from(gd.data).find((t) => t.name === 'train loss (smoothed)');
  return {width: gd._fullLayout.width, height: gd._fullLayout.height, yaxis: gd._fullLayout.yaxis.type,
          yaxis3: gd._fullLayout.yaxis3.type, smooth: smooth ? Array.from(smooth.y, Number) : []};
}
"""


@pytest.fixture
def controls_page(chromium_path, tmp_path):
    with lab_notebook("controls", [PRELUDE, SETUP, FIT1, LONG_FIT, NEXT_FIT, HEIGHT], chromium_path, tmp_path) as page:
        yield page


def test_controls_in_jupyterlab(controls_page):
    server, (page, js_errors, ignored) = controls_page
    shot = lambda name: page.screenshot(path=str(SCREENSHOTS / f"lab-controls-{name}.png"), timeout=15_000)
    graph = lambda: page.evaluate(JS_GRAPH, C_SETUP)
    n_train = bs.run_plot_cell(page, C_SETUP, CELL_TIMEOUT)
    bs.run_cell(page, C_FIT1, timeout=CELL_TIMEOUT)
    assert wait_until(lambda: len(graph()["smooth"]) == n_train, 30), graph()

    # --- the log toggle: the graph's own loss axis becomes logarithmic ---------------------------------------
    assert graph()["yaxis"] == "linear"
    bs.cell(page, C_SETUP).get_by_role("button", name="log loss").click()
    assert wait_until(lambda: graph()["yaxis"] == "log", 30), graph()
    assert graph()["yaxis3"] == "linear"   # the lr row has its own toggle
    shot("01-log")

    # --- the smoothing slider, dragged to the left and released: the smoothed curve is drawn again ----------
    before = graph()["smooth"]
    handle = bs.cell(page, C_SETUP).locator(".widget-slider", has_text="smoothing").locator(".noUi-handle").first
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] - 150, box["y"] + box["height"] / 2, steps=10)
    page.mouse.up()
    assert wait_until(lambda: graph()["smooth"] != before and len(graph()["smooth"]) == n_train, 30), "the smoothed curve did not change"
    shot("02-smoothing")

    # --- Stop clicked during a fit: it ends within one batch of the click's arrival, "stopped" -------------
    started = bs.start_cell(page, C_LONG)
    assert wait_until(lambda: (page.evaluate(bs.JS_TRACES, C_SETUP) or [{}])[0].get("last", 0) > n_train + 20, 60)
    stop = bs.cell(page, C_SETUP).get_by_role("button", name="Stop")
    assert stop.is_enabled(), "Stop is not enabled during the fit"
    stop.click()
    bs.wait_cell_done(page, C_LONG, started, timeout=CELL_TIMEOUT)
    out = bs.output_text(page, C_LONG)
    state = json.loads(re.search(r"STOPPED (\{.*\})", out).group(1))
    assert len(state["arrived"]) == 1 and state["n"] - state["arrived"][0] <= 1, state
    assert state["n"] < 5 * n_train and state["status"] == "stopped", state
    assert wait_until(lambda: "stopped" in bs.output_text(page, C_SETUP), 30)
    shot("03-stopped")

    # --- the next fit runs whole, with the settings kept ------------------------------------------------------
    out = bs.run_cell(page, C_NEXT, timeout=CELL_TIMEOUT, expect="NEXT")
    m = re.search(r"NEXT (\w+) (\d+) (\S+) (\w+)", out)
    assert m and m.group(1) == "finished" and int(m.group(2)) == n_train, out
    assert float(m.group(3)) < 0.98 and m.group(4) == "True", out   # the slider's beta and the toggle's log axis

    # --- size: a height from code, and a width that follows the page -------------------------------------
    width = graph()["width"]
    bs.run_cell(page, C_HEIGHT, timeout=60)
    assert wait_until(lambda: graph()["height"] == 700, 30), graph()
    page.set_viewport_size({"width": 1000, "height": 1000})
    assert wait_until(lambda: graph()["width"] < width - 200, 30), (width, graph()["width"])
    shot("04-narrow")
    assert not js_errors, "JavaScript errors in the browser:\n" + "\n".join(js_errors)
