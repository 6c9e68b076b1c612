"LivePlotCallback and CallbackPanel driven headlessly: switches, live updates, bytes, gaps, faults."
import csv, html, json, math, pathlib, re, sys
from functools import partial
import numpy as np, pytest
from callbacks_widget.all import *
from messages import record_messages, attached
from callbacks_widget.views import FIT_LABELS
from conftest import make_learner

ROOT = pathlib.Path(__file__).parents[1]


def live_runner(*extra, **kw):
    return Runner(cb_funcs=[partial(AvgStatsCallback, accuracy), *extra, partial(LivePlotCallback, **kw)])


def trace(fig, name):
    "The trace `name` as a view of the `LiveFigure` `fig` draws it."
    return next(t for t in fig.figure().data if t.name == name)


def test_switches_choose_the_next_fits_callbacks(learn, capsys):
    run = live_runner(GradientClipping)
    switches = run.live_plot.panel.switches
    assert list(switches) == ['train_eval', 'avg_stats', 'gradient_clipping', 'live_plot', 'recorder']
    assert switches['recorder'].disabled   # the record every reader reads: always on
    run.fit(1, learn)
    printed = capsys.readouterr().out
    switches['avg_stats'].value = False
    assert run.avg_stats.enabled is False
    run.fit(1, learn)
    assert capsys.readouterr().out == '' and run.avg_stats not in run.running
    assert run.live_plot.panel._rows['avg_stats'][2].value == 'off'
    run.gradient_clipping.enabled = False  # code moves the switch too
    assert switches['gradient_clipping'].value is False
    switches['avg_stats'].value = True
    assert run.live_plot.panel._rows['avg_stats'][2].value == 'not in last fit'
    run.fit(1, learn)
    assert 'valid:' in capsys.readouterr().out and 'valid:' in printed
    assert run.gradient_clipping not in run.running
    assert switches['train_eval'].disabled


def test_switch_flipped_during_fit_applies_at_next_fit(learn):
    seen = {}
    class Flipper(Callback):
        _order = 30
        def after_batch(self):
            if self.n_iter == 2 and self.in_train:
                self.run.live_plot.panel.switches['avg_stats'].value = False
                seen['note'] = self.run.live_plot.panel._rows['avg_stats'][3].value
                seen['running'] = self.run.avg_stats in self.run.running
    run = live_runner(Flipper)
    run.fit(1, learn)
    assert seen == {'note': 'applies at next fit', 'running': True}
    assert run.avg_stats.train_stats.count == len(learn.data.train_ds)  # the running fit kept avg_stats
    assert run.live_plot.panel._rows['avg_stats'][3].value == ''  # no longer pending once the fit ended
    run.fit(1, learn)
    assert run.avg_stats not in run.running


def test_figure_traces_and_fits_share_one_axis(learn):
    run = live_runner()
    fig, model_id = run.live_plot.fig, run.live_plot.fig.model_id
    run.fit(2, learn)
    run.avg_stats.enabled = False
    run.fit(1, learn)
    n = len(learn.data.train_dl)
    assert run.live_plot.fig is fig and fig.model_id == model_id
    assert list(trace(fig, 'train loss').x) == list(range(1, 3 * n + 1))
    assert list(trace(fig, 'valid loss').x) == [n, 2 * n, 3 * n]
    acc = trace(fig, 'valid_accuracy')
    assert list(acc.x[np.isfinite(acc.y)]) == [n, 2 * n]  # metrics stop (a gap) while avg_stats is off
    assert len(trace(fig, 'lr').y) == 3 * n and set(trace(fig, 'lr').y) == {0.5}
    assert [s.path for s in fig.figure().layout.shapes] == [f'M{2 * n + 0.5},0V1']
    assert [a.text for a in fig.figure().layout.annotations] == ['fit 2']
    assert run.live_plot.history.fit_starts == [0, 2 * n]


def test_updates_are_throttled_and_happen_at_epoch_and_fit_end():
    learn = make_learner(n_train=1024, bs=16)
    run = live_runner(every=3600)
    sent = record_messages(run.live_plot.fig)
    run.fit(2, learn)
    redraws = [m for m in sent.messages if 'batches' in (m['data'].get('state') or {})]
    # 128 batches, 3 redraws: the first batch and the two epoch ends (the fit end changes nothing, so sends nothing)
    assert len(redraws) == 3, len(redraws)


