"The Runner's contract: event order, cancelling, errors, toggling, reuse and bad input."
import copy, pickle, threading, time
from functools import partial
import pytest, torch
from callbacks_widget.all import *
from callbacks_widget import handler
from callbacks_widget.dispatch import TIME_EVERY, Dispatch
from conftest import make_learner


class Trace(Callback):
    "Records every event it sees, with the training flag."
    def __init__(self): self.trace = []

for _e in EVENTS:
    setattr(Trace, _e, lambda self, e=_e: self.trace.append(e))


def events_of_batch(train):
    return ['begin_batch', 'after_pred', 'after_loss'] + (['after_backward', 'after_step'] if train else []) + ['after_batch']


def test_event_order_matches_the_loop(learn):
    run = Runner(cb_funcs=Trace)
    run.fit(2, learn)
    n_train, n_valid = len(learn.data.train_dl), len(learn.data.valid_dl)
    epoch = ['begin_epoch'] + events_of_batch(True) * n_train + ['begin_validate'] + events_of_batch(False) * n_valid + ['after_epoch']
    assert run.trace.trace == ['begin_fit'] + epoch * 2 + ['after_fit']


def test_callbacks_run_in_order_of_their_order_attribute(learn):
    seen = []
    class Late(Callback):
        _order = 5
        def begin_fit(self): seen.append('late')
    class Early(Callback):
        _order = -5
        def begin_fit(self): seen.append('early')
    Runner(cbs=[Late(), Early()]).fit(0, learn)
    assert seen == ['early', 'late']


def test_lesson_sequence_with_callback_handler_does_exactly_ten_steps(capsys):
    learn, steps = make_learner(n_train=640), []
    class CountSteps(handler.Callback):
        def after_step(self): steps.append(1); return True
    handler.fit(1, learn, cb=handler.CallbackHandler([handler.TestCallback(), CountSteps()]))
    assert len(steps) == 10
    assert capsys.readouterr().out.split() == [str(i) for i in range(1, 11)]


def test_lesson_sequence_with_runner_and_avg_stats(learn, capsys):
    run = Runner(cb_funcs=partial(AvgStatsCallback, accuracy))
    run.fit(2, learn)
    loss, acc = run.avg_stats.valid_stats.avg_stats
    assert type(loss) is float and type(acc) is float and 0 <= acc <= 1
    out = capsys.readouterr().out.splitlines()
    assert [l.split(':')[0] for l in out] == ['train', 'valid'] * 2


def test_test_callback_stops_after_ten_iterations():
    learn = make_learner(n_train=640)
    run = Runner(cb_funcs=[TestCallback, Trace])
    run.fit(3, learn)
    assert run.n_iter == 10
    assert run.trace.trace.count('after_step') == 10
    assert run.trace.trace[-2:] == ['after_cancel_train', 'after_fit']


@pytest.mark.parametrize('exc,event,expect_batches', [
    (CancelBatchException, 'after_cancel_batch', None),
    (CancelEpochException, 'after_cancel_epoch', None),
])
def test_cancel_batch_and_epoch(learn, exc, event, expect_batches):
    class Cancel(Callback):
        def after_pred(self):
            if self.in_train: raise exc()
    run = Runner(cb_funcs=[Cancel, Trace])
    run.fit(1, learn)
    t = run.trace.trace
    assert 'after_step' not in t and event in t
    if exc is CancelBatchException:
        assert t.count('after_cancel_batch') == len(learn.data.train_dl)
        assert t.count('after_batch') == len(learn.data.train_dl) + len(learn.data.valid_dl)
    else:  # the training pass ends at its first batch; validation still runs
        assert t.count('after_cancel_epoch') == 1
        assert t.count('after_batch') == 1 + len(learn.data.valid_dl)
    assert t[-1] == 'after_fit'


def test_hook_returning_true_skips_the_rest_of_the_step(learn):
    class SkipStep(Callback):
        def after_backward(self): return True
    before = [p.detach().clone() for p in learn.model.parameters()]
    Runner(cbs=SkipStep()).fit(1, learn)
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))


