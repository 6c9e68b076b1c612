"""Timings on a CUDA GPU for the README: `python examples/cuda_check.py` (about a minute).

Prints µs per training batch of the demo (embedded digits, batch size 64) on the GPU: the lesson's plain loop, the
Runner with DeviceCallback and AvgStatsCallback, + Recorder, + bf16 mixed precision, + the live plot (if ipywidgets,
plotly, anywidget and tsdownsample are installed), with each callback's cost as the panel shows it; then the same on
a short step (a linear model, batch 8: the loop's own cost shows), against a hand-written loop that sums the same
loss and accuracy on the device; then the cost of DistributedCallback's per-batch vote in a DDP fit on two CPU
processes (Gloo). Without a GPU it runs on the CPU.
"""
import argparse, os, socket, sys, time
from contextlib import redirect_stdout
from functools import partial
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn, optim
from callbacks_widget.data import DataBunch, Dataset, get_data, get_dls
from callbacks_widget.learner import Learner, accuracy, get_model
from callbacks_widget.runner import Callback, Runner
from callbacks_widget.stats import AvgStatsCallback
from callbacks_widget.history import Recorder
from callbacks_widget.devices import DeviceCallback
from callbacks_widget.precision import MixedPrecisionCallback
from callbacks_widget.distributed import DistributedCallback

DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'


def sync():
    if DEVICE == 'cuda': torch.cuda.synchronize()


class Clock(Callback):
    "Wall-clock seconds of each epoch's training batches (the device's queue drained at both ends)."
    _order = -100
    def begin_fit(self): self.seconds = []
    def begin_epoch(self): sync(); self._t = time.perf_counter()
    def begin_validate(self): sync(); self.seconds.append(time.perf_counter() - self._t)


def demo_data(n_train=None, bs=64):
    x_train, y_train, x_valid, y_valid = get_data()
    if n_train: x_train, y_train = x_train[:n_train], y_train[:n_train]
    return DataBunch(*get_dls(Dataset(x_train, y_train), Dataset(x_valid, y_valid), bs,
                              pin_memory=DEVICE == 'cuda'), c=10)


def linear_parts(data) -> tuple:
    "A linear model 784-10 and its SGD: the short step of `bench/loop_overhead.py`'s small workload."
    model = nn.Linear(data.train_ds.x.shape[1], data.c)
    return model, optim.SGD(model.parameters(), lr=0.1)


def hand_loop(data, epochs=3, parts=get_model, metrics=False) -> float:
    "µs per training batch of a hand-written loop, the batches copied to the device (with `metrics`: loss and accuracy summed there, as AvgStats does)."
    torch.manual_seed(0)
    model, opt = parts(data)
    model.to(DEVICE)
    best = float('inf')
    for _ in range(epochs):
        sync(); t = time.perf_counter()
        tot_loss = tot_acc = torch.zeros((), dtype=torch.float64, device=DEVICE)
        for xb, yb in data.train_dl:
            xb, yb = xb.to(DEVICE, non_blocking=True), yb.to(DEVICE, non_blocking=True)
            pred = model(xb)
            loss = F.cross_entropy(pred, yb)
            if metrics:
                with torch.no_grad():
                    tot_loss = torch.add(tot_loss, loss.detach(), alpha=xb.shape[0])
                    tot_acc = torch.add(tot_acc, accuracy(pred, yb), alpha=xb.shape[0])
            loss.backward(); opt.step(); opt.zero_grad()
        float(tot_loss); sync(); best = min(best, time.perf_counter() - t)
    return 1e6 * best / len(data.train_dl)


def runner_loop(data, cb_funcs, epochs=3, parts=get_model) -> tuple:
    "µs per training batch (best epoch), and each callback's µs per batch (all batches, as the panel shows)."
    torch.manual_seed(0)
    learn = Learner(*parts(data), F.cross_entropy, data)
    run = Runner(cb_funcs=[partial(DeviceCallback, DEVICE), Clock, *cb_funcs])
    with open(os.devnull, 'w') as null, redirect_stdout(null): run.fit(epochs, learn)
    costs = {k: 1e6 * s / run.n_batches for k, s in run.cb_seconds.items() if k != 'clock'}
    return 1e6 * min(run.clock.seconds) / len(data.train_dl), costs


