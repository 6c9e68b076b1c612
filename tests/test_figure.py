"The live figure as synced state: columns and their dtypes, groups, bounds, messages from the browser, faults in a redraw, escaping, display."
import gc, math, sys, tracemalloc
from functools import partial
import numpy as np, pytest
from ipywidgets.widgets.widget import _remove_buffers
from callbacks_widget.all import *
from messages import attached, record_messages
from callbacks_widget.figure import AUTOSCALE, COLUMN_DTYPES, FIGURE_JS, columns, columns_trait
from callbacks_widget.views import FIT_LABELS, FIT_LINES
from conftest import make_learner


def zoom(fig, content):
    "Deliver `content` to `fig` as the comm delivers a custom message from the browser."
    fig._handle_msg({'content': {'data': {'method': 'custom', 'content': content}}, 'buffers': []})


BAD_MESSAGES = [
    None, 'zoom', 42, [], {}, {'event': 'zoom'}, {'range': [1, 2]}, {'event': 'pan', 'range': [1, 2]},
    {'event': 'zoom', 'range': [1, 2], 'extra': 1}, {'event': 'zoom', 'range': [float('nan'), 5]},
    {'event': 'zoom', 'range': [1, float('inf')]}, {'event': 'zoom', 'range': ['1', '5']}, {'event': 'zoom', 'range': '1,5'},
    {'event': 'zoom', 'range': [5, 1]}, {'event': 'zoom', 'range': [3, 3]}, {'event': 'zoom', 'range': [-1e300, 1e300]},
    {'event': 'zoom', 'range': [1, 2, 3]}, {'event': 'zoom', 'range': [True, 5]}, {'event': 'zoom', 'range': [None, 5]},
    {'event': 'zoom', 'range': {'lo': 1, 'hi': 5}}, {'event': ['zoom'], 'range': None}]


class TwoGroups(LiveFigure):
    "A figure of two column groups that knows nothing of a training loop."
    points, marks = columns_trait(), columns_trait()


def two_groups() -> TwoGroups:
    return TwoGroups({'xaxis': {}, 'xaxis2': {}, 'yaxis': {}}, [dict(type='scatter', x='points/t', y='points/v'),
                                                               dict(type='scatter', x='marks/t', y='marks/v', xaxis='x2')])


@pytest.mark.parametrize('dtype', COLUMN_DTYPES)
def test_columns_round_trip_by_their_dtype(dtype):
    fig, values = two_groups(), np.array([-(2 ** 31), 0, 7, 2 ** 31 - 1]) if dtype == 'int32' else np.array([1e-30, -0.5, np.nan, 3e38])
    fig.points = columns(t=np.arange(4, dtype=np.int32), v=values.astype(dtype))
    out = fig.column('points/v')
    assert out.dtype == np.dtype(dtype) and np.array_equal(out, values.astype(dtype), equal_nan=True)
    wire, paths, buffers = _remove_buffers(fig.get_state(['points']))   # what a view receives: the dtype in JSON, the bytes binary
    assert wire['points']['v'] == {'dtype': dtype} and ['points', 'v', 'data'] in paths
    assert np.array_equal(np.frombuffer(buffers[paths.index(['points', 'v', 'data'])], dtype), values.astype(dtype), equal_nan=True)


def test_sequences_are_float32_and_a_missing_column_is_empty():
    fig = two_groups()
    fig.marks = columns(t=[1, 2], v=(0.1, 0.2))
    assert fig.column('marks/t').dtype == np.float32 and fig.column('marks/v').tolist() == pytest.approx([0.1, 0.2])
    assert len(fig.column('points/v')) == 0 and len(fig.column('marks/nothing')) == 0
    assert [t.x.tolist() for t in fig.figure().data] == [[], [1., 2.]]


@pytest.mark.parametrize('values', [np.arange(3), np.arange(3, dtype=np.uint8), np.ones(3, bool), np.ones(3, np.float16),
                                    np.ones(3, np.complex64), np.ones(3, '>f4'), np.array(['a', 'b'])])