def test_error_in_callback_names_callback_and_event_and_runner_stays_usable(learn):
    class Fragile(Callback):
        def after_backward(self): raise ValueError('bad gradient')
    run = Runner(cb_funcs=[Fragile, Trace])
    with pytest.raises(ValueError, match='bad gradient') as info:
        run.fit(1, learn)
    assert info.value.__notes__ == ["raised in callback 'fragile' during event 'after_backward'"]
    assert run.trace.trace[-1] == 'after_fit'
    assert run.learn is None and not run.in_fit and run.error is info.value
    run.fragile.enabled = False
    run.fit(1, learn)
    assert run.n_iter == len(learn.data.train_dl) and run.error is None


def test_keyboard_interrupt_runs_after_fit_and_keeps_runner(learn):
    class Interrupt(Callback):
        def after_batch(self):
            if self.n_iter == 3: raise KeyboardInterrupt
    run = Runner(cb_funcs=[Interrupt, Trace])
    with pytest.raises(KeyboardInterrupt) as info:
        run.fit(1, learn)
    assert "callback 'interrupt'" in info.value.__notes__[0]
    assert run.trace.trace[-1] == 'after_fit' and run.learn is None
    run.interrupt.enabled = False
    run.fit(1, learn)
    assert run.n_iter == len(learn.data.train_dl)


def test_enabled_toggles_between_fits(learn):
    run = Runner(cb_funcs=Trace)
    run.trace.enabled = False
    run.fit(1, learn)
    assert run.trace.trace == [] and run.trace not in run.running
    run.trace.enabled = True
    run.fit(1, learn)
    assert run.trace.trace[0] == 'begin_fit'


def test_enabled_changed_during_fit_applies_at_next_fit(learn):
    class Switcher(Callback):
        def after_batch(self):
            if self.n_iter == 2: self.run.trace.enabled = False
    run = Runner(cb_funcs=[Switcher, Trace])
    run.fit(1, learn)
    assert run.trace.trace[-1] == 'after_fit'  # the running fit kept its callbacks
    n = len(run.trace.trace)
    run.fit(1, learn)
    assert len(run.trace.trace) == n and not run.trace.enabled


def test_class_level_enabled_default_works_without_super_init():
    class LessonStyle(Callback):
        def __init__(self, x): self.x = x
    cb = LessonStyle(1)
    assert cb.enabled is True
    cb.enabled = False
    assert LessonStyle(2).enabled is True


def test_train_eval_is_locked_on():
    run = Runner()
    with pytest.raises(ValueError, match='train_eval cannot be disabled'):
        run.train_eval.enabled = False


def test_runner_is_reusable_and_counts_restart(learn):
    run = Runner(cb_funcs=partial(AvgStatsCallback, accuracy))
    for _ in range(3):
        run.fit(1, learn)
        assert run.learn is None and run.n_iter == len(learn.data.train_dl)
    run.fit(0, learn)
    assert run.n_iter == 0


def test_attribute_delegation_does_not_recurse():
    cb = AvgStatsCallback([accuracy])
    assert not hasattr(cb, 'model')
    with pytest.raises(AttributeError, match="no attribute 'model'"):
        cb.model
    assert copy.deepcopy(cb).train_stats.metrics == [accuracy]
    assert pickle.loads(pickle.dumps(Recorder())).name == 'recorder'
    run = Runner(cbs=cb)
    assert cb.cbs is run.cbs  # with a runner, reads go to it


def test_callback_names_and_attributes():
    run = Runner(cbs=Recorder(), cb_funcs=partial(AvgStatsCallback, accuracy))
    assert [cb.name for cb in run.cbs] == ['train_eval', 'recorder', 'avg_stats']
    assert run.recorder is run.cbs[1] and run.avg_stats is run.cbs[2] and run.train_eval is run.cbs[0]


def test_dispatch_is_compiled_once_per_fit(learn, monkeypatch):
    calls = []
    original = Dispatch.compile
    monkeypatch.setattr(Dispatch, 'compile', lambda self: (calls.append(1), original(self))[1])
    run = Runner(cb_funcs=Trace)
    calls.clear()
    run.fit(2, learn)
    assert calls == [1]
    hooks = run.dispatch.hooks
    assert (hooks['after_step'].hooks, hooks['after_step'].every) == (((1, run.trace.after_step),), TIME_EVERY)
    assert (hooks['after_epoch'].hooks, hooks['after_epoch'].every) == (((1, run.trace.after_epoch),), 1)
    assert hooks['after_batch'].hooks == ((0, run.train_eval.after_batch), (1, run.trace.after_batch))


