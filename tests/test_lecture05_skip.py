"""Lecture 5's claims, asserted at the ci budget with the functions the notebook calls."""
import numpy as np
import pytest
import torch

from course_lib.experiments import skip
from lecture_helpers import ci_result

mlp_grads = ci_result(skip.mlp_gradient_norms, depth=20, activation="tanh", seeds=3)
rnn_grads = ci_result(skip.stacked_rnn_gradients, seeds=3)
rnn_depth = ci_result(skip.stacked_rnn_depth)


def test_plain_mlp_gradient_vanishes_skips_keep_it(mlp_grads):
    c = skip.mlp_gradient_claim(mlp_grads)
    assert c["holds"], c
    # and per layer: the plain gradient shrinks towards the input, by orders of magnitude
    plain = mlp_grads["norms"]["plain"]
    assert np.all(plain[:, 0] < 1e-2 * plain[:, -1])
    for conn in ("residual", "highway", "dense"):
        n = mlp_grads["norms"][conn]
        assert np.all(n.max(1) / n.min(1) < 20), conn  # flat within a factor of 20 across 20 layers


def test_sigmoid_vanishes_faster_than_tanh(mlp_grads):
    sig = skip.mlp_gradient_norms(depth=20, activation="sigmoid", seeds=3, connections=("plain",))
    assert np.all(sig["ratio"]["plain"] < 1e-3 * mlp_grads["ratio"]["plain"])


def test_deep_plain_mlp_stays_at_chance_skips_train():
    r = skip.mlp_depth_training()
    assert r["depths"] == [2, 10] and len(r["seeds"]) == 2
    c = skip.mlp_depth_claim(r)
    assert c["holds"], c
    # every seed: two layers train whatever the wiring; ten plain layers stay at chance, skips train
    for conn in ("plain", "residual", "highway", "dense"):
        assert np.all(r["accuracy"][conn][0] > 0.9), (conn, r["accuracy"][conn])
    assert np.all(r["accuracy"]["plain"][1] < r["chance"] + 0.1)
    for conn in ("residual", "highway", "dense"):
        assert np.all(r["accuracy"][conn][1] > 0.9), (conn, r["accuracy"][conn])


def test_stacked_lstm_gradient_per_layer(rnn_grads):
    c = skip.stacked_rnn_gradient_claim(rnn_grads)
    assert c["holds"], c
    assert rnn_grads["norms"]["plain"].shape == (3, 16)
    # the plain stack's gradient grows layer by layer towards the output (geometric mean over seeds)
    g = np.exp(np.log(rnn_grads["norms"]["plain"]).mean(0))
    assert np.all(np.diff(np.log(g[2:])) > 0)


def test_deep_stacked_lstm_trains_only_with_residual(rnn_depth):
    c = skip.stacked_rnn_depth_claim(rnn_depth)
    assert c["holds"], c
    assert rnn_depth["depths"] == [16]
    # the plain stack never leaves the guessing loss; the residual one goes far below it
    tail = rnn_depth["loss_curves"]["plain"][:, -20:].mean(1)
    assert np.all(np.abs(tail - rnn_depth["chance_loss"]) < 0.1)
    assert np.all(rnn_depth["loss_curves"]["residual"][:, -20:].mean(1) < 0.1)


def test_deterministic_by_seed():
    a = skip.mlp_gradient_norms(depth=5, seeds=[1], connections=("plain", "dense"))
    b = skip.mlp_gradient_norms(depth=5, seeds=[1], connections=("plain", "dense"))
    for conn in ("plain", "dense"):
        np.testing.assert_array_equal(a["norms"][conn], b["norms"][conn])
    state = torch.get_rng_state()
    skip.stacked_rnn_gradients(num_layers=2, seeds=[0], batch_size=8)
    assert torch.equal(state, torch.get_rng_state())  # the caller's random state is left alone


def test_quadrants_task():
    x, y = skip.make_quadrants(500, seed=3)
    x2, y2 = skip.make_quadrants(500, seed=3)
    assert x.shape == (500, skip.FEATURES) and torch.equal(y, y2) and torch.equal(x, x2)
    assert set(y.tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize("call, match", [
    (lambda: skip.mlp_gradient_norms(depth=0), "depth"),
    (lambda: skip.mlp_gradient_norms(depth=3, activation="gelu"), "activation"),
    (lambda: skip.mlp_gradient_norms(depth=3, connections=("plain", "skip")), "connections"),
    (lambda: skip.mlp_depth_training(depths=(), steps=1), "depths"),
    (lambda: skip.stacked_rnn_depth(depths=(2,), seeds=[], steps=1), "seeds"),
    (lambda: skip.make_quadrants(0), "n"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_plots_and_explorer_draw(mlp_grads, rnn_grads, rnn_depth):
    import matplotlib.pyplot as plt

    depth = skip.mlp_depth_training(depths=(2, 3), seeds=1, steps=5, connections=("plain", "residual"))
    for fig in (skip.plot_mlp_gradients(mlp_grads), skip.plot_mlp_depth(depth),
                skip.plot_stacked_rnn(rnn_grads, rnn_depth),
                skip.gradient_explorer([{"depth": 4, "activation": "relu"}])):
        assert fig.axes
        plt.close(fig)
    text = skip.record(skip.mlp_gradient_claim(mlp_grads), "Lecture 5")
    assert text.startswith("[holds]") and "seeds" in text
