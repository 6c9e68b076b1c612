"History and Recorder: an interrupt anywhere in a flush keeps the arrays consistent; Recorder records floats, once per computed loss."
import math
import numpy as np, pytest, torch
from callbacks_widget.stats import AvgStats, summand
from callbacks_widget.arrays import HostScalars, Extremes
from callbacks_widget.history import History, Recorder
from callbacks_widget.runner import Runner, Callback, CancelBatchException


def lengths(h): return len(h.loss), len(h.smooth_loss), len(h.lr)


def reference(values, lrs) -> History:
    h = History()
    h.add_batches(values, lrs)
    h.flush()
    return h


class Once:
    "Make `obj.name` raise KeyboardInterrupt on its first call (after calling through if `after`)."
    def __init__(self, obj, name, after=False):
        self.obj, self.name, self.after, self.fired = obj, name, after, False
        self.orig = getattr(obj, name)
        setattr(obj, name, self)
    def __call__(self, *a, **k):
        if self.fired: return self.orig(*a, **k)
        self.fired = True
        if self.after: self.orig(*a, **k)
        raise KeyboardInterrupt


# where in a flush the interrupt lands: each array's write (before or after it wrote), the commit, the extremes
POINTS = [('loss', 'write', False), ('loss', 'write', True), ('smooth_loss', 'write', False),
          ('smooth_loss', 'write', True), ('lr', 'write', False), ('lr', 'write', True),
          ('nonfinite_at', 'write', True), ('nonfinite_value', 'write', True), ('_pending', 'commit', False), ('_pending', 'commit', True),
          ('_pending', 'send', True), ('_pending', 'ready', False)]


@pytest.mark.parametrize('attr,method,after', POINTS)
def test_an_interrupt_anywhere_in_flush_keeps_the_arrays_equal_and_stores_each_batch_once(attr, method, after):
    values = [1., 2., 3., float('nan'), 5., 6.] + [1 + i / 100 for i in range(200)]
    h = History()
    h.begin_fit()
    h.add_batches(values[:2], [0.1, 0.1]); h.flush()
    h.add_batches(values[2:], [0.1] * (len(values) - 2))
    Once(getattr(h, attr), method, after)
    with pytest.raises(KeyboardInterrupt): h.flush()
    assert len(set(lengths(h))) == 1 and h.n_iter == len(values)
    h.flush()                                   # the next flush goes on
    h.add_batch(7., 0.2); h.flush()
    ref = reference(values + [7.], [0.1] * len(values) + [0.2])
    assert lengths(h) == (len(values) + 1,) * 3 and h.n_iter == len(values) + 1
    np.testing.assert_array_equal(h.loss.values, ref.loss.values)
    np.testing.assert_array_equal(h.smooth_loss.values, ref.smooth_loss.values)
    np.testing.assert_array_equal(h.lr.values, ref.lr.values)
    assert [i for i, _ in h.nonfinite] == [3]


def test_an_interrupt_inside_the_extremes_update_is_repaired():
    rng = np.random.default_rng(0)
    y = rng.random(5000).astype(np.float32)
    e = Extremes(base=16)
    e.update(y[:1000])
    Once(e.levels[0][1], 'extend')   # level 0's indices written, its values not
    with pytest.raises(KeyboardInterrupt): e.update(y[:3000])
    e.update(y)
    whole = Extremes(base=16); whole.update(y)
    assert len(e.levels) == len(whole.levels)
    for (i, v), (wi, wv) in zip(e.levels, whole.levels):
        np.testing.assert_array_equal(i.values, wi.values); np.testing.assert_array_equal(v.values, wv.values)


def test_add_epoch_and_begin_fit_after_an_interrupted_flush():
    h = History()
    h.begin_fit()
    h.add_batches([1., 2., 3.], [0.1] * 3)
    Once(h.smooth_loss, 'write', after=True)
    with pytest.raises(KeyboardInterrupt): h.add_epoch(0, valid_loss=1.)
    h.add_epoch(0, valid_loss=1.)
    h.begin_fit()
    assert h.fit_starts == [0, 3] and [e['iteration'] for e in h.epochs] == [3] and lengths(h) == (3, 3, 3)


def test_host_scalars_keep_order_across_floats_and_tensors():
    q = HostScalars()
    q.add(1.); q.send()
    q.add(torch.tensor(2.)); q.add(torch.tensor(3.)); q.send()
    q.add(4., 'lr')
    assert len(q) == 4 and q.n_new == 1
    values, infos, k = q.ready()
    assert values == [1., 2., 3.] and k == 2
    q.commit(1, 'first read')
    assert q.ready()[0] == [2., 3.] and q.state == 'first read'


class OnDevice(torch.Tensor):
    "A CPU tensor that says it is not on the CPU: what AvgStats does with a GPU's losses, without a GPU."
    @property
    def is_cpu(self): return False


def test_avg_stats_sum_device_tensors_in_float64():
    s = AvgStats([], False)
    class R: xb = torch.zeros(3, 1); pred = yb = None
    values = torch.rand(10_000, generator=torch.Generator().manual_seed(0))
    for v in values:
        R.loss = v.as_subclass(OnDevice)
        s.accumulate(R)
    assert isinstance(s.tot_loss, torch.Tensor) and s.tot_loss.dtype == torch.float64   # summed where the values are
    exact = 3 * math.fsum(values.tolist())
    assert abs(s.all_stats[0] - exact) < 1e-9 * exact                 # float32 sums are off by ~1e-5 here
    assert summand(torch.tensor(1., dtype=torch.bfloat16)).dtype == torch.float64


