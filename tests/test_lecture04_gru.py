"""Lecture 4's claims, asserted at the ci budget with the functions the notebook calls.

Time per step is speed, not a claim: it is only checked for shape and sign, never compared."""
import math

import numpy as np
import pytest
import torch

from course_lib.experiments import gru as G


def test_reference_cell_equals_nn_grucell():
    for seed in range(3):
        r = G.cell_agreement(seed=seed)
        assert r["max_diff_h"] < 1e-12 and r["max_diff_grad"] < 1e-12, r
    r32 = G.cell_agreement(seed=0, dtype=torch.float32)
    assert r32["max_diff_h"] < 1e-5, r32


def test_pytorch_update_gate_one_keeps_the_state():
    for seed in range(3):
        r = G.gate_conventions(seed=seed)
        assert r["z_keep"] > 1 - 1e-12 and r["keep_max_diff"] < 1e-12, r
        assert r["z_write"] < 1e-12 and r["write_max_diff"] < 1e-12 and r["write_moved"] > 0.1, r
    claims = G.claims_cells_and_gates(G.cell_agreement(), G.gate_conventions(), G.parameter_counts())
    assert all(c["holds"] for c in claims), claims


@pytest.mark.parametrize("input_size,hidden", [(2, 32), (17, 8), (1, 1)])
def test_gru_has_three_quarters_of_the_lstm_parameters(input_size, hidden):
    r = G.parameter_counts(input_size=input_size, hidden=hidden)
    assert r["recurrent"]["gru"] * 4 == r["recurrent"]["lstm"] * 3
    assert r["recurrent"] == r["formula"]
    assert r["recurrent"]["lstm"] == 4 * r["recurrent"]["rnn"]
    assert r["gru_over_lstm"] == 0.75
    # the read-out is the same size for all three
    assert len({r["total"][c] - r["recurrent"][c] for c in G.CELLS}) == 1


def test_leaky_memory_is_an_exponential_average():
    for z in (0.0, 0.5, 0.9):
        r = G.leaky_memory(z, T=30, seed=1)
        h_prev = np.concatenate([[0.0], r["h"][:-1]])
        np.testing.assert_allclose(r["h"], (1 - z) * r["n"] + z * h_prev, atol=1e-12)
        assert r["u"] == pytest.approx(1 - z)
    assert G.leaky_memory(0.5)["half_life"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="z"):
        G.leaky_memory(1.0)


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match="tasks"):
        G.compare_cells(tasks={"copy": 10})
    with pytest.raises(ValueError, match="cells"):
        G.compare_cells(cells=("lstm", "transformer"))
    with pytest.raises(ValueError, match="cells"):
        G.compare_cells(cells={"adding": (), "agreement": ("lstm",)})
    with pytest.raises(ValueError, match="hidden"):
        G.time_per_step(hidden=())
    with pytest.raises(ValueError, match="implementations"):
        G.time_per_step(implementations=("jit",))


def test_time_per_step_measures_every_cell_and_size():
    r = G.time_per_step(hidden=(4, 8), batch=2, T=3, input_size=2, repeats=1)
    for impl in ("fused", "loop"):
        for c in G.CELLS:
            assert len(r["ms_per_step"][impl][c]) == 2
            assert all(math.isfinite(v) and v > 0 for v in r["ms_per_step"][impl][c])
    assert r["device"] == "cpu" and r["threads"] >= 1
    assert "GRU / nn.LSTM" in G.timing_summary(r)


def test_gated_cells_on_the_same_tasks():
    r = G.compare_cells()
    assert len(r["seeds"]) >= 3
    add, agr = r["score"]["adding"], r["score"]["agreement"]
    # adding at a length that defeats the RNN: both gated cells solve it in every seed
    assert (add["lstm"] < 0.1).all() and (add["gru"] < 0.1).all(), add
    assert set(add) == {"lstm", "gru"}  # lecture 3 measured the plain RNN at chance at this length
    # agreement with attractors: both gated cells at the ceiling, no winner between them
    assert (agr["lstm"] >= 0.95).all() and (agr["gru"] >= 0.95).all(), agr
    # what the lecture prints is what was asserted
    claims = G.claims_compare(r)
    assert len(claims) == 6 and all(c.holds for c in claims), [str(c) for c in claims]
    assert all(c.seeds == tuple(r["seeds"]) for c in claims)
    assert [c.op for c in claims].count("between") == 1  # "no winner" is two-sided
    reach = G.steps_to_reach(r, "adding")
    assert (reach["gru"] < reach["lstm"]).all(), reach
    assert r["params"]["adding"]["gru"] < r["params"]["adding"]["lstm"]


@pytest.mark.slow
def test_lecture1_agreement_setting_for_the_three_cells():
    """One setting (lecture 1's), RNN / LSTM / GRU, the same seeds: 3 at ci (5 at the default budget)."""
    from course_lib import claims
    from course_lib.experiments import vanishing as V

    r = V.agreement_by_cell()
    assert list(r) == ["rnn", "lstm", "gru"]
    assert all(x["seeds"] == r["rnn"]["seeds"] and x["steps"] == r["rnn"]["steps"] for x in r.values())
    assert len(r["rnn"]["seeds"]) >= 3
    shown = V.claims_agreement_by_cell(r)
    assert not claims.failed(shown), [str(c) for c in claims.failed(shown)]
    with pytest.raises(ValueError, match="cell"):
        V.agreement_vs_attractors(cell="transformer")
