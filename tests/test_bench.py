"The benchmark's pacing: the hand-written loop it runs alongside a contestant does one whole epoch, a step per batch."
import pathlib, sys
import pytest
from functools import partial
import torch

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / 'bench'))
from loop_overhead import Pacer, hand_epoch, hand_steps, make_data, make_learner, paced  # noqa: E402
from loop_overhead import SCHED  # noqa: E402
from callbacks_widget.all import AvgStatsCallback, ParamScheduler, Recorder, Runner, accuracy  # noqa: E402


def test_hand_steps_yield_once_per_batch_and_return_the_epochs_stats():
    data = make_data(640, 256)
    steps = list(hand_steps(make_learner(data)))
    assert len(steps) == len(data.train_dl) + len(data.valid_dl)
    a, b = hand_epoch(make_learner(data, seed=3)), hand_epoch(make_learner(data, seed=3))
    assert a == b and len(a) == 4 and 0 <= a[1] <= 1 and 0 <= a[3] <= 1


def test_a_paced_runner_epoch_steps_the_hand_loop_before_each_of_its_batches():
    data = make_data(640, 256)
    pacer = Pacer(make_learner(data, seed=1))
    steps = []
    step = pacer.step
    pacer.step = lambda: (steps.append(run.in_train), step())
    run = Runner(cb_funcs=partial(AvgStatsCallback, [accuracy]))
    theirs = paced(data, pacer)
    assert [len(theirs.train_dl), len(theirs.valid_dl)] == [len(data.train_dl), len(data.valid_dl)]
    for _ in range(2):
        pacer.start()
        run.fit(1, make_learner(theirs))
        assert next(pacer.steps, 'done') == 'done'      # the hand-written epoch ran to its end, inside the fit
        pacer.finish()
        assert pacer.seconds > 0
        assert torch.is_grad_enabled()                  # nothing of the hand loop's no_grad leaks out
    n_train, n_valid = len(data.train_dl), len(data.valid_dl)
    assert steps == ([True] * n_train + [False] * n_valid) * 2


def test_the_scheduled_hand_loop_sets_the_lr_that_param_scheduler_sets():
    data = make_data(640, 256)
    learn = make_learner(data)
    lrs = []
    for _ in hand_steps(learn, SCHED): lrs.append(learn.opt.param_groups[0]['lr'])
    run = Runner(cb_funcs=[partial(ParamScheduler, 'lr', SCHED), Recorder])
    run.fit(1, make_learner(data))
    assert run.recorder.lrs[0] == pytest.approx(lrs[:len(data.train_dl)])   # one parameter group
    assert len(set(run.recorder.lrs[0])) == len(data.train_dl)    # a new lr every batch


def test_batches_are_cut_once_and_read_in_a_new_order_each_pass_from_torchs_generator():
    from loop_overhead import Batches, PacedBatches
    from callbacks_widget.data import Dataset
    ds = Dataset(torch.arange(20.).view(10, 2), torch.arange(10))
    b = Batches(ds, 3, shuffle=True)
    assert len(b) == 4 and b.dataset is ds
    torch.manual_seed(0); one = [yb.tolist() for _, yb in b]
    torch.manual_seed(0); again = [yb.tolist() for _, yb in b]
    two = [yb.tolist() for _, yb in b]
    assert one == again != two                      # RandomSampler's rule: torch's seed decides the order
    assert sorted(map(tuple, one)) == sorted(map(tuple, two)) == [(0, 1, 2), (3, 4, 5), (6, 7, 8), (9,)]
    assert [(xb[:, 0] / 2).tolist() for xb, _ in one and Batches(ds, 4, shuffle=False)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    steps = []
    pacer = type('P', (), {'step': lambda self: steps.append(1)})()
    assert [yb.tolist() for _, yb in PacedBatches(Batches(ds, 4, shuffle=False), pacer)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(steps) == 3


@pytest.mark.parametrize('name', ['lesson', 'small'])
def test_each_workloads_hand_loop_and_runner_do_the_same_work(name):
    from loop_overhead import WORKLOADS, ours
    w = WORKLOADS[name]
    data = w.data(sizes=(w.bs * 20, w.bs * 4))
    learn = make_learner(data, seed=3)
    assert isinstance(learn.model, torch.nn.Linear) == (w.nh is None) and learn.opt.param_groups[0]['lr'] == w.lr
    hand = hand_epoch(learn)
    run = Runner(cb_funcs=partial(AvgStatsCallback, [accuracy]))
    run.fit(1, make_learner(data, seed=3))     # the same model, the same shuffled batches
    stats = run.avg_stats
    assert stats.train_stats.count == len(data.train_ds) and stats.valid_stats.count == len(data.valid_ds)
    assert [*stats.train_stats.avg_stats, *stats.valid_stats.avg_stats] == pytest.approx(hand, rel=1e-6)
    assert run.n_batches == len(data.train_dl) + len(data.valid_dl) == 20 + 2
    # every contestant of the workload runs its epochs over the same batches, paced one hand step per batch
    pacer = Pacer(make_learner(data, seed=1))
    steps = []
    step = pacer.step
    pacer.step = lambda: (steps.append(1), step())
    for c in ours(paced(data, pacer)):
        steps.clear()
        pacer.start(c.sched)
        c.epoch()
        pacer.finish()
        assert len(steps) == 22, c.key
        if hasattr(c, 'run'): assert c.run.n_batches == 22 and isinstance(c.learn.model, torch.nn.Linear) == (w.nh is None), c.key


def test_step_parts_times_each_part_of_the_hand_written_step():
    from loop_overhead import WORKLOADS, step_parts
    import math
    parts = step_parts(WORKLOADS['small'].data(sizes=(64, 16)), n=3, rounds=3)
    assert list(parts) == ['batch from the loader', 'forward and loss', 'backward', 'opt.step and zero_grad',
                           'metrics (loss and accuracy, read as floats)']
    assert all(math.isfinite(v) for v in parts.values()) and parts['forward and loss'] > 0 and parts['opt.step and zero_grad'] > 0
