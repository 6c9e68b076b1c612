"DeviceCallback and DistributedCallback: clear errors, one process in a group, and two CPU processes that agree."
import csv, gc, json, os, socket, subprocess, sys, weakref
from functools import partial
from pathlib import Path
import pytest, torch
import torch.distributed as dist
import torch.nn.functional as F
from callbacks_widget.all import *

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def evaluate(model, ds) -> list:
    "Loss and accuracy of `model` on all of `ds`, in one process, one batch."
    with torch.no_grad():
        pred = model(ds.x)
        return [F.cross_entropy(pred, ds.y).item(), accuracy(pred, ds.y).item()]


# --- DeviceCallback -------------------------------------------------------------------------------

@pytest.mark.parametrize('device', ['nonsense', 'tpu', 'cuda:7', 'cuda', 'mps:3', 'xla'])
def test_device_that_does_not_exist_fails_at_construction_naming_it(device):
    if device == 'cuda' and torch.cuda.is_available(): pytest.skip('this machine has a GPU')
    if device == 'cuda:7' and torch.cuda.device_count() > 7: pytest.skip('this machine has 8 GPUs')
    with pytest.raises(ValueError, match=repr(device)): DeviceCallback(device)


def test_default_device_exists():
    dev = DeviceCallback().device
    assert dev == check_device(dev)
    if torch.cuda.is_available(): assert dev.type == 'cuda'


def test_device_callback_on_cpu_trains_and_cannot_be_switched_off(learn):
    seen = []
    class Devices(Callback):
        def after_pred(self): seen.append((self.xb.device, self.yb.device, self.pred.device))
    run = Runner(cb_funcs=[partial(DeviceCallback, 'cpu'), Devices])
    run.fit(1, learn)
    assert set(seen) == {(torch.device('cpu'),) * 3}
    with pytest.raises(ValueError, match='device cannot be disabled'): run.device.enabled = False


# --- DistributedCallback in this process ----------------------------------------------------------

def test_distributed_callback_needs_a_process_group():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match='no initialised process group.*torchrun'): DistributedCallback()


@pytest.fixture
def group():
    "A process group of one: this process."
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{free_port()}', rank=0, world_size=1)
    yield
    if dist.is_initialized(): dist.destroy_process_group()


def test_one_process_fit_restores_the_learner_and_measures_all_items(group, learn):
    model, data, train_dl, valid_dl = learn.model, learn.data, learn.data.train_dl, learn.data.valid_dl
    models = []
    class Models(Callback):
        def after_pred(self): models.append(type(self.model).__name__)
    run = Runner(cb_funcs=[DistributedCallback, partial(AvgStatsCallback, accuracy), Models, LivePlotCallback])
    run.fit(2, learn)
    assert learn.model is model and learn.data is data
    assert (data.train_dl, data.valid_dl) == (train_dl, valid_dl)
    n_train, n_valid = len(train_dl), len(valid_dl)
    assert models == (['DistributedDataParallel'] * n_train + ['Sequential'] * n_valid) * 2
    assert run.avg_stats.valid_stats.count == len(data.valid_ds)
    assert run.avg_stats.valid_stats.avg_stats == pytest.approx(evaluate(model, data.valid_ds), rel=1e-5)
    assert run.live_plot.history.epochs[-1]['valid_loss'] == pytest.approx(run.avg_stats.valid_stats.avg_stats[0])


def test_fit_without_a_group_stops_before_training(group, learn):
    run = Runner(cb_funcs=[DistributedCallback, partial(AvgStatsCallback, accuracy)])
    dist.destroy_process_group()
    model, before = learn.model, [p.clone() for p in learn.model.parameters()]
    with pytest.raises(RuntimeError, match='no initialised process group'): run.fit(1, learn)
    assert learn.model is model and run.n_batches == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_distributed_callback_cannot_be_switched_off(group):
    cb = DistributedCallback()
    with pytest.raises(ValueError, match='distributed cannot be disabled'): cb.enabled = False
    assert cb.enabled


