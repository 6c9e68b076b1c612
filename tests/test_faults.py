"Faults during a fit, re-entry and the panel under them: the runner and the panel never lose the model, curves or kernel."
import copy, gc, html, threading, tracemalloc, weakref
from functools import partial
import numpy as np, pytest, torch
import ipywidgets as widgets
from callbacks_widget.all import *
from messages import attached
from callbacks_widget import panel as panel_module
from conftest import make_learner


class Witness(Callback):
    "Ordered after the others: records each event it sees with `run.error`, and the loss and prediction of each batch."
    _order = 10
    def __init__(self): self.seen, self.batches = [], []
    def after_cancel_batch(self): self.seen.append(('after_cancel_batch', self.run.error))
    def after_batch(self): self.seen.append(('after_batch', self.run.error)); self.batches.append((self.run.pred, self.run.loss))
    def after_cancel_epoch(self): self.seen.append(('after_cancel_epoch', self.run.error))
    def after_cancel_train(self): self.seen.append(('after_cancel_train', self.run.error))
    def after_fit(self): self.seen.append(('after_fit', self.run.error))


def raise_once(exc, event):
    "A callback (order 0) whose hook for `event` raises `exc` the first time it runs in a training pass."
    def hook(self):
        if (self.in_train or event == 'after_fit') and not self.done: self.done = True; raise exc
    return type('Failing', (Callback,), {'done': False, event: hook})


CANCEL_FOR = {'after_cancel_batch': CancelBatchException, 'after_cancel_epoch': CancelEpochException,
              'after_cancel_train': CancelTrainException}


# --- 12.1: every hook of an event that ends something runs

