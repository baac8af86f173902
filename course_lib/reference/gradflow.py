"""Gradient flow through a simple RNN: ||dh_T/dh_j|| for every j, two ways, and its bound.

For h_t = f(a_t), a_t = W_xh x_t + W_hh h_{t-1} + b, the chain rule gives

    dh_T/dh_j = prod_{t=j+1..T} diag(f'(a_t)) W_hh

so ||dh_T/dh_j|| <= (gamma * sigma_max(W_hh))^(T-j) with gamma = max|f'| (1 for tanh, relu and
linear, 1/4 for sigmoid). :func:`jacobian_norms_products` multiplies the step Jacobians
explicitly; :func:`jacobian_norms_autograd` asks autograd; the two must agree. Norms are
spectral (operator 2-) norms, the norm the bound is about. Use float64 for long distances:
in float32 small products underflow to exact zeros.
"""
from __future__ import annotations

import torch

from .. import _validate as v

GAMMA = {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0, "linear": 1.0}


def _f(name):
    return {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "linear": lambda a: a}[name]


def _fprime(name, a):
    if name == "tanh":
        return 1 - torch.tanh(a) ** 2
    if name == "sigmoid":
        s = torch.sigmoid(a)
        return s * (1 - s)
    if name == "relu":
        return (a > 0).to(a.dtype)
    return torch.ones_like(a)


def _check(x, h0, W_xh, W_hh, b, nonlinearity):
    if nonlinearity not in GAMMA:
        raise ValueError(f"nonlinearity must be one of {tuple(GAMMA)}, got {nonlinearity!r}")
    v.tensor("x", x, ndim=2)
    T, I = x.shape
    v.tensor("W_hh", W_hh, ndim=2)
    H = W_hh.shape[0]
    v.shapes({"x": (x, (T, I)), "W_hh": (W_hh, (H, H)), "W_xh": (W_xh, (H, I)), "h0": (h0, (H,)), "b": (b, (H,))})
    return T, H


def rnn_states(x, h0, W_xh, W_hh, b, nonlinearity="tanh"):
    """Run one sequence ``x`` (T, I) from ``h0`` (H,); returns pre-activations a (T, H) and states h (T+1, H).

    Raises ``ValueError`` for an unknown ``nonlinearity`` or a wrong shape (``W_xh`` (H, I), ``W_hh`` (H, H),
    ``b`` (H,)).
    Source: Elman 1990; the notation of Pascanu et al. 2013.
    Used by lecture 1 (``experiments/vanishing.py``).
    """
    T, H = _check(x, h0, W_xh, W_hh, b, nonlinearity)
    f, h, hs, pre = _f(nonlinearity), h0, [h0], []
    for t in range(T):
        a = W_xh @ x[t] + W_hh @ h + b
        h = f(a)
        pre.append(a)
        hs.append(h)
    return (torch.stack(pre) if pre else x.new_zeros(0, H)), torch.stack(hs)


def jacobian_norms_products(x, h0, W_xh, W_hh, b, nonlinearity="tanh"):
    """||dh_T/dh_j||_2 for j = 0..T by explicit products of step Jacobians; a tensor of length T+1.

    Shapes as :func:`rnn_states`: x (T, I), h0 (H,). Raises ``ValueError`` naming the argument when a shape,
    dtype or device is wrong.
    Source: Pascanu et al. 2013 (eq. 5-7: dh_T/dh_j as a product of step Jacobians).
    Used by lecture 1 (gradient norm against distance) and graded in assignment 1 (``check_gradient_norms``).
    """
    with torch.no_grad():
        a, _ = rnn_states(x, h0, W_xh, W_hh, b, nonlinearity)
        T, H = a.shape
        J = torch.eye(H, dtype=x.dtype, device=x.device)
        norms = [torch.linalg.matrix_norm(J, ord=2)]
        for t in range(T - 1, -1, -1):  # J <- J @ diag(f'(a_t)) W_hh, walking back from T
            J = J @ (_fprime(nonlinearity, a[t]).unsqueeze(1) * W_hh)
            norms.append(torch.linalg.matrix_norm(J, ord=2))
        return torch.stack(norms[::-1])


