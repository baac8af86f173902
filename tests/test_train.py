"""course_lib.train: learning, clipping, NaN recovery, exact resume, devices, argument checks."""
import math

import pytest
import torch
from torch import nn

from course_lib import tasks
from course_lib.models import CarryState, CharLM, SequenceModel
from course_lib.train import (History, accuracy, bits_per_char, cross_entropy, evaluate, load_checkpoint,
                              mse, pick_device, save_checkpoint, train)

W_TRUE = torch.tensor([[1.5], [-2.0], [0.5], [3.0]])


def regression_batches(nan_at=None, scale=1.0):
    """y = x @ W_TRUE + noise; the batch at step ``nan_at`` has a NaN in its input."""

    def batch_fn(step, g):
        x = torch.randn(16, 4, generator=g) * scale
        y = x @ W_TRUE + 0.01 * torch.randn(16, 1, generator=g)
        if step == nan_at:
            x = x.clone()
            x[0, 0] = float("nan")
        return x, y

    return batch_fn


def linear(seed=0):
    torch.manual_seed(seed)
    return nn.Linear(4, 1)


def params_of(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_loss_falls_on_a_tiny_regression():
    model = linear()
    h = train(model, regression_batches(), "mse", steps=150, lr=0.05, progress=False)
    assert len(h) == 150 and all(h.applied)
    assert h.final_loss < 0.02 * (sum(h.loss[:5]) / 5)
    assert torch.allclose(model.weight.detach().T, W_TRUE, atol=0.1)


def test_clipping_holds_the_norm_and_history_shows_the_norm_before_clipping():
    # plain SGD with lr 1: the parameter change IS the (clipped) gradient
    model = linear()
    before = params_of(model)
    h = train(model, regression_batches(scale=3.0), "mse", steps=1, lr=1.0, optimizer="sgd", clip=0.1,
              progress=False)
    step = params_of(model) - before
    assert h.grad_norm[0] > 1.0 and h.clipped == [True]
    assert float(step.norm()) == pytest.approx(0.1, rel=1e-4)  # the step is held to the threshold
    # same start without clipping: the step is the full gradient, whose norm History reported
    model = linear()
    h2 = train(model, regression_batches(scale=3.0), "mse", steps=1, lr=1.0, optimizer="sgd", clip=None,
               progress=False)
    assert h2.clipped == [False] and h2.grad_norm[0] == pytest.approx(h.grad_norm[0], rel=1e-6)
    assert float((params_of(model) - before).norm()) == pytest.approx(h.grad_norm[0], rel=1e-4)
    # same direction, shorter step
    cos = torch.nn.functional.cosine_similarity(step, params_of(model) - before, dim=0)
    assert float(cos) == pytest.approx(1.0, abs=1e-5)


def test_nan_batch_restores_the_last_checkpoint_and_lowers_lr():
    every, nan_at, lr = 5, 13, 0.05
    reference = linear()
    train(reference, regression_batches(), "mse", steps=10, lr=lr, optimizer="sgd", progress=False)
    model = linear()
    h = train(model, regression_batches(nan_at=nan_at), "mse", steps=nan_at + 1, lr=lr, optimizer="sgd",
              checkpoint_every=every, progress=False)
    [bad] = h.events_of("nonfinite")
    [restored] = h.events_of("restored")
    [lr_event] = h.events_of("lr")
    assert bad["step"] == nan_at and math.isnan(bad["loss"])
    assert restored["from_step"] == 10 and nan_at - restored["from_step"] <= every
    assert lr_event["new"] == pytest.approx(lr * 0.5)
    assert h.applied[nan_at] is False and all(h.applied[:nan_at])
    # the weights after recovery are exactly those of step 10
    assert torch.equal(params_of(model), params_of(reference))
    assert h.checkpoints == [0, 5, 10]


def test_nan_recovery_keeps_training_with_the_lowered_lr():
    model = linear()
    h = train(model, regression_batches(nan_at=7), "mse", steps=40, lr=0.1, optimizer="sgd", clip=None,
              checkpoint_every=5, progress=False)
    assert h.lr[:8] == [0.1] * 8 and h.lr[8:] == [0.05] * 32
    assert not h.stopped and torch.isfinite(params_of(model)).all()
    assert h.final_loss < 0.05 * h.loss[0]


def test_divergence_from_a_huge_lr_is_recovered():
    model = linear()
    h = train(model, regression_batches(), "mse", steps=300, lr=4.0, optimizer="sgd", clip=None,
              checkpoint_every=10, progress=False)
    restores = h.events_of("restored")
    assert 1 <= len(restores) <= 10 and not h.stopped
    assert all(e["step"] - e["from_step"] <= 10 for e in restores)
    assert h.lr[-1] < 1.0  # halved until stable
    assert torch.isfinite(params_of(model)).all() and h.final_loss < 0.01


def test_nan_policy_stop_and_ignore():
    model = linear()
    h = train(model, regression_batches(nan_at=3), "mse", steps=20, lr=0.05, progress=False, nan_policy="stop")
    assert h.stopped and len(h) == 4 and h.events_of("stopped")[0]["step"] == 3
    assert torch.isfinite(params_of(model)).all()  # the bad step was not taken
    model = linear()
    h = train(model, regression_batches(nan_at=3), "mse", steps=5, lr=0.05, progress=False, nan_policy="ignore")
    assert len(h) == 5 and all(h.applied) and [e["kind"] for e in h.events] == ["nonfinite"] * 2
    assert torch.isnan(params_of(model)).all()  # what happens without protection


def test_mixed_precision_trains():
    model = linear()
    h = train(model, regression_batches(), "mse", steps=150, lr=0.05, progress=False, amp=True)
    assert model.weight.dtype == torch.float32
    assert h.final_loss < 0.05 * (sum(h.loss[:5]) / 5)


def _dropout_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 1))