def test_other_dtypes_are_refused(values):
    with pytest.raises(TypeError, match=rf"columns: v has dtype {values.dtype}; a column's dtype must be one of int32, float32, float64"):
        columns(t=np.arange(3, dtype=np.int32), v=values)


def test_bad_columns_are_refused():
    with pytest.raises(ValueError, match=r'columns: v must have one dimension, got shape \(2, 2\)'): columns(v=np.ones((2, 2)))
    with pytest.raises(ValueError, match='could not convert'): columns(v=['a'])
    with pytest.raises(ValueError, match="'traces' is not one of this figure's column groups \\['marks', 'points'\\]"):
        two_groups().column('traces/x')


def test_groups_are_state_and_the_view_names_none():
    class MoreGroups(TwoGroups): extra = columns_trait()
    assert two_groups().get_state()['_groups'] == ['marks', 'points']
    assert MoreGroups({}, []).get_state()['_groups'] == ['extra', 'marks', 'points']
    assert LiveFigure({}, []).get_state()['_groups'] == []
    js = FIGURE_JS.read_text()
    assert two_groups()._esm == js and "model.get('_groups')" in js   # the view is the package's figure.js
    assert not any(name in js for name in ('batches', 'epochs', 'nonfinite', 'fits', "'view'"))   # the live plot's words


def test_zoom_moves_every_x_axis_and_a_bad_message_changes_nothing(capsys):
    fig = two_groups()
    fig.points = columns(t=np.arange(10, dtype=np.int32), v=np.ones(10, np.float32))
    zoom(fig, {'event': 'zoom', 'range': [2, 5]})
    assert fig.x_range == (2., 5.) and [fig.plot_layout[k]['range'] for k in ('xaxis', 'xaxis2')] == [[2., 5.]] * 2
    before = fig.get_state()
    for msg in BAD_MESSAGES: zoom(fig, msg)
    fig.set_state({'points': {}, '_groups': []})
    assert fig.get_state() == before and capsys.readouterr() == ('', '')
    zoom(fig, {'event': 'zoom', 'range': None})
    assert fig.x_range == AUTOSCALE and fig.plot_layout['xaxis2'] == {'autorange': True}


def live_runner(*extra, **kw):
    return Runner(cb_funcs=[partial(AvgStatsCallback, accuracy), *extra, partial(LivePlotCallback, **kw)])


def fill_batches(h, n, rng=np.random.default_rng(0)):
    for v in (1 + rng.random(n)).tolist(): h.add_batch(v, 0.1)
    h.flush()


@pytest.mark.own_comm
def test_bad_front_end_messages_change_nothing_and_print_nothing(capsys):
    cb = attached(LivePlotCallback(max_points=100))
    fill_batches(cb.history, 1_000)
    cb.update()
    zoom(cb.fig, {'event': 'zoom', 'range': [100, 300]})
    sent = record_messages(cb.fig)
    before = cb.fig.get_state()
    for msg in BAD_MESSAGES: zoom(cb.fig, msg)
    cb.fig._handle_msg({'content': {'data': {'method': 'update', 'state': {'batches': {}, 'plot_layout': 'x'}, 'buffer_paths': []}}})
    assert cb.fig.get_state() == before and cb.fig.x_range == (100., 300.)
    assert sent.messages == [] and capsys.readouterr() == ('', '')
    zoom(cb.fig, {'event': 'zoom', 'range': None})   # a good one still works after them
    assert cb.fig.x_range == () and cb.fig.column('batches/x')[-1] == 1_000


def test_zoom_reaggregates_every_trace_and_marks():
    cb = attached(LivePlotCallback(max_points=50))
    h = cb.history
    for fit in range(4):
        h.begin_fit()
        for e in range(100):
            fill_batches(h, 10)
            h.add_epoch(e, valid_loss=1. + e % 3, train_accuracy=0.5)
    cb.update()
    assert len(cb.fig.column('epochs/x')) <= 50 and len(cb.fig.column('batches/x')) <= 50
    zoom(cb.fig, {'event': 'zoom', 'range': [1_000, 1_200]})
    x = cb.fig.column('epochs/x')
    assert x.tolist() == list(range(990, 1_220, 10))   # the epochs in view and one on each side
    assert [a['text'] for a in cb.fig.plot_layout['annotations']] == ['fit 2']


