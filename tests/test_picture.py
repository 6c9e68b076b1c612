"The picture the live plot leaves in the notebook (issue 23): made in the kernel after every fit, a PNG every viewer shows."
import base64, io, json, re, subprocess, sys
from functools import partial
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.displaypub import CapturingDisplayPublisher
from callbacks_widget.all import *
from callbacks_widget.picture import PICTURE_MARK, LEGEND_ROW, FOOTER_ROW, legend_places, figure_png
from callbacks_widget.figure import PlotlyLibrary
from messages import attached
from conftest import make_learner
from interrupts import interrupt_every_line

ROOT = Path(__file__).resolve().parent.parent
BLUE = (31, 119, 180)   # the smoothed train loss


def decode(bundle: dict) -> Image.Image:
    png = base64.b64decode(bundle['image/png'])
    assert base64.b64encode(png).decode()[44:44 + len(PICTURE_MARK)] == PICTURE_MARK
    return Image.open(io.BytesIO(png)).convert('RGB')


def colours(img: Image.Image) -> dict:
    "How many pixels of each colour `img` has."
    a = np.asarray(img).reshape(-1, 3)
    values, counts = np.unique(a, axis=0, return_counts=True)
    return {tuple(v): c for v, c in zip(values.tolist(), counts.tolist())}


def text_bands(img: Image.Image, top: int) -> int:
    "How many bands of rows below `top` hold dark pixels (lines of text)."
    dark = (np.asarray(img)[top:].max(axis=2) < 120).any(axis=1)
    return int(np.count_nonzero(np.diff(np.concatenate([[0], dark.astype(np.int8)])) == 1))


class Shell:
    "A real IPython shell whose display messages are kept, as a kernel would send them."
    def __enter__(self):
        self.shell = InteractiveShell.instance()
        self.saved, self.shell.display_pub = self.shell.display_pub, CapturingDisplayPublisher()
        return self.shell.display_pub.outputs

    def __exit__(self, *exc): self.shell.display_pub = self.saved


def test_the_picture_is_the_figure_with_the_panel_under_it():
    learn = make_learner()
    run = Runner(cb_funcs=[partial(AvgStatsCallback, accuracy), LivePlotCallback])
    run.fit(2, learn)
    bundle = run.live_plot.picture()
    img = decode(bundle)
    fig, rows = run.live_plot.fig, run.live_plot.panel.table()
    legend = (1 + max(r for *_, r in legend_places([t for t in fig.traces if len(fig.column(t['y']))], 900, 80))) * LEGEND_ROW
    assert img.size == (900, fig.plot_layout['height'] + legend + FOOTER_ROW * len(rows))
    c = colours(img)
    assert len(c) > 20 and c.get(BLUE, 0) > 200, sorted(c.items(), key=lambda kv: -kv[1])[:5]
    # every row of the panel is a line of text under the plot
    assert text_bands(img, fig.plot_layout['height'] + legend) == len(rows)
    text = bundle['text/plain']
    assert text.splitlines()[-1].startswith('finished · epoch 2/2') and all(cb.name in text for cb in run.cbs)


def test_the_picture_draws_the_view_the_user_chose():
    learn = make_learner()
    run = Runner(cb_funcs=[partial(AvgStatsCallback, accuracy), LivePlotCallback])
    run.fit(1, learn); run.fit(1, learn)
    end_to_end = decode(run.live_plot.picture())
    run.live_plot.view = 'compare'
    compare = decode(run.live_plot.picture())
    orange = (255, 127, 14)   # fit 2's colour in the compare view; the validation loss's end to end
    assert colours(compare).get(orange, 0) > 200
    assert np.abs(np.asarray(compare, np.int16) - np.asarray(end_to_end, np.int16)).max() > 0