@pytest.mark.parametrize('exc_type', [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize('event', ['after_batch', 'after_cancel_batch', 'after_cancel_epoch', 'after_cancel_train', 'after_fit'])
def test_an_always_run_event_runs_every_hook_after_one_raises(learn, event, exc_type):
    exc = exc_type('broken')
    cbs = [raise_once(exc, event)(), Witness()]
    if event in CANCEL_FOR:  # a callback before the others cancels the first batch, so that the event happens
        cancel = raise_once(CANCEL_FOR[event](), 'begin_batch')
        cbs.append(type('Cancel', (cancel,), {'_order': -1})())
    run = Runner(cbs=cbs)
    with pytest.raises(exc_type) as info:
        run.fit(1, learn)
    assert info.value is exc and run.error is exc
    assert info.value.__notes__ == [f"raised in callback 'failing' during event {event!r}"]
    assert (event, exc) in run.witness.seen  # the later callback ran its hook of the same event, and saw the error
    assert run.witness.seen[-1] == ('after_fit', exc)
    assert run.learn is None and not run.in_fit


def test_live_plot_after_a_callback_failing_in_after_fit_says_failed(learn):
    class Broken(Callback):
        def after_fit(self): raise RuntimeError('broken')
    run = Runner(cb_funcs=[Broken, partial(LivePlotCallback, every=3600)])
    with pytest.raises(RuntimeError, match='broken'):
        run.fit(1, learn)
    assert run.live_plot.panel.status == 'failed: RuntimeError: broken'
    run.broken.enabled = False
    run.fit(1, learn)
    assert run.live_plot.panel.status == 'finished' and run.error is None


def test_the_first_error_goes_on_and_later_ones_are_notes_on_it(learn):
    class Early(Callback):
        def after_loss(self): raise ValueError('first')
    class Careless(Callback):  # trips over the batch the first error left half done
        def after_batch(self): raise TypeError('second')
        def after_fit(self): raise OSError('third')
    run = Runner(cb_funcs=[Early, Careless])
    with pytest.raises(ValueError, match='first') as info:
        run.fit(1, learn)
    assert run.error is info.value
    assert info.value.__notes__ == [
        "raised in callback 'early' during event 'after_loss'",
        "then TypeError: second was raised in callback 'careless' during event 'after_batch'",
        "then OSError: third was raised in callback 'careless' during event 'after_fit'"]


def test_an_interrupt_in_the_model_is_not_hidden_by_a_failing_after_batch(learn):
    class Interrupting(torch.nn.Module):
        def __init__(self, model): super().__init__(); self.model, self.calls = model, 0
        def forward(self, x):
            self.calls += 1
            if self.calls == 3: raise KeyboardInterrupt
            return self.model(x)
    class Careless(Callback):
        def after_batch(self): self.loss.item()
    model = learn.model
    learn.model = Interrupting(model)
    run = Runner(cb_funcs=[Careless, partial(LivePlotCallback, every=3600)])
    with pytest.raises(KeyboardInterrupt) as info:
        run.fit(1, learn)
    assert run.error is info.value and "then AttributeError" in info.value.__notes__[0]
    assert run.live_plot.panel.status == 'interrupted'


def test_an_error_after_a_cancel_in_the_same_event_is_not_lost(learn):
    class Halt(Callback):
        def after_batch(self):
            if self.n_iter == 2: raise CancelTrainException()
    class Broken(Callback):
        _order = 1
        def after_batch(self):
            if self.n_iter == 2: raise RuntimeError('broken')
    run = Runner(cb_funcs=[Halt, Broken, Witness])
    with pytest.raises(RuntimeError, match='broken'):
        run.fit(1, learn)
    assert run.error.__notes__ == ["raised in callback 'broken' during event 'after_batch'"]
    assert [e for e, _ in run.witness.seen].count('after_batch') == 2 and run.witness.seen[-1][0] == 'after_fit'


def test_a_cancel_in_after_batch_still_lets_every_callback_see_the_batch(learn):
    run = Runner(cb_funcs=[TestCallback, Witness])  # `Witness` comes after `TestCallback`, which cancels in `after_batch`
    run.fit(1, make_learner(n_train=640))
    assert run.n_iter == 10 and len(run.witness.batches) == 10  # the lesson's test: the 10th batch is seen too


# --- 12.2: a second fit while one runs

def test_fit_from_a_callback_fails_at_once_and_the_running_fit_goes_on(learn):
    refused = []
    class Refit(Callback):
        def after_batch(self):
            if self.in_train and self.n_iter == 2:
                with pytest.raises(RuntimeError, match='this runner is already fitting') as info:
                    self.run.fit(3, self.learn)
                refused.append((info.value, self.run.epochs, self.run.learn, self.run.n_batches))
    run = Runner(cb_funcs=[Refit, Witness])
    run.fit(1, learn)
    assert len(refused) == 1 and refused[0][1:] == (1, learn, 2)  # the refused fit changed nothing
    n = len(learn.data.train_dl)
    assert run.n_iter == n and run.n_batches == n + len(learn.data.valid_dl) and run.error is None
    assert [e for e, _ in run.witness.seen].count('after_fit') == 1


def test_fit_from_a_callback_left_uncaught_ends_the_fit_clearly(learn):
    class Refit(Callback):
        def after_batch(self): self.run.fit(1, self.learn)
    run = Runner(cb_funcs=Refit)
    with pytest.raises(RuntimeError, match='already fitting') as info:
        run.fit(1, learn)
    assert info.value.__notes__ == ["raised in callback 'refit' during event 'after_batch'"]
    assert run.n_batches == 1 and not run.in_fit and run.learn is None
    run.refit.enabled = False
    run.fit(1, learn)
    assert run.n_iter == len(learn.data.train_dl)


def test_fit_from_another_thread_fails_at_once(learn):
    outcome = []
    def second(): 
        try: run.fit(1, learn)
        except RuntimeError as e: outcome.append(e)
    class StartsAThread(Callback):
        def after_batch(self):
            if self.in_train and self.n_iter == 1:
                t = threading.Thread(target=second); t.start(); t.join()
    run = Runner(cb_funcs=[StartsAThread, Witness])
    run.fit(1, learn)
    assert len(outcome) == 1 and 'already fitting' in str(outcome[0])
    assert run.n_iter == len(learn.data.train_dl) and [e for e, _ in run.witness.seen].count('after_fit') == 1


def test_two_threads_racing_to_fit_one_runner_one_wins():
    learn, results = make_learner(n_train=64, n_valid=32), []
    run, barrier = Runner(), threading.Barrier(8)
    def go():
        barrier.wait()
        try: run.fit(1, learn); results.append('ran')
        except RuntimeError: results.append('refused')
    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert results.count('ran') >= 1 and len(results) == 8 and not run.in_fit  # any other error would be missing here
    run.fit(1, learn)  # and the runner still works
    assert run.n_iter == len(learn.data.train_dl) and run.error is None


# --- 12.4: a batch that ended before its loss

@pytest.mark.parametrize('event,how', [('begin_batch', CancelBatchException), ('after_pred', CancelBatchException),
                                       ('begin_batch', 'return True'), ('begin_batch', RuntimeError)])
def test_loss_is_none_in_after_batch_of_a_batch_that_ended_before_its_loss(learn, event, how):
    class End(Callback):
        def __init__(self): self.k = 0
    def hook(self):
        if not self.in_train: return
        self.k += 1
        if self.k == 3:
            if how == 'return True': return True
            raise how('stop')
    setattr(End, event, hook)
    run = Runner(cb_funcs=[End, Witness])
    if how is RuntimeError:
        with pytest.raises(RuntimeError): run.fit(1, learn)
    else: run.fit(1, learn)
    (p1, l1), (p2, l2), (p3, l3) = run.witness.batches[:3]
    assert l1 is not None and l2 is not None and l3 is None
    assert (p3 is None) == (event == 'begin_batch') and run.loss is None


# --- 12.5: the per-batch tensors are dropped at the end of every fit

@pytest.mark.parametrize('ending', ['finished', 'cancelled', 'error', 'interrupt'])
def test_fit_lets_go_of_the_batch_tensors_and_the_runner_copies(ending):
    learn, refs = make_learner(), []
    class End(Callback):
        done = False
        def after_loss(self):
            refs.append(weakref.ref(self.loss))
            if self.n_iter == 3 and not self.done:
                self.done = True
                if ending == 'cancelled': raise CancelTrainException()
                if ending == 'error': raise RuntimeError('boom')
                if ending == 'interrupt': raise KeyboardInterrupt
    run = Runner(cb_funcs=[End, partial(AvgStatsCallback, accuracy), Recorder])
    if ending in ('error', 'interrupt'):
        with pytest.raises((RuntimeError, KeyboardInterrupt)): run.fit(1, learn)
    else: run.fit(1, learn)
    assert (run.xb, run.yb, run.pred, run.loss, run.learn) == (None,) * 5
    gc.collect()
    assert refs[-1]() is None  # the last loss and its autograd graph are freed
    clone = copy.deepcopy(run)
    assert clone.recorder.losses == run.recorder.losses and clone.cbs[1].run is clone
    clone.fit(1, learn)


# --- 12.11: an instance in cb_funcs

def test_a_callback_instance_in_cb_funcs_says_to_use_cbs():
    with pytest.raises(TypeError, match=r"cb_funcs item AvgStatsCallback\(enabled=True\) is already a callback; "
                                        "pass callback instances in cbs"):
        Runner(cb_funcs=[AvgStatsCallback(accuracy)])


# --- thousands of fits: the runner does not grow

def test_thousands_of_fits_failing_or_not_keep_the_runner_the_same_size():
    learn = make_learner(n_train=32, n_valid=32)
    class Flaky(Callback):
        def __init__(self): self.k = 0
        def after_loss(self):
            self.k += 1
            if self.k % 3 == 1: raise RuntimeError('flaky')
            if self.k % 3 == 2: raise KeyboardInterrupt
    run = Runner(cb_funcs=[Flaky, Recorder])
    def fits(n):
        for _ in range(n):
            try: run.fit(1, learn)
            except (RuntimeError, KeyboardInterrupt): pass
    fits(30)
    gc.collect(); tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fits(2000)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown / 2000 < 300, grown / 2000   # the record's entry for each fit (its start, callbacks, groups, epoch), no more
    assert len(run.recorder.history.fit_starts) == 2030 and not run.in_fit and run.loss is None


# --- the panel: switches, interrupts, escaping, time left, what the cost is

def test_a_locked_switch_set_from_code_snaps_back():
    run = Runner(cb_funcs=Recorder)
    panel = CallbackPanel(run)
    with pytest.raises(ValueError, match='train_eval cannot be disabled'):
        panel.switches['train_eval'].value = False
    assert panel.switches['train_eval'].value is True and run.train_eval.enabled is True


def test_a_switch_whose_setter_refuses_keeps_showing_enabled():
    class Picky(Callback):
        @property
        def enabled(self): return self._enabled
        @enabled.setter
        def enabled(self, value): raise RuntimeError('not now')
    run = Runner(cbs=Picky())
    panel = CallbackPanel(run)
    with pytest.raises(RuntimeError, match='not now'):
        panel.switches['picky'].value = False
    assert panel.switches['picky'].value is True and run.picky.enabled is True
    panel.switches['picky'].value = True  # setting it to what it shows stays quiet


def test_switches_follow_enabled_both_ways():
    run = Runner(cb_funcs=GradientClipping)
    panel = CallbackPanel(run)
    for value in (False, True, False):
        panel.switches['gradient_clipping'].value = value
        assert run.gradient_clipping.enabled is value
        run.gradient_clipping.enabled = not value
        assert panel.switches['gradient_clipping'].value is (not value)


class DrivePanel(Callback):
    "Drives a `CallbackPanel` of its runner as the live plot does: begin, a refresh after each batch, end."
    _order, panel = 20, None
    def set_runner(self, run):
        super().set_runner(run)
        if self.panel is None: self.panel = CallbackPanel(run)
    def begin_fit(self): self.panel.begin_fit()
    def after_batch(self): self.panel.refresh(costs=False)
    def after_fit(self):
        e = self.run.error
        self.panel.end_fit('finished' if e is None else 'interrupted' if isinstance(e, KeyboardInterrupt) else 'failed')


@pytest.mark.parametrize('landing', [5, 'last'])
def test_an_interrupt_in_the_panels_refresh_leaves_it_consistent(learn, landing):
    run = Runner(cb_funcs=[Recorder, DrivePanel])
    panel = run.drive_panel.panel
    total = len(learn.data.train_dl) + len(learn.data.valid_dl)
    calls = []
    # 'last': the status line changes at the fit's end for sure (the progress line may read the same as at its last batch)
    watched = panel.status_text if landing == 'last' else panel.progress_text
    def interrupt(change):
        calls.append(1)
        if (landing == 'last' and run.n_batches == total and panel.status != 'running') or len(calls) == landing:
            watched.unobserve(interrupt, 'value')
            raise KeyboardInterrupt
    watched.observe(interrupt, 'value')
    with pytest.raises(KeyboardInterrupt):
        run.fit(1, learn)
    assert panel.status == 'interrupted' and isinstance(run.error, KeyboardInterrupt)
    assert 'interrupted' in panel.status_text.value
    assert f'batch {run.n_batches}/{total}' in panel.progress_text.value
    assert panel.progress.value == run.n_batches / total
    run.fit(1, learn)
    assert panel.status == 'finished' and panel.progress.value == 1.


def test_an_interrupt_in_the_live_plots_panel_refresh_says_interrupted(learn):
    run = Runner(cb_funcs=[partial(AvgStatsCallback, accuracy), partial(LivePlotCallback, every=3600)])
    panel = run.live_plot.panel
    def interrupt(change):
        if panel.status == 'finished':
            panel.status_text.unobserve(interrupt, 'value')
            raise KeyboardInterrupt
    panel.status_text.observe(interrupt, 'value')
    with pytest.raises(KeyboardInterrupt):
        run.fit(1, learn)
    assert panel.status == 'interrupted' and 'interrupted' in panel.status_text.value
    run.fit(1, learn)
    assert panel.status == 'finished'
    assert len(run.live_plot.history.loss) == 2 * len(learn.data.train_dl)


EVIL = '<img src=x onerror=alert(1)>'
HTML_DESCRIPTIONS = 'description_allow_html' not in widgets.Checkbox.class_trait_names()  # ipywidgets 7 renders them as HTML

def shown_texts(w):
    "Every (widget, trait, value) of a widget tree that a front end renders as HTML or text."
    out = []
    if isinstance(w, (widgets.HTML, widgets.HTMLMath)): out.append((w, 'html', w.value))
    if getattr(w, 'description', ''):
        as_html = HTML_DESCRIPTIONS or getattr(w, 'description_allow_html', False)
        out.append((w, 'html' if as_html else 'text', w.description))
    if isinstance(w, widgets.Label): out.append((w, 'text', w.value))
    for c in getattr(w, 'children', ()): out += shown_texts(c)
    return out


def test_user_text_in_the_panel_is_shown_as_text(learn):
    class Sneaky(Callback):
        name = EVIL
        def after_loss(self):
            if self.n_iter == 2: raise RuntimeError(EVIL)
    run = Runner(cbs=Sneaky(), cb_funcs=partial(LivePlotCallback, every=3600))
    with pytest.raises(RuntimeError): run.fit(1, learn)
    panel = run.live_plot.panel
    texts = shown_texts(panel.widget)
    assert any(kind == 'text' and v == EVIL for _, kind, v in texts) or \
           any(kind == 'html' and v == html.escape(EVIL) for _, kind, v in texts)   # the name is shown, as text
    for w, kind, value in texts:
        if kind == 'html': assert '<img' not in value, (w, value)
    assert html.escape(EVIL) in panel.status_text.value
    switch = panel.switches[EVIL]
    if HTML_DESCRIPTIONS: assert switch.description == html.escape(EVIL)   # ipywidgets 7: descriptions are HTML
    else: assert switch.description == EVIL and switch.description_allow_html is False


class Clock:
    "Stands in for the `time` module in the panel: the test moves `now`."
    now = 1000.
    def perf_counter(self): return self.now


def test_time_left_is_estimated_from_the_batches_after_the_first(monkeypatch):
    learn, clock, texts = make_learner(n_train=3200), Clock(), []
    monkeypatch.setattr(panel_module, 'time', clock)
    class Timed(Callback):
        _order = 30  # after `DrivePanel`'s refresh
        def begin_batch(self): clock.now += 14. if self.n_batches == 0 else 0.125  # a slow first batch, then 1/8 s each
        def after_batch(self): texts.append(self.run.drive_panel.panel.progress_text.value)
    run = Runner(cb_funcs=[DrivePanel, Timed])
    run.fit(1, learn)
    total = len(learn.data.train_dl) + len(learn.data.valid_dl)
    assert not any('left' in t for t in texts[:4]), texts[:4]  # 1 batch, then 0.375 s of batches: too little to go on
    # after batch 5: 4 batches in 0.5 s since the first one ended, the first one's 14 s left out
    assert texts[4].endswith(f" · {panel_module._fmt_time(0.125 * (total - 5))} left"), texts[4]
    assert all('left' in t for t in texts[4:])
    panel = run.drive_panel.panel
    assert 'left' not in panel.progress_text.value and panel.status == 'finished'


def test_the_panel_says_what_the_cost_column_measures():
    panel = CallbackPanel(Runner())
    text = html.unescape(panel.cost_help.value)
    assert panel.cost_help in panel.widget.children
    assert "wall-clock time per batch inside the callback's hooks" in text and 'GPU' in text


# --- views, zooms and switches from other threads during a fit (issue 24)

import sys
import traitlets
from comm.base_comm import BaseComm


def plain(v):
    "`v` with every bytes-like value as bytes, for comparing a widget's state with a front end's copy."
    if isinstance(v, dict): return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)): return [plain(x) for x in v]
    return bytes(v) if isinstance(v, (bytes, bytearray, memoryview)) else v


