"Callbacks worth switching between fits: schedules, the LR finder, early stopping, clipping, restart."
import copy, math, pickle, re
import numpy as np
from functools import partial
import pytest, torch
from callbacks_widget.all import *
from messages import record_messages, attached
from conftest import make_learner


def same(a, b) -> bool:
    "Whether two state dicts (nested dicts, lists, tensors, numbers) are equal, tensors bit for bit."
    if isinstance(a, torch.Tensor): return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b.to(a.device))
    if isinstance(a, dict): return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)): return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def adam_learner(**kw):
    "A learner whose optimizer has state worth restoring (Adam's moments and step counts), already trained a little."
    learn = make_learner(**kw)
    learn.opt = torch.optim.Adam(learn.model.parameters(), lr=1e-3)
    Runner().fit(1, learn)
    return learn


def snapshot(learn): return [copy.deepcopy(o.state_dict()) for o in (learn.model, learn.opt)]
def unchanged(learn, snap): return same(learn.model.state_dict(), snap[0]) and same(learn.opt.state_dict(), snap[1])


class Batches(Callback):
    "Counts the batches each fit began."
    def begin_fit(self): self.n = 0
    def begin_batch(self): self.n += 1


class Starts(Callback):
    "Keeps the weights each fit starts from (after the restart callback, at order -10, has run)."
    def __init__(self): self.starts = []
    def begin_fit(self): self.starts.append(copy.deepcopy(self.model.state_dict()))


class RaiseAt(Callback):
    "Raises `exc` after training batch `n`."
    def __init__(self, exc, n=5): self.exc, self.at = exc, n
    def after_batch(self):
        if self.in_train and self.n_iter == self.at: raise self.exc


# --- schedules (lesson 05_anneal)

def test_lesson_schedule_values():
    assert sched_lin(1, 2)(0.5) == 1.5
    assert sched_cos(1, 2)(0) == 1
    assert sched_no(3, 9)(0.5) == 3
    assert math.isclose(sched_exp(1, 100)(0.5), 10)
    sched = combine_scheds([0.3, 0.7], [sched_cos(0.3, 0.6), sched_cos(0.6, 0.2)])
    assert [round(sched(p), 12) for p in (0, 0.3, 1)] == [0.3, 0.6, 0.2]
    assert [round(f(0.5), 12) for f in cos_1cycle_anneal(1, 3, 2)] == [2, 2.5]


@pytest.mark.parametrize('make,message', [
    (lambda: combine_scheds([0.3, 0.6], [sched_lin(0, 1)] * 2), 'percentages must sum to 1'),
    (lambda: combine_scheds([0.5, 0.5], [sched_lin(0, 1)]), '2 percentages for 1 schedules'),
    (lambda: combine_scheds([2, -1], [sched_lin(0, 1)] * 2), 'percentages must be real numbers >= 0'),
    (lambda: combine_scheds([1], ['cos']), "schedule 'cos' is not callable"),
    (lambda: sched_exp(0, 1), r'sched_exp\(0, 1\) cannot be computed'),
    (lambda: sched_exp(-1, 1), r'sched_exp\(-1, 1\) is not a finite real number'),
])
def test_bad_schedules_fail_where_they_are_made(make, message):
    with pytest.raises((ValueError, TypeError), match=message): make()


# --- ParamScheduler

def test_param_scheduler_sets_the_schedule_each_training_batch_and_puts_the_lr_back(learn):
    sched = combine_scheds([0.3, 0.7], [sched_cos(0.3, 0.6), sched_cos(0.6, 0.2)])
    run = Runner(cb_funcs=[partial(ParamScheduler, 'lr', sched), Recorder])
    run.fit(2, learn)
    n = len(learn.data.train_dl)
    assert run.recorder.lrs[0] == pytest.approx([sched(i / (2 * n)) for i in range(2 * n)])
    assert learn.opt.param_groups[0]['lr'] == 0.5


def test_param_scheduler_puts_the_values_back_after_an_error(learn):
    run = Runner(cbs=[ParamScheduler('lr', sched_lin(0.1, 0.2)), RaiseAt(RuntimeError('boom'))])
    with pytest.raises(RuntimeError, match='boom'): run.fit(1, learn)
    assert learn.opt.param_groups[0]['lr'] == 0.5