@pytest.mark.own_comm
def test_every_trace_is_bounded_over_100k_one_batch_epochs():
    cb = attached(LivePlotCallback())
    sent = record_messages(cb.fig)
    h = cb.history
    h.begin_fit()
    for e in range(100_000):
        h.add_batch(1. + (e % 10) / 10, 0.1)
        h.add_epoch(e, valid_loss=2. if e == 77_777 else 1., train_accuracy=0.5, valid_accuracy=0.6)
    sent.messages.clear()
    cb.update()
    for e in range(100_000, 100_010):
        h.add_batch(1., 0.1); h.add_epoch(e, valid_loss=1., train_accuracy=0.5, valid_accuracy=0.6); cb.update()
    assert max(sent.sizes) <= 64_000, sent.sizes
    fig = cb.fig.figure()
    assert all(len(t.x) <= cb.max_points for t in fig.data), [len(t.x) for t in fig.data]
    valid = next(t for t in fig.data if t.name == 'valid loss')
    assert max(valid.y) == 2.   # the spike of one epoch is kept
    assert valid.x[-1] == 100_010


@pytest.mark.own_comm
def test_fit_markers_are_bounded_after_20000_fits():
    cb = attached(LivePlotCallback())
    sent = record_messages(cb.fig)
    h = cb.history
    for _ in range(20_000):
        h.begin_fit(); h.add_batch(1., 0.1); h.flush()
    sent.messages.clear()
    cb.update()
    h.begin_fit(); h.add_batch(1., 0.1)
    cb.update()
    assert max(sent.sizes) <= 64_000, sent.sizes
    layout = cb.fig.figure().layout
    assert layout.shapes[0].path.count('M') == FIT_LINES
    xs = [a.x for a in layout.annotations]
    assert layout.annotations[-1].text == 'fit 20001' and len(xs) <= FIT_LABELS
    assert min(np.diff(xs)) >= h.n_iter / FIT_LABELS   # labels never overlap when zoomed out


def record_bytes(h) -> int:
    "Bytes of the history's per-epoch and per-fit records: its lists, each dict, tuple, key and value, counted once however often shared."
    seen = {}
    for x in (h.epochs, h.fit_starts, h.fit_callbacks, *h.fit_starts, *h.fit_callbacks, *(n for t in h.fit_callbacks for n in t)):
        seen[id(x)] = x
    for d in h.epochs: seen.update((id(x), x) for x in (d, *d.keys(), *d.values()))
    return sum(sys.getsizeof(x) for x in seen.values())


def test_memory_per_fit_stays_under_1kb():
    # traced from the start: a trait value built before tracing and replaced during the fits would count as growth
    tracemalloc.start()
    learn = make_learner(n_train=32, n_valid=32)
    run = Runner(cb_funcs=partial(LivePlotCallback, every=3600))
    h = run.live_plot.history
    fill_batches(h, 3_000)
    for _ in range(30): run.fit(1, learn)   # caches (traitlets', numpy's) fill during the first fits
    gc.collect()
    m0, h0, r0 = tracemalloc.get_traced_memory()[0], h.nbytes + run.live_plot._epochs.nbytes, record_bytes(h)
    for _ in range(100): run.fit(1, learn)
    gc.collect()
    m1, h1, r1 = tracemalloc.get_traced_memory()[0], h.nbytes + run.live_plot._epochs.nbytes, record_bytes(h)
    tracemalloc.stop()
    assert (r1 - r0) / 100 > 200   # each fit's epoch dict, its values and its fit start are counted
    assert ((m1 - m0) - (h1 - h0) - (r1 - r0)) / 100 < 1_000, ((m1 - m0) / 100, (h1 - h0) / 100, (r1 - r0) / 100)