class FrontEndCopy(BaseComm):
    "A widget comm that applies every update it is asked to send to `state`, as a front end does."
    def __init__(self, state: dict, **kwargs):
        self.state = plain(state)
        super().__init__(**kwargs)

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        if msg_type != 'comm_msg' or data.get('method') != 'update': return
        state = plain(data['state'])
        for path, buf in zip(data.get('buffer_paths', []), buffers or []):
            *outer, last = path
            d = state
            for k in outer: d = d[k]
            d[last] = bytes(buf)
        self.state.update(state)


def front_end_copy(w) -> FrontEndCopy:
    w.comm = FrontEndCopy(w.get_state(), comm_id=w.model_id, target_name='jupyter.widget', primary=False)
    return w.comm


FIGURE = ('batches', 'epochs', 'nonfinite', 'fits', 'traces', 'plot_layout', 'view')


def redrawn_from_scratch(lp) -> dict:
    "What a new live plot draws from `lp`'s history, in `lp`'s view and x range."
    ref = attached(LivePlotCallback(every=3600))
    ref.run.recorder.history, ref.view = lp.history, lp.view   # a second view of the same record
    ref.fig.x_range = lp.fig.x_range
    ref.update()
    return {k: getattr(ref.fig, k) for k in FIGURE}


class Meanwhile:
    "Runs `action(k)`, k = 0, 1, ..., over and over on another thread for as long as the `with` block runs; `errors` holds what it raised."
    def __init__(self, action): self.action, self.k, self.errors, self.done = action, 0, [], threading.Event()

    def _loop(self):
        try:
            while not self.done.is_set(): self.action(self.k); self.k += 1
        except Exception as e: self.errors.append(e)

    def __enter__(self):
        self.thread = threading.Thread(target=self._loop); self.thread.start()
        return self

    def __exit__(self, *exc): self.done.set(); self.thread.join()