def test_each_callbacks_events_are_read_once_a_fit(learn, monkeypatch):
    reads = []
    events = Callback.events
    monkeypatch.setattr(Callback, 'events', property(lambda cb: (reads.append(cb.name), events.fget(cb))[1]))
    run = Runner(cb_funcs=[Trace, partial(AvgStatsCallback, [accuracy])])
    reads.clear()
    run.fit(1, learn)
    assert sorted(reads) == ['avg_stats', 'trace', 'train_eval']   # once each, not once per event
    assert run.dispatch.hooks['after_pred'].hooks == ((1, run.trace.after_pred),)


def test_avg_stats_metrics_run_without_grad_and_leave_it_on_when_one_raises(learn):
    seen = []
    def metric(pred, yb):
        seen.append(torch.is_grad_enabled())
        if len(seen) == 3: raise ValueError('bad metric')
        return accuracy(pred, yb)
    run = Runner(cb_funcs=partial(AvgStatsCallback, [metric]))
    with pytest.raises(ValueError, match='bad metric'): run.fit(1, learn)
    assert seen == [False] * 3 and torch.is_grad_enabled()
    seen.clear()
    run.avg_stats.train_stats.metrics = [accuracy, lambda p, y: (seen.append(torch.is_grad_enabled()), accuracy(p, y))[1]]
    run.avg_stats.valid_stats.metrics = run.avg_stats.train_stats.metrics
    run.avg_stats.train_stats.reset(); run.avg_stats.valid_stats.reset()
    run.fit(1, learn)                       # the same callback (and its no_grad) again: every batch without grad
    assert len(seen) == len(learn.data.train_dl) + len(learn.data.valid_dl) and not any(seen)
    assert torch.is_grad_enabled()
    assert copy.deepcopy(run.avg_stats).train_stats.count == run.avg_stats.train_stats.count > 0
    assert pickle.loads(pickle.dumps(AvgStatsCallback([accuracy])))._no_grad is not None


def test_cb_seconds_measure_time_in_hooks():
    import time
    learn = make_learner(n_train=1024)
    class Slow(Callback):
        def after_batch(self): time.sleep(0.001)
        def after_epoch(self): time.sleep(0.005)
    run = Runner(cb_funcs=Slow)
    run.fit(1, learn)
    n = len(learn.data.train_dl) + len(learn.data.valid_dl)
    assert run.n_batches == n
    # after_batch timed in one batch of TIME_EVERY, counted TIME_EVERY times; after_epoch every time
    assert run.cb_seconds['slow'] >= 0.001 * TIME_EVERY * (n // TIME_EVERY) + 0.005
    assert run.cb_seconds['train_eval'] < run.cb_seconds['slow']


def test_batch_hooks_are_timed_in_one_batch_of_time_every_and_the_others_always(monkeypatch):
    from callbacks_widget import dispatch
    reads = []
    monkeypatch.setattr(dispatch, 'perf_counter', lambda: reads.append(1) or len(reads))   # one tick per reading
    class Ticks(Callback):
        def after_loss(self): pass
        def after_epoch(self): pass
    learn = make_learner(n_train=1024)   # 32 + 1 batches
    run = Runner(cb_funcs=Ticks)
    run.fit(2, learn)
    n = len(learn.data.train_dl) + len(learn.data.valid_dl)
    timed = len(range(0, 2 * n, TIME_EVERY))          # after_loss sees n_batches = 0, 1, ...: timed at 0, 8, ...
    assert run.cb_seconds['ticks'] == TIME_EVERY * timed + 2   # + one tick for each after_epoch
    assert len(reads) < 2 * (2 * n)   # 2n batches; timing every hook would read the clock 4 times in each (2 hooks x 2)


def test_an_event_no_callback_handles_returns_false_and_an_unknown_event_fails():
    run = Runner()
    assert run('after_pred') is False and 'after_pred' not in run.dispatch.hooks
    with pytest.raises(KeyError, match='after_prediction'): run('after_prediction')


def test_a_hook_returning_true_among_several_is_seen_and_the_others_still_run(learn):
    seen = []
    class Skip(Callback):
        def after_backward(self): seen.append('skip'); return True
    class Also(Callback):
        _order = 1
        def after_backward(self): seen.append('also')
    before = [p.detach().clone() for p in learn.model.parameters()]
    Runner(cbs=[Skip(), Also()]).fit(1, learn)
    assert seen == ['skip', 'also'] * len(learn.data.train_dl)
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))


# --- callbacks that require others