def test_param_scheduler_one_schedule_per_group_and_two_schedulers_side_by_side(learn):
    m = learn.model
    learn.opt = torch.optim.SGD([{'params': m[0].parameters()}, {'params': m[2].parameters()}], lr=0.1, momentum=0.9)
    seen = []
    class Look(Callback):
        _order = 5
        def begin_batch(self):
            if self.in_train and self.n_iter == 0: seen.append([(g['lr'], g['momentum']) for g in self.opt.param_groups])
    run = Runner(cbs=[ParamScheduler('lr', [sched_no(0.01, 0.01), sched_no(0.02, 0.02)]),
                      ParamScheduler('momentum', sched_no(0.8, 0.8)), Look()])
    assert [cb.name for cb in run.cbs][1:3] == ['param_scheduler', 'param_scheduler_momentum']
    run.fit(1, learn)
    assert seen == [[(0.01, 0.8), (0.02, 0.8)]]
    assert [(g['lr'], g['momentum']) for g in learn.opt.param_groups] == [(0.1, 0.9)] * 2


@pytest.mark.parametrize('sched_funcs,pname,message', [
    ([sched_no(1, 1)] * 2, 'lr', '2 schedules for 1 parameter groups'),
    (sched_no(1, 1), 'mom', "parameter groups have no 'mom' \\(they have 'lr', 'momentum'"),
])
def test_param_scheduler_errors_come_before_any_batch(learn, sched_funcs, pname, message):
    run = Runner(cbs=[ParamScheduler(pname, sched_funcs)], cb_funcs=Batches)
    with pytest.raises(ValueError, match=message) as info: run.fit(1, learn)
    assert "callback 'param_scheduler" in info.value.__notes__[0]
    assert run.batches.n == 0 and learn.opt.param_groups[0]['lr'] == 0.5
    run.cbs[1].enabled = False
    run.fit(1, learn)   # the runner still works


def test_param_scheduler_bad_arguments():
    with pytest.raises(TypeError, match='pname must be a string'): ParamScheduler(None, sched_no(1, 1))
    with pytest.raises(TypeError, match='schedule 0.1 is not callable'): ParamScheduler('lr', [sched_no(1, 1), 0.1])



@pytest.mark.parametrize('value', [math.nan, math.inf, -math.inf, 'fast', None, 1j])
def test_a_schedule_value_that_is_not_a_finite_number_is_refused_before_the_optimizer_sees_it(learn, value):
    bad = lambda pos: 0.1 if pos < 0.3 else value
    run = Runner(cbs=[ParamScheduler('lr', bad)], cb_funcs=Recorder)
    weights = copy.deepcopy(learn.model.state_dict())
    with pytest.raises(ValueError, match=rf"ParamScheduler\('lr'\): the schedule gave the lr {re.escape(repr(value))} at pos=0\.3\d*; "
                                         "it must be a finite real number") as info:
        run.fit(1, learn)
    assert info.value.__notes__ == ["raised in callback 'param_scheduler' during event 'begin_batch'"]
    assert all(math.isfinite(v) for v in run.recorder.lrs[0]) and learn.opt.param_groups[0]['lr'] == 0.5
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    assert not same(learn.model.state_dict(), weights)   # the batches before it trained


def test_a_schedule_made_of_strings_is_refused_where_it_is_made():
    with pytest.raises(ValueError, match=r"sched_no\('fast', 'slow'\) is not a finite real number at pos=0.0: 'fast'"):
        sched_no('fast', 'slow')


def test_schedules_of_numpy_and_torch_numbers_and_percentages_of_any_real_type(learn):
    sched = combine_scheds(np.array([0.25, 0.75]), [sched_lin(np.float32(0.1), torch.tensor(0.2)), sched_no(0.2, 0.2)])
    assert sched(0.125) == pytest.approx(0.15) and sched(1.) == 0.2
    assert combine_scheds([torch.tensor(0.5), np.float64(0.5)], [sched_no(1, 1), sched_no(2, 2)])(0.75) == 2
    for bad in ([True, 0.], ['0.5', 0.5], [torch.tensor([0.5, 0.5])]):
        with pytest.raises(ValueError, match='percentages must be real numbers >= 0'): combine_scheds(bad, [sched_no(1, 1)] * len(bad))
    run = Runner(cbs=[ParamScheduler('lr', sched)], cb_funcs=Recorder)
    run.fit(1, learn)
    assert run.recorder.lrs[0][0] == pytest.approx(0.1)


@pytest.mark.parametrize('pname,kind', [('params', 'list'), ('nesterov', 'bool'), ('maximize', 'bool')])
def test_param_scheduler_refuses_a_hyper_parameter_that_is_not_a_number(learn, pname, kind):
    run = Runner(cbs=[ParamScheduler(pname, sched_no(1, 1))], cb_funcs=Batches)
    with pytest.raises(ValueError, match=rf"ParamScheduler\('{pname}'\): the parameter groups' {pname!r} is a {kind}, not a number"):
        run.fit(1, learn)
    assert run.batches.n == 0


