"""Lecture 4's memorisation view (course_lib/experiments/memorisation.py): the connectivity is the
gradient it says it is, the share is computed as documented, and the claim holds on several seeds at
the ci budget (the same function and claim objects the notebook shows)."""
import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from course_lib import budget, claims
from course_lib.experiments import memorisation as M
from course_lib.experiments.gpu_training import make_charlm


@pytest.mark.parametrize("cell", M.CELLS)
def test_connectivity_is_the_gradient_of_each_prediction(cell):
    lm = make_charlm(7, hidden=5, cell=cell, seed=3)
    ids = torch.tensor([1, 4, 2, 6, 0, 3, 5, 2])
    C = M.connectivity(lm, ids)
    T = ids.numel() - 1
    assert C.shape == (T, T) and np.all(C[np.triu_indices(T, 1)] == 0)  # nothing from later inputs
    for t in (0, 3, T - 1):  # one row at a time, by plain autograd on the single sequence
        e = lm.embedding(ids[:-1].unsqueeze(0)).detach().requires_grad_(True)
        out, _ = lm.rnn(e)
        logp = lm.head(out).log_softmax(-1)[0, t, ids[t + 1]]
        (g,) = torch.autograd.grad(logp, e)
        np.testing.assert_allclose(C[t, : t + 1], g[0, : t + 1].norm(dim=-1).double().numpy(), rtol=1e-4, atol=1e-9)
    assert lm.training  # the model's mode is given back


def test_far_share_by_hand():
    C = np.tril(np.ones((4, 4)))
    C[3] = [1.0, 1.0, 2.0, 4.0]
    # distance 2: row 2 keeps input 0 of 3 inputs (1/3), row 3 keeps inputs 0 and 1 (2/8)
    assert M.far_share(C, 2) == pytest.approx((1 / 3 + 2 / 8) / 2)
    with pytest.raises(ValueError, match="distance"):
        M.far_share(C, 4)


def test_bad_arguments_are_named():
    lm = make_charlm(5, hidden=3, cell="gru", seed=0)
    with pytest.raises(ValueError, match="ids"):
        M.connectivity(lm, torch.tensor([1]))
    with pytest.raises(ValueError, match="ids"):
        M.connectivity(lm, torch.zeros(4))
    with pytest.raises(ValueError, match="cells"):
        M.memorisation(cells=("transformer",))
    with pytest.raises(ValueError, match="distance"):
        M.memorisation(seq_len=20, distance=30)
    with pytest.raises(ValueError, match="seeds"):
        M.memorisation(seeds=())


def test_the_claim_fails_when_the_rnn_keeps_as_much():
    r = {"seeds": (0, 1), "distance": 30,
         "far_share": {"rnn": [1e-3, 1e-10], "lstm": [1e-2, 1e-3], "gru": [2e-3, 1e-2]}}
    shown = M.claims_memorisation(r)
    assert [c.holds for c in shown] == [False, False]  # seed 0: 10x and 2x, below 100x
    r["far_share"]["rnn"] = [0.0, 1e-9]  # an underflowed share still gives a finite ratio
    assert all(np.isfinite(c.value) for c in M.claims_memorisation(r))


@pytest.mark.slow
def test_gated_cells_keep_distant_inputs_on_every_seed():
    with budget.use_budget("ci"):
        r = M.memorisation()
    assert r["seeds"] == (0, 1, 2) and r["steps"] == 50  # several seeds, the ci step budget
    shown = M.claims_memorisation(r)
    assert len(shown) == 2 and not claims.failed(shown), [str(c) for c in shown]
    for cell in M.CELLS:
        C = r["example"][cell]
        assert C.shape == (r["seq_len"], r["seq_len"]) and np.all(np.isfinite(C))
        assert np.all(C[np.arange(r["seq_len"]), np.arange(r["seq_len"])] > 0)  # the newest input always counts
    fig = M.plot_connectivity(r)
    assert "RNN" in fig.course_alt and len(fig.axes) == 4
    fig = M.memorisation_explorer(r, static=(30, 79))
    assert len([a for a in fig.axes if a.get_visible()]) == 2 and "gradient" in fig.course_alt