class Tally(Callback):
    def __init__(self): self.n = 0
    def after_batch(self): self.n += 1

class Report(Callback):
    "Reads the tally, made by the runner if it was not given."
    requires = (Tally,)
    def after_fit(self): self.batches = self.run.tally.n


def test_a_required_callback_is_added_named_and_runs(learn):
    run = Runner(cb_funcs=Report)
    assert [cb.name for cb in run.cbs] == ['train_eval', 'report', 'tally'] and isinstance(run.tally, Tally)
    run.fit(1, learn)
    assert run.report.batches == len(learn.data.train_dl) + len(learn.data.valid_dl)


def test_a_required_callback_given_or_subclassed_is_not_added_again():
    tally = Tally()
    assert Runner(cbs=[Report(), tally]).tally is tally
    class BigTally(Tally): pass
    assert [cb.name for cb in Runner(cbs=BigTally(), cb_funcs=[Report, Report2]).cbs] == ['train_eval', 'big_tally', 'report', 'report2']


class Report2(Report): pass


def test_what_a_required_callback_requires_is_added_too_once():
    class Summary(Callback): requires = (Report, Tally)
    assert [type(cb) for cb in Runner(cbs=Summary()).cbs][1:] == [Summary, Report, Tally]


def test_a_required_class_that_is_not_a_callback_or_needs_arguments_is_named():
    class Needy(Callback):
        def __init__(self, k): self.k = k
    class NeedsNeedy(Callback): requires = (Needy,)
    class NeedsText(Callback): requires = ('tally',)
    with pytest.raises(TypeError, match='NeedsNeedy requires a Needy, which cannot be made with no arguments'):
        Runner(cbs=NeedsNeedy())
    with pytest.raises(TypeError, match="NeedsText.requires holds 'tally', which is not a Callback class"):
        Runner(cbs=NeedsText())
    assert Runner(cbs=[NeedsNeedy(), Needy(3)]).needy.k == 3


# --- bad input: a clear error that names what is wrong, before any training

def test_cbs_must_be_callback_instances():
    with pytest.raises(TypeError, match="got 3, which is not a callbacks_widget Callback"):
        Runner(cbs=[3])
    with pytest.raises(TypeError, match='got the class Recorder, not an instance'):
        Runner(cbs=[Recorder])
    with pytest.raises(TypeError, match="cb_funcs item 'recorder' is not callable"):
        Runner(cb_funcs=['recorder'])
    with pytest.raises(TypeError, match='cb_funcs item .*dict.* which is not a callbacks_widget Callback'):
        Runner(cb_funcs=[dict])


def test_duplicate_and_shadowing_names():
    with pytest.raises(ValueError, match="two callbacks are named 'recorder'"):
        Runner(cbs=[Recorder(), Recorder()])
    class Model(Callback): pass
    class FitCallback(Callback): pass
    with pytest.raises(ValueError, match="named 'model', which would hide the Runner's own 'model'"):
        Runner(cbs=Model())
    with pytest.raises(ValueError, match="named 'fit'"):
        Runner(cb_funcs=FitCallback)
    with pytest.raises(ValueError, match="two callbacks are named 'train_eval'"):
        Runner(cbs=TrainEvalCallback())


@pytest.mark.parametrize('epochs', [-1, 1.5, '2', None, True])
def test_bad_epochs(learn, epochs):
    run = Runner(cb_funcs=Trace)
    with pytest.raises(ValueError, match='epochs must be a non-negative integer'):
        run.fit(epochs, learn)
    assert run.trace.trace == []


def test_learner_missing_a_part(learn):
    run = Runner(cb_funcs=Trace)
    with pytest.raises(ValueError, match='the Learner has no opt, loss_func'):
        run.fit(1, Learner(learn.model, None, None, learn.data))
    with pytest.raises(ValueError, match='learn.data has no valid_dl'):
        run.fit(1, Learner(learn.model, learn.opt, learn.loss_func, DataBunch(learn.data.train_dl, None)))
    with pytest.raises(ValueError, match='training DataLoader is empty'):
        run.fit(1, Learner(learn.model, learn.opt, learn.loss_func, DataBunch([], learn.data.valid_dl)))
    assert run.trace.trace == [] and run.learn is None