def test_a_runner_with_schedules_pickles_and_deep_copies_like_one_without(learn):
    one_cycle = combine_scheds([0.3, 0.7], cos_1cycle_anneal(0.1, 0.6, 0.2))
    run = Runner(cbs=[ParamScheduler('lr', one_cycle), ParamScheduler('momentum', sched_lin(0.9, 0.8))], cb_funcs=Recorder)
    for clone in (pickle.loads(pickle.dumps(run)), copy.deepcopy(run)):
        assert [repr(f) for f in clone.param_scheduler_momentum.sched_funcs.args] == ['0.9', '0.8']
        assert [clone.param_scheduler.sched_funcs(p) for p in (0, 0.3, 1)] == [one_cycle(p) for p in (0, 0.3, 1)]
    for f in (sched_lin(0.1, 0.2), one_cycle):
        assert pickle.loads(pickle.dumps(f))(0.5) == f(0.5) and repr(pickle.loads(pickle.dumps(f))) == repr(f)
    learn2 = copy.deepcopy(learn)
    run.fit(1, learn); clone.fit(1, learn2)
    assert clone.recorder.lrs == run.recorder.lrs

# --- LR_Find (lesson 05b)

def test_lr_find_goes_from_min_to_max_lr_and_puts_the_learner_back():
    learn = adam_learner()          # 8 training batches an epoch: the finder runs through 3 epochs
    snap = snapshot(learn)
    run = Runner(cbs=LR_Find(max_iter=20, min_lr=1e-5, max_lr=1e-2), cb_funcs=Batches)
    run.fit(5, learn)
    f = run.lr_find
    assert len(f.lrs) == len(f.losses) == 21 and run.batches.n == 21   # batches 0..max_iter, and no validation
    assert f.lrs == pytest.approx([1e-5 * 1000 ** (i / 20) for i in range(21)])
    assert all(type(l) is float for l in f.losses + f.lrs)
    assert unchanged(learn, snap)
    assert f.plot(skip_last=3).data[0].x == tuple(f.lrs[:-3])


def test_lr_find_stops_when_the_loss_explodes(learn):
    run = Runner(cbs=LR_Find(max_iter=200, min_lr=1e-3, max_lr=1e9))
    run.fit(100, learn)
    losses = run.lr_find.losses
    assert len(losses) < 200
    assert not losses[-1] <= 10 * min(losses[:-1])


@pytest.mark.parametrize('exc', [RuntimeError('boom'), KeyboardInterrupt()])
def test_lr_find_puts_the_learner_back_after_an_exception(exc):
    learn = adam_learner()
    snap = snapshot(learn)
    with pytest.raises(type(exc)): Runner(cbs=[LR_Find(), RaiseAt(exc)]).fit(1, learn)
    assert unchanged(learn, snap)


def test_lr_find_bad_arguments():
    with pytest.raises(ValueError, match='max_iter must be an integer >= 1'): LR_Find(max_iter=1.5)
    with pytest.raises(ValueError, match='need 0 < min_lr < max_lr'): LR_Find(min_lr=0)


def test_restore_state_twice_and_keeping_hyper_parameters():
    learn = adam_learner()
    snap, saved = snapshot(learn), save_state(learn.opt)
    for _ in range(2):   # the saved copy must not be changed by the training after a restore
        Runner().fit(1, learn)
        restore_state(learn.opt, saved)
        assert same(learn.opt.state_dict(), snap[1])
    learn.opt.param_groups[0]['lr'] = 0.25
    restore_state(learn.opt, saved, hypers=False)
    assert learn.opt.param_groups[0]['lr'] == 0.25 and same(learn.opt.state_dict()['state'], snap[1]['state'])


# --- early stopping

def test_early_stopping_after_patience_epochs_without_improvement(learn):
    learn.opt.param_groups[0]['lr'] = 0.   # the validation loss never changes
    run = Runner(cbs=EarlyStoppingCallback(patience=3), cb_funcs=[Batches, LivePlotCallback])
    run.fit(10, learn)
    n = len(learn.data.train_dl) + len(learn.data.valid_dl)
    assert run.early_stopping.stopped_epoch == 3 and run.batches.n == 4 * n
    assert len(run.live_plot.history.epochs) == 4     # every callback saw the last epoch
    run.fit(2, learn)                                 # each fit is judged on its own
    assert run.early_stopping.stopped_epoch is None and run.batches.n == 2 * n


