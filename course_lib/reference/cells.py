"""One time step of the tanh RNN, the LSTM and the GRU, in PyTorch's own weight layouts.

Everything is batch-first: ``x`` is (B, I), ``h`` and ``c`` are (B, H). The public functions
validate their arguments; the ``_*_proj`` kernels below them take an input projection that was
computed once for the whole sequence (see ``sequences.py``) and skip the checks, because they run
inside the time loop.
"""
from __future__ import annotations

import torch

from .. import _validate as v

NONLINEARITIES = ("tanh", "relu")


def _check_cell(x, h, W_ih, W_hh, b_ih, b_hh, gates: int, c=None, names=("W_ih", "W_hh", "b_ih", "b_hh")):
    v.tensor("x", x, ndim=2)
    B, I = x.shape
    v.tensor("h", h, ndim=2)
    H = h.shape[1]
    v.shapes({"x": (x, (B, I)), "h": (h, (B, H)), "c": (c, (B, H)), names[0]: (W_ih, (gates * H, I)),
              names[1]: (W_hh, (gates * H, H)), names[2]: (b_ih, (gates * H,)), names[3]: (b_hh, (gates * H,))})


def affine(x, W, b):
    """``x @ W.T + b`` (``b`` may be None): PyTorch's ``nn.Linear`` layout, ``W`` of shape (out, in).

    Shapes: x (B, in), W (out, in), b (out,) -> (B, out). No checks: callers have checked.
    Source: PyTorch's ``nn.Linear`` documentation.
    Used by lecture 3's to lecture 6's reference cells (a building block, not graded).
    """
    out = x @ W.t()
    return out if b is None else out + b


# ---------------------------------------------------------------- plain RNN
def rnn_proj(xp, h, W_hh, b_hh, nonlinearity="tanh"):
    """One Elman step from the projected input ``xp = x W_ih^T + b_ih``: ``f(xp + h W_hh^T + b_hh)``.

    xp (B, H), h (B, H), ``W_hh`` (H, H) -> (B, H). No checks: :func:`rnn_cell` and :func:`run_rnn` check.
    Source: Elman 1990; PyTorch's ``nn.RNN`` documentation.
    Used by lecture 6 (:func:`run_rnn` projects the whole sequence once, then steps).
    """
    a = xp + affine(h, W_hh, b_hh)
    return torch.tanh(a) if nonlinearity == "tanh" else torch.relu(a)


def rnn_step(x, h, W_xh, W_hh, b):
    """h_next = tanh(x W_xh^T + h W_hh^T + b), the course's tanh RNN step.

    ``W_xh`` (H, I), ``W_hh`` (H, H), ``b`` (H,). ``nn.RNNCell`` has two biases: ``b = b_ih + b_hh``.

    x (B, I) or (I,), h (B, H) or (H,) -> h_next of h's shape, x's dtype and device. Raises ``ValueError``
    naming the argument when a shape, dtype or device is wrong.
    Source: Elman 1990, "Finding structure in time"; the notation of Pascanu et al. 2013.
    Used by lecture 1 (the vanishing-gradient derivation) and graded in assignment 1 (``check_rnn_step``).
    """
    _check_cell(x, h, W_xh, W_hh, b, None, gates=1, names=("W_xh", "W_hh", "b", "-"))
    return torch.tanh(x @ W_xh.t() + h @ W_hh.t() + b)


def rnn_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """``nn.RNNCell``'s step: f(x W_ih^T + b_ih + h W_hh^T + b_hh), f = tanh or relu.

    x (B, I), h (B, H), ``W_ih`` (H, I), ``W_hh`` (H, H), biases (H,) or None -> (B, H). Raises ``ValueError``
    for an unknown ``nonlinearity`` or a wrong shape.
    Source: Elman 1990; the layout of PyTorch's ``nn.RNNCell`` documentation.
    Used by lecture 3's experiments (the plain RNN beside the LSTM, ``experiments/lstm.py``).
    """
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
    _check_cell(x, h, W_ih, W_hh, b_ih, b_hh, gates=1)
    return rnn_proj(affine(x, W_ih, b_ih), h, W_hh, b_hh, nonlinearity)


# ---------------------------------------------------------------- LSTM
def lstm_proj(xp, state, W_hh, b_hh):
    """One LSTM step from the projected input ``xp`` (B, 4H), gates in PyTorch's order i, f, g, o.

    xp (B, 4H), ``state = (h, c)`` each (B, H) -> ``(h_next, c_next)``. No checks: :func:`lstm_cell` and
    :func:`run_rnn` check.
    Source: Hochreiter and Schmidhuber 1997, Gers et al. 2000; PyTorch's ``nn.LSTM`` documentation.
    Used by lecture 3 (:func:`lstm_cell`) and lecture 6 (:func:`run_rnn`).
    """
    h, c = state
    gates = xp + affine(h, W_hh, b_hh)
    i, f, g, o = gates.chunk(4, dim=1)  # PyTorch's order: input, forget, cell candidate, output
    i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
    g = torch.tanh(g)
    c_next = f * c + i * g  # erase with f, write with i
    h_next = o * torch.tanh(c_next)  # read with o
    return h_next, c_next


