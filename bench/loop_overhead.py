"""Per-epoch cost of the `Runner` and its callbacks against a hand-written loop, on two workloads.

Workloads (`WORKLOADS`; one torch thread, synthetic data of MNIST's shape, the same `get_dls` +
`DataBunch` pipeline for every contestant):
- `lesson`: the lesson's MLP 784-50-10 (`get_model(data, lr=0.5, nh=50)`), SGD lr 0.5, batch 64,
  50k train / 10k valid. Its step is long (~370 µs on a quiet core): the loop's own Python hides in it.
- `small`: a linear model 784-10, SGD lr 0.1, batch 8, 10k train / 2k valid: a step about a third of
  the lesson's, as short as a small model's step on a GPU (50-200 µs), where the loop's Python per
  batch shows.

Pacing: the hand-written loop runs alongside every contestant's epoch, one batch at a time. Each
contestant reads its data through a batch sampler that first runs one step of the hand-written loop
(on its own model and data) and books that step's time; the contestant's time is the epoch's time
minus the booked steps. Both loops thus see the same moments of the machine, batch by batch. On this
VM the speed of a core drifts by ±30% from one second to the next, so alternating whole epochs gave
pair ratios from 0.67 to 1.26; paced, the ratios of one contestant's epochs stay within about ±1.5%.
(a') runs the hand-written loop itself as a contestant: its ratio shows what the method adds (~0).
(s) runs the lesson's one-cycle `ParamScheduler` and is paced against the hand-written loop that sets the
same learning rate before each training batch (target: ratio <= 1.05).
CPU time (this thread's) is booked the same way: it does not count moments when another process has
the core, which pacing cannot cancel.
Ratios and overheads are medians over the timed epochs; the first round is a warm-up.

    python bench/loop_overhead.py [--quick] [--peers] [--workload lesson|small|both] [--epochs N] [--json PATH]

The JSON holds one result per workload (`{"lesson": ..., "small": ...}`). The last lines printed are
`ratio=<median ratio of (c) to (a)>` of each workload run (`small_ratio=` for the small one).
"""
import argparse, contextlib, gc, io, json, math, random, statistics, sys, time
from functools import partial
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn, optim

from torch.utils.data import DataLoader

from callbacks_widget.data import Dataset, DataBunch, get_dls
from callbacks_widget.learner import Learner, accuracy, get_model
from callbacks_widget.runner import EVENTS, Callback, Runner
from callbacks_widget.stats import AvgStatsCallback
from callbacks_widget.liveplot import LivePlotCallback
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parent.parent / 'tests'))
from messages import record_messages  # noqa: E402  (test tooling: what a widget sends)
from callbacks_widget.anneal import ParamScheduler, combine_scheds, sched_cos

N_NOOP = 20
# the lesson's one-cycle learning rate, for (s) and the hand-written loop it is paced against
SCHED = combine_scheds([0.3, 0.7], [sched_cos(0.3, 0.6), sched_cos(0.6, 0.2)])


# ---------------------------------------------------------------- workloads, data and models
class Workload(NamedTuple):
    "A model, batch size and data size to time the loop on (`quick`: the sizes of a --quick run)."
    name: str
    describe: str
    bs: int
    nh: Optional[int]      # hidden units of the lesson's MLP; None: a linear model
    lr: float
    sizes: tuple           # (train, valid) samples
    quick: tuple
    epochs: int            # timed epochs per contestant
    batched: bool = False  # batches cut once (`Batches`) instead of the lesson's `DataLoader`s

    def data(self, quick: bool = False, sizes: Optional[tuple] = None) -> 'BenchData':
        "This workload's data: (train, valid) samples from `sizes`, else of a --quick run if `quick`, else full."
        n_train, n_valid = sizes or (self.quick if quick else self.sizes)
        return make_data(n_train, n_valid, bs=self.bs, nh=self.nh, lr=self.lr, batched=self.batched)