@pytest.mark.parametrize('how', ['finished', 'cancelled', 'interrupted', 'failed'])
def test_a_picture_after_every_way_a_fit_ends(how):
    class End(Callback):
        def after_batch(self):
            if self.n_iter < 3: return
            if how == 'cancelled': raise CancelTrainException()
            if how == 'interrupted': raise KeyboardInterrupt()
            if how == 'failed': raise ValueError('boom')
    run = Runner(cb_funcs=[End, LivePlotCallback])
    with Shell() as out:
        run.live_plot._ipython_display_()
        try: run.fit(1, make_learner())
        except (KeyboardInterrupt, ValueError): pass
    widget, first, *updates = out
    assert 'application/vnd.jupyter.widget-view+json' in widget['data']
    assert first['transient']['display_id'] == updates[-1]['transient']['display_id'] and updates[-1]['update']
    assert first['data']['text/plain'].splitlines()[-1] == 'ready'
    assert updates[-1]['data']['text/plain'].splitlines()[-1].startswith(how)
    decode(updates[-1]['data'])


def test_a_ctrl_c_while_the_picture_is_made_leaves_the_next_fit_its_picture():
    "Interrupted at every 50th of the ~1,500 lines that drawing and sending the picture runs: the next fit ends with a whole picture."
    learn, ends = make_learner(), []
    def make():
        run = Runner(cb_funcs=[partial(AvgStatsCallback, accuracy), LivePlotCallback])
        with Shell(): run.live_plot._ipython_display_()
        return run
    def action(run):
        with Shell(): run.fit(1, learn)
    def check(run, where):
        with Shell() as out: run.fit(1, learn)
        last = [o for o in out if o.get('update')][-1]['data']
        ends.append((where, last['text/plain'].splitlines()[-1].split(' · ')[0], len(run.live_plot.history.fit_starts)))
        decode(last)
    n = interrupt_every_line(make, action, check, within=LivePlotCallback.show_picture, every=50)
    assert n > 500 and len(ends) == len(range(1, n + 1, 50))
    assert all(end == 'finished' and fits == 2 for _, end, fits in ends), [e for e in ends if e[1:] != ('finished', 2)]


def test_a_live_plot_never_shown_makes_no_picture():
    run = Runner(cb_funcs=LivePlotCallback)
    with Shell() as out: run.fit(1, make_learner())
    assert out == []


def test_the_picture_is_bounded_at_a_million_batches_and_a_thousand_fits():
    cb = attached(LivePlotCallback())
    h, rng = cb.history, np.random.default_rng(0)
    for k in range(1000):
        h.begin_fit(('train_eval', 'live_plot'))
        for v in (1 + rng.random(1000)).tolist(): h.add_batch(v, 0.1)
        h.add_epoch(0, valid_loss=float(rng.random()))
    cb.update()
    assert h.n_iter == 1_000_000
    png = base64.b64decode(cb.picture()['image/png'])
    assert len(png) < 150_000, len(png)


def test_figure_png_draws_log_axes_and_gaps():
    layout = dict(height=300, xaxis=dict(type='log'), yaxis=dict(type='log', title=dict(text='loss')))
    cols = {'x': np.array([1e-4, 1e-3, 1e-2, 1e-1]), 'y': np.array([1., np.nan, 0.1, -1.])}
    png = figure_png(layout, [dict(name='loss', x='x', y='y', mode='lines+markers', line=dict(color='#ff0000'))], cols.get)
    img = Image.open(io.BytesIO(png)).convert('RGB')
    assert colours(img).get((255, 0, 0), 0) > 20   # markers drawn; the NaN and the negative value left out
    assert img.size == (900, 300 + LEGEND_ROW)


def test_save_html_offline_or_from_the_cdn(tmp_path):
    run = Runner(cb_funcs=LivePlotCallback)
    run.fit(1, make_learner())
    inline, cdn = run.live_plot.save_html(tmp_path / 'a.html'), run.live_plot.save_html(tmp_path / 'b.html', plotly_js='cdn')
    assert inline.stat().st_size > 3_000_000 and cdn.stat().st_size < 500_000
    assert re.search(r"<script[^>]* src=\"https://cdn\.plot\.ly/plotly-[\d.]+\.min\.js\"", cdn.read_text())
    with pytest.raises(ValueError, match="plotly_js must be 'inline' or 'cdn', got 'local'"):
        run.live_plot.save_html(tmp_path / 'c.html', plotly_js='local')