@pytest.fixture
def many_interleavings():
    "Threads switch every microsecond rather than every 5 ms: many more interleavings in one run."
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.own_comm
@pytest.mark.parametrize('how', ['view', 'buttons', 'figure', 'zoom', 'switches'])
def test_views_zooms_and_switches_from_another_thread_during_fits(how, many_interleavings, capsys):
    learn = make_learner(n_train=512, n_valid=64)
    run = Runner(cb_funcs=[partial(AvgStatsCallback, accuracy), partial(LivePlotCallback, every=0)])
    lp, panel = run.live_plot, run.live_plot.panel
    browser = front_end_copy(lp.fig)
    def change(k):
        view = ('end_to_end', 'compare', 'lr_find')[k % 3]
        if how == 'view': lp.view = view
        elif how == 'buttons': lp.view_buttons.value = view
        elif how == 'figure': lp.fig.view = view
        elif how == 'zoom': lp.fig._on_front_end_msg(lp.fig, {'event': 'zoom', 'range': [1, 3 + k % 20] if k % 4 else None}, [])
        else: panel.switches['avg_stats'].value = not panel.switches['avg_stats'].value
    with Meanwhile(change) as other:
        for _ in range(4): run.fit(1, learn)
    assert not other.errors, other.errors
    assert other.k > 20, other.k    # the other thread changed things all along
    assert {name: getattr(lp.fig, name) for name in FIGURE} == redrawn_from_scratch(lp)   # the last batches, whole
    assert {name: browser.state[name] for name in FIGURE} == plain({name: getattr(lp.fig, name) for name in FIGURE})
    assert lp.view_buttons.value == lp.fig.view and panel.status == 'finished' and 'finished' in panel.status_text.value
    assert panel.switches['avg_stats'].value is run.avg_stats.enabled