def test_early_stopping_counts_improvement_by_min_delta(learn):
    losses = iter([1.0, 0.9, 0.89, 0.88, 0.5, 0.49, 0.48, 0.47, 0.46])
    class FakeValid(Callback):
        "Makes the validation loss of each epoch the next value of `losses`."
        _order = -1
        def begin_epoch(self): self.v = next(losses)
        def after_loss(self):
            if not self.in_train: self.run.loss = torch.tensor(self.v)
    run = Runner(cbs=[FakeValid(), EarlyStoppingCallback(patience=3, min_delta=0.05)])
    run.fit(20, learn)
    # improves at epochs 0, 1 and 4; epochs 5-7 are within min_delta of 0.5
    assert run.early_stopping.stopped_epoch == 7 and run.early_stopping.best == pytest.approx(0.5)


def test_early_stopping_bad_arguments():
    with pytest.raises(ValueError, match='patience must be an integer >= 1'): EarlyStoppingCallback(patience=0)
    with pytest.raises(ValueError, match='min_delta must be a number >= 0'): EarlyStoppingCallback(min_delta=float('nan'))


# --- gradient clipping

def test_gradient_clipping_bounds_the_norm_after_a_lower_order_after_backward(learn):
    norms = []
    class Scale(Callback):
        "Stands for a mixed-precision callback that unscales the gradients in after_backward at a low order."
        _order = 0
        def after_backward(self):
            for p in self.model.parameters(): p.grad *= 1000
    class Norm(Callback):
        _order = 11
        def after_backward(self): norms.append(torch.nn.utils.get_total_norm([p.grad for p in self.model.parameters()]).item())
    run = Runner(cbs=[Norm(), GradientClipping(0.5), Scale()])
    run.fit(1, learn)
    assert GradientClipping._order == 10 and 0 < max(norms) <= 0.5 * (1 + 1e-5)
    assert run.gradient_clipping.last_norm > 0.5
    run.gradient_clipping.enabled = False
    norms.clear()
    run.fit(1, learn)
    assert max(norms) > 0.5


def test_gradient_clipping_bad_arguments():
    with pytest.raises(ValueError, match='max_norm must be a number > 0'): GradientClipping(-1)
    with pytest.raises(ValueError, match='norm_type must be a number > 0'): GradientClipping(1, norm_type='inf')


# --- restart

def test_restart_is_off_by_default_and_a_switch_of_the_panel(learn):
    run = Runner(cb_funcs=[RestartCallback, Starts])
    panel = CallbackPanel(run)
    assert run.restart.enabled is False and panel.switches['restart'].value is False
    run.fit(1, learn)
    end = copy.deepcopy(learn.model.state_dict())
    run.fit(1, learn)
    assert same(run.starts.starts[1], end)          # off: the next fit continues
    panel.switches['restart'].value = True
    assert run.restart.enabled


def test_restart_gives_fits_the_same_start_and_with_a_seed_the_same_losses():
    learn = adam_learner()
    initial = snapshot(learn)
    run = Runner(cbs=RestartCallback(rng=False), cb_funcs=[Recorder, Starts])
    run.fit(1, learn)                                 # off: this fit's start is still remembered
    run.restart.enabled = True
    losses = []
    for _ in range(3):
        torch.manual_seed(1)
        run.fit(1, learn)
        losses.append(run.recorder.losses)
    assert losses[0] == losses[1] == losses[2]        # Adam's restored state was not changed by the fits between
    for s in run.starts.starts: assert same(s, initial[0])


def test_restart_with_rng_gives_the_same_losses_without_seeding():
    learn = make_learner(n_train=512)
    learn.model = torch.nn.Sequential(torch.nn.Dropout(0.3), *learn.model)   # random draws in the model too
    learn.opt = torch.optim.SGD(learn.model.parameters(), lr=0.5, momentum=0.9)
    run = Runner(cb_funcs=[RestartCallback, Recorder])
    run.restart.enabled = True
    run.fit(1, learn); first = run.recorder.losses
    run.fit(1, learn)
    assert run.recorder.losses == first and run.restart.restarts == 2


def test_restart_with_a_float16_grad_scaler_a_schedule_and_early_stopping_gives_equal_fits():
    # a real GradScaler runs on the CPU here (torch.amp.GradScaler('cpu')); its scale falls from 65,536 in the first fit
    from callbacks_widget.precision import MixedPrecisionCallback
    learn = make_learner(n_train=512)
    run = Runner(cbs=[ParamScheduler('lr', sched_cos(1., 0.3)), EarlyStoppingCallback(patience=1)],
                 cb_funcs=[RestartCallback, partial(MixedPrecisionCallback, torch.float16), Recorder])
    run.restart.enabled = True
    fits = []
    for _ in range(3):
        run.fit(3, learn)
        fits.append((run.recorder.losses, run.mixed_precision.scaler.state_dict(), run.early_stopping.best))
    assert fits[0][1]['scale'] < 65536.   # the scale fell in the fit, so the next fit must start from 65,536 again
    assert fits[0] == fits[1] == fits[2]
    run.restart.enabled = False
    run.fit(1, learn)                     # off: the scaler goes on from where the last fit left it
    assert run.recorder.losses[:2] != fits[0][0][:2] and run.mixed_precision.scaler.get_scale() <= fits[0][1]['scale']