def test_all_reduce_stats_of_one_process_keeps_them(group):
    s = AvgStats([accuracy], in_train=False)
    s.tot_loss, s.tot_mets, s.count = 3.5, [1.25], 7
    all_reduce_stats([s])
    assert (s.tot_loss, s.tot_mets, s.count) == (3.5, [1.25], 7)
    all_reduce_stats([])   # no stats (no AvgStatsCallback, no recorder): no collective


def test_the_recorders_validation_stats_are_reduced_with_the_avg_stats_before_it_records(group, learn, monkeypatch):
    from callbacks_widget import distributed
    reduced, real = [], distributed.all_reduce_stats
    monkeypatch.setattr(distributed, 'all_reduce_stats', lambda stats, *a, **kw: (reduced.append(list(stats)), real(stats, *a, **kw))[1])
    run = Runner(cb_funcs=[DistributedCallback, partial(AvgStatsCallback, accuracy), Recorder])
    run.fit(2, learn)
    assert [len(r) for r in reduced] == [3, 3]
    assert all(r[-1] is run.recorder.valid and r[1] is run.avg_stats.valid_stats for r in reduced)
    assert run.recorder.valid.count == len(learn.data.valid_ds)   # every process's items
    recorded = [e['valid_loss'] for e in run.recorder.history.epochs]   # recorded after the reduction
    assert recorded[-1] == pytest.approx(run.avg_stats.valid_stats.avg_stats[0]) and len(recorded) == 2


def test_callbacks_only_on_rank0_are_switched_off_elsewhere(group, learn, monkeypatch):
    class Draws(Callback): only_on_rank0 = True
    class Prints(Callback): pass
    monkeypatch.setattr(dist, 'get_rank', lambda group=None: 1)   # as on the second process
    monkeypatch.setattr(DistributedCallback, 'rank0_only', (Prints,))
    run = Runner(cb_funcs=[DistributedCallback, Draws, Prints, Recorder])
    run.distributed.set_runner(run)
    run.in_fit = True
    run.distributed._agree_on_callbacks()
    assert run.fit_switches == {'train_eval': True, 'distributed': True, 'draws': False, 'prints': False, 'recorder': True}
    assert not run.draws.enabled and not run.prints.enabled and run.recorder.enabled
    assert Callback.only_on_rank0 is False


def test_no_ddp_wrapper_is_left_after_a_fit(group, learn):
    wrappers = []
    class Wrapper(Callback):
        def after_pred(self):
            if self.in_train and not wrappers: wrappers.append(weakref.ref(self.model))
    run = Runner(cb_funcs=[DistributedCallback, Wrapper])
    run.fit(1, learn)
    gc.collect()
    assert type(wrappers[0]).__name__ == 'ReferenceType' and run.distributed.ddp is None
    assert wrappers[0]() is None   # its gradient buckets (the size of the model) are freed


def test_a_click_after_the_switches_are_broadcast_applies_at_the_next_fit(group, learn):
    class Toggled(Callback): pass
    class Click(Callback):
        "A panel click handled between DistributedCallback's broadcast and the Runner's compile."
        def set_runner(self, run):
            super().set_runner(run)
            if run.in_fit: run.toggled.enabled = not run.toggled.enabled
    run = Runner(cb_funcs=[DistributedCallback, Toggled, Click])
    run.fit(1, learn)
    assert run.toggled in run.running and not run.toggled.enabled   # ran as broadcast; off from the next fit
    run.fit(1, learn)
    assert run.toggled not in run.running and run.toggled.enabled


