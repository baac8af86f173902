"""Lecture 1's claims, asserted at the ci budget with the same functions the notebook calls."""
import numpy as np
import pytest
import torch

from course_lib.experiments import vanishing as V
from lecture_helpers import ci_result

tanh_norms = ci_result(V.gradient_norms, nonlinearity="tanh")


def test_gradient_norms_shapes_and_determinism(tanh_norms):
    r = tanh_norms
    assert r["measured"].shape == r["bound"].shape == (len(V.SIGMAS), r["T"] + 1)
    assert np.all(r["measured"][:, 0] == 1.0)  # dh_T/dh_T is the identity
    again = V.gradient_norms(nonlinearity="tanh")
    assert np.array_equal(again["measured"], r["measured"])


@pytest.mark.parametrize("nonlinearity", ["tanh", "sigmoid", "relu"])
def test_measured_norm_never_exceeds_the_bound(nonlinearity):
    s = V.bound_summary(V.gradient_norms(nonlinearity=nonlinearity))
    assert max(s["max_ratio"]) <= 1.0 + 1e-9, s["max_ratio"]


def test_bound_is_tight_for_linear_orthogonal():
    s = V.bound_summary(V.gradient_norms(sigmas=(0.5, 0.9, 1.0, 1.5, 3.0), nonlinearity="linear"))
    assert max(s["max_rel_gap"]) <= 1e-6, s["max_rel_gap"]


def test_tanh_decays_at_least_as_fast_as_the_bound(tanh_norms):
    s = V.bound_summary(tanh_norms)
    checked = 0
    for sigma, fitted, bound in zip(s["sigmas"], s["fitted_rate"], s["bound_rate"]):
        if sigma < 1:
            assert fitted <= bound, (sigma, fitted, bound)
            checked += 1
    assert checked >= 2


def test_sigmoid_vanishes_even_with_sigma_above_one():
    # gamma * sigma = 0.75 < 1: the sufficient condition for vanishing holds although sigma = 3 > 1
    r = V.gradient_norms(sigmas=(3.0,), nonlinearity="sigmoid")
    assert r["measured"][0, -1] < 1e-3


def test_chain_rule_product_matches_autograd():
    assert V.chain_rule_check()["max_rel_diff"] < 1e-10


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="nonlinearity"):
        V.gradient_norms(nonlinearity="softplus")
    with pytest.raises(ValueError, match="sigmas"):
        V.gradient_norms(sigmas=(0.0,))
    with pytest.raises(ValueError, match="hidden"):
        V.gradient_norms(hidden=0)
    with pytest.raises(ValueError, match="ks"):
        V.recall_vs_distance(ks=[])


@pytest.mark.slow
def test_recall_falls_to_chance_with_distance():
    r = V.recall_vs_distance()  # ci: k = 2 and 40, seeds 0, 1, 2
    acc, chance = r["accuracy"], r["chance"]
    assert len(r["seeds"]) >= 3
    assert np.all(acc[0] >= 0.95), acc[0]  # a short gap: every seed recalls the key
    assert np.all(acc[-1] <= chance + 0.08), acc[-1]  # a long gap: every seed at chance
    # the gradient reaching the key at initialisation falls by orders of magnitude
    assert np.all(r["grad_at_key"][-1] < 1e-4 * r["grad_at_key"][0])
    from course_lib import claims as C

    assert not C.failed(V.claims_recall(r))


@pytest.mark.slow
def test_agreement_errors_rise_with_attractors():
    r = V.agreement_vs_attractors()  # ci: 0..4 attractors, seeds 0, 1, 2
    err, ctrl = r["error"], r["control_error"]
    assert len(r["seeds"]) >= 3
    assert np.all(err[0] <= 0.05), err[0]  # no attractor: (nearly) no errors
    assert np.all(err[-1] >= err[0] + 0.1), err  # four attractors: clearly more, in every seed
    assert np.all(np.diff(err.mean(1)) >= -0.02), err.mean(1)  # the mean rises with each attractor
    assert np.all(ctrl <= 0.05), ctrl  # the same distance without attractors is easy
    from course_lib import claims as C

    assert not C.failed(V.claims_agreement(r)) and all(len(c.seeds) == len(r["seeds"]) for c in V.claims_agreement(r))