def test_bad_metrics_and_enabled_values():
    with pytest.raises(TypeError, match="metric 'accuracy' is not callable"):
        AvgStatsCallback('accuracy')
    class Plain(Callback): pass
    with pytest.raises(TypeError, match="plain.enabled must be True or False, got 'no'"):
        Plain().enabled = 'no'


def test_a_name_a_callback_lacks_is_named_on_the_callback_and_its_runner():
    run = Runner(cb_funcs=Recorder)
    with pytest.raises(AttributeError, match=r"^'Recorder' object has no attribute 'plot_lrs' \(nor has its Runner\)$") as info:
        run.recorder.plot_lrs()
    assert info.value.name == 'plot_lrs' and info.value.obj is run.recorder
    class Broken(Runner):   # an AttributeError raised inside the runner's own property goes on as it is
        @property
        def extra(self): return self.learn.extra
    with pytest.raises(AttributeError, match="^'NoneType' object has no attribute 'extra'$"):
        Broken(cb_funcs=Recorder).recorder.extra


# --- Runner.cancel_train: ending a fit from a button, another thread or a callback ----------------------

def test_cancel_train_from_a_callback_ends_the_fit_after_that_batch_keeping_weights_and_record(learn):
    class Enough(Callback):
        _order = 10
        def after_batch(self):
            if self.in_train and self.n_iter == 3: self.asked = self.run.cancel_train()
    run = Runner(cb_funcs=[Enough, Recorder, Trace])
    before = [p.detach().clone() for p in learn.model.parameters()]
    run.fit(3, learn)
    t = run.trace.trace
    assert run.enough.asked is True and (run.n_iter, run.epoch, run.error) == (3, 0, None)
    assert t[-3:] == ['after_batch', 'after_cancel_train', 'after_fit'] and 'after_epoch' not in t
    assert len(run.recorder.losses) == 3 and not run.in_fit and run.learn is None
    assert not all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))   # the 3 steps are kept


def test_cancel_train_during_validation_ends_the_fit_there(learn):
    class Enough(Callback):
        _order = 10
        def after_batch(self):
            if not self.in_train: self.run.cancel_train()
    run = Runner(cb_funcs=[Enough, Trace])
    run.fit(2, learn)
    t = run.trace.trace
    assert run.epoch == 0 and t.count('begin_validate') == 1 and t[-2:] == ['after_cancel_train', 'after_fit']
    assert t[t.index('begin_validate'):].count('after_batch') == 1


def test_cancel_train_from_another_thread_ends_the_fit_within_one_batch(learn):
    started = threading.Event()
    class Slow(Callback):
        def after_batch(self):
            started.set()
            time.sleep(0.002)   # a batch long enough for the other thread to ask in
    run, seen = Runner(cb_funcs=[Slow, Trace]), {}
    def stop():
        started.wait(10)
        seen['asked'] = run.cancel_train()
        seen['done'] = run.n_batches   # batches that had begun their `after_batch` once it was asked
    t = threading.Thread(target=stop)
    t.start()
    run.fit(3, learn)
    t.join()
    assert seen['asked'] is True and run.n_batches in (seen['done'], seen['done'] + 1)
    assert run.trace.trace[-2:] == ['after_cancel_train', 'after_fit'] and run.error is None


def test_cancel_train_between_fits_does_nothing_and_no_request_leaks_into_the_next_fit(learn):
    class LateAsk(Callback):
        def after_fit(self): self.asked = self.run.cancel_train()   # the fit is over: nothing left to end
    run = Runner(cb_funcs=[LateAsk, Trace])
    assert run.cancel_train() is False and run.cancel_requested is False
    run.fit(1, learn)
    assert run.late_ask.asked is True and 'after_cancel_train' not in run.trace.trace
    assert run.cancel_train() is False
    run.fit(1, learn)
    assert run.n_iter == len(learn.data.train_dl) and 'after_cancel_train' not in run.trace.trace


@pytest.mark.parametrize('exc', [ValueError('bad loss'), KeyboardInterrupt()])
def test_an_error_in_the_batch_of_a_cancel_train_goes_on(learn, exc):
    class AskThenFail(Callback):
        def after_loss(self):
            if self.in_train and self.n_iter == 2:
                self.run.cancel_train()
                raise exc
    run = Runner(cb_funcs=[AskThenFail, Trace])
    with pytest.raises(type(exc)): run.fit(1, learn)
    assert run.error is exc and 'after_cancel_train' not in run.trace.trace and run.trace.trace[-1] == 'after_fit'
