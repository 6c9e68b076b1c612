"""Faults on one rank of a DDP fit, for tests/test_distributed.py: `torchrun --nproc_per_node=2 tests/ddp_faults.py OUT [uncaught] [nccl]`,
or `... OUT survive FAULT...`.

Each rank runs the same fits; a `Fault` raises on one rank only. Every rank writes, per fit, how it ended
(exception type and message, batches trained, whether a DDP wrapper is left) and a checksum of its weights
and buffers, to OUT/rank<R>.json. With `uncaught`, rank 1 fails and nobody catches it. With `nccl`, one GPU per
process (tests/test_cuda.py); Gloo on the CPU otherwise. With `survive`, each rank goes through the named
faults as a script that catches them would, keeps the last error, destroys the group and returns; it writes how many
threads it had before the group and has after. Needs no widget library.
"""
import json, os, sys, time
from functools import partial
from pathlib import Path
import torch
import torch.distributed as dist
from torch import nn
import torch.nn.functional as F
from callbacks_widget.data import DataBunch, Dataset, get_dls
from callbacks_widget.learner import Learner, accuracy
from callbacks_widget.runner import Callback, CancelBatchException, CancelTrainException, Runner
from callbacks_widget.stats import AvgStatsCallback
from callbacks_widget.history import Recorder
from callbacks_widget.devices import DeviceCallback
from callbacks_widget.distributed import DistributedCallback


class Bomb(nn.Module):
    "Raises inside the model's forward pass when armed."
    armed = False
    def forward(self, x):
        if Bomb.armed: raise RuntimeError('boom in forward')
        return x


class Fault(Callback):
    "On rank `rank`, at training batch `at` (batches done in this fit), in `event`: do `act`."
    _order = 1
    plan = None
    def _at(self, event):
        p = self.plan
        if p is None or p['event'] != event or dist.get_rank() != p['rank']: return False
        return (not self.in_train) if p['at'] == 'valid' else (self.in_train and self.n_iter == p['at'])
    def _act(self, event):
        if not self._at(event): return
        act = self.plan['act']
        if act == 'stop': self.run.stop = True
        elif act == 'cancel_train': self.run.cancel_train()   # a Stop button on rank 0
        elif act == 'bomb': Bomb.armed = True
        elif act == 'end': return True
        else: raise act
    def begin_batch(self): return self._act('begin_batch')
    def after_pred(self):
        Bomb.armed = False
        return self._act('after_pred')
    def after_loss(self): return self._act('after_loss')
    def after_backward(self): return self._act('after_backward')
    def after_batch(self): return self._act('after_batch')
    def after_epoch(self): return self._act('after_epoch')


def make_learner():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(512 + 100, 784, generator=g), torch.randint(0, 10, (612,), generator=g)
    torch.manual_seed(0)
    data = DataBunch(*get_dls(Dataset(x[:512], y[:512]), Dataset(x[512:], y[512:]), 32), c=10)
    model = nn.Sequential(Bomb(), nn.Linear(784, 50), nn.BatchNorm1d(50), nn.ReLU(), nn.Linear(50, 10))
    return Learner(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), F.cross_entropy, data)


PLANS = {'cancel': dict(rank=1, event='after_batch', at=3, act=CancelTrainException()),
         'error_after_loss': dict(rank=1, event='after_loss', at=2, act=ValueError('rank 1 broke')),
         'error_in_forward': dict(rank=0, event='begin_batch', at=2, act='bomb'),
         'error_before_forward': dict(rank=1, event='begin_batch', at=5, act=KeyError('early')),
         'interrupt_after_backward': dict(rank=0, event='after_backward', at=1, act=KeyboardInterrupt()),
         'error_in_validation': dict(rank=1, event='after_loss', at='valid', act=ValueError('valid broke')),
         'stop_pass': dict(rank=1, event='after_batch', at=2, act='stop'),
         'skip_step': dict(rank=1, event='after_loss', at=1, act=CancelBatchException()),
         'end_fit_early': dict(rank=1, event='after_epoch', at='valid', act='end'),
         'cancel_train': dict(rank=0, event='begin_batch', at=3, act='cancel_train')}


def checksum(tensors) -> list:
    return [float(t.double().sum()) for t in tensors]


def fit(run, learn, name, epochs=2, **plan) -> dict:
    Fault.plan = plan or None
    Bomb.armed = False
    try:
        run.fit(epochs, learn)
        outcome, message = 'ok', ''
    except BaseException as e:   # what a notebook or a sweep would catch
        outcome, message = type(e).__name__, f"{e} {' '.join(getattr(e, '__notes__', []))}"
    return dict(name=name, outcome=outcome, message=message, n_iter=run.n_iter, epoch=run.epoch,
                ddp_left=run.distributed.ddp is not None, model=type(learn.model).__name__,
                valid=run.avg_stats.valid_stats.avg_stats, weights=checksum(learn.model.parameters()),
                buffers=checksum(learn.model.buffers()))


def vote_cost(run, n=2000) -> float:
    "Microseconds per vote (one small all-reduce on the control group)."
    cb = run.distributed
    dist.barrier(group=cb.control)
    t = time.perf_counter()
    for _ in range(n): dist.all_reduce(torch.zeros(4, dtype=torch.int64), group=cb.control)
    return 1e6 * (time.perf_counter() - t) / n


def threads() -> int:
    "Threads of this process, C++ ones included (a Gloo group runs three)."
    return len(os.listdir('/proc/self/task'))


def survive(out: Path, faults) -> None:
    "Survive `faults` as a script would (catch, go on), keep the last error, destroy the group and return."
    before = threads()
    dist.init_process_group('gloo')
    learn = make_learner()
    run = Runner(cb_funcs=[DistributedCallback, partial(AvgStatsCallback, accuracy), Fault])
    fits = [fit(run, learn, name, epochs=1, **PLANS[name]) for name in faults]
    error = run.error   # kept, with its traceback, as a notebook keeps the last exception
    dist.barrier()
    dist.destroy_process_group()
    report = dict(fits=fits, error=type(error).__name__, threads_before=before, threads_after=threads())
    (out/f"rank{os.environ['RANK']}.json").write_text(json.dumps(report, indent=1))


def main(out: Path, uncaught: bool, nccl: bool) -> None:
    if nccl: torch.cuda.set_device(int(os.environ['LOCAL_RANK']))
    dist.init_process_group('nccl' if nccl else 'gloo')
    try:
        learn = make_learner()
        run = Runner(cb_funcs=[DeviceCallback, DistributedCallback, partial(AvgStatsCallback, accuracy), Recorder, Fault])
        if uncaught:
            Fault.plan = dict(rank=1, event='after_loss', at=2, act=ValueError('rank 1 broke'))
            run.fit(2, learn)
            return
        fits = [fit(run, learn, 'first')]
        for name, plan in PLANS.items():
            fits.append(fit(run, learn, name, **plan))
            fits.append(fit(run, learn, f'after_{name}'))
        report = dict(rank=dist.get_rank(), fits=fits, vote_us=vote_cost(run))
        (out/f'rank{dist.get_rank()}.json').write_text(json.dumps(report, indent=1))
        dist.barrier()
    finally: dist.destroy_process_group()


if __name__ == '__main__' and sys.argv[2:3] == ['survive']: survive(Path(sys.argv[1]), sys.argv[3:])
elif __name__ == '__main__': main(Path(sys.argv[1]), 'uncaught' in sys.argv[2:], 'nccl' in sys.argv[2:])