def test_update_bytes_stay_flat_from_1k_to_1m_batches():
    cb = attached(LivePlotCallback())
    sent = record_messages(cb.fig)
    h, rng, done, sizes = cb.history, np.random.default_rng(0), 0, {}
    h.begin_fit()
    for n in (1_000, 10_000, 100_000, 1_000_000):
        h.add_batches((1 + rng.random(n - done)).tolist(), [0.1] * (n - done))
        done = n
        sent.messages.clear()
        cb.update()
        sizes[n] = sum(sent.sizes)
        assert len(cb.fig.column('batches/x')) <= cb.max_points
        assert h.nbytes / n <= 32, (n, h.nbytes)   # the history's memory per batch, at every length
    assert max(sizes.values()) < 64_000, sizes
    assert max(sizes[100_000], sizes[1_000_000]) < 1.3 * sizes[10_000], sizes   # the first update also sent the layout
    assert h.nbytes / 1_000_000 <= 32


def test_state_holds_what_a_late_view_draws(learn):
    "The widget's state (what a reload, a second tab or saved widget state reads) holds every point drawn."
    run = live_runner(every=3600)
    cb = run.live_plot
    sent = record_messages(cb.fig)
    run.fit(1, learn)
    n = len(learn.data.train_dl)
    state = cb.fig.get_state()
    assert np.array_equal(np.frombuffer(state['batches']['loss']['data'], np.float32), cb.history.loss.values)
    assert np.array_equal(np.frombuffer(state['batches']['x']['data'], np.int32), np.arange(1, n + 1))
    assert np.array_equal(np.frombuffer(state['batches']['lr']['data'], np.float32), cb.history.lr.values)
    assert [t['name'] for t in state['traces']][-2:] == ['train_accuracy', 'valid_accuracy']
    assert np.frombuffer(state['epochs']['x']['data'], np.int32).tolist() == [n]
    last = [m for m in sent.messages if 'batches' in m['data']['state']][-1]
    assert last['data']['buffer_paths'] and last['data']['state']['batches']['loss'] == {'dtype': 'float32'}  # binary buffers, not JSON
    cb.history.add_batch(2., 0.1)   # the state changes only at an update
    assert len(cb.fig.column('batches/loss')) == n
    cb.update()
    assert len(cb.fig.column('batches/loss')) == n + 1 and cb.fig.column('batches/loss')[-1] == 2.


def zoom(fig, content):
    "Deliver `content` to `fig` as the comm delivers a custom message from the browser."
    fig._handle_msg({'content': {'data': {'method': 'custom', 'content': content}}, 'buffers': []})


def test_spike_stays_visible_and_zoom_reaggregates_from_full_history():
    cb = attached(LivePlotCallback(max_points=200))
    h = cb.history
    h.begin_fit()
    for i in range(100_000): h.add_batch(100. if i == 77_777 else 1. + (i % 7) / 10, 0.1)
    cb.update()
    x, y = cb.fig.column('batches/x'), cb.fig.column('batches/loss')
    assert 77_778 in x and max(y) == 100.
    zoom(cb.fig, {'event': 'zoom', 'range': [50_000, 50_150]})
    assert list(cb.fig.column('batches/x')) == list(range(50_000, 50_151))  # every batch of the visible range
    assert cb.fig.plot_layout['xaxis3']['range'] == [50_000, 50_150]   # a late view shows the same range
    zoom(cb.fig, {'event': 'zoom', 'range': None})
    assert len(cb.fig.column('batches/x')) <= 200 and cb.fig.column('batches/x')[-1] == 100_000
    assert cb.fig.plot_layout['xaxis3']['autorange'] is True


def test_nan_and_inf_losses_are_gaps_with_markers(learn):
    class Poison(Callback):
        _order = 1
        def after_loss(self):
            if self.in_train and self.n_iter in (3, 4): self.run.loss = self.loss * float('nan' if self.n_iter == 3 else 'inf')
        def after_backward(self):
            if self.n_iter in (3, 4): self.opt.zero_grad()  # keep the weights finite
    run = live_runner(Poison)
    run.fit(1, learn)
    fig, h = run.live_plot.fig, run.live_plot.history
    y = np.asarray(trace(fig, 'train loss').y, dtype=float)
    assert np.isnan(y[[3, 4]]).all() and np.isfinite(np.delete(y, [3, 4])).all()
    assert list(trace(fig, 'non-finite loss').x) == [4, 5]
    assert [i for i, _ in h.nonfinite] == [3, 4] and math.isinf(h.nonfinite[1][1])
    assert np.isfinite(np.asarray(trace(fig, 'train loss (smoothed)').y, dtype=float)).all()
    assert run.live_plot.panel.status == 'finished'