def jacobian_norms_autograd(x, h0, W_xh, W_hh, b, nonlinearity="tanh"):
    """The same norms as :func:`jacobian_norms_products`, with every Jacobian row from autograd.

    Shapes as :func:`rnn_states`. Raises ``ValueError`` naming the argument when a shape, dtype or device is
    wrong. Slow (one backward pass per row): a cross-check.
    Source: Pascanu et al. 2013; PyTorch's ``torch.autograd.grad`` documentation.
    Used by lecture 1 (the two computations agree) and its tests.
    """
    T, H = _check(x, h0, W_xh, W_hh, b, nonlinearity)
    f = _f(nonlinearity)
    with torch.enable_grad():
        hs = [h0.detach().clone().requires_grad_(True)]
        for t in range(T):
            hs.append(f(W_xh.detach() @ x[t].detach() + W_hh.detach() @ hs[-1] + b.detach()))
        for h in hs[1:]:
            h.retain_grad()
        rows = [[] for _ in range(T + 1)]
        for k in range(H):  # one backward pass per output unit gives row k of every dh_T/dh_j
            e = torch.zeros_like(hs[-1])
            e[k] = 1
            grads = torch.autograd.grad(hs[-1], hs, grad_outputs=e, retain_graph=True, allow_unused=True)
            for j, g in enumerate(grads):
                rows[j].append(torch.zeros_like(e) if g is None else g)
    return torch.stack([torch.linalg.matrix_norm(torch.stack(r), ord=2) for r in rows]).detach()


def spectral_bound(W_hh, T, nonlinearity="tanh"):
    """(gamma * sigma_max(W_hh))^(T - j) for j = 0..T: the bound on ||dh_T/dh_j||.

    ``W_hh`` (H, H), ``T`` >= 0 -> a tensor of length T + 1, unitless. Raises ``ValueError`` for an unknown
    ``nonlinearity``, a non-square ``W_hh`` or a negative ``T``.
    Source: Pascanu et al. 2013 (eq. 8: ||dh_T/dh_j|| <= (gamma sigma_max)^(T-j); gamma = 1 for tanh, 1/4 for
    the sigmoid).
    Used by lecture 1 (the bound against the measured norms) and graded in assignment 1
    (``check_spectral_bound``).
    """
    if nonlinearity not in GAMMA:
        raise ValueError(f"nonlinearity must be one of {tuple(GAMMA)}, got {nonlinearity!r}")
    v.tensor("W_hh", W_hh, ndim=2)
    if int(T) < 0:
        raise ValueError(f"T must be non-negative, got {T!r}")
    s = torch.linalg.matrix_norm(W_hh.detach(), ord=2)
    dist = torch.arange(int(T), -1, -1, dtype=W_hh.dtype, device=W_hh.device)
    return (GAMMA[nonlinearity] * s) ** dist


def scaled_orthogonal(H, sigma, seed=0, dtype=torch.float64):
    """sigma times a random orthogonal matrix: every singular value equals ``sigma``.

    ``H`` (int) and ``sigma`` (float, unitless) -> an (H, H) tensor of ``dtype``; the same ``seed`` gives the same
    matrix. The arguments are not checked (a helper of the lecture's experiments, not an exercise).
    Source: Saxe et al. 2014 (orthogonal initialisation); Pascanu et al. 2013 (sigma_max < 1/gamma: vanishing,
    > 1: can explode).
    Used by lecture 1 (recurrent weights with a chosen spectral norm).
    """
    g = torch.Generator().manual_seed(int(seed))
    q, r = torch.linalg.qr(torch.randn(H, H, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return (sigma * q).to(dtype)
