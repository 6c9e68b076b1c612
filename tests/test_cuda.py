"On a CUDA GPU: one fit with DeviceCallback, AvgStatsCallback and LivePlotCallback, and no host sync per training batch."
import copy, warnings
from functools import partial
import pytest, torch
import torch.nn.functional as F
from callbacks_widget.all import *

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


class SyncCounter(Callback):
    "Records the host syncs torch reports from the start of each epoch to its validation: the training batches."
    _order = -100  # first at begin_epoch and begin_validate, so the window holds all of the training batches

    def begin_fit(self): self.syncs, self._catch = [], None

    def begin_epoch(self):
        self._catch = warnings.catch_warnings(record=True)
        self._seen = self._catch.__enter__()
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')

    def begin_validate(self): self._stop()
    def after_fit(self): self._stop()

    def _stop(self):
        if self._catch is None: return
        torch.cuda.set_sync_debug_mode('default')
        self._catch.__exit__(None, None, None)
        self.syncs += [str(w.message) for w in self._seen if 'synchroniz' in str(w.message)]
        self._catch = None


class ReadLossEachBatch(Callback):
    "A callback that syncs on every training batch, as the counter must see."
    def after_batch(self):
        if self.in_train: self.loss.item()


def cuda_fit(*cb_funcs, epochs: int = 2) -> tuple:
    torch.manual_seed(0)
    x_train, y_train, x_valid, y_valid = get_data()
    # pinned batches: the copies to the GPU are asynchronous, and never wait for the GPU
    data = DataBunch(*get_dls(Dataset(x_train[:2000], y_train[:2000]), Dataset(x_valid, y_valid), 64,
                              pin_memory=True), c=10)
    learn = Learner(*get_model(data), F.cross_entropy, data)
    run = Runner(cb_funcs=[partial(DeviceCallback, 'cuda'), partial(AvgStatsCallback, accuracy),
                           partial(LivePlotCallback, every=3600), SyncCounter, *cb_funcs])
    run.live_plot.update()  # drawn now, the next timed redraw is an hour away; each epoch's end redraws anyway
    run.fit(epochs, learn)
    return run, learn


@pytest.fixture(scope='module')
def cuda_run(): return cuda_fit()


def test_one_fit_on_cuda(cuda_run):
    run, learn = cuda_run
    assert {p.device.type for p in learn.model.parameters()} == {'cuda'}
    n_train = len(learn.data.train_dl)
    assert run.live_plot.history.n_iter == 2 * n_train
    assert len(run.live_plot.history.epochs) == 2
    valid = run.avg_stats.valid_stats
    assert valid.count == len(learn.data.valid_ds)
    model = copy.deepcopy(learn.model).cpu()
    with torch.no_grad():
        pred = model(learn.data.valid_ds.x)
        expected = [F.cross_entropy(pred, learn.data.valid_ds.y).item(), accuracy(pred, learn.data.valid_ds.y).item()]
    assert valid.avg_stats == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert run.live_plot.history.epochs[-1]['valid_loss'] == pytest.approx(valid.avg_stats[0], rel=1e-6)


def test_training_batches_do_not_sync_with_the_host(cuda_run):
    run, learn = cuda_run
    assert run.sync_counter.syncs == []


def test_the_counter_sees_a_sync_per_batch():
    run, learn = cuda_fit(ReadLossEachBatch, epochs=1)
    assert len(run.sync_counter.syncs) >= len(learn.data.train_dl)