@pytest.mark.parametrize('exc,status', [(RuntimeError('exploded <b>here</b>'), 'failed: RuntimeError: exploded <b>here</b>'),
                                        (KeyboardInterrupt(), 'interrupted'),
                                        (CancelTrainException(), 'cancelled')])
def test_figure_and_panel_after_a_fault_mid_fit(learn, exc, status):
    class Fault(Callback):
        def after_batch(self):
            if self.n_iter == 5 and self.in_train: raise exc
    run = live_runner(Fault)
    run.fault.enabled = False
    run.fit(1, learn)  # a clean first fit
    run.fault.enabled = True
    n = len(learn.data.train_dl)
    if isinstance(exc, CancelTrainException): run.fit(1, learn)
    else:
        with pytest.raises(type(exc)): run.fit(1, learn)
    lp = run.live_plot
    assert lp.panel.status == status and html.escape(status) in lp.panel.status_text.value
    # the fault is raised in `after_batch`, which runs every hook: the live plot still records its batch (the 5th)
    assert len(trace(lp.fig, 'train loss').x) == n + 5
    lp.panel.switches['fault'].value = False
    run.fit(1, learn)
    assert lp.panel.status == 'finished' and len(trace(lp.fig, 'train loss').x) == 2 * n + 5


def test_panel_shows_costs_progress_and_events(learn):
    import time
    class Slow(Callback):
        def after_pred(self): time.sleep(0.0005)
    run = live_runner(Slow)
    run.fit(1, learn)
    panel = run.live_plot.panel
    cost = {name: row[2].value for name, row in panel._rows.items()}
    assert all(v.endswith('µs/batch') for v in cost.values()), cost
    assert float(cost['slow'].split()[0]) >= 400
    assert panel.progress.value == 1.0
    assert panel.progress_text.value.startswith('epoch 1/1 · batch 9/9 ·')  # 8 training + 1 validation
    events = panel._rows['avg_stats'][0].children[2].value
    assert '>begin_epoch, after_loss, after_epoch<' in events


def test_standalone_html_and_csv(tmp_path, learn):
    run = live_runner()
    run.fit(2, learn)
    html = run.live_plot.save_html(tmp_path / 'plot.html').read_text()
    assert 'plotly' in html and '<script src="http' not in html  # plotly.js inside: works offline
    assert '"train loss"' in html
    rows = list(csv.DictReader(open(run.live_plot.history.to_csv(tmp_path / 'h.csv'))))
    assert len(rows) == 2 * len(learn.data.train_dl)
    last = rows[len(learn.data.train_dl) - 1]
    assert float(last['valid_loss']) > 0 and 0 <= float(last['valid_accuracy']) <= 1


def test_bad_arguments():
    for every in (-1, '0.3', None, float('nan')):
        with pytest.raises(ValueError, match='every must be >= 0 seconds'):
            LivePlotCallback(every=every)
    with pytest.raises(ValueError, match='max_points must be an integer >= 10'):
        LivePlotCallback(max_points=3)
    with pytest.raises(TypeError, match='CallbackPanel needs a Runner'):
        CallbackPanel([])


def test_committed_notebooks_are_clean():
    for p in sorted((ROOT / 'nbs').glob('*.ipynb')):
        nb = json.loads(p.read_text())
        assert 'widgets' not in nb['metadata'], f'{p.name} saved widget state'
        assert all(not c.get('outputs') for c in nb['cells']), f'{p.name} has outputs'
        assert p.stat().st_size < 100_000, p.name


def test_fit_markers_stay_small_over_many_fits():
    learn = make_learner(n_train=64, n_valid=32)
    run = Runner(cb_funcs=partial(LivePlotCallback, every=3600))
    sent = record_messages(run.live_plot.fig)
    for _ in range(60): run.fit(1, learn)
    sent.messages.clear()
    run.fit(1, learn)
    layout = run.live_plot.fig.figure().layout
    assert len(layout.shapes) == 1 and layout.shapes[0].path.count('M') == 60
    labels = [a.text for a in layout.annotations]
    assert labels[-1] == 'fit 61' and len(labels) == FIT_LABELS, labels
    assert max(sent.sizes) < 13_000, max(sent.sizes)   # the layout, with 7 labels and their hover text


