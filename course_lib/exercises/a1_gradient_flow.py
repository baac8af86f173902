"""Assignment 1, gradient flow in a simple RNN (lectures 1 and 2): its exercises as specs.

Not yet moved into the spec form: the judge's pieces (cases, mistakes) are still the ``Exercise`` objects of
``course_lib/checks/gradflow.py``, and the sample class is ``autograder/samples/make_samples.py``. The
signature, docstring, points and contract below are the only place they are written.
"""
from __future__ import annotations

from ..checks import gradflow as G
from ._spec import Assignment, Spec

ASSIGNMENT = Assignment("01_gradient_flow", "Assignment 1 (`01_gradient_flow`):", [
    Spec("rnn_step", 2, "rnn_step(x, h, W_xh, W_hh, b) -> h_next",
         "One tanh RNN step for a batch: x (B, I), h (B, H), W_xh (H, I), W_hh (H, H), b (H,) -> (B, H).",
         "tanh RNN; `W_xh` (H, I), `W_hh` (H, H), `b` (H,).", exercise_object=G.RNN_STEP),
    Spec("step_jacobian", 2, "step_jacobian(h_next, W_hh) -> J",
         "dh_next/dh of the tanh RNN step, from its output h_next (H,) and W_hh (H, H) -> (H, H).",
         "dh_next/dh for one example, (H, H).", exercise_object=G.STEP_JACOBIAN),
    Spec("gradient_norms", 3, "gradient_norms(x, h0, W_xh, W_hh, b) -> norms",
         "||dh_T/dh_j||_2 for j = 0..T of one sequence x (T, I) from h0 (H,), by products of step Jacobians.",
         "||dh_T/dh_j||_2 for j = 0..T, (T + 1,), by products of the student's own step Jacobians (built on "
         "`rnn_step` and `step_jacobian`).", exercise_object=G.GRADIENT_NORMS),
    Spec("spectral_bound", 2, "spectral_bound(W_hh, T, gamma=1.0) -> bound",
         "(gamma * sigma_max(W_hh)) ** (T - j) for j = 0..T, a tensor of shape (T + 1,).",
         "the bound (gamma sigma_max)^(T-j) for j = 0..T, (T + 1,).", exercise_object=G.SPECTRAL_BOUND),
    Spec("clip_grad_norm", 3, "clip_grad_norm(parameters, max_norm) -> total_norm",
         "Scale all gradients in place so that their global L2 norm is at most max_norm; return the norm before.",
         "the global L2 norm before clipping, gradients scaled in place, the semantics of "
         "`torch.nn.utils.clip_grad_norm_`.", exercise_object=G.CLIP_GRAD_NORM),
], topic="gradient flow")
