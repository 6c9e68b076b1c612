"ActivationStats: no hook left on the model however a fit ends (Ctrl-C at every line of its hooks), and its view bounded at a million batches."
import gc, time
from functools import partial
import numpy as np, pytest, torch
from callbacks_widget.runner import Runner
from callbacks_widget.activations import (ACTIVATION_BYTES, ActivationRecord, ActivationStats, activation_columns,
                                          activations_compare)
from conftest import make_learner
from interrupts import interrupt_every_line_of_a_fit


def n_hooks(model) -> int: return sum(len(m._forward_hooks) for m in model.modules())


@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')   # the Ctrl-C landing in a removed `Hook.__del__`
@pytest.mark.parametrize('hook', ['begin_fit', '_hooked', 'after_batch', 'after_fit'])
def test_ctrl_c_at_every_line_of_its_hooks_leaves_no_hook_and_the_next_fit_records_it_whole(hook):
    learn = make_learner(n_train=64, n_valid=32)
    n = len(learn.data.train_dl)
    def check(run, where):
        assert n_hooks(learn.model) == 0, where
        run.fit(1, learn)
        rec = run.activation_stats.record
        assert len(rec) == n and rec.columns.batches == n and n_hooks(learn.model) == 0, where
        assert rec.iteration.values.tolist() == list(range(rec.start + 1, rec.start + n + 1)), where
    def check_and_collect(run, where):
        check(run, where)
        gc.collect()
    gc.disable()   # finalizers (`Hook.__del__`) run here, untraced: under the tracer, CPython 3.11 may crash in one
    try: assert interrupt_every_line_of_a_fit(ActivationStats, learn, check_and_collect, within=getattr(ActivationStats, hook)) > 3
    finally: gc.enable()


def test_an_error_in_a_forward_pass_leaves_no_hook():
    learn = make_learner(n_train=64, n_valid=32)
    run = Runner(cb_funcs=ActivationStats)
    learn.model[1].register_forward_hook(lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError): run.fit(1, learn)
    assert n_hooks(learn.model) == 1   # the test's own, not ActivationStats'


def million_batches(n_layers: int = 4, n: int = 1_000_000) -> ActivationRecord:
    "A record of `n` synthetic batches of `n_layers` layers, written in blocks as a fit's copies arrive."
    rec, block = ActivationRecord([f'{l} Conv2d' for l in range(n_layers)]), 1 << 16
    rows = np.random.default_rng(0).random((block, n_layers, 43), dtype=np.float32)
    for at in range(0, n, block):
        k = min(block, n - at)
        rec.extend(rows[:k], np.arange(at + 1, at + k + 1))
    return rec


def timed(f, repeat: int = 5) -> tuple:
    "`(result, best seconds)` of `repeat` calls of `f`."
    best = float('inf')
    for _ in range(repeat):
        t = time.perf_counter(); out = f(); best = min(best, time.perf_counter() - t)
    return out, best


def test_the_view_of_a_million_batches_is_one_small_quick_update():
    rec = million_batches()
    assert len(rec) == 1_000_000 and rec.columns.n <= 1024
    group, s = timed(lambda: activation_columns(rec, 1000))
    assert sum(len(c['data']) for c in group.values()) <= ACTIVATION_BYTES
    assert np.frombuffer(group['x']['data'], np.float32)[-1] > 990_000   # the lines reach the last batches
    assert len(group['hx']['data']) // 4 <= 1000 and s < 0.02, s
    fits = [rec] * 25
    (group, traces, layout), s = timed(lambda: activations_compare(fits, [f'fit {k + 1}' for k in range(25)]))
    assert sum(len(c['data']) for c in group.values()) <= ACTIVATION_BYTES and s < 0.1, s
    assert len(traces) == 20 * 2 * 4   # the first and the latest 19 fits


def test_the_live_plot_draws_the_activations_view_growing_during_a_fit_in_its_picture_and_its_html(tmp_path):
    from callbacks_widget.runner import Callback
    from callbacks_widget.liveplot import LivePlotCallback
    learn = make_learner(n_train=512, n_valid=64)
    sizes = []
    class Watch(Callback):
        _order = 21   # after the live plot's redraw
        def after_batch(self):
            if self.in_train: sizes.append(len(self.run.live_plot.fig.column('activations/hx')))
    run = Runner(cb_funcs=[partial(LivePlotCallback, every=0), partial(ActivationStats, every=0), Watch])
    lp = run.live_plot
    lp.view = 'activations'
    assert lp.fig.traces == [] and 'ActivationStats' in str(lp.fig.plot_layout['annotations'])   # before any fit: how to add it
    run.fit(1, learn)
    assert sizes[0] == 1 and sizes[-1] == len(learn.data.train_dl) and sizes == sorted(sizes)   # one column a batch, growing
    assert [t['type'] for t in lp.fig.traces].count('heatmap') == 2
    fig = lp.fig.figure()
    assert fig.data[-1].z.shape == (40, len(learn.data.train_dl))
    assert lp.fig.picture()[:4] == b'\x89PNG'
    assert '"heatmap"' in lp.save_html(tmp_path / 'a.html').read_text()
    lp.view = 'end_to_end'
    assert not lp.fig.activations and lp.fig.batches


def test_the_compare_activations_view_overlays_each_fits_means_and_stds_named_by_what_differed():
    from callbacks_widget.liveplot import LivePlotCallback
    learn = make_learner(n_train=256, n_valid=64)
    run = Runner(cb_funcs=[partial(LivePlotCallback, every=0), partial(ActivationStats, every=0)])
    lp = run.live_plot
    lp.view = 'compare_activations'
    assert lp.fig.traces == [] and 'ActivationStats' in str(lp.fig.plot_layout['annotations'])   # before any fit
    run.fit(1, learn)
    with torch.no_grad():   # another init: the second fit's activations must differ from the first's
        for p in learn.model.parameters(): p.mul_(3.)
    run.fit(1, learn)
    g, recs = lp.fig.activations, run.activation_stats.records
    assert len(recs) == 2 and {'x0', 'x1', 'm0_0', 'm1_0', 's0_0', 's1_0'} <= set(g)
    assert sum(len(c['data']) for c in g.values()) <= 64 * 1024
    names = {t['name'] for t in lp.fig.traces}
    assert {f'fit 1 · {recs[0].names[0]}', f'fit 2 · same · {recs[0].names[0]}'} <= names, names
    m0, m1 = lp.fig.column('activations/m0_0'), lp.fig.column('activations/m1_0')
    assert len(m0) and len(m1) and not np.allclose(m0[:len(m1)].mean(), m1.mean())
    assert lp.fig.picture()[:4] == b'\x89PNG'
    lp.view = 'activations'   # back to the last fit's rows and heat maps
    assert [t['type'] for t in lp.fig.traces].count('heatmap') == len(recs[-1].names)