WORKLOADS = {
    'lesson': Workload('lesson', "the lesson's MLP 784-50-10, SGD lr 0.5, batch 64", 64, 50, 0.5,
                       (50_000, 10_000), (10_000, 2_000), 15),
    'small': Workload('small', "a linear model 784-10, SGD lr 0.1, batch 8, batches cut once (a short step, as on a GPU)",
                      8, None, 0.1, (10_000, 2_000), (2_000, 400), 15, batched=True),
}


class Batches:
    """The batches of `ds` cut once (`bs` rows each, in the dataset's order) and read in a new random order on each
    pass if `shuffle` (drawn from torch's generator, as `RandomSampler` draws): nothing is indexed or collated per
    batch, as when a small dataset is kept whole in a GPU's memory. `dataset` is `ds`, as on a `DataLoader`."""
    def __init__(self, ds, bs: int, shuffle: bool):
        self.dataset, self.shuffle = ds, shuffle
        self.batches = list(zip(ds.x.split(bs), ds.y.split(bs)))
    def __len__(self): return len(self.batches)
    def __iter__(self):
        if not self.shuffle: return iter(self.batches)
        return map(self.batches.__getitem__, torch.randperm(len(self.batches)).tolist())


class BenchData(DataBunch):
    "A `DataBunch` that knows the model to train on it: the lesson's MLP with `nh` hidden units, or linear if `nh` is None."
    def __init__(self, train_dl, valid_dl, c=None, nh: Optional[int] = 50, lr: float = 0.5):
        super().__init__(train_dl, valid_dl, c)
        self.nh, self.lr = nh, lr


def make_data(n_train: int, n_valid: int, bs: int = 64, seed: int = 0, nh: Optional[int] = 50, lr: float = 0.5,
              batched: bool = False) -> BenchData:
    "Random MNIST-shaped data, read through the lesson's `get_dls` (or, if `batched`, `Batches` of the same sizes)."
    g = torch.Generator().manual_seed(seed)
    x_train, x_valid = torch.rand(n_train, 784, generator=g), torch.rand(n_valid, 784, generator=g)
    y_train = torch.randint(0, 10, (n_train,), generator=g, dtype=torch.int64)
    y_valid = torch.randint(0, 10, (n_valid,), generator=g, dtype=torch.int64)
    train_ds, valid_ds = Dataset(x_train, y_train), Dataset(x_valid, y_valid)
    dls = (Batches(train_ds, bs, True), Batches(valid_ds, bs*2, False)) if batched else get_dls(train_ds, valid_ds, bs)
    return BenchData(*dls, c=10, nh=nh, lr=lr)


def make_learner(data: BenchData, seed: int = 0) -> Learner:
    torch.manual_seed(seed)
    if data.nh is not None: return Learner(*get_model(data, lr=data.lr, nh=data.nh), F.cross_entropy, data)
    model = nn.Linear(data.train_ds.x.shape[1], data.c)
    return Learner(model, optim.SGD(model.parameters(), lr=data.lr), F.cross_entropy, data)


# ---------------------------------------------------------------- (a) the hand-written loop
def hand_steps(learn, sched=None):
    """One epoch written out by hand, the same work as `Runner` + `AvgStatsCallback` (+ `ParamScheduler('lr', sched)`
    if `sched`: the lr of every parameter group set before each training batch); yields after every batch, and
    returns the epoch's training and validation loss and accuracy."""
    model, opt, loss_func, data = learn.model, learn.opt, learn.loss_func, learn.data
    model.train()
    t_loss = t_acc = 0.; t_n = 0
    n = len(data.train_dl)
    for i, (xb, yb) in enumerate(data.train_dl):
        if sched is not None:
            lr = sched(i / n)
            for g in opt.param_groups: g['lr'] = lr
        pred = model(xb)
        loss = loss_func(pred, yb)
        bs = xb.shape[0]
        with torch.no_grad():
            t_loss += loss.item() * bs
            t_acc += accuracy(pred, yb).item() * bs
        t_n += bs
        loss.backward()
        opt.step()
        opt.zero_grad()
        yield
    model.eval()
    v_loss = v_acc = 0.; v_n = 0
    for xb, yb in data.valid_dl:
        with torch.no_grad():   # per batch: a `with` left open across a `yield` would leak into the caller
            pred = model(xb)
            loss = loss_func(pred, yb)
            bs = xb.shape[0]
            v_loss += loss.item() * bs
            v_acc += accuracy(pred, yb).item() * bs
            v_n += bs
        yield
    return t_loss / t_n, t_acc / t_n, v_loss / v_n, v_acc / v_n