def test_restart_keeps_the_lr_set_between_fits(learn):
    run = Runner(cbs=RestartCallback(), cb_funcs=Starts)
    run.restart.enabled = True
    initial = copy.deepcopy(learn.model.state_dict())
    run.fit(1, learn)
    learn.opt.param_groups[0]['lr'] = 0.05
    run.fit(1, learn)
    assert learn.opt.param_groups[0]['lr'] == 0.05 and same(run.starts.starts[1], initial)


def test_restart_remembers_each_learner_and_forgets_on_request():
    a, b = make_learner(seed=1), make_learner(seed=2)
    start_a, start_b = (copy.deepcopy(l.model.state_dict()) for l in (a, b))
    run = Runner(cbs=RestartCallback(), cb_funcs=Starts)
    run.restart.enabled = True
    for learn, start in ((a, start_a), (b, start_b), (b, start_b), (a, start_a)):
        run.fit(1, learn)
        assert same(run.starts.starts[-1], start)
    run.restart.forget()
    now = copy.deepcopy(a.model.state_dict())
    run.fit(1, a); run.fit(1, a)
    assert same(run.starts.starts[-1], now)
    del b
    import gc; gc.collect()
    assert len(run.restart._states) == 2              # a deleted learner frees its copy


def test_restart_after_the_model_changed_dtype(learn):
    run = Runner(cbs=RestartCallback(), cb_funcs=Starts)
    run.restart.enabled = True
    initial = {k: v.double() for k, v in learn.model.state_dict().items()}
    run.fit(1, learn)
    learn.model.double()
    double = lambda ds: Dataset(ds.x.double(), ds.y)
    learn.data = DataBunch(*get_dls(double(learn.data.train_dl.dataset), double(learn.data.valid_dl.dataset), 32), c=10)
    run.fit(1, learn)
    assert same(run.starts.starts[-1], initial)


def test_restart_comes_before_lr_find_and_copies_and_pickles_without_its_states(learn):
    run = Runner(cbs=[LR_Find(max_iter=5), RestartCallback()], cb_funcs=Starts)
    run.restart.enabled = True
    run.fit(1, learn)
    assert [cb.name for cb in run.running] == ['restart', 'train_eval', 'starts', 'lr_find', 'recorder']   # the recorder, added for the finder
    cb = RestartCallback(rng=False)
    cb._remember(learn)
    assert len(cb._states) == 2
    assert len(pickle.loads(pickle.dumps(cb))._states) == 0 and len(copy.deepcopy(cb)._states) == 0
    assert pickle.loads(pickle.dumps(cb)).rng is False


def test_all_exports_the_new_callbacks():
    ns = {}
    exec('from callbacks_widget.all import *', ns)
    for name in ('annealer', 'sched_lin', 'sched_cos', 'sched_no', 'sched_exp', 'combine_scheds', 'ParamScheduler',
                 'LR_Find', 'EarlyStoppingCallback', 'GradientClipping', 'RestartCallback', 'save_state', 'restore_state'):
        assert name in ns, name


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_restart_and_lr_find_with_a_model_that_moved_to_the_gpu():
    learn = make_learner()
    learn.opt = torch.optim.Adam(learn.model.parameters(), lr=1e-3)
    initial = copy.deepcopy(learn.model.state_dict())   # on the CPU: the start is taken before DeviceCallback moves it
    run = Runner(cbs=[DeviceCallback('cuda'), RestartCallback()], cb_funcs=[Starts, Recorder])
    run.restart.enabled = True
    run.fit(1, learn)
    first = [float(l) for l in run.recorder.losses]
    assert next(learn.model.parameters()).is_cuda
    assert all(v.is_cpu for v in run.restart._states[learn.model].values())   # the copy takes no GPU memory
    run.fit(1, learn)
    assert [float(l) for l in run.recorder.losses] == pytest.approx(first, rel=1e-5)
    for s in run.starts.starts: assert same(initial, s)
    snap = snapshot(learn)
    with pytest.raises(KeyboardInterrupt):
        Runner(cbs=[DeviceCallback('cuda'), LR_Find(max_iter=10), RaiseAt(KeyboardInterrupt(), 3)]).fit(1, learn)
    assert unchanged(learn, snap) and next(learn.model.parameters()).is_cuda


# --- experiments in the live plot: each fit's callbacks, the compare view, the finder's curve (issue 14)

import csv, threading
import numpy as np
from callbacks_widget.history import History, fit_name
from callbacks_widget.views import COMPARE_FITS, COMPARE_POINTS