def test_bound_claims_hold_and_leave_out_distance_zero(tanh_norms):
    from course_lib import claims as C

    lin = V.gradient_norms(sigmas=(0.5, 0.9, 1.0, 1.5, 3.0), nonlinearity="linear")
    claims = V.claims_bound({"tanh": tanh_norms}, linear=lin)
    assert not C.failed(claims), [str(c) for c in C.failed(claims)]
    # true by construction: shown, not counted (distance 0, the attained linear bound)
    assert sum(not c.counted for c in claims) == 2
    s = V.bound_summary(tanh_norms)
    ratio = tanh_norms["measured"] / tanh_norms["bound"]
    assert s["max_ratio"] == [float(r[1:].max()) for r in ratio]
    assert not C.failed(V.claims_chain_rule(V.chain_rule_check()))


def test_non_normal_product_can_grow_when_a_derivative_shrinks():
    r = V.non_normal_example()
    assert r["norm_WW"] == pytest.approx(1.0) and r["norm_WDW"] > 5  # the product grew ...
    assert r["norm_WDW"] <= np.linalg.norm(r["W"], 2) ** 2  # ... and the bound still holds


def test_irnn_starts_as_a_copy():
    """Le et al. (2015)'s initialisation: W_h = I, zero recurrent biases, ReLU, tiny input weights."""
    from course_lib.experiments import baselines

    m = baselines.irnn(5, 8, 3, seed=0)
    assert m.rnn.nonlinearity == "relu"
    assert torch.equal(m.rnn.weight_hh_l0.detach(), torch.eye(8))
    assert float(m.rnn.bias_hh_l0.abs().max()) == 0 == float(m.rnn.bias_ih_l0.abs().max())
    assert float(m.rnn.weight_ih_l0.abs().max()) < 0.01
    assert torch.equal(baselines.irnn(5, 8, 3, seed=0).rnn.weight_ih_l0, m.rnn.weight_ih_l0)  # seeded
    with pytest.raises(ValueError, match="cell"):
        baselines.build("elman", 5, 8, 3, seed=0)


@pytest.mark.slow
def test_fair_recall_baseline():
    """At the ci budget: k = 40, seeds 0-2, 3x the lecture's 300 steps. The tanh RNN still fails, the
    IRNN recalls in every seed (lecture 1, section 6.3)."""
    base = V.recall_vs_distance(ks=(40,))
    b = V.recall_baselines(base)
    assert b["steps"] == 3 * base["steps"] == 900 and len(b["seeds"]) >= 3
    assert np.all(b["accuracy"]["rnn"] < 0.5), b["accuracy"]
    assert np.all(b["accuracy"]["irnn"] >= 0.95), b["accuracy"]
    from course_lib import claims as C

    claims = V.claims_baselines(b, {"attractors": [4], "seeds": b["seeds"], "steps": 600, "base_steps": 200,
                                    "factor": 3, "base_error": np.ones((1, 3)),
                                    "error": {"rnn": np.zeros((1, 3)), "irnn": np.zeros((1, 3))}})
    assert not C.failed(claims[:2]) and all(len(c.seeds) == len(b["seeds"]) for c in claims)


@pytest.mark.slow
def test_fair_agreement_baseline():
    """At the ci budget: 3x the lecture's 200 steps, seeds 0-2; the median error with 4 attractors falls
    below 0.25 for the tanh RNN and the IRNN alike."""
    agree = V.agreement_vs_attractors(attractors=(0, 4))
    b = V.agreement_baselines(agree)
    assert b["steps"] == 600 and len(b["seeds"]) >= 3
    for c in ("rnn", "irnn"):
        assert np.median(b["error"][c][-1]) < 0.25, b["error"]
    assert np.median(agree["error"][-1]) > 0.5  # what the lecture's 200 steps leave
