"""Lecture 6's claims, asserted at the ci budget with the functions the notebook calls."""
import numpy as np
import pytest
import torch

from course_lib.experiments import bidirectional as bd
from course_lib.tasks import make_right_context_tagging
from lecture_helpers import ci_result

tagging = ci_result(bd.tagging_uni_vs_bi)
depth = ci_result(bd.depth_experiment)


def test_unidirectional_stays_at_ceiling_bidirectional_goes_past(tagging):
    c = bd.tagging_claim(tagging)
    assert c["holds"], c
    assert len(tagging["seeds"]) == 3
    ceiling = make_right_context_tagging(10, T=tagging["T"]).info["unidirectional_ceiling"]
    assert tagging["ceiling"] == pytest.approx(ceiling)
    # every seed: the one-directional model sits at the ceiling (never meaningfully above it)
    assert np.all(np.abs(tagging["accuracy"]["uni"] - ceiling) < 0.015)
    assert np.all(tagging["accuracy"]["bi"] > 0.99)
    # the gap is at the intensifiers: a coin flip from the left, solved with the right context
    assert np.all(np.abs(tagging["intensifier_accuracy"]["uni"] - 0.5) < 0.06)
    assert np.all(tagging["intensifier_accuracy"]["bi"] > 0.97)
    assert np.all(tagging["other_accuracy"]["uni"] > 0.99)


def test_examples_for_the_explorer(tagging):
    ex = tagging["examples"]
    assert len(ex["words"]) == 8 and all(len(w) == tagging["T"] for w in ex["words"])
    assert ex["uni"].shape == (8, tagging["T"], 3)
    assert np.allclose(ex["bi"].sum(-1), 1, atol=1e-5)
    assert ex["is_intensifier"].any(1).all()


def test_bidirectional_language_model_reads_the_answer():
    r = bd.next_token_leak()
    c = bd.next_token_leak_claim(r)
    assert c["holds"], c
    # the leak is in the backward half: at the last step there is nothing to read, and it is gone
    assert np.all(r["last_step_accuracy"]["bi"] < 0.25)


def test_layer_by_layer_equals_step_by_step():
    for seed in range(3):
        c = bd.layer_order_claim(bd.layer_order_check(num_layers=2 + seed, seed=seed))
        assert c["holds"], c


def test_variable_length_batch_equals_each_sequence_alone():
    r = bd.variable_length_check()
    c = bd.variable_length_claim(r)
    assert c["holds"], c
    # the full-length sequence is the one that padding cannot hurt
    full = r["padding"] == 0
    assert np.all(r["outputs"]["ignored"][full] < 1e-12)
    r1 = bd.variable_length_check(lengths=(7, 3, 5), num_layers=1, bidirectional=False, seed=2)
    assert bd.variable_length_claim(r1)["holds"]
    # one direction and no padding in the outputs: ignoring lengths spoils only the final states
    assert np.all(r1["outputs"]["ignored"] < 1e-12)
    assert np.all(r1["finals"]["ignored"][r1["padding"] > 0] > 1e-3)


def test_depth_with_and_without_residual(depth):
    assert depth["depths"] == [1, 4]
    claims = bd.depth_claims(depth)
    assert len(claims) == 2
    for c in claims:
        assert c["holds"], c
    # every deep residual seed has less than a quarter of the best single-layer seed's error
    assert np.all(1 - depth["accuracy"]["residual"][1] < 0.25 * (1 - depth["accuracy"]["plain"][0].max()))
    assert depth["accuracy"]["plain"].min() > depth["chance"] + 0.3  # the task is learnable at all depths
    assert depth["parameters"][1] > depth["parameters"][0]


def test_window_lookup_task():
    d = bd.make_window_lookup(50, T=10, K=4, window=3, seed=1)
    d2 = bd.make_window_lookup(50, T=10, K=4, window=3, seed=1)
    assert torch.equal(d.tokens, d2.tokens) and torch.equal(d.y, d2.y)
    table = bd._lookup_table(4, 3, 2, 7)
    t = d.tokens
    assert int(d.y[0, 5]) == int(table[(t[0, 5] * 4 + t[0, 4]) * 4 + t[0, 3]])
    assert not d.mask[:, :2].any() and d.mask[:, 2:].all()
    assert 0.5 <= d.chance < 1
    # the label depends on the token two steps back: changing it changes some labels
    assert bd.make_window_lookup(50, T=10, K=4, window=3, seed=2).y.shape == (50, 10)


@pytest.mark.parametrize("call, match", [
    (lambda: bd.make_window_lookup(5, T=2, window=3), "T"),
    (lambda: bd.make_window_lookup(0), "n"),
    (lambda: bd.depth_experiment(depths=(0,), steps=1), "depths"),
    (lambda: bd.tagging_uni_vs_bi(seeds=[-1], steps=1), "seeds"),
    (lambda: bd.variable_length_check(lengths=()), "lengths"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_plots_and_explorer_draw(tagging, depth):
    import matplotlib.pyplot as plt

    for fig in (bd.plot_tagging(tagging), bd.plot_depth(depth), bd.plot_variable_length(bd.variable_length_check()),
                bd.tagging_explorer(tagging, [{"example": 3}])):
        assert fig.axes
        plt.close(fig)


def test_forward_half_sees_the_left_backward_half_the_right():
    for position in (0, 5, 11):
        r = bd.who_sees_what(T=12, position=position, seed=position)
        c = bd.who_sees_what_claim(r)
        assert c["holds"], c
    with pytest.raises(ValueError, match="position"):
        bd.who_sees_what(T=5, position=5)