def live(*cbs, **kw):
    "A runner with stats, the callbacks `cbs` (instances or classes) and a live plot."
    inst = [c for c in cbs if isinstance(c, Callback)]
    return Runner(cbs=inst, cb_funcs=[partial(AvgStatsCallback, accuracy), *[c for c in cbs if not isinstance(c, Callback)],
                                      partial(LivePlotCallback, **kw)])


def legend(lp):
    "The fits' traces as the legend lists them (one per fit), as a view draws them."
    return [t for t in lp.fig.figure().data if t.showlegend is not False]


def off(cb):
    cb.enabled = False
    return cb


def test_fits_are_named_by_what_changed():
    assert fit_name(0, (), ('a', 'b')) == 'fit 1'
    assert fit_name(1, ('a', 'b'), ('a', 'b')) == 'fit 2 · same'
    assert fit_name(2, ('a', 'param_scheduler'), ('a',)) == 'fit 3 · −param_scheduler'
    assert fit_name(3, ('a',), ('a', 'gradient_clipping')) == 'fit 4 · +gradient_clipping'
    assert fit_name(4, ('a', 'b'), ('a', 'c')) == 'fit 5 · −b +c'


def test_history_keeps_each_fits_callbacks_in_csv_and_html(learn, tmp_path, capsys):
    run = live(Batches, off(GradientClipping()))
    run.fit(1, learn)
    run.batches.enabled = False
    run.fit(1, learn)
    run.gradient_clipping.enabled = True
    run.fit(1, learn)
    h, n = run.live_plot.history, len(learn.data.train_dl)
    assert h.fit_callbacks == [('train_eval', 'avg_stats', 'batches', 'recorder', 'live_plot'), ('train_eval', 'avg_stats', 'recorder', 'live_plot'),
                               ('train_eval', 'avg_stats', 'recorder', 'gradient_clipping', 'live_plot')]
    assert h.fit_names(range(3)) == ['fit 1', 'fit 2 · −batches', 'fit 3 · +gradient_clipping']
    rows = list(csv.reader(open(h.to_csv(tmp_path / 'h.csv'))))
    assert rows[0][:3] == ['iteration', 'fit', 'callbacks']
    assert [r[2] for r in rows[1::n]] == [' '.join(c) for c in h.fit_callbacks]
    page = run.live_plot.save_html(tmp_path / 'p.html').read_text()
    assert '<td>fit 3 · +gradient_clipping</td><td>17</td><td>train_eval avg_stats recorder gradient_clipping live_plot</td>' in page
    assert 'fit 3 · +gradient_clipping' in str(run.live_plot.fig.plot_layout['annotations'])   # hover text of the fit's marker


def test_an_interrupt_inside_begin_fit_keeps_one_committed_number_of_fits():
    class Interrupting(list):
        armed = True
        def append(self, v):
            if Interrupting.armed: Interrupting.armed = False; raise KeyboardInterrupt
            super().append(v)
    h = History()
    h.begin_fit(('a',)); h.add_batches([1., 2.], [0.1] * 2)
    h.fit_starts = Interrupting(h.fit_starts)
    with pytest.raises(KeyboardInterrupt): h.begin_fit(('a', 'b'))   # the callbacks went in, the start did not
    assert len(h.fit_starts) == 1 and h.fit_names(range(len(h.fit_starts))) == ['fit 1']
    h.begin_fit(('b',))
    assert h.fit_starts == [0, 2] and h.fit_callbacks == [('a',), ('b',)]
    assert h.fit_names([1]) == ['fit 2 · −a +b']


def test_compare_view_overlays_the_fits_from_code_and_from_the_buttons(learn):
    run = live(Batches)
    lp = run.live_plot
    run.fit(2, learn)
    run.batches.enabled = False
    run.fit(1, learn)
    run.fit(1, learn)
    n = len(learn.data.train_dl)
    lp.view = 'compare'
    assert lp.view_buttons.value == 'compare' and lp.fig.get_state()['view'] == 'compare'
    fits = legend(lp)
    assert [t.name for t in fits] == ['fit 1', 'fit 2 · −batches', 'fit 3 · same']
    assert [(t.x[0], t.x[-1]) for t in fits] == [(1, 2 * n), (1, n), (1, n)]   # each from its first batch
    h = lp.history
    np.testing.assert_allclose(fits[1].y, h.smooth_loss.values[2 * n:3 * n])
    valid = [t for t in lp.fig.figure().data if t.name.endswith('valid loss')]
    assert [list(t.x) for t in valid] == [[n, 2 * n], [n], [n]]
    assert lp.fig.batches == {} and lp.fig.plot_layout['yaxis2']['visible'] is False
    lp.view_buttons.value = 'end_to_end'   # a click
    assert lp.view == 'end_to_end' and lp.fig.fits == {} and lp.fig.column('batches/x')[-1] == 4 * n
    lp.view_buttons.value = 'compare'
    assert len(legend(lp)) == 3
    with pytest.raises(ValueError, match="view must be one of end_to_end, compare, lr_find, activations, compare_activations; got 'overlay'"): lp.view = 'overlay'