def live_plot():
    try:
        from callbacks_widget.liveplot import LivePlotCallback
        return LivePlotCallback
    except ImportError as e:
        print(f"  (live plot skipped: {e}; pip install ipywidgets plotly anywidget tsdownsample)")


class NoVote(DistributedCallback):
    "DistributedCallback without its per-batch vote (for timing only: a fault would hang the other process)."
    def _before_forward(self, module, args):
        self._batches += 1
        self._stage, self._stepped = 'forward', False


def ddp_rank(rank: int, port: int, out, n_train: int) -> None:
    global DEVICE
    DEVICE = 'cpu'   # the vote's cost on Gloo, with CPU processes
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    try:
        data = demo_data(n_train)
        res = {}
        for name, cb in (('vote', DistributedCallback), ('no vote', NoVote)) * 2:
            torch.manual_seed(0)
            learn = Learner(*get_model(data), F.cross_entropy, data)
            run = Runner(cb_funcs=[cb, Clock])
            run.fit(2, learn)
            res[name] = min(res.get(name, float('inf')), 1e6 * min(run.clock.seconds) / (len(data.train_dl) // 2))
        t = time.perf_counter()
        for _ in range(2000): dist.all_reduce(torch.zeros(4, dtype=torch.int64))
        res['all_reduce'] = 1e6 * (time.perf_counter() - t) / 2000
        if rank == 0: out.put(res)
    finally: dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n-train', type=int, default=None, help='train on the first N items only (a quick check)')
    p.add_argument('--epochs', type=int, default=3)
    args = p.parse_args(argv)
    name = torch.cuda.get_device_name() if DEVICE == 'cuda' else 'CPU'
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {name}, Python {sys.version.split()[0]}")
    data = demo_data(args.n_train)
    print(f"demo: {len(data.train_ds)} training items, {len(data.train_dl)} batches of 64 per epoch, on {DEVICE}")
    print(f"  lesson's plain loop:                      {hand_loop(data, args.epochs):7.1f} µs/batch")
    configs = [('Runner + device + avg_stats', [partial(AvgStatsCallback, accuracy)]),
               ('  + recorder', [partial(AvgStatsCallback, accuracy), Recorder]),
               ('  + mixed precision (bf16)', [partial(AvgStatsCallback, accuracy), Recorder, MixedPrecisionCallback])]
    lp = live_plot()
    if lp: configs.append(('  + live plot', [partial(AvgStatsCallback, accuracy), Recorder, lp]))
    for label, cbs in configs:
        us, costs = runner_loop(data, cbs, args.epochs)
        print(f"  {label:40s} {us:7.1f} µs/batch   callbacks: " + ', '.join(f"{k} {v:.1f}" for k, v in costs.items()))
    small = demo_data(min(8000, args.n_train or 8000), bs=8)
    print(f"short step: a linear model, {len(small.train_dl)} batches of 8 per epoch, on {DEVICE}")
    print(f"  hand-written loop, same metrics on device: {hand_loop(small, args.epochs, linear_parts, metrics=True):7.1f} µs/batch")
    small_configs = [('Runner + device + avg_stats', [partial(AvgStatsCallback, accuracy)])]
    if lp: small_configs.append(('  + live plot', [partial(AvgStatsCallback, accuracy), lp]))
    for label, cbs in small_configs:
        us, costs = runner_loop(small, cbs, args.epochs, parts=linear_parts)
        print(f"  {label:40s} {us:7.1f} µs/batch   callbacks: " + ', '.join(f"{k} {v:.1f}" for k, v in costs.items()))
    n_ddp = min(4000, args.n_train or 4000)
    print(f"DDP on 2 CPU processes (Gloo), {n_ddp} items:")
    ctx = mp.get_context('spawn')
    out = ctx.SimpleQueue()
    mp.start_processes(ddp_rank, args=(free_port(), out, n_ddp), nprocs=2, start_method='spawn')
    res = out.get()
    print(f"  with the per-batch vote: {res['vote']:.1f} µs/batch; without: {res['no vote']:.1f} µs/batch; "
          f"one vote alone (all-reduce of 4 int64): {res['all_reduce']:.1f} µs")


if __name__ == '__main__': main()
