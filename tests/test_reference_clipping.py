"""clip_grad_norm behaves exactly as torch.nn.utils.clip_grad_norm_, edge cases included (on a GPU too,
marked ``cuda``: there torch sums with ``_foreach_norm``, so the norms may differ in the last bit)."""
import math

import pytest
import torch

from course_lib.reference import clip_grad_norm


def _params(grads, device="cpu"):
    ps = []
    for g in grads:
        p = torch.zeros(3, device=device) if g is None else torch.zeros(g.shape, dtype=g.dtype, device=device)
        p.requires_grad_(True)
        p.grad = None if g is None else g.clone().to(device)
        ps.append(p)
    return ps


CASES = {
    "large": [torch.tensor([3.0, 4.0]), torch.tensor([[12.0]])],
    "below_limit": [torch.tensor([0.1, 0.2]), torch.tensor([0.05])],
    "zero": [torch.zeros(3), torch.zeros(2, 2)],
    "with_none": [torch.tensor([30.0, 40.0]), None],
    "inf": [torch.tensor([float("inf"), 1.0])],
    "nan": [torch.tensor([float("nan"), 1.0])],
    "float64": [torch.tensor([1e3, -2e3], dtype=torch.float64)],
}


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("max_norm", [1.0, 5.0, 0.0])
def test_matches_torch(name, max_norm, device):
    grads = CASES[name]
    ours, theirs = _params(grads, device), _params(grads, device)
    n_ours = clip_grad_norm(ours, max_norm)
    n_theirs = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert n_ours.device == n_theirs.device
    if device == "cpu":
        assert torch.equal(n_ours, n_theirs) or (math.isnan(n_ours) and math.isnan(n_theirs))
    else:
        assert torch.allclose(n_ours, n_theirs, rtol=1e-6, atol=0, equal_nan=True)
    for a, b in zip(ours, theirs):
        if b.grad is None:
            assert a.grad is None
        else:
            assert torch.allclose(a.grad, b.grad, rtol=0, atol=1e-7, equal_nan=True)


def test_empty_and_single_tensor():
    assert torch.equal(clip_grad_norm([], 1.0), torch.nn.utils.clip_grad_norm_([], 1.0))
    p = torch.zeros(2, requires_grad=True)
    p.grad = torch.tensor([6.0, 8.0])
    assert clip_grad_norm(p, 5.0).item() == pytest.approx(10.0)
    assert torch.allclose(p.grad, torch.tensor([3.0, 4.0]), atol=1e-5)


def test_global_not_per_parameter_and_in_place():
    ps = _params([torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])])
    g_before = [p.grad for p in ps]
    total = clip_grad_norm(ps, 1.0)
    assert total.item() == pytest.approx(5.0)
    assert ps[0].grad is g_before[0]  # scaled in place, same tensor object
    assert torch.allclose(torch.cat([p.grad for p in ps]), torch.tensor([0.6, 0, 0, 0.8]), atol=1e-5)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "1"])
def test_bad_max_norm(bad):
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(_params([torch.ones(2)]), bad)