@pytest.mark.parametrize('beta', [1.0, 1.5, -0.1, float('nan'), 'x', True])   # None: the record's own
def test_bad_beta_is_refused(beta):
    with pytest.raises(ValueError, match=r'beta must be a number with 0 <= beta < 1'):
        LivePlotCallback(beta=beta)


def test_one_live_plot_for_two_runners_is_refused(learn):
    lp = LivePlotCallback()
    run = Runner(cbs=[lp])
    with pytest.raises(ValueError, match='already draws Runner.*give each Runner its own'):
        Runner(cbs=[lp])
    run.fit(1, learn)   # the first runner is unharmed
    assert lp.panel.run is run and lp.panel.status == 'finished'


def test_ctrl_c_in_a_redraw_leaves_the_figure_consistent(learn):
    run = live_runner(every=3600)
    lp = run.live_plot
    hits = []
    def interrupt(change):   # lands between two of the redraw's trait assignments, at the first epoch's end
        if not hits and lp.history.epochs: hits.append(1); raise KeyboardInterrupt
    lp.fig.observe(interrupt, 'epochs')
    with pytest.raises(KeyboardInterrupt): run.fit(2, learn)
    assert hits and lp.panel.status == 'interrupted'
    n = lp.history.n_iter
    assert lp.fig.column('batches/x')[-1] == n == len(learn.data.train_dl)   # after_fit's redraw completed it
    assert lp.fig.column('epochs/x').tolist() == [e['iteration'] for e in lp.history.epochs]
    run.fit(1, learn)
    assert lp.panel.status == 'finished'
    assert lp.fig.column('batches/x')[-1] == 2 * len(learn.data.train_dl)
    assert len(lp.fig.column('epochs/x')) == 2 and len(lp.fig.column('epochs/s0')) == 2


def test_batch_without_a_loss_adds_no_point(learn):
    class CancelThird(Callback):
        _order = -1
        def begin_batch(self):
            if self.in_train and self.n_iter == 3:
                self.run.loss = None   # what the runner holds for a batch that ended before its loss (issue 12.4)
                raise CancelBatchException()
    run = live_runner(CancelThird)
    run.fit(1, learn)
    assert run.live_plot.history.n_iter == len(learn.data.train_dl) - 1


def test_user_text_is_escaped_in_legend_and_html(learn, tmp_path):
    evil = '<img src=x onerror=alert(1)>'
    def metric(out, yb): return accuracy(out, yb)
    metric.__name__ = evil
    run = Runner(cb_funcs=[partial(AvgStatsCallback, metric), LivePlotCallback])
    run.fit(1, learn)
    names = [t['name'] for t in run.live_plot.fig.traces]
    assert 'valid_&lt;img src=x onerror=alert(1)&gt;' in names and not any('<' in n for n in names)
    page = run.live_plot.save_html(tmp_path / 'p.html').read_text()
    assert '<img' not in page and 'valid_&lt;img src=x onerror=alert(1)&gt;' in page


def test_display_bundle_is_a_widget_view_of_panel_and_figure():
    run = Runner(cb_funcs=LivePlotCallback)
    bundle = run.live_plot._repr_mimebundle_()
    view = bundle['application/vnd.jupyter.widget-view+json']
    assert view['version_major'] == 2 and view['model_id'] == run.live_plot.widget.model_id
    assert run.live_plot.widget.children == (run.live_plot.panel.widget, run.live_plot.view_buttons, run.live_plot.controls, run.live_plot.fig)
    assert bundle['text/plain'].startswith('LivePlotCallback(')


def test_standalone_page_fills_the_window(tmp_path, learn):
    run = live_runner()
    run.fit(1, learn)
    page = run.live_plot.save_html(tmp_path / 'p.html').read_text()
    assert 'height:100vh' in page.replace(' ', '') and '"height":560' not in page
    assert 'train_accuracy' in page and '<script src="http' not in page