def test_a_model_off_the_gpu_under_nccl_is_refused_before_training(group, learn, monkeypatch):
    run = Runner(cb_funcs=[DistributedCallback])
    monkeypatch.setattr(dist, 'get_backend', lambda group=None: 'nccl')
    model, before = learn.model, [p.clone() for p in learn.model.parameters()]
    with pytest.raises(ValueError, match='NCCL backend needs the model on this process.s GPU'): run.fit(1, learn)
    assert learn.model is model and run.n_batches == 0 and run.distributed.ddp is None
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_the_control_group_is_held_weakly_and_made_again_after_a_destroy(group, monkeypatch):
    real_backend = dist.get_backend
    monkeypatch.setattr(dist, 'get_backend', lambda group=None: 'nccl' if group is None else real_backend(group))
    cb = DistributedCallback()   # under NCCL, the votes get a Gloo group of their own
    control = weakref.ref(cb.control)
    assert real_backend(cb.control) == 'gloo'
    dist.destroy_process_group()
    assert control() is None and cb.control is None   # nothing but the process group's registry held it
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{free_port()}', rank=0, world_size=1)
    cb._make_control()   # as at the start of the next fit
    assert real_backend(cb.control) == 'gloo'


def test_check_rank_device_refuses_two_processes_on_one_gpu():
    assert check_rank_device('cuda:1', local_rank=1, n_visible=4, backend='nccl') == 1
    with pytest.raises(ValueError, match='LOCAL_RANK=1 is on cuda:0'): check_rank_device('cuda:0', 1, 4, 'nccl')


def test_move_optimizer_state_follows_the_parameters():
    m = nn.Linear(3, 2)
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m(torch.randn(4, 3)).sum().backward(); opt.step()
    m.to(torch.float64)      # a stand-in for a move to another device
    move_optimizer_state(opt)
    assert {s['momentum_buffer'].dtype for s in opt.state.values()} == {torch.float64}


# --- two processes ---------------------------------------------------------------------------------

N_TRAIN, EPOCHS = 3000, 2


@pytest.fixture(scope='module')
def ddp(tmp_path_factory):
    "examples/ddp_train.py on two CPU processes (Gloo, 127.0.0.1), with `gradient_clipping` switched off on rank 0 only."
    tmp = tmp_path_factory.mktemp('ddp')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_addr=127.0.0.1',
           f'--master_port={free_port()}', '--redirects=3', f'--log-dir={tmp/"logs"}',
           str(ROOT/'examples'/'ddp_train.py'), f'--epochs={EPOCHS}', f'--n-train={N_TRAIN}', f'--out={tmp/"out"}',
           '--off=gradient_clipping', f'--report={tmp/"report"}']
    env = {**os.environ, 'CUDA_VISIBLE_DEVICES': ''}  # CPUs and Gloo, also on a machine with GPUs
    p = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=120)
    logs = {rank: {s: next((tmp/'logs').rglob(f'attempt_*/{rank}/{s}.log')).read_text() for s in ('stdout', 'stderr')}
            for rank in (0, 1)}
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}\n{logs}"
    report = {r: json.loads((tmp/'report'/f'rank{r}.json').read_text()) for r in (0, 1)}
    weights = {r: torch.load(tmp/'report'/f'rank{r}.pt') for r in (0, 1)}
    return dict(tmp=tmp, logs=logs, report=report, weights=weights)


def valid_set() -> Dataset:
    x_train, y_train, x_valid, y_valid = get_data()
    return Dataset(x_valid, y_valid)


@pytest.mark.distributed
def test_both_ranks_end_with_the_same_weights(ddp):
    w0, w1 = ddp['weights'][0], ddp['weights'][1]
    assert w0.keys() == w1.keys()
    for k in w0: assert torch.equal(w0[k], w1[k]), k


@pytest.mark.distributed
def test_reduced_valid_stats_are_those_of_one_process_on_the_whole_set(ddp):
    ds = valid_set()
    model = nn.Sequential(nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 10))
    model.load_state_dict(ddp['weights'][0])
    expected = evaluate(model, ds)
    r0, r1 = ddp['report'][0], ddp['report'][1]
    assert r0['valid_stats'] == r1['valid_stats']
    assert r0['valid_stats']['count'] == len(ds)
    assert r0['valid_stats']['avg_stats'] == pytest.approx(expected, rel=1e-5)
    assert r0['train_stats'] == r1['train_stats'] and r0['train_stats']['count'] >= N_TRAIN
    with open(ddp['tmp']/'out'/'history.csv') as f: rows = [r for r in csv.DictReader(f) if r['valid_loss']]
    assert len(rows) == EPOCHS
    assert float(rows[-1]['valid_loss']) == pytest.approx(expected[0], rel=1e-5)
    assert float(rows[-1]['valid_accuracy']) == pytest.approx(expected[1], rel=1e-5)