def test_view_switched_during_a_fit_draws_the_running_fit_at_once(learn):
    seen = {}
    class Switch(Callback):
        _order = 30
        def after_batch(self):
            lp = self.run.live_plot
            if self.in_train and self.n_iter == 3:
                lp.view = 'compare'
                seen['at 3'] = [len(t.x) for t in legend(lp)]
            if self.in_train and self.n_iter == 5:   # a click that arrives on another thread is drawn at once
                t = threading.Thread(target=lambda: setattr(lp.view_buttons, 'value', 'end_to_end')); t.start(); t.join()
                seen['at 5'] = (lp.view, len(lp.fig.column('batches/x')))
    run = live(Switch, every=0)
    run.fit(1, learn)
    run.switch.enabled = True
    run.fit(1, learn)
    n = len(learn.data.train_dl)
    assert seen == {'at 3': [n, 3], 'at 5': ('end_to_end', n + 5)}
    assert run.live_plot.view == 'end_to_end' and run.live_plot.fig.column('batches/x')[-1] == 2 * n


def fill_fits(lp, fits: int, batches: int, rng=np.random.default_rng(0)):
    "Add `fits` fits of `batches` batches and two epochs each to the live plot's history."
    h = lp.history
    for f in range(fits):
        h.begin_fit(('train_eval', 'live_plot') if f % 2 else ('train_eval', 'param_scheduler', 'live_plot'))
        for e in range(2):
            h.add_batches((2 + rng.random(batches // 2) - f / fits).tolist(), [0.1] * (batches // 2))
            h.add_epoch(e, valid_loss=1. + f / fits, train_accuracy=0.5)


@pytest.mark.own_comm
@pytest.mark.parametrize('fits', [20, 2_000])
def test_compare_view_stays_bounded_whatever_the_number_of_fits(fits):
    lp = attached(LivePlotCallback(max_points=1000))
    sent = record_messages(lp.fig)
    fill_fits(lp, fits - 1, 1_000)
    lp.view = 'compare'
    fill_fits(lp, 1, 1_000)   # a new fit: new traces, columns and names in one update
    sent.messages.clear()
    lp.update()
    for _ in range(5):
        lp.history.add_batches([1.] * 50, [0.1] * 50); lp.update()
    assert max(sent.sizes) <= 64_000, sent.sizes
    fig = lp.fig.figure()
    assert all(len(t.x) <= min(lp.max_points, COMPARE_POINTS // COMPARE_FITS) for t in fig.data)
    names = [t.name for t in legend(lp)]
    assert len(names) == min(fits, COMPARE_FITS) and names[0] == 'fit 1' and names[-1] == f'fit {fits} · same'
    notes = [a['text'] for a in lp.fig.plot_layout['annotations']]
    assert notes == ([] if fits <= COMPARE_FITS else [f'{fits - COMPARE_FITS} older fits not shown (the first and the latest 19 are)'])
    assert legend(lp)[-1].x[-1] == 1_250   # the running fit, to its last batch


def test_zoom_in_the_compare_view_reaggregates_each_fit_and_a_switch_shows_all_again():
    lp = attached(LivePlotCallback(max_points=50))
    fill_fits(lp, 3, 10_000)
    lp.view = 'compare'
    lp.fig._handle_msg({'content': {'data': {'method': 'custom', 'content': {'event': 'zoom', 'range': [100, 200]}}}, 'buffers': []})
    for t in legend(lp): assert 100 <= t.x[0] < t.x[-1] <= 200 and len(t.x) == 50
    assert lp.fig.plot_layout['xaxis3']['range'] == [100, 200]
    lp.view = 'end_to_end'
    assert lp.fig.x_range == () and lp.fig.column('batches/x')[-1] == 30_000


def test_ctrl_c_in_a_compare_redraw_leaves_the_figure_consistent(learn):
    run = live(every=3600)
    lp = run.live_plot
    run.fit(1, learn)
    lp.view = 'compare'
    hits = []
    def interrupt(change):   # lands between the redraw's trait assignments
        if not hits and lp.panel.status == 'running' and lp.history.epochs[-1]['fit'] == 1: hits.append(1); raise KeyboardInterrupt
    lp.fig.observe(interrupt, 'fits')
    with pytest.raises(KeyboardInterrupt): run.fit(2, learn)
    assert hits and lp.panel.status == 'interrupted'
    n = len(learn.data.train_dl)
    assert [(t.name, t.x[-1]) for t in legend(lp)] == [('fit 1', n), ('fit 2 · same', n)]   # after_fit's redraw completed it
    run.fit(1, learn)
    assert [(t.name, t.x[-1]) for t in legend(lp)] == [('fit 1', n), ('fit 2 · same', n), ('fit 3 · same', n)]


def test_ctrl_c_in_begin_fit_leaves_history_and_figure_consistent(learn):
    class StopSecond(Callback):
        _order = 25   # after the live plot's begin_fit
        def begin_fit(self):
            if self.run.live_plot.history.n_iter: raise KeyboardInterrupt
    run = live(StopSecond)
    lp = run.live_plot
    run.fit(1, learn)
    lp.view = 'compare'
    with pytest.raises(KeyboardInterrupt): run.fit(1, learn)
    h = lp.history
    assert len(h.fit_starts) == len(h.fit_callbacks) == 2 and lp.panel.status == 'interrupted'
    run.stop_second.enabled = False
    run.fit(1, learn)
    assert [t.name for t in legend(lp)] == ['fit 1', 'fit 2 · same', 'fit 3 · −stop_second']
    assert [len(t.x) for t in legend(lp)] == [len(learn.data.train_dl), 0, len(learn.data.train_dl)]


def test_lr_finder_curve_is_drawn_against_the_learning_rate(learn):
    run = live(LR_Find(max_iter=30, min_lr=1e-4, max_lr=1.), every=0)
    lp = run.live_plot
    run.fit(1, learn)
    assert lp.view == 'lr_find' and lp.view_buttons.value == 'lr_find'
    curve, raw = lp.fig.figure().data
    f = run.lr_find
    assert curve.name == 'fit 1' and raw.name == 'fit 1 · loss'
    np.testing.assert_allclose(curve.x, f.lrs[:len(curve.x)], rtol=1e-6)
    np.testing.assert_allclose(raw.y, f.losses[:len(raw.y)], rtol=1e-6)
    np.testing.assert_allclose(curve.y, lp.history.smooth_loss.values)
    lay = lp.fig.plot_layout
    assert lay['xaxis']['type'] == 'log' and lay['xaxis']['title']['text'] == 'learning rate (log)'
    run.lr_find.enabled = False
    run.fit(1, learn)
    assert lp.view == 'end_to_end'   # back to the view the finder replaced
    lp.view = 'lr_find'              # the user's choice stays
    run.lr_find.enabled = True
    run.fit(1, learn)
    run.lr_find.enabled = False
    run.fit(1, learn)
    assert lp.view == 'lr_find' and [t.name for t in legend(lp)] == ['fit 1', 'fit 3 · +lr_find']


def test_lr_finder_view_without_a_finder_fit_says_how_to_get_one():
    lp = attached(LivePlotCallback())
    fill_fits(lp, 2, 100)
    lp.view = 'lr_find'
    assert lp.fig.traces == [] and lp.fig.fits == {}
    assert [a['text'] for a in lp.fig.plot_layout['annotations']] == ["no fit ran lr_find: add LR_Find() to the runner's callbacks"]


def test_fit_names_are_escaped_in_the_compare_view(learn):
    class Evil(Callback):
        @property
        def name(self): return '<img src=x onerror=alert(1)>'
    run = live(off(Evil()))
    run.fit(1, learn)
    next(cb for cb in run.cbs if isinstance(cb, Evil)).enabled = True
    run.fit(1, learn)
    run.live_plot.view = 'compare'
    names = [t['name'] for t in run.live_plot.fig.traces]
    assert 'fit 2 · +&lt;img src=x onerror=alert(1)&gt;' in names and not any('<' in n for n in names)


def test_ctrl_c_in_a_view_switch_then_the_next_update_draws_the_whole_view():
    lp = attached(LivePlotCallback(max_points=100))
    fill_fits(lp, 3, 1_000)
    lp.view = 'compare'
    hits = []
    def interrupt(change):
        if not hits: hits.append(1); raise KeyboardInterrupt
    lp.fig.observe(interrupt, 'batches')
    with pytest.raises(KeyboardInterrupt): lp.view = 'end_to_end'   # the batches went out; traces, layout, fits did not
    assert hits and lp.fig.fits != {}
    lp.update()
    assert lp.fig.fits == {} and lp.fig.traces[0]['name'] == 'train loss' and lp.fig.column('batches/x')[-1] == 3_000
    assert [a['text'] for a in lp.fig.plot_layout['annotations']] == ['fit 2', 'fit 3']
