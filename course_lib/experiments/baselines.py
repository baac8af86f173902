"""Fair baselines: the plain RNN given its best known chance (issue 12; lectures 1 and 3).

A lecture that says "the plain RNN cannot learn this" measures the plain RNN as PyTorch builds it
(tanh, uniform initialisation): the baseline most readers would write. That is not the strongest
plain RNN. Le, Jaitly and Hinton (2015), "A Simple Way to Initialize Recurrent Networks of
Rectified Linear Units" (arXiv:1504.00941), showed that a ReLU RNN whose recurrent matrix starts as
the identity (the *IRNN*) learns long-range tasks such as the adding problem: at initialisation
h_t = relu(h_{t-1} + W_x x_t), so the state is copied forward unchanged and the gradient through
the recurrence is the identity on the active units (neither vanishing nor exploding).

:func:`irnn` builds that model as a :class:`course_lib.models.SequenceModel`; the lectures train it
next to the default RNN, with a longer budget, on the same seeds, and say what each baseline shows.
``IRNN_LR`` is its learning rate with Adam and clipping at 1 (Le et al. used plain SGD with a small
rate; with Adam 1e-3 is stable for it where the tanh RNN's 3e-3 / 1e-2 diverge in some seeds).
"""
from __future__ import annotations

import torch

from ..models import SequenceModel

__all__ = ["irnn", "build", "IRNN_LR", "LABELS"]

IRNN_LR = 1e-3
LABELS = {"rnn": "tanh RNN (PyTorch init)", "irnn": "IRNN (ReLU, identity init; Le et al. 2015)"}


def irnn(input_size: int, hidden: int, output_size: int, seed: int, scale: float = 1.0,
         input_std: float = 1e-3) -> SequenceModel:
    """A one-layer ReLU :class:`SequenceModel` with Le et al. (2015)'s initialisation.

    ``weight_hh = scale * I`` (H, H), both recurrent biases 0, ``weight_ih`` ~ N(0, ``input_std``^2)
    (H, input_size), as in the paper; the read-out keeps PyTorch's initialisation. Built from
    ``seed``; the global RNG is left as it was. Inputs ``(B, T, input_size)``, outputs
    ``(B, output_size)`` (read out at the last step). Raises ValueError for ``hidden`` < 1 or a
    non-positive ``scale`` / negative ``input_std``. Used by lectures 1 and 3.
    """
    if int(hidden) < 1:
        raise ValueError(f"hidden must be >= 1, got {hidden!r}")
    if not scale > 0 or input_std < 0:
        raise ValueError(f"scale must be > 0 and input_std >= 0, got {scale!r}, {input_std!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        m = SequenceModel("rnn", input_size, int(hidden), output_size, nonlinearity="relu")
        with torch.no_grad():
            m.rnn.weight_hh_l0.copy_(scale * torch.eye(int(hidden)))
            m.rnn.bias_hh_l0.zero_()
            m.rnn.bias_ih_l0.zero_()
            m.rnn.weight_ih_l0.normal_(0.0, input_std)
    return m


def build(cell: str, input_size: int, hidden: int, output_size: int, seed: int,
          forget_bias: float | None = 1.0) -> SequenceModel:
    """``"irnn"``: :func:`irnn`; ``"rnn"`` / ``"lstm"`` / ``"gru"``: PyTorch's initialisation from ``seed``
    (the LSTM with ``forget_bias``). Raises ValueError for another cell."""
    if cell == "irnn":
        return irnn(input_size, hidden, output_size, seed)
    if cell not in ("rnn", "lstm", "gru"):
        raise ValueError(f"cell must be 'rnn', 'irnn', 'lstm' or 'gru', got {cell!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return SequenceModel(cell, input_size, hidden, output_size,
                             forget_bias=forget_bias if cell == "lstm" else None)