def hand_epoch(learn: Learner, sched=None) -> tuple:
    "`hand_steps` run to its end: one whole hand-written epoch."
    steps = hand_steps(learn, sched)
    try:
        while True: next(steps)
    except StopIteration as e: return e.value


# ---------------------------------------------------------------- pacing
_ENDED = object()


class Pacer:
    """Runs the hand-written loop one batch at a time (`step`) and adds up the wall time of its steps in `seconds`,
    their CPU time (this thread's, which stops while another process has the core) in `cpu_seconds`."""
    def __init__(self, learn: Learner): self.learn, self.steps, self.seconds, self.cpu_seconds = learn, iter(()), 0., 0.

    def start(self, sched=None):
        "Begin a hand-written epoch (that sets the lr from `sched` before each training batch, if given)."
        self.steps, self.seconds, self.cpu_seconds = hand_steps(self.learn, sched), 0., 0.

    # Reading the CPU time is a system call (~1-4 µs here, far more than the wall clock's 0.07): each step's wall
    # interval holds one of the two readings, so the other falls to the contestant and neither side is charged both
    # (charging both to the hand-written loop made the contestants look 8 µs a batch faster: (a') 0.983).
    def step(self) -> bool:
        "One batch of the hand-written epoch (or its last lines); False once the epoch has ended."
        c, t = time.thread_time(), time.perf_counter()
        more = next(self.steps, _ENDED) is not _ENDED
        c2, t2 = time.thread_time(), time.perf_counter()
        self.cpu_seconds += c2 - c
        self.seconds += t2 - t
        return more

    def finish(self):
        "Run what is left of the hand-written epoch (its last lines, or batches the contestant skipped)."
        while Pacer.step(self): pass   # the class's `step`, which says when the epoch has ended


class PacedSampler:
    "A batch sampler that makes the `Pacer` take one step before it hands out each batch of indices."
    def __init__(self, batches, pacer: Pacer): self.batches, self.pacer = batches, pacer
    def __len__(self): return len(self.batches)
    def __iter__(self):
        step = self.pacer.step
        for idx in self.batches:
            step()
            yield idx


class PacedBatches(PacedSampler):
    "`Batches` that make the `Pacer` take one step before each batch (a `PacedSampler` that hands out the batches)."
    def __init__(self, batches: Batches, pacer: Pacer):
        super().__init__(batches, pacer)
        self.dataset = batches.dataset


def paced(data: DataBunch, pacer: Pacer) -> DataBunch:
    """`data` read through `PacedSampler`s: still torch `DataLoader`s over the same datasets and batches (or, for
    `Batches`, through `PacedBatches`)."""
    def dl(d):
        if isinstance(d, Batches): return PacedBatches(d, pacer)
        return DataLoader(d.dataset, sampler=PacedSampler(d.sampler, pacer), batch_size=None)
    return BenchData(dl(data.train_dl), dl(data.valid_dl), c=data.c, nh=data.nh, lr=data.lr)


# ---------------------------------------------------------------- (d) no-op callbacks
def _noop(self): pass

def noop_callbacks(n: int = N_NOOP) -> list:
    "`n` callbacks (distinct names, as the Runner requires) that define every event as a no-op."
    return [type(f'Noop{i}Callback', (Callback,), {e: _noop for e in EVENTS})() for i in range(n)]


class _CountCallback(Callback):
    "Counts every event of a fit (each method increments a counter)."
    def __init__(self): self.counts = dict.fromkeys(EVENTS, 0)