def test_every_figure_of_a_kernel_shares_one_plotly_js():
    a, b = LivePlotCallback(), LivePlotCallback()
    assert a.fig.library is b.fig.library and isinstance(a.fig.library, PlotlyLibrary)
    assert a.fig.get_state()['library'] == f'IPY_MODEL_{a.fig.library.model_id}'


# ----------------------------------------------------------------------------------
# Notebooks run by nbconvert (a real kernel, no front end)
# ----------------------------------------------------------------------------------

SETUP = """\
from callbacks_widget.all import *
torch.manual_seed(0)
x_train, y_train, x_valid, y_valid = get_data()
data = DataBunch(*get_dls(Dataset(x_train[:1000], y_train[:1000]), Dataset(x_valid[:200], y_valid[:200]), 64), c=10)
learn = Learner(*get_model(data), F.cross_entropy, data)
run = Runner(cb_funcs=[partial(AvgStatsCallback, accuracy), LivePlotCallback])
run.live_plot
"""
FIT = "run.fit(2, learn)"
ANOTHER = """\
run{k} = Runner(cb_funcs=LivePlotCallback)
run{k}.fit(1, learn)
run{k}.live_plot
"""


def notebook(path: Path, cells: list) -> Path:
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
                                           "source": s} for i, s in enumerate(cells)],
                                "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
                                "nbformat": 4, "nbformat_minor": 5}))
    return path


def nbconvert(*args, cwd):
    r = subprocess.run([sys.executable, '-m', 'jupyter', 'nbconvert', *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return r


def pictures(nb: dict) -> list:
    return [o for c in nb['cells'] for o in c.get('outputs', []) if 'image/png' in o.get('data', {})]


def test_a_notebook_run_with_no_front_end_keeps_the_picture(tmp_path):
    "nbconvert --execute (as papermill: nbclient, no front end): the saved notebook holds the picture of the fit, and its HTML shows it."
    notebook(tmp_path / 'nb.ipynb', [SETUP, FIT])
    nbconvert('--to', 'notebook', '--execute', '--ExecutePreprocessor.store_widget_state=False', '--output', 'run.ipynb', 'nb.ipynb', cwd=tmp_path)
    nb = json.loads((tmp_path / 'run.ipynb').read_text())
    assert 'widgets' not in nb['metadata']
    [pic] = pictures(nb)
    assert pic['data']['text/plain'][-1].startswith('finished · epoch 2/2')   # updated after the fit, in the cell that shows it
    img = decode({'image/png': ''.join(pic['data']['image/png'])})
    assert img.width == 900 and colours(img).get(BLUE, 0) > 200
    nbconvert('--to', 'html', 'run.ipynb', cwd=tmp_path)
    page = (tmp_path / 'run.html').read_text()
    assert len(re.findall(r'<img[^>]* src="data:image/png;base64,', page)) == 1 and PICTURE_MARK in page


def test_three_live_plots_saved_with_widget_state_hold_plotly_js_once(tmp_path):
    notebook(tmp_path / 'nb.ipynb', [SETUP, FIT, ANOTHER.format(k=2), ANOTHER.format(k=3)])
    nbconvert('--to', 'notebook', '--execute', '--ExecutePreprocessor.store_widget_state=True', '--output', 'run.ipynb', 'nb.ipynb', cwd=tmp_path)
    path = tmp_path / 'run.ipynb'
    state = json.loads(path.read_text())['metadata']['widgets']['application/vnd.jupyter.widget-state+json']['state']
    libraries = [m for m in state.values() if m['state'].get('code') is not None or any(b['path'] == ['code'] for b in m.get('buffers', []))]
    assert len(libraries) == 1
    assert path.stat().st_size < 2_350_000, path.stat().st_size   # 2.31 MB (2026-12-03): each live plot has 14 KB of settings controls and Stop
    assert len(pictures(json.loads(path.read_text()))) == 3