@pytest.mark.distributed
def test_only_rank_0_prints_and_plots(ddp):
    assert sorted(p.name for p in (ddp['tmp']/'out').iterdir()) == ['history.csv', 'live_plot.html']
    r0, r1 = ddp['report'][0], ddp['report'][1]
    assert r0['enabled']['live_plot'] and 'live_plot' in r0['running'] and r0['live_plot_points'] > 0
    assert not r1['enabled']['live_plot'] and 'live_plot' not in r1['running'] and r1['live_plot_points'] == 0
    assert r0['recorded_batches'] == r1['recorded_batches'] == r0['train_batches']   # the record is kept on every process
    out0, out1 = ddp['logs'][0]['stdout'], ddp['logs'][1]['stdout']
    assert out0.count('valid: [') == EPOCHS and 'live plot:' in out0
    assert out1.strip() == ''


@pytest.mark.distributed
def test_a_switch_turned_off_on_rank_0_is_off_on_every_rank(ddp):
    for r in (0, 1):
        rep = ddp['report'][r]
        assert rep['enabled']['gradient_clipping'] is False and 'gradient_clipping' not in rep['running']
        assert rep['enabled']['avg_stats'] is True and rep['running'][:2] == ['device', 'distributed']


# --- faults on one of two processes (tests/ddp_faults.py) -------------------------------------------

def torchrun(tmp, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    "tests/ddp_faults.py on two CPU processes; a hang fails the test at `timeout` instead of blocking CI."
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_addr=127.0.0.1',
           f'--master_port={free_port()}', str(ROOT/'tests'/'ddp_faults.py'), str(tmp), *args]
    env = {**os.environ, 'CUDA_VISIBLE_DEVICES': '', 'PYTHONPATH': str(ROOT)}
    try: return subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e: pytest.fail(f"the processes hung: {e.stdout}\n{e.stderr}")