def test_a_view_clicked_on_another_thread_just_after_the_live_plots_after_fit_is_drawn(learn):
    class ClickAfter(Callback):
        _order = 30   # after the live plot's after_fit, before the fit ends
        def after_fit(self):
            t = threading.Thread(target=lambda: setattr(self.run.live_plot.view_buttons, 'value', 'compare'))
            t.start(); t.join()
    run = Runner(cb_funcs=[partial(LivePlotCallback, every=3600), ClickAfter])
    run.fit(1, learn)
    lp = run.live_plot
    assert (lp.view_buttons.value, lp.fig.view, lp.view) == ('compare', 'compare', 'compare')
    assert [t['name'] for t in lp.fig.traces][:1] == ['fit 1'] and lp.fig.batches == {}


def test_the_figures_view_is_one_of_the_views():
    lp = attached(LivePlotCallback())
    with pytest.raises(traitlets.TraitError, match="expected any of \\['end_to_end', 'compare', 'lr_find', 'activations', 'compare_activations'\\], not the str 'bogus'"):
        lp.fig.view = 'bogus'
    assert (lp.fig.view, lp.view, lp.view_buttons.value) == ('end_to_end',) * 3
    lp.fig.view = 'compare'
    assert lp.view == lp.view_buttons.value == 'compare'


