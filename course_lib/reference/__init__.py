"""The course's answers: every piece the lectures derive and the assignments ask students to build.

PyTorch, batch-first, differentiable, float32 or float64, CPU or CUDA, PyTorch's weight layouts.
"""
from .cells import gru_cell, lstm_cell, rnn_cell, rnn_step, step_jacobian
from .clipping import clip_grad_norm
from .connections import DeepNet, dense_block, highway, residual
from .gradflow import (
    GAMMA,
    jacobian_norms_autograd,
    jacobian_norms_products,
    rnn_states,
    scaled_orthogonal,
    spectral_bound,
)
from .sequences import bidirectional_rnn, reverse_padded, run_rnn, stacked_rnn, weights_from_module

__all__ = [
    "rnn_step", "rnn_cell", "lstm_cell", "gru_cell", "step_jacobian", "clip_grad_norm",
    "run_rnn", "reverse_padded", "bidirectional_rnn", "stacked_rnn", "weights_from_module",
    "residual", "highway", "dense_block", "DeepNet",
    "rnn_states", "jacobian_norms_products", "jacobian_norms_autograd", "spectral_bound",
    "scaled_orthogonal", "GAMMA",
]