def lstm_cell(x, state, W_ih, W_hh, b_ih=None, b_hh=None):
    """One LSTM step, as ``nn.LSTMCell``: returns ``(h_next, c_next)``.

    ``W_ih`` (4H, I) and ``W_hh`` (4H, H) stack the gates in PyTorch's order i, f, g, o::

        i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)     input gate  (how much to write)
        f = sigmoid(W_if x + b_if + W_hf h + b_hf)     forget gate (how much to keep)
        g = tanh   (W_ig x + b_ig + W_hg h + b_hg)     candidate   (what to write)
        o = sigmoid(W_io x + b_io + W_ho h + b_ho)     output gate (how much to read)
        c' = f * c + i * g ;  h' = o * tanh(c')

    x (B, I), ``state = (h, c)`` each (B, H), biases (4H,) or None -> ``(h_next, c_next)`` each (B, H). Raises
    ``ValueError`` naming the argument when a shape, dtype or device is wrong.
    Source: Hochreiter and Schmidhuber 1997 (the memory cell), Gers et al. 2000 (the forget gate); PyTorch's
    ``nn.LSTMCell`` documentation for the layout.
    Used by lecture 3 (LSTM) and lecture 6's experiments; graded in assignments 2 and 3 (``check_lstm_cell``).
    """
    if not (isinstance(state, (tuple, list)) and len(state) == 2):
        raise ValueError(f"state must be a pair (h, c), got {type(state).__name__}")
    h, c = state
    _check_cell(x, h, W_ih, W_hh, b_ih, b_hh, gates=4, c=c)
    return lstm_proj(affine(x, W_ih, b_ih), (h, c), W_hh, b_hh)


# ---------------------------------------------------------------- GRU
def gru_proj(xp, h, W_hh, b_hh):
    """One GRU step from the projected input ``xp`` (B, 3H), gates in PyTorch's order r, z, n.

    xp (B, 3H), h (B, H) -> (B, H). No checks: :func:`gru_cell` and :func:`run_rnn` check.
    Source: Cho et al. 2014; PyTorch's ``nn.GRU`` documentation.
    Used by lecture 4 (:func:`gru_cell`) and lecture 6 (:func:`run_rnn`).
    """
    hp = affine(h, W_hh, b_hh)
    xr, xz, xn = xp.chunk(3, dim=1)  # PyTorch's order: reset, update, new
    hr, hz, hn = hp.chunk(3, dim=1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)  # the reset gate scales (W_hn h + b_hn), after the matmul
    return (1 - z) * n + z * h  # z = 1 keeps the old state (PyTorch's convention)


def gru_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None):
    """One GRU step, as ``nn.GRUCell``: returns ``h_next``.

    ``W_ih`` (3H, I), ``W_hh`` (3H, H), gates in PyTorch's order r, z, n::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    In the lecture's notation the update gate is u = 1 - z: u = 0 keeps the state.

    x (B, I), h (B, H), biases (3H,) or None -> h_next (B, H). Raises ``ValueError`` naming the argument when
    a shape, dtype or device is wrong.
    Source: Cho et al. 2014 (the gated recurrent unit); PyTorch's ``nn.GRUCell`` documentation for the layout.
    Used by lecture 4 (GRU and choosing) and graded in assignment 2 (``check_gru_cell``).
    """
    _check_cell(x, h, W_ih, W_hh, b_ih, b_hh, gates=3)
    return gru_proj(affine(x, W_ih, b_ih), h, W_hh, b_hh)


# ---------------------------------------------------------------- Jacobian of one step
def step_jacobian(h_next, W_hh):
    """dh_next/dh of the tanh RNN step, from its output: diag(1 - h_next^2) W_hh.

    ``h_next`` (H,) gives (H, H); a batch (B, H) gives (B, H, H). The activation's derivative
    stays in: dropping it gives W_hh alone, which overstates the gradient.

    Raises ``ValueError`` naming the argument when a shape, dtype or device is wrong.
    Source: Pascanu et al. 2013, "On the difficulty of training recurrent neural networks" (eq. 7).
    Used by lecture 1 (the product of step Jacobians) and graded in assignment 1 (``check_step_jacobian``).
    """
    v.tensor("h_next", h_next, ndim=(1, 2))
    H = h_next.shape[-1]
    v.shape("W_hh", W_hh, (H, H))
    v.same_dtype_device(h_next=h_next, W_hh=W_hh)
    return (1 - h_next**2).unsqueeze(-1) * W_hh
