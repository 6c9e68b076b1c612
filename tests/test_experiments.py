"Callbacks worth switching between fits: schedules, the LR finder, early stopping, clipping, restart."
import copy, math, pickle
from functools import partial
import pytest, torch
from callbacks_widget.all import *
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
    (lambda: combine_scheds([2, -1], [sched_lin(0, 1)] * 2), 'percentages must be numbers >= 0'),
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
    assert run.recorder.lrs == pytest.approx([sched(i / (2 * n)) for i in range(2 * n)])
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
    assert [cb.name for cb in run.running] == ['restart', 'train_eval', 'starts', 'lr_find']
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