def test_to_csv_from_another_thread_during_fits_loses_no_batch(many_interleavings, tmp_path):
    learn = make_learner(n_train=1024, n_valid=64)
    run = Runner(cb_funcs=[partial(LivePlotCallback, every=0)])
    h, rows = run.live_plot.history, []
    def save(k):
        lines = h.to_csv(tmp_path / 'h.csv').read_text().splitlines()
        assert all(line.count(',') == lines[0].count(',') for line in lines[1:]), lines[:3]
        rows.append(len(lines) - 1)
    with Meanwhile(save) as other:
        for _ in range(3): run.fit(1, learn)
    assert not other.errors, other.errors
    assert len(rows) > 5 and rows == sorted(rows), rows   # it wrote as the fits went on, never fewer rows than before
    n = 3 * len(learn.data.train_dl)
    assert h.n_iter == len(h.loss) == len(h.smooth_loss) == n
    # each fit's smoothed loss is the one a single pass over its losses gives: no batch counted twice or lost
    for start, stop in zip(h.fit_starts, [*h.fit_starts[1:], n]):
        avg, expected = 0., []
        for i, v in enumerate(h.loss.values[start:stop].tolist(), 1):
            avg = h.beta * avg + (1 - h.beta) * v
            expected.append(avg / (1 - h.beta ** i))
        np.testing.assert_allclose(h.smooth_loss.values[start:stop], expected, rtol=1e-5)
    lines = h.to_csv(tmp_path / 'h.csv').read_text().splitlines()
    assert len(lines) == n + 1
