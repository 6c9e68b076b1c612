"""Processes that fit with a `RunStore`, for tests/test_store.py.

    python tests/store_child.py long PATH          one long fit; prints `batches time` every 10 batches (to be killed)
    python tests/store_child.py exit PATH          one fit of 2048 samples, then the process ends at once
    python tests/store_child.py fits PATH GO N     set up, says so (file ready<pid> beside GO), and once GO exists: N fits of 3 epochs, handing off every 10 ms
    python tests/store_child.py make FOLDER N      says it is ready (FOLDER/ready<pid>), then for i < N: once FOLDER/go<i> exists, opens FOLDER/<i>.sqlite to write (a new file); prints each error
    torchrun --nproc_per_node=2 tests/store_child.py ddp PATH OUT    one DDP fit; each rank writes OUT/rank<R>.json
"""
import json, os, sys, time
from pathlib import Path
import torch
import torch.nn.functional as F
from callbacks_widget.data import DataBunch, Dataset, get_dls
from callbacks_widget.learner import Learner, get_model
from callbacks_widget.runner import Callback, Runner
from callbacks_widget.store import RunStore, connect


def make_learner(n: int = 2048, bs: int = 32) -> Learner:
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n + 256, 784, generator=g), torch.randint(0, 10, (n + 256,), generator=g)
    data = DataBunch(*get_dls(Dataset(x[:n], y[:n]), Dataset(x[n:], y[n:]), bs), c=10)
    return Learner(*get_model(data), F.cross_entropy, data)


class Progress(Callback):
    "Prints the training batches done and the time, every 10."
    def after_batch(self):
        if self.in_train and self.n_iter % 10 == 0: print(self.n_iter, time.time(), flush=True)


def main(mode: str, path: str, *args) -> None:
    torch.set_num_threads(1)
    if mode == 'long': Runner(cbs=[Progress(), RunStore(path)]).fit(1000, make_learner())
    elif mode == 'exit': Runner(cbs=[RunStore(path)]).fit(1, make_learner())
    elif mode == 'fits':
        go, n = Path(args[0]), int(args[1])
        learn, run = make_learner(512), Runner(cbs=[RunStore(path, every=0.01)])
        go.with_name(f'ready{os.getpid()}').touch()
        while not go.exists(): time.sleep(0.002)
        for _ in range(n): run.fit(3, learn)
    elif mode == 'make':
        folder = Path(path)
        (folder/f'ready{os.getpid()}').touch()
        for i in range(int(args[0])):
            while not (folder/f'go{i}').exists(): time.sleep(0.0005)
            try: connect(folder/f'{i}.sqlite', write=True).close()
            except Exception as e: print(i, type(e).__name__, e, flush=True)
    elif mode == 'ddp':
        import torch.distributed as dist
        from callbacks_widget.distributed import DistributedCallback
        dist.init_process_group('gloo')
        run = Runner(cbs=[DistributedCallback(), RunStore(path)])
        run.fit(1, make_learner(512))
        rank = dist.get_rank()
        report = dict(pid=os.getpid(), running=[cb.name for cb in run.running])
        (Path(args[0])/f'rank{rank}.json').write_text(json.dumps(report))
        dist.destroy_process_group()


if __name__ == '__main__': main(*sys.argv[1:])
