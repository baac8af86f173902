"""Lecture 2's claims, asserted at the ci budget with the same functions the notebook calls."""
import numpy as np
import pytest

from course_lib import claims
from course_lib.experiments import clipping as C


def test_the_wall_is_where_the_fixed_point_argument_puts_it():
    s = C.cliff_surface()
    assert abs(s["wall_b_at_5"] - s["wall_b_at_5_predicted"]) < 1e-4
    assert s["grad_ratio"] > 1e3  # a steep wall among gentle slopes
    assert not claims.failed(C.claims_wall(s))
    assert 4.25 < C.UNSTABLE_W < 4.27  # x0 = 0.5 is an unstable fixed point only for w above this


def test_paths_from_the_same_start():
    p = C.cliff_paths()
    u, c = p["summary"]["unclipped"], p["summary"]["clipped"]
    # every clipped step is at most lr * tau long; the unclipped path takes one much longer
    assert c["max_step"] <= p["lr"] * p["tau"] * (1 + 1e-9)
    assert np.all(p["clipped"]["step_length"] <= p["lr"] * p["tau"] * (1 + 1e-9))
    # from this start (robust to perturbations of 1e-11, not of 1e-9: the surface is chaotic near the
    # wall) the unclipped run is catapulted onto the shelf and stays; the clipped run does not
    assert u["max_step"] > p["lr"] * p["tau"]
    assert u["final_loss"] > 0.05 > c["final_loss"]
    # below the threshold the two paths are the same path
    first = int(np.argmax(p["clipped"]["clipped"]))
    assert first > 0
    np.testing.assert_allclose(p["unclipped"]["params"][: first + 1], p["clipped"]["params"][: first + 1])


def test_without_clipping_most_starts_end_stranded_with_clipping_none():
    r = C.cliff_starts()  # ci: 64 starts around (5, -2.55), seed 0
    n, u, c = r["n_starts"], r["unclipped"], r["clipped"]
    assert u["stranded"] >= n / 2, u["final_loss"]
    assert c["stranded"] == 0, c["final_loss"]
    assert np.all(c["max_step"] <= r["lr"] * r["tau"] * (1 + 1e-9))
    assert np.median(u["max_step"]) >= 4 * r["lr"] * r["tau"]  # the catapult off the wall
    # where a start ends stranded, its unclipped loss is many times the clipped run's
    stranded = u["final_loss"] > r["stranded_loss"]
    assert np.all(u["final_loss"][stranded] >= 5 * c["final_loss"][stranded])
    assert not claims.failed(C.claims_cliff_starts(r))


def test_cliff_claims_rest_on_several_draws_with_a_margin():
    m = C.cliff_starts_seeds()
    assert len(m["seeds"]) >= 5 and m["n_starts"] == 64
    assert np.all(m["stranded_fraction"]["unclipped"] >= 0.55), m["stranded_fraction"]  # margin over "half"
    assert np.all(m["stranded_fraction"]["clipped"] == 0)
    shown = C.claims_cliff_starts(m)
    assert not claims.failed(shown) and all(c.seeds == m["seeds"] for c in shown if c.counted)


def test_norm_clipping_keeps_the_direction_clamping_does_not():
    d = C.clipping_direction()
    assert len(d["seeds"]) >= 3
    assert np.all(np.abs(np.array(d["cos_norm"]) - 1) < 1e-12)
    assert np.all(np.array(d["norm_after_norm_clip"]) <= d["tau"] + 1e-9)
    assert np.all(np.array(d["cos_value"]) < 0.95), d["cos_value"]
    assert np.all(np.array(d["clamped_share"]) > 0)
    shown = C.claims_direction(d)
    assert not claims.failed(shown) and [c.kind for c in shown] == ["claim", "illustration"]


@pytest.mark.slow
def test_large_learning_rate_diverges_without_clipping_and_never_with_it():
    r = C.divergence_over_seeds()  # ci: seeds 0, 1, 2, 60 SGD steps at lr 0.5
    n = len(r["seeds"])
    assert n >= 3
    assert r["unclipped"]["diverged_count"] > n / 2, r["unclipped"]["diverged"]
    assert r["clipped"]["diverged_count"] == 0, r["clipped"]["final_loss"]
    assert np.all(np.isfinite(r["clipped"]["loss"]))
    # the mechanism: unclipped steps blow sigma_max(W_hh) up from about 1; clipped ones keep it there
    assert np.median(r["unclipped"]["sigma_hh_end"]) > 100
    assert max(r["clipped"]["sigma_hh_end"]) < 3
    assert not claims.failed(C.claims_divergence(r))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="lr"):
        C.sgd_path(lr=0)
    with pytest.raises(ValueError, match="tau"):
        C.cliff_paths(tau=-1)
    with pytest.raises(ValueError, match="seeds"):
        C.divergence_over_seeds(seeds=[])
