"""gradcheck in float64 for every reference function; the two Jacobian-norm methods agree."""
import pytest
import torch
from torch.autograd import gradcheck

from course_lib import reference as ref

D = torch.float64


def r(*shape):
    return torch.randn(*shape, dtype=D, requires_grad=True)


def test_gradcheck_cells():
    x, h, c = r(2, 3), r(2, 4), r(2, 4)
    assert gradcheck(lambda *a: ref.rnn_step(*a), (x, h, r(4, 3), r(4, 4), r(4)))
    assert gradcheck(lambda *a: ref.rnn_cell(*a), (x, h, r(4, 3), r(4, 4), r(4), r(4)))
    assert gradcheck(lambda x, h, c, *w: ref.lstm_cell(x, (h, c), *w), (x, h, c, r(16, 3), r(16, 4), r(16), r(16)))
    assert gradcheck(lambda *a: ref.gru_cell(*a), (x, h, r(12, 3), r(12, 4), r(12), r(12)))
    assert gradcheck(lambda hn, W: ref.step_jacobian(hn, W), (torch.rand(4, dtype=D, requires_grad=True), r(4, 4)))


@pytest.mark.parametrize("cell,G", [("lstm", 4), ("gru", 3), ("rnn", 1)])
def test_gradcheck_sequences(cell, G):
    x = r(2, 4, 3)
    lengths = torch.tensor([4, 2])
    w = (r(G * 3, 3), r(G * 3, 3), r(G * 3), r(G * 3))
    w2 = (r(G * 3, 6), r(G * 3, 3), r(G * 3), r(G * 3))
    assert gradcheck(lambda x, *w: ref.run_rnn(x, w, cell, lengths)[0], (x, *w))
    assert gradcheck(lambda x, *w: ref.run_rnn(x, w, cell, lengths, reverse=True)[0], (x, *w))
    def both(x, *a):
        return ref.stacked_rnn(x, [a[0:4], a[4:8], a[8:12], a[12:16]], cell, lengths, bidirectional=True,
                               residual=True)[0]

    assert gradcheck(both, (x, *w, *w, *w2, *w2))


def test_gradcheck_connections():
    x = r(3, 4)
    assert gradcheck(lambda x, *w: ref.highway(x, *w), (x, r(4, 4), r(4), r(4, 4), r(4)))
    assert gradcheck(lambda x, a, b, c, d: ref.dense_block(x, [(a, b), (c, d)]), (x, r(2, 4), r(2), r(2, 6), r(2)))
    assert gradcheck(lambda x, W: ref.residual(x, lambda z: torch.tanh(z @ W)), (x, r(4, 4)))


def test_gradcheck_clip_grad_norm_is_a_scaling():
    # the clipped gradient is g * min(1, tau/||g||): differentiable in g away from the kink
    def clipped(g):
        p = torch.zeros(g.shape, dtype=D, requires_grad=True)
        p.grad = g.clone()
        n = ref.clip_grad_norm([p], 0.5)
        return g * torch.clamp(0.5 / (torch.linalg.vector_norm(g) + 1e-6), max=1.0), n
    g = torch.tensor([3.0, 4.0], dtype=D, requires_grad=True)
    assert gradcheck(lambda g: clipped(g)[0], (g,))


def _setup(H=8, T=40, sigma=0.9, seed=0, nonlinearity="tanh"):
    g = torch.Generator().manual_seed(seed)
    W = ref.scaled_orthogonal(H, sigma, seed=seed)
    Wx = torch.randn(H, 3, generator=g, dtype=D) * 0.5
    x = torch.randn(T, 3, generator=g, dtype=D)
    return x, torch.zeros(H, dtype=D), Wx, W, torch.zeros(H, dtype=D)


@pytest.mark.parametrize("nl", ["tanh", "sigmoid", "relu", "linear"])
@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_jacobian_norm_methods_agree_and_respect_the_bound(nl, sigma):
    args = _setup(sigma=sigma, nonlinearity=nl)
    a = ref.jacobian_norms_products(*args, nonlinearity=nl)
    b = ref.jacobian_norms_autograd(*args, nonlinearity=nl)
    assert a.shape == (41,) and a[-1].item() == pytest.approx(1.0)
    assert torch.allclose(a, b, rtol=1e-9, atol=1e-300)
    bound = ref.spectral_bound(args[3], 40, nl)
    assert torch.all(a <= bound * (1 + 1e-9))


def test_linear_orthogonal_bound_is_tight():
    args = _setup(sigma=0.8)
    a = ref.jacobian_norms_products(*args, nonlinearity="linear")
    bound = ref.spectral_bound(args[3], 40, "linear")
    assert torch.allclose(a, bound, rtol=1e-10)


def test_scaled_orthogonal_has_all_singular_values_sigma():
    s = torch.linalg.svdvals(ref.scaled_orthogonal(6, 1.7, seed=3))
    assert torch.allclose(s, torch.full((6,), 1.7, dtype=D))
