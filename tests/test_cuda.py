"""On CUDA GPUs (skipped without one): fits with no host sync per training batch, optimizer state moved, mixed
precision, host-side losses, and DDP with NCCL on 2+ GPUs. Needs only torch, numpy and pytest (the History test also
needs tsdownsample; nothing here needs the widget libraries)."""
import copy, json, os, socket, subprocess, sys
from functools import partial
from pathlib import Path
import pytest, torch
import torch.nn.functional as F
from callbacks_widget.core import scalar
from callbacks_widget.data import DataBunch, Dataset, get_data, get_dls
from callbacks_widget.learner import Learner, accuracy, get_model
from callbacks_widget.runner import Callback, Runner
from callbacks_widget.stats import AvgStatsCallback
from callbacks_widget.arrays import HostScalars
from callbacks_widget.history import Recorder
from callbacks_widget.devices import DeviceCallback
from callbacks_widget.precision import MixedPrecisionCallback, ScaledOptimizer
from callbacks_widget.distributed import check_rank_device

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
ROOT = Path(__file__).resolve().parents[1]


class NoSync(Callback):
    "Makes any host-device sync an error from the start of each epoch to its validation: the training batches."
    _order = -100  # first at begin_epoch and begin_validate, so the window holds all of the training batches

    def begin_epoch(self): torch.cuda.set_sync_debug_mode('error')
    def begin_validate(self): torch.cuda.set_sync_debug_mode('default')
    def after_fit(self): torch.cuda.set_sync_debug_mode('default')


class HostLosses(Callback):
    "Keeps each training batch's loss in a `HostScalars` and reads what is ready every 10 batches, as the live plot does."
    def begin_fit(self): self.values, self.read = HostScalars(), []
    def after_batch(self):
        if not self.in_train or self.loss is None: return
        self.values.add(scalar(self.loss))
        if self.n_iter % 10 == 0: self._read(wait=False)
    def _read(self, wait):
        self.values.send()
        values, _, k = self.values.ready(wait)
        self.values.commit(k, None)
        self.read += values
    def after_fit(self): self._read(wait=True)


def data(n_train: int = 2000, bs: int = 64) -> DataBunch:
    x_train, y_train, x_valid, y_valid = get_data()
    # pinned batches: the copies to the GPU are asynchronous, and never wait for the GPU
    return DataBunch(*get_dls(Dataset(x_train[:n_train], y_train[:n_train]), Dataset(x_valid, y_valid), bs,
                              pin_memory=True), c=10)


def cuda_fit(*cb_funcs, epochs: int = 2, opt=None) -> tuple:
    torch.manual_seed(0)
    d = data()
    learn = Learner(*get_model(d), F.cross_entropy, d)
    if opt is not None: learn.opt = opt(learn.model)
    run = Runner(cb_funcs=[partial(DeviceCallback, 'cuda'), partial(AvgStatsCallback, accuracy), Recorder, *cb_funcs])
    run.fit(epochs, learn)
    return run, learn


def evaluate(model, ds) -> list:
    model = copy.deepcopy(model).float().cpu()
    with torch.no_grad():
        pred = model(ds.x)
        return [F.cross_entropy(pred, ds.y).item(), accuracy(pred, ds.y).item()]


@pytest.fixture(scope='module')
def cuda_run(): return cuda_fit(NoSync, HostLosses)


def test_one_fit_on_cuda_without_a_sync_per_training_batch(cuda_run):
    run, learn = cuda_run   # NoSync turned any sync during the training batches into an error
    assert {p.device.type for p in learn.model.parameters()} == {'cuda'}
    valid = run.avg_stats.valid_stats
    assert valid.count == len(learn.data.valid_ds)
    assert valid.avg_stats == pytest.approx(evaluate(learn.model, learn.data.valid_ds), rel=1e-4, abs=1e-5)


def test_recorder_and_host_losses_hold_floats_of_every_batch(cuda_run):
    run, learn = cuda_run
    n = 2 * len(learn.data.train_dl)
    losses = run.recorder.losses   # the last fit's, as floats
    assert len(losses) == len(run.recorder.lrs[0]) == n and all(type(v) is float for v in losses)
    assert run.host_losses.read == losses


def test_the_no_sync_check_sees_a_sync():
    class ReadLossEachBatch(Callback):
        def after_batch(self):
            if self.in_train: self.loss.item()
    with pytest.raises(RuntimeError, match='synchroniz'): cuda_fit(NoSync, ReadLossEachBatch, epochs=1)


def test_host_scalars_do_not_wait_for_queued_gpu_work():
    q = HostScalars()
    x = torch.ones((), device='cuda')
    torch.cuda._sleep(int(2e8))             # the GPU is busy for a while (0.1-0.2 s)
    for i in range(5): q.add(x * i)
    torch.cuda.set_sync_debug_mode('error')
    try:
        q.send()
        assert q.ready() == ([], [], 0)      # the copy is queued behind the sleep: nothing to read yet, and no wait
    finally: torch.cuda.set_sync_debug_mode('default')
    assert q.ready(wait=True)[0] == [0., 1., 2., 3., 4.]


