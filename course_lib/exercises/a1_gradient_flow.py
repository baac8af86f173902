"""Assignment 1, gradient flow in a simple RNN (lectures 1 and 2): one spec per exercise.

Each spec is everything the course says about the exercise: points, signature, stub docstring, contract,
how the judge calls it, its cases and reference, its known mistakes (as student code, with the hint each
must get and the sample it becomes) and correct code written differently. The judge's parametrised
mistake families stay code in ``course_lib/checks/gradflow.py``.
"""
from __future__ import annotations

from ..checks import gradflow as G
from ._spec import Assignment, Call, Mistake, Spec, Variant

DIFFERENT = "correct_loops_float64"  # the sample that holds every variant


RNN_STEP = Spec(
    "rnn_step", 2, "rnn_step(x, h, W_xh, W_hh, b) -> h_next",
    "One tanh RNN step for a batch: x (B, I), h (B, H), W_xh (H, I), W_hh (H, H), b (H,) -> (B, H).",
    "tanh RNN; `W_xh` (H, I), `W_hh` (H, H), `b` (H,).",
    call=Call("plain", G.RNN_ARGS), **G.RNN_STEP,
    mistakes=(
        Mistake("""def rnn_step(x, h, W_xh, W_hh, b):
    return torch.sigmoid(x @ W_xh.T + h @ W_hh.T + b)""",
                "sigmoid", "mistake_rnn_sigmoid"),
        Mistake("""def rnn_step(x, h, W_xh, W_hh, b):
    return torch.tanh(x @ W_xh.T + h @ W_hh + b)""",
                "transposed", "mistake_rnn_no_transpose"),
    ),
    variants=(Variant("""def rnn_step(x, h, W_xh, W_hh, b):
    rows = []
    for n in range(x.shape[0]):  # one example at a time, weights as matrix-vector products
        rows.append(torch.tanh(W_xh @ x[n] + W_hh @ h[n] + b))
    return torch.stack(rows)""", DIFFERENT),))


STEP_JACOBIAN = Spec(
    "step_jacobian", 2, "step_jacobian(h_next, W_hh) -> J",
    "dh_next/dh of the tanh RNN step, from its output h_next (H,) and W_hh (H, H) -> (H, H).",
    "dh_next/dh for one example, (H, H).",
    call=Call("plain", G.JAC_ARGS), **G.STEP_JACOBIAN,
    mistakes=(
        Mistake("""def step_jacobian(h_next, W_hh):
    return W_hh.clone()""",
                "derivative of tanh is missing", "mistake_jacobian_no_derivative"),
        Mistake("""def step_jacobian(h_next, W_hh):
    return torch.diag(1 - h_next**2) @ W_hh.T""",
                "your Jacobian is transposed", "mistake_jacobian_transposed"),
    ),
    variants=(Variant("""def step_jacobian(h_next, W_hh):
    rows = []
    for i in range(h_next.shape[0]):  # row i: d h_next[i] / d h
        rows.append((1 - h_next[i] * h_next[i]) * W_hh[i])
    return torch.stack(rows)""", DIFFERENT),))


GRADIENT_NORMS = Spec(
    "gradient_norms", 3, "gradient_norms(x, h0, W_xh, W_hh, b) -> norms",
    "||dh_T/dh_j||_2 for j = 0..T of one sequence x (T, I) from h0 (H,), by products of step Jacobians.",
    "||dh_T/dh_j||_2 for j = 0..T, (T + 1,), by products of the student's own step Jacobians (built on "
    "`rnn_step` and `step_jacobian`; graded with the grader's own, so a mistake there costs only their points).",
    call=Call("plain", G.GN_ARGS), **G.GRADIENT_NORMS,
    mistakes=(
        Mistake("""def gradient_norms(x, h0, W_xh, W_hh, b):
    hs = [h0]
    for t in range(x.shape[0]):
        hs.append(rnn_step(x[t:t + 1], hs[-1].unsqueeze(0), W_xh, W_hh, b)[0])
    J = torch.eye(h0.shape[0], dtype=x.dtype)
    norms = [torch.linalg.norm(J)]
    for t in range(x.shape[0], 0, -1):
        J = J @ step_jacobian(hs[t], W_hh)
        norms.append(torch.linalg.norm(J))
    return torch.stack(norms[::-1])""",
                "Frobenius", "mistake_norms_frobenius"),
    ),
    variants=(Variant("""def gradient_norms(x, h0, W_xh, W_hh, b):
    T = x.shape[0]
    W_hh64 = W_hh.double()
    hs = [h0.double()]
    for t in range(T):
        hs.append(rnn_step(x[t:t + 1].double(), hs[-1].unsqueeze(0), W_xh.double(), W_hh64, b.double())[0])
    out = [None] * (T + 1)
    J = torch.eye(h0.shape[0], dtype=torch.float64)
    out[T] = torch.linalg.svdvals(J)[0]
    for j in range(T - 1, -1, -1):
        J = J @ step_jacobian(hs[j + 1], W_hh64)
        out[j] = torch.linalg.svdvals(J)[0]
    return torch.stack(out).to(x.dtype)""", DIFFERENT),))