def test_recorder_keeps_floats_and_skips_batches_without_a_loss(learn):
    class SkipSome(Callback):
        def begin_batch(self):
            if self.in_train and self.n_iter in (0, 3): raise CancelBatchException()
    losses = []
    class Losses(Callback):
        _order = 5
        def after_loss(self):
            if self.in_train: losses.append(self.loss.item())
    run = Runner(cb_funcs=[Recorder, SkipSome, Losses])
    run.fit(1, learn)
    assert run.recorder.losses == np.float32(losses).tolist() and all(type(v) is float for v in run.recorder.losses)
    assert len(run.recorder.lrs[0]) == len(losses) == len(learn.data.train_dl) - 2
    run.fit(1, learn)          # the last fit only, as in the lesson
    assert len(run.recorder.losses) == len(learn.data.train_dl) - 2


def test_history_sends_device_values_in_batches_of_1024_without_reading():
    h = History()
    h.begin_fit()
    for i in range(2100): h.add_batch(torch.tensor(float(i)), 0.1)
    assert h._pending.n_new == 2100 - 2048 and len(h.loss) == 0   # on their way to the host; stored at a flush
    h.flush(wait=True)
    assert h.loss.values.tolist() == [float(i) for i in range(2100)] and h._pending.n_new == 0


def test_avg_stats_takes_metrics_that_return_numbers_and_names_one_that_returns_neither():
    s = AvgStats([lambda p, y: 0.5, lambda p, y: 1], True)
    class R: xb = torch.zeros(2, 1); pred = yb = None; loss = torch.tensor(0.25)
    s.accumulate(R); s.accumulate(R)
    assert s.avg_stats == [0.25, 0.5, 1.0]
    bad = AvgStats([lambda p, y: 'high'], True)
    with pytest.raises(TypeError, match="a loss or metric gave str 'high'"): bad.accumulate(R)


def test_fits_whose_callbacks_alternate_share_their_names_and_cost_under_100_bytes_each():
    import tracemalloc
    h = History()
    def names(k): return tuple(''.join(list(n)) for n in ('train_eval', 'recorder', 'live_plot')[k % 2:])   # new strings each time
    for k in range(10): h.begin_fit(names(k))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for k in range(10, 5010): h.begin_fit(names(k))
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert h.fit_callbacks[4998] is h.fit_callbacks[0] and h.fit_callbacks[4999] is h.fit_callbacks[1]
    assert h.fit_callbacks[1][0] is h.fit_callbacks[0][1]   # 'recorder': one string in both tuples
    assert grown / 5000 < 100, grown / 5000
    assert h.fit_names([4999]) == ['fit 5000 · −train_eval']


from interrupts import interrupt_every_line, interrupt_every_line_of_a_fit

VALUES = [1., 2., 3., float('nan'), 5., 6.] + [1 + i / 100 for i in range(200)]


def half_flushed() -> History:
    "A history with two batches flushed and the rest waiting."
    h = History()
    h.begin_fit(('a',))
    h.add_batches(VALUES[:2], [0.1, 0.1]); h.flush()
    h.add_batches(VALUES[2:], [0.1] * (len(VALUES) - 2))
    return h


@pytest.mark.parametrize('step', ['flush', 'add_epoch'])
def test_ctrl_c_at_every_line_of_flush_and_add_epoch(step):
    def action(h):
        if step == 'flush': h.flush()
        else: h.add_epoch(0, valid_loss=1.5, accuracy=0.5)
    def check(h, where):
        assert len(set(lengths(h))) == 1 and h.n_iter == len(VALUES), where
        if step == 'add_epoch' and not h.epochs: h.add_epoch(0, valid_loss=1.5, accuracy=0.5)   # it had not gone in: again
        h.add_batch(7., 0.2); h.flush()
        ref = reference(VALUES + [7.], [0.1] * len(VALUES) + [0.2])
        for a, b in zip(lengths(h), lengths(ref)): assert a == b, where
        np.testing.assert_array_equal(h.loss.values, ref.loss.values, err_msg=where)
        np.testing.assert_array_equal(h.smooth_loss.values, ref.smooth_loss.values, err_msg=where)
        assert [i for i, _ in h.nonfinite] == [3], where
        if step == 'add_epoch': assert h.epochs == [dict(fit=0, epoch=0, iteration=len(VALUES), valid_loss=1.5, accuracy=0.5)], where
    assert interrupt_every_line(half_flushed, action, check) > 50


@pytest.mark.parametrize('hook', ['begin_fit', 'after_batch', 'after_epoch', 'after_fit'])
def test_ctrl_c_at_every_line_of_a_recorder_hook_leaves_a_record_the_next_fit_completes(hook):
    from conftest import make_learner
    learn = make_learner(n_train=64, n_valid=32)
    n = len(learn.data.train_dl)
    def check(run, where):
        run.fit(1, learn)
        h = run.recorder.history
        assert len(h.loss) == len(h.smooth_loss) == len(h.lr) == h.n_iter, where   # every batch stored once
        assert h.n_iter - h.fit_starts[-1] == n and len(run.recorder.losses) == n, where
        assert h.epochs[-1]['fit'] == len(h.fit_starts) - 1 and h.epochs[-1]['iteration'] == h.n_iter, where
        assert h._fit_thread is None and not run.in_fit, where   # any thread may read it again
    assert interrupt_every_line_of_a_fit(Recorder, learn, check, within=getattr(Recorder, hook)) > 3