def test_history_flush_does_not_wait_for_queued_gpu_work():
    pytest.importorskip('tsdownsample')
    from callbacks_widget.history import History
    h = History()
    h.begin_fit()
    torch.cuda._sleep(int(2e8))
    for i in range(5): h.add_batch(torch.full((), float(i), device='cuda'), 0.1)
    torch.cuda.set_sync_debug_mode('error')
    try:
        h.flush()
        assert len(h.loss) == len(h.smooth_loss) == len(h.lr) == 0 and h.n_iter == 5
    finally: torch.cuda.set_sync_debug_mode('default')
    h.flush(wait=True)
    assert h.loss.values.tolist() == [0., 1., 2., 3., 4.] and len(h.smooth_loss) == 5


def test_an_optimizer_loaded_on_the_cpu_moves_to_the_gpu_with_its_model():
    torch.manual_seed(0)
    d = data()
    model, _ = get_model(d)
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(d.train_ds.x[:64]).sum().backward(); adam.step()     # a state on the CPU, as if loaded from a checkpoint
    state = adam.state_dict()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    adam.load_state_dict(state)
    learn = Learner(model, adam, F.cross_entropy, d)
    Runner(cb_funcs=[partial(DeviceCallback, 'cuda')]).fit(1, learn)
    assert {v.device.type for s in adam.state.values() for k, v in s.items() if k != 'step'} == {'cuda'}


def test_device_callback_makes_its_gpu_current():
    last = torch.cuda.device_count() - 1
    d = data(256)
    learn = Learner(*get_model(d), F.cross_entropy, d)
    Runner(cb_funcs=[partial(DeviceCallback, f'cuda:{last}')]).fit(1, learn)
    assert torch.cuda.current_device() == last
    assert check_rank_device(next(learn.model.parameters()).device, last, torch.cuda.device_count(), 'nccl') == last
    torch.cuda.set_device(0)


def test_bf16_without_a_sync_per_training_batch():
    seen = []
    class Dtype(Callback):
        def after_pred(self): seen.append(self.pred.dtype)
    run, learn = cuda_fit(NoSync, MixedPrecisionCallback, Dtype)
    assert set(seen) == {torch.bfloat16}
    assert run.avg_stats.train_stats.avg_stats[0] < 2.1   # it learns: the loss starts at ln 10 = 2.3
    assert len(run.recorder.losses) == 2 * len(learn.data.train_dl) and all(type(v) is float for v in run.recorder.losses)


def test_fp16_with_a_grad_scaler():
    grads = []
    class Grads(Callback):
        def after_backward(self): grads.append(max(p.grad.abs().max() for p in self.model.parameters()))
    run, learn = cuda_fit(partial(MixedPrecisionCallback, torch.float16), Grads)
    assert not isinstance(learn.opt, ScaledOptimizer)           # the learner's optimizer is back
    finite = [float(g) for g in grads if torch.isfinite(g)]      # (a step the scaler skips has inf gradients)
    assert len(finite) > len(grads) / 2 and max(finite) < 100     # unscaled before other callbacks see them
    assert run.mixed_precision.scaler.get_scale() > 1
    assert run.avg_stats.train_stats.avg_stats[0] < 2.1
    assert not torch.is_autocast_enabled('cuda')


# --- two or more GPUs: NCCL, one process per GPU ------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def torchrun(script: str, *args, n: int = 2, timeout: int = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={n}', '--master_addr=127.0.0.1',
           f'--master_port={free_port()}', str(ROOT/script), *map(str, args)]
    try: return subprocess.run(cmd, env={**os.environ, 'PYTHONPATH': str(ROOT)}, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e: pytest.fail(f"the processes hung: {e.stdout}\n{e.stderr}")


needs_2_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason='needs 2 CUDA GPUs')


@needs_2_gpus
def test_nccl_faults_on_one_rank_stop_every_rank_and_the_next_fit_runs_in_step(tmp_path):
    p = torchrun('tests/ddp_faults.py', tmp_path, 'nccl')
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    ranks = [json.loads((tmp_path/f'rank{r}.json').read_text()) for r in (0, 1)]
    for f0, f1 in zip(ranks[0]['fits'], ranks[1]['fits']):
        assert not f0['ddp_left'] and not f1['ddp_left']
        if f0['name'] == 'first' or f0['name'].startswith('after_'):
            assert f0['outcome'] == f1['outcome'] == 'ok' and f0['weights'] == f1['weights'], f0['name']
        elif f0['name'] == 'error_after_loss':
            assert f1['outcome'] == 'ValueError' and f0['outcome'] == 'RankError'


@needs_2_gpus
def test_nccl_example_trains_the_same_weights_on_every_gpu(tmp_path):
    p = torchrun('examples/ddp_train.py', '--epochs=1', '--n-train=3000', f'--out={tmp_path/"out"}',
                 f'--report={tmp_path/"report"}')
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    w0, w1 = (torch.load(tmp_path/'report'/f'rank{r}.pt') for r in (0, 1))
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