for _e in EVENTS:
    setattr(_CountCallback, _e, (lambda e: lambda self: self.counts.__setitem__(e, self.counts[e] + 1))(_e))


def events_per_epoch(data: DataBunch) -> int:
    "Runner events dispatched in one epoch (begin_fit/after_fit excluded), counted on a real fit."
    cb = _CountCallback()
    Runner(cbs=[cb]).fit(1, make_learner(data))
    n = sum(cb.counts.values()) - cb.counts['begin_fit'] - cb.counts['after_fit']
    expect = 6 * len(data.train_dl) + 4 * len(data.valid_dl) + 3
    assert n == expect, (n, expect, cb.counts)
    return n


def dispatch_micro(n_calls: int = 20_000, blocks: int = 15) -> float:
    "µs per callback per event of `Runner.__call__`, timed alone: 20 no-op hooks against none, alternating blocks."
    run0, rund = Runner(), Runner(cbs=noop_callbacks())
    events = ('after_pred', 'after_loss', 'after_backward', 'after_step')  # TrainEvalCallback has none of these
    def block(run):
        t = time.perf_counter()
        for b in range(n_calls // len(events)):
            run.n_batches = b   # as in a fit (the runner times the hooks of one batch in `TIME_EVERY`)
            for e in events: run(e)
        return time.perf_counter() - t
    t0s, tds = [], []
    for i in range(blocks + 1):
        t0, td = block(run0), block(rund)
        if i: t0s.append(t0); tds.append(td)
    # the fastest block of each is the least disturbed by other processes (as timeit advises)
    return 1e6 * (min(tds) - min(t0s)) / (N_NOOP * (n_calls // len(events)) * len(events))


def step_parts(data: DataBunch, n: int = 300, rounds: int = 9) -> dict:
    """µs of each part of the hand-written loop's training step on one batch of `data`, each timed alone in blocks of
    `n` calls; the median over `rounds` rounds of blocks (the backward pass: a block of forward, loss and backward less
    the block of forward and loss before it). What one step costs here, whatever loop runs it."""
    learn = make_learner(data, seed=2)
    model, opt, loss_func = learn.model, learn.opt, learn.loss_func
    params = [p for g in opt.param_groups for p in g['params']]
    xb, yb = next(iter(data.train_dl))
    pred = model(xb); loss = loss_func(pred, yb)
    loss.backward()
    grads = [p.grad for p in params]
    batches = iter(())
    def next_batch():
        nonlocal batches
        if next(batches, None) is None: batches = iter(data.train_dl)
    def forward(): loss_func(model(xb), yb)
    def backward(): loss_func(model(xb), yb).backward()
    def step():   # the gradients put back first: `zero_grad` drops them
        for p, g in zip(params, grads): p.grad = g
        opt.step(); opt.zero_grad()
    def metrics():
        with torch.no_grad(): loss.item(); accuracy(pred, yb).item()
    def block(f):
        t = time.perf_counter()
        for _ in range(n): f()
        return 1e6 * (time.perf_counter() - t) / n
    parts = {'batch from the loader': [], 'forward and loss': [], 'backward': [], 'opt.step and zero_grad': [],
             'metrics (loss and accuracy, read as floats)': []}
    for f in (next_batch, forward, backward, step, metrics): f()
    for _ in range(rounds):
        fwd = block(forward)
        parts['backward'].append(block(backward) - fwd)
        parts['forward and loss'].append(fwd)
        for name, f in (('batch from the loader', next_batch), ('opt.step and zero_grad', step),
                        ('metrics (loss and accuracy, read as floats)', metrics)): parts[name].append(block(f))
    for p in params: p.grad = None
    return {k: statistics.median(v) for k, v in parts.items()}


# ---------------------------------------------------------------- widget message recording
def record_tree(widget, keep: bool = True) -> list:
    "Record (or with `keep=False` only count) the messages of `widget` and every widget below it; returns the recorders."
    out, stack, seen = [], [widget], set()
    while stack:
        w = stack.pop()
        if id(w) in seen: continue
        seen.add(id(w))
        out.append(record_messages(w, keep=keep))
        stack.extend(getattr(w, 'children', ()) or ())
    return out


# ---------------------------------------------------------------- contestants
class Contestant:
    "Something that runs one epoch per call; `setup` is untimed. `sched`: the lr schedule of the hand loop it is paced with."
    sched = None
    def __init__(self, key, label): self.key, self.label = key, label
    def epoch(self): raise NotImplementedError
    def close(self): pass


class Hand(Contestant):
    "The hand-written loop (setting the lr from `sched` before each training batch, if given)."
    def __init__(self, data, key='a', label='(a) hand-written loop', sched=None):
        super().__init__(key, label)
        self.learn, self.sched = make_learner(data), sched
    def epoch(self): hand_epoch(self.learn, self.sched)


class RunnerContestant(Contestant):
    "A `Runner`; each timed epoch is one `fit(1)` (so begin_fit/after_fit are counted too)."
    def __init__(self, key, label, data, make_runner):
        super().__init__(key, label)
        self.learn, self.run = make_learner(data), make_runner()
        self.sink = io.StringIO()
    def epoch(self):
        with contextlib.redirect_stdout(self.sink): self.run.fit(1, self.learn)
        self.sink.seek(0); self.sink.truncate()


class LivePlotContestant(RunnerContestant):
    def __init__(self, data):
        super().__init__('c', '(c) (b) + LivePlotCallback + panel', data,
                         lambda: Runner(cb_funcs=[partial(AvgStatsCallback, [accuracy]), LivePlotCallback]))
        cb = self.run.live_plot
        # counted, not kept: kept messages would survive into the garbage collector's oldest generation
        # and set off its full collections (~0.3 s over this process's 470k objects) inside timed epochs
        self.recs = record_tree(cb.panel.widget, keep=False) + [record_messages(cb.fig, keep=False)]
    @property
    def messages(self): return sum(r.count for r in self.recs)
    @property
    def bytes(self): return sum(r.nbytes for r in self.recs)


def ours(data, keys=None) -> list:
    "Our contestants on `data` (those of `keys` only, if given)."
    makers = {
        "a'": lambda: Hand(data, "a'", "(a') hand-written loop again (the method's own bias)"),
        'r0': lambda: RunnerContestant('r0', '(r0) Runner, no callbacks', data, lambda: Runner()),
        'b': lambda: RunnerContestant('b', '(b) Runner + AvgStatsCallback', data,
                                      lambda: Runner(cb_funcs=partial(AvgStatsCallback, [accuracy]))),
        'c': lambda: LivePlotContestant(data),
        'd': lambda: RunnerContestant('d', f'(d) Runner + {N_NOOP} no-op callbacks', data, lambda: Runner(cbs=noop_callbacks())),
        's': lambda: scheduled(data),
    }
    return [make() for k, make in makers.items() if keys is None or k in keys]


def scheduled(data) -> RunnerContestant:
    "(b) with a one-cycle lr: paced against the hand-written loop that sets the same lr before each training batch."
    c = RunnerContestant('s', '(s) (b) + ParamScheduler, against (a) setting the same lr each batch', data,
                         lambda: Runner(cb_funcs=[partial(AvgStatsCallback, [accuracy]), partial(ParamScheduler, 'lr', SCHED)]))
    c.sched = SCHED
    return c


# ---------------------------------------------------------------- peers (optional)
def _lightning_contestant(data):
    try:
        import lightning.pytorch as pl
    except Exception:
        import pytorch_lightning as pl  # raises ImportError when neither is there
    import logging
    for n in ('lightning', 'lightning.pytorch', 'pytorch_lightning', 'lightning.fabric'):
        logging.getLogger(n).setLevel(logging.ERROR)

    class Module(pl.LightningModule):
        def __init__(self, learn):
            super().__init__()
            self.model, self._opt = learn.model, learn.opt
        def training_step(self, batch, i):
            xb, yb = batch
            pred = self.model(xb)
            loss = F.cross_entropy(pred, yb)
            self.log('train_loss', loss, on_step=False, on_epoch=True, batch_size=xb.shape[0])
            self.log('train_acc', accuracy(pred, yb), on_step=False, on_epoch=True, batch_size=xb.shape[0])
            return loss
        def validation_step(self, batch, i):
            xb, yb = batch
            pred = self.model(xb)
            self.log('valid_loss', F.cross_entropy(pred, yb), on_epoch=True, batch_size=xb.shape[0])
            self.log('valid_acc', accuracy(pred, yb), on_epoch=True, batch_size=xb.shape[0])
        def configure_optimizers(self): return self._opt

    class Lightning(Contestant):
        "One `Trainer.fit(max_epochs=1)` per timed epoch (a fresh Trainer each time, as a user would re-fit)."
        def __init__(self):
            super().__init__('pl', f'(peer) PyTorch Lightning {pl.__version__}')
            self.module = Module(make_learner(data))
        def epoch(self):
            trainer = pl.Trainer(max_epochs=1, accelerator='cpu', devices=1, logger=False, enable_checkpointing=False,
                                 enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                trainer.fit(self.module, data.train_dl, data.valid_dl)
    return Lightning()


def _ignite_contestant(data):
    import ignite
    from ignite.engine import create_supervised_evaluator, create_supervised_trainer
    from ignite.metrics import Accuracy, Loss

    class Ignite(Contestant):
        "`trainer.run` of one epoch (with train loss and accuracy metrics) then `evaluator.run`."
        def __init__(self):
            super().__init__('ig', f'(peer) pytorch-ignite {ignite.__version__}')
            learn = make_learner(data)
            self.trainer = create_supervised_trainer(learn.model, learn.opt, F.cross_entropy,
                                                     output_transform=lambda x, y, y_pred, loss: (y_pred, y))
            self.evaluator = create_supervised_evaluator(learn.model, metrics={'acc': Accuracy(), 'loss': Loss(F.cross_entropy)})
            for name, m in (('acc', Accuracy()), ('loss', Loss(F.cross_entropy))): m.attach(self.trainer, name)
        def epoch(self):
            self.trainer.run(data.train_dl, max_epochs=1)
            self.evaluator.run(data.valid_dl)
    return Ignite()


def _fastai_contestant(data):
    from fastai.basics import Learner as FLearner, DataLoaders  # needs torchvision, which fails here
    raise ImportError("fastai imported, but its contestant is not written (it never imported on this machine)")


def peers(data) -> list:
    out = []
    for name, make in (('fastai', _fastai_contestant), ('PyTorch Lightning', _lightning_contestant),
                       ('pytorch-ignite', _ignite_contestant)):
        try: out.append(make(data))
        except Exception as e:
            print(f"skipping {name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", file=sys.stderr)
    return out


# ---------------------------------------------------------------- timing
def measure(pacer: Pacer, contestants, epochs: int, warmup: int = 1, log=None) -> dict:
    """`warmup` + `epochs` rounds of one epoch of each contestant, the hand-written loop paced alongside.
    Returns, per contestant, (hand-written seconds, contestant seconds, the same two in CPU time) of each timed epoch."""
    times = {c.key: [] for c in contestants}
    for rnd in range(warmup + epochs):
        for c in contestants:
            gc.collect()
            pacer.start(c.sched)
            t, cpu = time.perf_counter(), time.thread_time()
            c.epoch()
            pacer.finish()
            cpu, total = time.thread_time() - cpu, time.perf_counter() - t
            hand, own = pacer.seconds, total - pacer.seconds
            if rnd >= warmup: times[c.key].append((hand, own, pacer.cpu_seconds, cpu - pacer.cpu_seconds))
            if log: log(f"round {rnd}{' (warm-up)' if rnd < warmup else ''}: {c.key:>3} {own*1e3:8.1f} ms, "
                        f"hand {hand*1e3:8.1f} ms, ratio {own/hand:.3f}")
    return times


def median_ci(xs: list, level: float = 0.9, resamples: int = 2000) -> tuple:
    "A bootstrap interval of the median of `xs`: the range its median keeps over resampled runs."
    rng = random.Random(0)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(resamples))
    tail = (1 - level) / 2
    return meds[int(tail * resamples)], meds[min(resamples - 1, int((1 - tail) * resamples))]


def summarise(data, contestants, times, n_events: int) -> dict:
    n_batches = len(data.train_dl) + len(data.valid_dl)
    hand = [t[0] for ts in times.values() for t in ts]
    rows = [dict(key='a', label='(a) hand-written loop', median_ms=1e3*statistics.median(hand), min_ms=1e3*min(hand),
                 max_ms=1e3*max(hand), ratio=1.0, ratio_lo=1.0, ratio_hi=1.0, ratio_min=1.0, ratio_max=1.0, cpu_ratio=1.0,
                 overhead_us_per_batch=0.0, n=len(hand))]
    diffs = {}
    for c in contestants:
        ts = times[c.key]
        own, ratios = [t[1] for t in ts], [t[1] / t[0] for t in ts]
        lo, hi = median_ci(ratios)
        diffs[c.key] = statistics.median(t[1] - t[0] for t in ts)
        rows.append(dict(key=c.key, label=c.label, median_ms=1e3*statistics.median(own), min_ms=1e3*min(own),
                         max_ms=1e3*max(own), ratio=statistics.median(ratios), ratio_lo=lo, ratio_hi=hi,
                         ratio_min=min(ratios), ratio_max=max(ratios), cpu_ratio=statistics.median(t[3] / t[2] for t in ts),
                         overhead_us_per_batch=1e6*diffs[c.key]/n_batches, n=len(ts)))
        if isinstance(c, LivePlotContestant):
            rows[-1]['messages_per_epoch'] = c.messages / max(1, len(ts) + 1)
            rows[-1]['bytes_per_epoch'] = c.bytes / max(1, len(ts) + 1)
    out = dict(rows=rows, n_train=len(data.train_ds), n_valid=len(data.valid_ds), hand_us_per_batch=1e6*statistics.median(hand)/n_batches,
               train_batches=len(data.train_dl), valid_batches=len(data.valid_dl), events_per_epoch=n_events,
               torch_threads=torch.get_num_threads(), method='paced')
    if 'd' in diffs and 'r0' in diffs:
        # both against the same paced hand-written loop: the difference is the 20 callbacks' cost
        out['dispatch_us_per_cb_event'] = 1e6 * (diffs['d'] - diffs['r0']) / (N_NOOP * n_events)
    out['dispatch_micro_us_per_cb_event'] = dispatch_micro()
    out['step_parts_us'] = step_parts(data)
    c = next((r for r in rows if r['key'] == 'c'), None)
    out['ratio_c'] = c['ratio'] if c else math.nan
    return out


def table(res: dict) -> str:
    lines = ["| contestant | median ms/epoch | min | max | ratio to (a) | 90% interval | lowest–highest epoch | CPU-time ratio | overhead µs/batch |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res['rows']:
        lines.append(f"| {r['label']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['max_ms']:.1f} | "
                     f"{r['ratio']:.3f} | {r['ratio_lo']:.3f}–{r['ratio_hi']:.3f} | {r['ratio_min']:.3f}–{r['ratio_max']:.3f} | "
                     f"{r['cpu_ratio']:.3f} | {r['overhead_us_per_batch']:.1f} |")
    return '\n'.join(lines)


def notes(res: dict) -> str:
    out = ["Paced: the hand-written loop takes one batch step before each batch of the contestant (the contestant reads "
           "its data through a batch sampler that runs it), so both see the same moments of the machine; a contestant's "
           "time is its epoch minus those steps. Ratio to (a): median over epochs of (contestant time / hand-written time "
           "of the same epoch); 90% interval: where that median falls in 90% of bootstrap resamples of the epochs; "
           "lowest–highest: the ratios of single epochs; CPU-time ratio: the same with this thread's CPU time, "
           "which does not count moments when another process has the core; overhead: median difference / batches per epoch. "
           "(a') is the hand-written loop paced against itself: what the method adds. "
           "(r0) does less work than (a) (no metrics): it is only the baseline of (d). (s) is paced against the "
           "hand-written loop that sets the same lr before each training batch (the others against the plain one).",
           f"{res['n_train']} train / {res['n_valid']} valid samples: {res['train_batches']} + {res['valid_batches']} "
           f"batches and {res['events_per_epoch']} events per epoch; (a) took {res['hand_us_per_batch']:.0f} µs per batch "
           f"(median); {res['rows'][1]['n']} timed epochs per contestant after 1 warm-up round; torch threads: {res['torch_threads']}."]
    if 'dispatch_us_per_cb_event' in res:
        out.append(f"(d) dispatch: {res['dispatch_us_per_cb_event']:.3f} µs per callback per event in the loop "
                   f"= (((d)-(a)) - ((r0)-(a))) / ({N_NOOP} x {res['events_per_epoch']}); timed alone (`Runner.__call__`, "
                   f"20 no-op hooks against none): {res['dispatch_micro_us_per_cb_event']:.3f} µs.")
    if 'step_parts_us' in res:
        parts = res['step_parts_us']
        out.append(f"(a)'s training step, part by part, each timed alone on one batch (median of 9 rounds of blocks): "
                   + ', '.join(f"{k} {v:.1f} µs" for k, v in parts.items()) + f"; in all {sum(parts.values()):.0f} µs.")
    c = next((r for r in res['rows'] if r['key'] == 'c'), None)
    if c and 'bytes_per_epoch' in c:
        out.append(f"(c) sent {c['messages_per_epoch']:.1f} widget messages, {c['bytes_per_epoch']/1e3:.1f} KB per epoch "
                   f"(figure + panel, recorded through the widget comms).")
    return '\n'.join(out)


def run_workload(w: Workload, quick: bool = False, epochs: Optional[int] = None, with_peers: bool = False, log=None) -> dict:
    "Every contestant (and the peers, if `with_peers`) timed on workload `w`, paced; the summary."
    data = w.data(quick)
    n_events = events_per_epoch(data)
    pacer = Pacer(make_learner(data, seed=1))
    theirs = paced(data, pacer)
    contestants = ours(theirs) + (peers(theirs) if with_peers else [])
    times = measure(pacer, contestants, epochs or (3 if quick else w.epochs), log=log)
    res = summarise(data, contestants, times, n_events)
    res.update(workload=w.name, describe=w.describe, quick=quick)
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='a fifth of the samples, 3 timed epochs (CI)')
    ap.add_argument('--peers', action='store_true', help='also fastai, PyTorch Lightning, pytorch-ignite if they import')
    ap.add_argument('--workload', choices=[*WORKLOADS, 'both'], default='both')
    ap.add_argument('--epochs', type=int, default=None, help='timed epochs per contestant (after 1 warm-up)')
    ap.add_argument('--json', default=None, help='also write the results as JSON to this path')
    ap.add_argument('-v', '--verbose', action='store_true')
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    log = (lambda s: print(s, file=sys.stderr)) if a.verbose else None
    out = {}
    for name in (WORKLOADS if a.workload == 'both' else [a.workload]):
        out[name] = res = run_workload(WORKLOADS[name], a.quick, a.epochs, a.peers, log)
        print(f"## {name}: {res['describe']}\n")
        print(table(res))
        print()
        print(notes(res))
        print()
    if a.json:
        with open(a.json, 'w') as f: json.dump(out, f, indent=1)
    for name, res in out.items(): print(f"{'' if name == 'lesson' else name + '_'}ratio={res['ratio_c']:.4f}")
    return out


if __name__ == '__main__':
    main()
