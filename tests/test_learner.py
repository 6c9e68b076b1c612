"Learner: parts that cannot train are refused when the learner is made, and again when a fit starts."
import pytest, torch
import torch.nn.functional as F
from callbacks_widget.all import Learner, Runner, AvgStatsCallback, accuracy, fit, get_model


@pytest.mark.parametrize('part, value, message', [
    ('loss_func', 'x', "Learner: loss_func must be callable (e.g. an nn.Module, F.cross_entropy), got 'x'"),
    ('loss_func', 3, 'Learner: loss_func must be callable'),
    ('model', 'mlp', "Learner: model must be callable (e.g. an nn.Module, F.cross_entropy), got 'mlp'"),
    ('opt', 0.5, 'Learner: opt must have step() and zero_grad() (a torch.optim optimizer), got 0.5'),
])
def test_learner_refuses_a_part_that_cannot_train(learn, part, value, message):
    parts = dict(model=learn.model, opt=learn.opt, loss_func=learn.loss_func, data=learn.data)
    with pytest.raises(TypeError) as e: Learner(**{**parts, part: value})
    assert message in str(e.value)


def test_a_part_changed_afterwards_is_refused_before_any_step(learn):
    learn.loss_func = 'cross_entropy'
    before = [p.detach().clone() for p in learn.model.parameters()]
    stats = AvgStatsCallback([accuracy])
    run = Runner(cbs=stats)
    with pytest.raises(TypeError, match="fit: loss_func must be callable .* got 'cross_entropy'"): run.fit(1, learn)
    with pytest.raises(TypeError, match='fit: loss_func must be callable'): fit(1, learn)
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))
    assert stats.train_stats.count == 0  # no batch ran
    learn.loss_func = F.cross_entropy
    run.fit(1, learn)  # fixed, the same learner trains
    assert stats.valid_stats.count == len(learn.data.valid_ds)


def test_parts_left_empty_are_still_allowed_until_fit(learn):
    empty = Learner(None, None, None, learn.data)  # filled in later, as the lesson's examples do
    with pytest.raises(ValueError, match='fit: the Learner has no model, opt, loss_func'): fit(1, empty)
    empty.model, empty.opt = get_model(learn.data); empty.loss_func = F.cross_entropy
    fit(1, empty)