def test_resume_from_a_file_gives_exactly_the_uninterrupted_losses(tmp_path):
    kwargs = dict(lr=0.01, checkpoint_every=4, progress=False, seed=3)
    torch.manual_seed(99)
    full = train(_dropout_model(), regression_batches(), "mse", steps=20, **kwargs)
    torch.manual_seed(99)  # same global random state at the start (dropout)
    first = train(_dropout_model(), regression_batches(), "mse", steps=10, checkpoint_dir=tmp_path, **kwargs)
    assert first.loss == full.loss[:10]
    torch.manual_seed(12345)  # whatever happens in between is undone by the checkpoint
    other = _dropout_model()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    resumed = train(other, regression_batches(), "mse", steps=20, resume=tmp_path / "checkpoint.pt", **kwargs)
    assert resumed.step == list(range(20))
    assert resumed.loss == full.loss  # bit for bit, including dropout masks and Adam state


def test_save_and_load_checkpoint_round_trip(tmp_path):
    model = linear()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "c.pt", model, opt, step=7, history=History(loss=[1.0]))
    other = linear(seed=5)
    other_opt = torch.optim.Adam(other.parameters(), lr=0.1)
    ckpt = load_checkpoint(path, other, other_opt)
    assert ckpt["step"] == 7 and ckpt["history"]["loss"] == [1.0]
    assert torch.equal(params_of(other), params_of(model))
    assert torch.equal(other_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    with pytest.raises(ValueError, match="path"):
        load_checkpoint(tmp_path / "missing.pt", other)


def test_pick_device_honours_the_override(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    auto = pick_device()
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    assert pick_device("auto").type == auto.type  # the argument beats the variable
    with pytest.raises(ValueError, match="COURSE_DEVICE"):
        monkeypatch.setenv("COURSE_DEVICE", "quantum")
        pick_device()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")


@pytest.mark.parametrize("kwargs,name", [
    ({"steps": 0}, "steps"), ({"clip": -1.0}, "clip"), ({"lr": 0.0}, "lr"),
    ({"nan_policy": "pray"}, "nan_policy"), ({"optimizer": "lbfgs"}, "optimizer"),
    ({"checkpoint_every": 0}, "checkpoint_every"), ({"lr_decay_on_nan": 1.5}, "lr_decay_on_nan"),
    ({"loss_fn": "hinge"}, "loss_fn"), ({"device": "quantum"}, "prefer"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    args = {"model": linear(), "batch_fn": regression_batches(), "loss_fn": "mse", "steps": 5, "progress": False}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        train(**args)


def test_losses_and_metrics_conventions():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    assert float(accuracy(logits, torch.tensor([0, 1, 1]))) == pytest.approx(2 / 3)
    tag_logits = torch.zeros(2, 3, 4)
    tag_logits[..., 1] = 5.0
    y = torch.tensor([[1, 1, 0], [1, 2, 2]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert float(accuracy(tag_logits, (y, mask))) == 1.0  # only valid steps count
    assert float(cross_entropy(tag_logits, (y, mask))) < float(cross_entropy(tag_logits, y))
    with pytest.raises(ValueError, match="same shape"):
        mse(torch.zeros(4, 1), torch.zeros(4))  # would broadcast to (4, 4)
    model = nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([0.0, 1.0]))
    model.train()
    assert evaluate(model, (torch.randn(10, 4), torch.ones(10, dtype=torch.long)), "accuracy") == 1.0
    assert model.training  # evaluate restores the mode


def test_sequence_model_learns_recall_through_the_loop():
    torch.manual_seed(0)
    model = SequenceModel("gru", 4 + 4 + 1, 24, 4)
    batch_fn = tasks.fresh_batches(tasks.make_recall, 32, k=3, vocab=4, num_distractors=4)
    h = train(model, batch_fn, "cross_entropy", steps=120, lr=0.01, progress=False)
    test = tasks.make_recall(500, 3, seed=123, vocab=4, num_distractors=4)
    acc = evaluate(model, test.as_batch(), "accuracy")
    assert acc > 0.95 > test.chance + 0.5
    assert h.loss[-1] < h.loss[0]


def test_char_lm_trains_with_carried_state_and_bits_per_char():
    corpus = tasks.load_corpus("fortunes", max_chars=30_000)
    V = len(corpus.vocab)
    torch.manual_seed(0)
    lm = CharLM(V, hidden=48, cell="lstm")
    before = bits_per_char(lm, corpus.val_ids, batch_size=8, seq_len=32, max_batches=5)
    assert abs(before - math.log2(V)) < 0.5  # untrained: about uniform
    model = CarryState(lm)
    h = train(model, corpus.batch_fn(16, 32), lambda out, y: cross_entropy(out, y), steps=80, lr=0.01,
              progress=False, eval_fn=lambda m: bits_per_char(m, corpus.val_ids, 8, 32, max_batches=5),
              eval_every=40)
    after = h.evals[-1][1]
    assert [s for s, _ in h.evals] == [40, 80]
    assert after < tasks.unigram_bits_per_char(corpus) < before