SPECTRAL_BOUND = Spec(
    "spectral_bound", 2, "spectral_bound(W_hh, T, gamma=1.0) -> bound",
    "(gamma * sigma_max(W_hh)) ** (T - j) for j = 0..T, a tensor of shape (T + 1,).",
    "the bound (gamma sigma_max)^(T-j) for j = 0..T, (T + 1,).",
    call=Call("plain", G.SB_ARGS, ("T", "gamma")), **G.SPECTRAL_BOUND,
    mistakes=(
        Mistake("""def spectral_bound(W_hh, T, gamma=1.0):
    s = torch.linalg.eigvals(W_hh).abs().max().to(W_hh.dtype)
    return (gamma * s) ** torch.arange(T, -1, -1, dtype=W_hh.dtype)""",
                "eigenvalue", "mistake_bound_eigenvalue"),
    ),
    variants=(Variant("""def spectral_bound(W_hh, T, gamma=1.0):
    s = torch.linalg.svdvals(W_hh)[0]
    return torch.stack([(gamma * s) ** (T - j) for j in range(T + 1)])""", DIFFERENT),))


CLIP_GRAD_NORM = Spec(
    "clip_grad_norm", 3, "clip_grad_norm(parameters, max_norm) -> total_norm",
    "Scale all gradients in place so that their global L2 norm is at most max_norm; return the norm before.",
    "the global L2 norm before clipping, gradients scaled in place, the semantics of "
    "`torch.nn.utils.clip_grad_norm_`.",
    call=Call("clip", G.CLIP_ARGS), **G.CLIP_GRAD_NORM,
    mistakes=(
        Mistake("""def clip_grad_norm(parameters, max_norm):
    params = [p for p in parameters if p.grad is not None]
    for p in params:
        n = p.grad.norm()
        if n > max_norm:
            p.grad.mul_(max_norm / n)
    return torch.sqrt(sum(p.grad.norm() ** 2 for p in params))""",
                "global norm", "mistake_clip_per_parameter"),
        Mistake("""def clip_grad_norm(parameters, max_norm):
    params = [p for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    for p in params:
        p.grad.clamp_(-max_norm, max_norm)
    return total""",
                "element-wise", "mistake_clip_elementwise"),
        Mistake("""def clip_grad_norm(parameters, max_norm):
    params = [p for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    factor = min(1.0, max_norm / (float(total) + 1e-6))
    for p in params:
        p.grad.mul_(factor)
    return torch.sqrt(sum((p.grad ** 2).sum() for p in params))""",
                "after clipping", "mistake_clip_norm_after"),
        Mistake("""def clip_grad_norm(parameters, max_norm):
    params = [p for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    factor = min(1.0, max_norm / (float(total) + 1e-6))
    for p in params:
        p.grad = p.grad * factor
    return total""",
                "in place", "mistake_clip_not_in_place"),
        Mistake("""def clip_grad_norm(parameters, max_norm):
    params = [p for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    for p in params:
        p.grad.mul_(max_norm / total)
    return total""",
                "already under the limit", "mistake_clip_always_rescale"),
        Mistake("""def clip_grad_norm(parameters, max_norm):
    params = [p for p in parameters if p.grad is not None]
    total = float(torch.sqrt(sum((p.grad ** 2).sum() for p in params)))
    factor = max_norm / total
    if factor < 1:
        for p in params:
            p.grad.mul_(factor)
    return torch.tensor(total)""",
                "guard the division", "mistake_clip_no_zero_guard"),
    ),
    variants=(Variant("""def clip_grad_norm(parameters, max_norm):
    params = [p for p in parameters if p.grad is not None]
    total = sum(float((p.grad ** 2).sum()) for p in params) ** 0.5
    if total > max_norm:
        for p in params:
            p.grad.data.mul_(max_norm / (total + 1e-6))
    return total""", DIFFERENT),))

ASSIGNMENT = Assignment("01_gradient_flow", [RNN_STEP, STEP_JACOBIAN, GRADIENT_NORMS, SPECTRAL_BOUND, CLIP_GRAD_NORM],
                        topic="gradient flow")