def test_demo_command_line(tmp_path, capsys):
    from callbacks_widget.demo import main
    main(['--epochs', '1', '--fits', '2', '--out', str(tmp_path)])
    out = capsys.readouterr().out
    assert 'avg_stats switched off for the last fit' in out and out.count('valid:') == 1
    assert (tmp_path / 'live_plot.html').stat().st_size > 1_000_000 and (tmp_path / 'history.csv').exists()
    with pytest.raises(SystemExit):
        main(['--mnist', str(tmp_path / 'missing.pkl.gz')])
    assert 'no MNIST pickle at' in capsys.readouterr().err


# --- Ctrl-C at every line of an update (issue 24)

from interrupts import interrupt_every_line


def drawn(lp) -> dict:
    "The figure's traits, the whole truth of what a view shows."
    return {k: getattr(lp.fig, k) for k in ('batches', 'epochs', 'nonfinite', 'fits', 'traces', 'plot_layout', 'view')}


def assert_shows_its_history(lp, where):
    "`lp`'s table and figure hold what a new live plot draws from the same history."
    t = lp._epochs
    assert [len(c) for c in (t.fit, *t.ys.values())] == [len(t.x)] * (1 + len(t.ys)) and len(t.x) == len(lp.history.epochs), where
    ref = attached(LivePlotCallback(every=3600))
    ref.run.recorder.history, ref.view = lp.history, lp.view   # a second view of the same record
    ref.update()
    assert drawn(lp) == drawn(ref), where


@pytest.fixture
def one_thread():
    "Torch on one thread: hundreds of tiny fits, each slower on two threads than on one."
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize('hook', ['after_epoch', 'after_fit'])
def test_ctrl_c_at_every_line_of_an_epoch_end_or_a_fit_end_that_brings_a_new_stat(capsys, one_thread, hook):
    learn = make_learner(n_train=64, n_valid=32)
    def make():
        run = live_runner(every=3600)
        run.avg_stats.enabled = False
        run.fit(1, learn)
        run.avg_stats.enabled = True   # the README's workflow: stats switched back on for a later fit
        return run
    def action(run):
        try: run.fit(1, learn)
        finally:   # but a Ctrl-C on one of the few lines that end the panel leaves it running until the next fit
            ends_panel = re.search(r'of (\w+\.)?(after_fit|end_fit)$', sys.exc_info()[1].args[0] if sys.exc_info()[1] else '')
            assert run.live_plot.panel.status in ('interrupted', 'finished') or ends_panel
    def check(run, where):
        run.fit(1, learn)   # the next fit draws every epoch of every fit
        assert run.live_plot.panel.status == 'finished', where
        assert_shows_its_history(run.live_plot, where)
    n = interrupt_every_line(make, action, check, within=getattr(LivePlotCallback, hook))
    assert n > 100, n


def test_ctrl_c_at_every_line_of_a_view_switch():
    def make():
        lp = attached(LivePlotCallback(every=3600))
        for k in range(2):
            lp.history.begin_fit(('train_eval', 'live_plot') if k else ('train_eval', 'avg_stats', 'live_plot'))
            lp.history.add_batches([2. - i / 100 for i in range(50)], [0.1] * 50)
            lp.history.add_epoch(0, valid_loss=1.5 - k, **({} if k else dict(valid_accuracy=0.5)))
        lp.update()
        return lp
    def check(lp, where):
        lp.update()   # the next update draws the whole view
        assert lp.view_buttons.value == lp.fig.view, where   # either view, if the Ctrl-C came before the switch
        assert_shows_its_history(lp, where)
    assert interrupt_every_line(make, lambda lp: setattr(lp, 'view', 'compare'), check) > 100


def test_ctrl_c_at_every_line_of_a_batchs_redraw(capsys, one_thread):
    learn = make_learner(n_train=32, n_valid=32)   # one training batch
    def make():
        run = live_runner(every=0)
        run.fit(1, learn)
        return run
    def check(run, where):
        run.fit(1, learn)
        assert run.live_plot.panel.status == 'finished', where
        assert_shows_its_history(run.live_plot, where)
    assert interrupt_every_line(make, lambda run: run.fit(1, learn), check, within=LivePlotCallback.after_batch) > 100