@pytest.fixture(scope='module')
def faults(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('faults')
    p = torchrun(tmp)
    assert p.returncode == 0, f"{p.stdout[-3000:]}\n{p.stderr[-5000:]}"
    ranks = [json.loads((tmp/f'rank{r}.json').read_text()) for r in (0, 1)]
    return {f0['name']: (f0, f1) for f0, f1 in zip(ranks[0]['fits'], ranks[1]['fits'])}


@pytest.mark.distributed
@pytest.mark.parametrize('name,failed,outcome,error', [
    ('error_after_loss', 1, 'ValueError', 'rank 1 failed: ValueError: rank 1 broke'),
    ('error_in_forward', 0, 'RuntimeError', 'rank 0 failed: RuntimeError: boom in forward'),
    ('error_before_forward', 1, 'KeyError', "rank 1 failed: KeyError: 'early'"),
    ('interrupt_after_backward', 0, 'KeyboardInterrupt', 'rank 0 failed: KeyboardInterrupt'),
    ('error_in_validation', 1, 'ValueError', 'rank 1 failed: ValueError: valid broke')])
def test_an_error_on_one_rank_stops_every_rank_at_the_same_point_saying_which_and_why(faults, name, failed, outcome, error):
    fits = faults[name]
    assert fits[failed]['outcome'] == outcome
    other = fits[1 - failed]
    assert other['outcome'] == 'RankError' and error in other['message'] and 'stopped at the same point' in other['message']
    assert fits[0]['epoch'] == fits[1]['epoch'] == 0
    assert abs(fits[0]['n_iter'] - fits[1]['n_iter']) <= 1   # a rank that learns of it before a batch counts that batch


@pytest.mark.distributed
def test_a_cancel_on_one_rank_is_agreed_by_every_rank(faults):
    f0, f1 = faults['cancel']
    assert f0['outcome'] == f1['outcome'] == 'ok'    # CancelTrainException ends a fit without an error, on both
    assert f1['n_iter'] == 3 and f0['n_iter'] in (3, 4) and f0['epoch'] == f1['epoch'] == 0
    assert f0['weights'] == f1['weights']   # (BatchNorm's statistics differ until the next validation or fit)


@pytest.mark.distributed
def test_cancel_train_on_rank_0_ends_every_rank_after_that_batch(faults):
    f0, f1 = faults['cancel_train']   # asked at training batch 4's begin_batch: a Stop button's request
    assert f0['outcome'] == f1['outcome'] == 'ok' and f0['n_iter'] == 4 and f1['n_iter'] in (4, 5)   # rank 1 learns of it at its next batch
    assert f0['epoch'] == f1['epoch'] == 0
    assert f0['weights'] == f1['weights']


@pytest.mark.distributed
def test_a_step_skipped_on_one_rank_is_refused_on_every_rank(faults):
    for f in faults['skip_step']:
        assert f['outcome'] == 'RankError' and 'rank(s) [1] skipped the optimizer step' in f['message']


@pytest.mark.distributed
@pytest.mark.parametrize('name', ['stop_pass', 'end_fit_early'])
def test_a_pass_or_fit_ended_early_on_one_rank_ends_on_every_rank(faults, name):
    f0, f1 = faults[name]
    assert f0['outcome'] == f1['outcome'] == 'ok'
    assert abs(f0['n_iter'] - f1['n_iter']) <= 1


@pytest.mark.distributed
def test_the_next_fit_after_any_fault_runs_in_step_with_no_wrapper_left(faults):
    assert len(faults) == 21
    for name, (f0, f1) in faults.items():
        assert not f0['ddp_left'] and not f1['ddp_left'] and f0['model'] == f1['model'] == 'Sequential', name
        if name == 'first' or name.startswith('after_'):
            assert f0['outcome'] == f1['outcome'] == 'ok', name
            assert f0['n_iter'] == f1['n_iter'] == 16, name
            assert f0['weights'] == f1['weights'] and f0['buffers'] == f1['buffers'], name   # parameters, BatchNorm's statistics
            assert f0['valid'] == f1['valid'], name        # validated with the same running statistics


@pytest.mark.distributed
def test_an_uncaught_error_on_one_rank_ends_both_processes_with_clear_errors(tmp_path):
    p = torchrun(tmp_path, 'uncaught')
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert 'ValueError: rank 1 broke' in out
    assert 'RankError: rank 1 failed: ValueError: rank 1 broke' in out


@pytest.mark.distributed
@pytest.mark.skipif(not Path('/proc/self/task').is_dir(), reason='counts the threads in /proc/self/task')
def test_a_process_that_survived_faults_ends_its_group_and_exits_cleanly(tmp_path):
    "After `destroy_process_group` no Gloo thread is left to run into interpreter exit (where one aborted a rank)."
    for i in range(3):
        out = tmp_path/str(i)
        out.mkdir()
        p = torchrun(out, 'survive', 'error_after_loss', 'cancel', 'error_in_forward', timeout=60)
        assert p.returncode == 0 and 'terminate called' not in p.stderr, f"run {i}: {p.stdout[-2000:]}\n{p.stderr[-4000:]}"
        for r in (0, 1):
            report = json.loads((out/f'rank{r}.json').read_text())
            assert [f['outcome'] for f in report['fits']] == [['RankError', 'ValueError'][r], 'ok', ['RuntimeError', 'RankError'][r]]
            assert report['error'] == ['RuntimeError', 'RankError'][r]     # kept, with DDP's frames in its traceback
            assert report['threads_after'] == report['threads_before'], f"run {i}, rank {r}: {report}"
