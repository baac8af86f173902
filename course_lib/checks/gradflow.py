"""Assignment 1, gradient flow: the exercises as cases, comparisons and known mistakes.

Student signatures (batch first, PyTorch weight layouts, any float dtype):

- ``rnn_step(x, h, W_xh, W_hh, b) -> h_next``: x (B, I), h (B, H), W_xh (H, I), W_hh (H, H), b (H,)
- ``step_jacobian(h_next, W_hh) -> J``: h_next (H,), J (H, H) with J[i, j] = d h_next[i] / d h[j]
- ``gradient_norms(x, h0, W_xh, W_hh, b) -> norms``: x (T, I), h0 (H,); norms (T+1,),
  norms[j] = ||dh_T/dh_j||_2 (spectral norm), by products of step Jacobians
- ``spectral_bound(W_hh, T, gamma=1.0) -> bound``: (T+1,), bound[j] = (gamma sigma_max(W_hh))^(T-j)
- ``clip_grad_norm(parameters, max_norm) -> total_norm``: as ``torch.nn.utils.clip_grad_norm_``
"""
from __future__ import annotations

import numpy as np
import torch

from ._core import Case, Exercise, Mutant, scalar_text, case_dtype, close, default_compare

F32, F64 = np.float32, np.float64


def _n(rng, shape, scale=1.0, dtype=F64):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _square(case, a="x", b="h"):
    return case.arrays[a].shape[-1] == case.arrays[b].shape[-1]


def _matmul_hint(case, etype, msg):
    m = msg.lower()
    if "shape" in m or "size" in m or "dimension" in m:
        return ("a matrix product has mismatched shapes. Weights follow torch.nn's layout "
                "(out_features, in_features): W_xh is (H, I) and W_hh is (H, H), while x is (B, I) "
                "and h is (B, H).")
    if "dtype" in m or "expected scalar type" in m or "double" in m or "float" in m:
        return "mixed dtypes: build every new tensor with the inputs' dtype (e.g. dtype=x.dtype)."
    return None


# ======================================================================== rnn_step
def _rnn_cases(rng, hidden):
    def case(B, I, H, dtype, scale, label):
        return Case({"x": _n(rng, (B, I), 1.0, dtype), "h": np.tanh(_n(rng, (B, H), 1.0, dtype)),
                     "W_xh": _n(rng, (H, I), scale / np.sqrt(I), dtype),
                     "W_hh": _n(rng, (H, H), scale / np.sqrt(H), dtype),
                     "b": _n(rng, (H,), 0.5, dtype)}, label)

    if not hidden:
        return [case(3, 4, 5, F32, 1.0, "float32, B=3, I=4, H=5"),
                case(2, 3, 2, F64, 1.0, "float64, B=2, I=3, H=2")]
    return [case(4, 5, 6, F64, 1.0, "float64, B=4, I=5, H=6"),
            case(1, 4, 4, F32, 1.0, "float32, a batch of one, I=H=4"),
            case(2, 1, 1, F64, 1.0, "float64, I=H=1"),
            case(3, 3, 3, F64, 3.0, "float64, large weights (saturated units), I=H=3"),
            case(5, 6, 6, F64, 1.0, "float64, B=5, I=H=6")]


def _rnn_mutants():
    T = lambda W: W.t()  # noqa: E731
    sq = lambda c: _square(c)  # noqa: E731
    return [
        Mutant(lambda x, h, Wx, Wh, b: torch.sigmoid(x @ T(Wx) + h @ T(Wh) + b),
               "your output matches a sigmoid RNN: this course's RNN step uses tanh."),
        Mutant(lambda x, h, Wx, Wh, b: torch.relu(x @ T(Wx) + h @ T(Wh) + b),
               "your output matches a ReLU RNN: this course's RNN step uses tanh."),
        Mutant(lambda x, h, Wx, Wh, b: x @ T(Wx) + h @ T(Wh) + b,
               "your output is the pre-activation: the nonlinearity is missing."),
        Mutant(lambda x, h, Wx, Wh, b: torch.tanh(x @ T(Wx) + h @ Wh + b),
               "W_hh is used transposed. torch.nn stores a weight as (out_features, in_features): "
               "check which index of W_hh runs over the previous state."),
        Mutant(lambda x, h, Wx, Wh, b: torch.tanh(x @ Wx + h @ T(Wh) + b),
               "W_xh is used transposed. torch.nn stores a weight as (out_features, in_features): "
               "check which index of W_xh runs over the input.", sq),
        Mutant(lambda x, h, Wx, Wh, b: torch.tanh(x @ Wx + h @ Wh + b),
               "both weight matrices are used transposed. torch.nn stores a weight as "
               "(out_features, in_features).", sq),
        Mutant(lambda x, h, Wx, Wh, b: torch.tanh(x @ T(Wh) + h @ T(Wx) + b),
               "W_xh and W_hh are swapped: one weighs the input x, the other the previous state h.", sq),
        Mutant(lambda x, h, Wx, Wh, b: torch.tanh(x @ T(Wx) + h @ T(Wh)),
               "the bias b is missing."),
        Mutant(lambda x, h, Wx, Wh, b: torch.tanh(x @ T(Wx) + h @ T(Wh)) + b,
               "the bias is added after the nonlinearity: it belongs to the pre-activation."),
        Mutant(lambda x, h, Wx, Wh, b: torch.tanh(x @ T(Wx) + b),
               "the previous state h does not enter your step: the recurrence is missing."),
        Mutant(lambda x, h, Wx, Wh, b: torch.tanh(h @ T(Wh) + b),
               "the input x does not enter your step."),
        Mutant(lambda x, h, Wx, Wh, b: torch.tanh(x @ T(Wx)) + torch.tanh(h @ T(Wh) + b),
               "the nonlinearity is applied to each term separately: it applies to their sum."),
    ]


def _rnn_ref():
    from ..reference import rnn_step

    return rnn_step


RNN_STEP = Exercise("rnn_step", 2, "plain", ["x", "h", "W_xh", "W_hh", "b"], _rnn_cases, _rnn_ref,
                    _rnn_mutants, error_hint=_matmul_hint)


# ======================================================================== step_jacobian
def _jac_cases(rng, hidden):
    def case(H, dtype, label, sat=1.0, zero=False):
        h = np.zeros(H) if zero else np.tanh(_n(rng, (H,), sat))
        return Case({"h_next": h.astype(dtype), "W_hh": _n(rng, (H, H), 1 / np.sqrt(H), dtype)}, label)

    if not hidden:
        return [case(4, F32, "float32, H=4"), case(3, F64, "float64, H=3")]
    return [case(1, F64, "float64, H=1"),
            case(6, F64, "float64, H=6, saturated units (|h_next| close to 1)", sat=4.0),
            case(3, F32, "float32, h_next = 0", zero=True),
            case(5, F64, "float64, H=5"),
            case(7, F32, "float32, H=7")]


def _jac_mutants():
    d = lambda h: 1 - h**2  # noqa: E731
    return [
        Mutant(lambda h, W: W.clone(), "you returned W_hh unchanged: the derivative of tanh is missing."),
        Mutant(lambda h, W: torch.diag(d(h)),
               "your Jacobian is only the derivative of tanh: W_hh, through which h enters, is missing."),
        Mutant(lambda h, W: d(h).unsqueeze(1) * W.t(),
               "your Jacobian is transposed: J[i, j] must be d h_next[i] / d h[j]."),
        Mutant(lambda h, W: W * d(h).unsqueeze(0),
               "the derivative factors scale the wrong axis of W_hh: think about which index of J "
               "belongs to h_next and which to h."),
        Mutant(lambda h, W: (1 - h).unsqueeze(1) * W,
               "the derivative factor is wrong: write tanh'(a) in terms of tanh(a) = h_next again."),
        Mutant(lambda h, W: (1 - h.abs()).unsqueeze(1) * W,
               "the derivative factor is wrong: write tanh'(a) in terms of tanh(a) = h_next again."),
        Mutant(lambda h, W: (1 - torch.tanh(h) ** 2).unsqueeze(1) * W,
               "you applied tanh to h_next again: h_next is already tanh(a), the step's output."),
        Mutant(lambda h, W: (h * (1 - h)).unsqueeze(1) * W,
               "that derivative factor is the sigmoid's (s(1 - s)): this RNN uses tanh."),
        Mutant(lambda h, W: (h**2 - 1).unsqueeze(1) * W, "your Jacobian has the wrong sign."),
    ]


def _jac_ref():
    from ..reference import step_jacobian

    return step_jacobian


def _jac_error_hint(case, etype, msg):
    return _matmul_hint(case, etype, msg)


STEP_JACOBIAN = Exercise("step_jacobian", 2, "plain", ["h_next", "W_hh"], _jac_cases, _jac_ref,
                         _jac_mutants, error_hint=_jac_error_hint)


# ======================================================================== gradient_norms
def _seq_case(rng, T, I, H, dtype, scale, label, triangular=False):
    W = _n(rng, (H, H), scale / np.sqrt(H))
    if triangular:  # strongly non-normal: products in the wrong order differ a lot
        W = np.triu(W) * 1.5
    return Case({"x": _n(rng, (T, I), 1.0, dtype), "h0": np.tanh(_n(rng, (H,), 1.0, dtype)),
                 "W_xh": _n(rng, (H, I), 1 / np.sqrt(I), dtype), "W_hh": W.astype(dtype),
                 "b": _n(rng, (H,), 0.3, dtype)}, label)


def _gn_cases(rng, hidden):
    if not hidden:
        return [_seq_case(rng, 5, 3, 4, F64, 1.2, "float64, T=5, I=3, H=4"),
                _seq_case(rng, 3, 2, 3, F64, 2.0, "float64, T=3, I=2, H=3, large W_hh")]
    return [_seq_case(rng, 0, 2, 3, F64, 1.0, "float64, T=0 (no steps)"),
            _seq_case(rng, 1, 2, 3, F64, 1.0, "float64, T=1"),
            _seq_case(rng, 6, 2, 1, F64, 1.0, "float64, H=1"),
            _seq_case(rng, 12, 3, 5, F64, 0.8, "float64, T=12, small W_hh"),
            _seq_case(rng, 7, 3, 4, F64, 1.0, "float64, T=7, non-normal W_hh", triangular=True),
            _seq_case(rng, 4, 3, 4, F32, 1.0, "float32, T=4")]


def _states(x, h0, Wx, Wh, b):
    hs = [h0]
    for t in range(x.shape[0]):
        hs.append(torch.tanh(Wx @ x[t] + Wh @ hs[-1] + b))
    return hs


def _gn_mutant(kind):
    def fn(x, h0, Wx, Wh, b):
        hs = _states(x, h0, Wx, Wh, b)
        T, H = x.shape[0], h0.shape[0]
        eye = torch.eye(H, dtype=x.dtype)
        steps = []  # steps[t-1] = dh_t/dh_{t-1}
        for t in range(1, T + 1):
            if kind == "no_derivative":
                steps.append(Wh.clone())
            elif kind == "prev_state":
                steps.append((1 - hs[t - 1] ** 2).unsqueeze(1) * Wh)
            else:
                steps.append((1 - hs[t] ** 2).unsqueeze(1) * Wh)
        norm = (lambda M: torch.linalg.matrix_norm(M)) if kind == "frobenius" else \
            (lambda M: torch.linalg.matrix_norm(M, ord=2))
        out = [None] * (T + 1)
        J = eye
        out[T] = norm(J)
        for j in range(T - 1, -1, -1):
            if kind == "single_step":
                out[j] = norm(steps[j])
                continue
            J = steps[j] @ J if kind == "order" else J @ steps[j]
            out[j] = norm(J)
        res = torch.stack(out)
        return res.flip(0) if kind == "reversed" else res
    return fn


def _gn_mutants():
    return [
        Mutant(_gn_mutant("frobenius"),
               "you measured the Frobenius norm (matrix_norm's default): the bound is about the "
               "spectral norm, the largest singular value."),
        Mutant(_gn_mutant("reversed"),
               "your norms are in reverse order: entry j is ||dh_T/dh_j||, so the last entry is "
               "the norm of dh_T/dh_T."),
        Mutant(_gn_mutant("no_derivative"),
               "your step Jacobians lack the derivative of tanh: you measured powers of W_hh."),
        Mutant(_gn_mutant("prev_state"),
               "each step's Jacobian is evaluated at the wrong state (off by one step in time): "
               "use the state that the step produced."),
        Mutant(_gn_mutant("order"),
               "the Jacobians are multiplied in the wrong order: the chain rule puts the latest "
               "step's Jacobian on the left."),
        Mutant(_gn_mutant("single_step"),
               "you returned the norm of a single step's Jacobian: dh_T/dh_j is the product of all "
               "the steps between j and T."),
    ]


def _gn_ref():
    from ..reference import jacobian_norms_products

    return jacobian_norms_products


def _length_compare(ex, case, got, want):
    if "out" in got and got["out"].ndim == 1 and got["out"].shape[0] + 1 == want["out"].shape[0]:
        T = want["out"].shape[0] - 1
        return (f"`{ex.name}` returned {T} values for T={T}: return T+1, one for every j = 0..T "
                "(the last one is j = T).")
    return default_compare(ex, case, got, want)


GRADIENT_NORMS = Exercise("gradient_norms", 3, "plain", ["x", "h0", "W_xh", "W_hh", "b"], _gn_cases,
                          _gn_ref, _gn_mutants, compare=_length_compare, error_hint=_matmul_hint)


# ======================================================================== spectral_bound
def _sb_cases(rng, hidden):
    def case(H, T, gamma, dtype, label, scale=1.2, kind="random"):
        W = _n(rng, (H, H), scale / np.sqrt(H))
        if kind == "triangular":
            W = np.triu(W) + np.diag(np.full(H, 0.3))
        return Case({"W_hh": W.astype(dtype), "T": np.array(T, dtype=np.int64),
                     "gamma": np.array(gamma, dtype=np.float64)}, label)

    if not hidden:
        return [case(4, 6, 1.0, F64, "float64, H=4, T=6, gamma=1"),
                case(3, 4, 0.25, F32, "float32, H=3, T=4, gamma=0.25")]
    return [case(3, 0, 1.0, F64, "float64, T=0"),
            case(1, 5, 1.0, F64, "float64, H=1"),
            case(5, 10, 1.0, F64, "float64, T=10, non-normal (triangular) W_hh", kind="triangular"),
            case(4, 7, 0.5, F64, "float64, T=7, gamma=0.5", scale=2.0),
            case(6, 5, 1.0, F32, "float32, H=6, T=5", kind="triangular")]


def _sb_mutant(kind):
    def fn(W, T, gamma=1.0):
        T = int(T)
        dist = torch.arange(T, -1, -1, dtype=W.dtype)
        if kind == "eig":
            s = torch.linalg.eigvals(W).abs().max().to(W.dtype)
        elif kind == "fro":
            s = torch.linalg.matrix_norm(W)
        elif kind == "min":
            s = torch.linalg.svdvals(W).min()
        elif kind == "inf":
            s = torch.linalg.matrix_norm(W, ord=float("inf"))
        elif kind == "one":
            s = torch.linalg.matrix_norm(W, ord=1)
        else:
            s = torch.linalg.matrix_norm(W, ord=2)
        if kind == "reversed":
            dist = dist.flip(0)
        if kind == "off_by_one":
            dist = dist + 1
        if kind == "gamma_outside":
            return gamma * s**dist
        if kind == "no_gamma":
            return s**dist
        return (gamma * s) ** dist
    return fn


def _sb_mutants():
    return [
        Mutant(_sb_mutant("eig"), "you used the largest |eigenvalue| of W_hh: the bound needs the "
               "largest singular value (the two differ when W_hh is not symmetric)."),
        Mutant(_sb_mutant("fro"), "you used the Frobenius norm of W_hh: the bound needs the spectral "
               "norm, its largest singular value."),
        Mutant(_sb_mutant("min"), "you used the smallest singular value of W_hh: the bound needs "
               "the largest."),
        Mutant(_sb_mutant("inf"), "you used the max-row-sum (infinity) norm of W_hh: the bound "
               "needs the largest singular value."),
        Mutant(_sb_mutant("one"), "you used the max-column-sum (1-) norm of W_hh: the bound needs "
               "the largest singular value."),
        Mutant(_sb_mutant("reversed"), "your bound is in reverse order: entry j bounds ||dh_T/dh_j||, "
               "whose distance is T - j."),
        Mutant(_sb_mutant("off_by_one"), "the exponent is off by one: the entry for j = T covers "
               "no step at all."),
        Mutant(_sb_mutant("gamma_outside"), "gamma multiplies once instead of once per step: it "
               "belongs inside the power."),
        Mutant(_sb_mutant("no_gamma"), "gamma is ignored."),
    ]


def _sb_ref():
    from ..reference import spectral_bound

    def bound(W, T, gamma=1.0):
        dist = torch.arange(int(T), -1, -1, dtype=W.dtype)
        return spectral_bound(W, int(T), "linear") * torch.as_tensor(gamma, dtype=W.dtype) ** dist
    return bound


SPECTRAL_BOUND = Exercise("spectral_bound", 2, "plain", ["W_hh", "T", "gamma"], _sb_cases, _sb_ref,
                          _sb_mutants, scalar_names=["T", "gamma"], compare=_length_compare)


# ======================================================================== clip_grad_norm
def _clip_case(rng, shapes, dtype, max_norm, label, scale=1.0, zero=False, none=(), gen=False):
    arr = {"n_params": np.array(len(shapes)), "as_generator": np.array(gen),
           "max_norm": np.array(float(max_norm))}
    for i, s in enumerate(shapes):
        g = np.zeros(s) if zero else _n(rng, s, scale * (1 + 2 * i))
        arr[f"shape_{i}"] = np.array(s, dtype=np.int64)
        arr[f"g_{i}"] = g.astype(dtype)
        arr[f"has_grad_{i}"] = np.array(i not in none)
    return Case(arr, label)


def _clip_cases(rng, hidden):
    sh = [(3, 4), (4,), (2, 2)]
    if not hidden:
        return [_clip_case(rng, sh, F32, 1.0, "float32, 3 parameters, global norm above max_norm"),
                _clip_case(rng, sh, F32, 100.0, "float32, 3 parameters, global norm below max_norm"),
                _clip_case(rng, sh, F32, 1.0, "float32, every gradient zero", zero=True)]
    return [_clip_case(rng, sh, F64, 2.0, "float64, parameters given as a generator", gen=True),
            _clip_case(rng, [(2, 3), (3,), (5,)], F64, 1.5,
                       "float64, a parameter whose .grad is None", none=(1,)),
            _clip_case(rng, [(6,)], F64, 0.5, "float64, one parameter, above max_norm"),
            _clip_case(rng, [(2, 2), (3,)], F64, 4.0, "float64, one gradient much larger", scale=2.0),
            _clip_case(rng, [(3, 3), (2,)], F64, 50.0, "float64, below max_norm")]


def _params(parameters):
    return [p for p in parameters if p.grad is not None]


def _norm(gs, p=2.0):
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, p) for g in gs]), p) \
        if gs else torch.tensor(0.0)


def _clip_mutant(kind):
    def fn(parameters, max_norm):
        ps = _params(list(parameters))
        gs = [p.grad for p in ps]
        if kind == "per_param":
            for g in gs:
                g.mul_(min(1.0, max_norm / (float(g.norm()) + 1e-6)))
            return _norm(gs)
        if kind == "clamp":
            total = _norm(gs)
            for g in gs:
                g.clamp_(-max_norm, max_norm)
            return total
        total = _norm(gs, 1.0 if kind == "l1" else 2.0)
        if kind == "squared":
            total = total**2
        coef = max_norm / (total + 1e-6)
        if kind != "always":
            coef = torch.clamp(coef, max=1.0)
        if kind == "inverse":
            coef = torch.clamp((total + 1e-6) / max_norm, max=1.0)
        for p in ps:
            if kind == "not_in_place":
                p.grad = p.grad * coef
            else:
                p.grad.mul_(coef)
        if kind == "after":
            return _norm([p.grad for p in ps])
        if kind == "coef":
            return coef
        return total
    return fn


def _clip_mutants():
    return [
        Mutant(_clip_mutant("per_param"), "each parameter is clipped by its own norm: clip by the "
               "global norm over all gradients together, so the whole update keeps its direction."),
        Mutant(_clip_mutant("clamp"), "you clipped element-wise (clamping each entry): that changes "
               "the gradient's direction. Clipping by norm rescales all gradients by one factor."),
        Mutant(_clip_mutant("after"), "you returned the norm after clipping: return the total norm "
               "measured before clipping (useful for logging)."),
        Mutant(_clip_mutant("always"), "you rescaled gradients that were already under the limit: "
               "gradients whose global norm is at most max_norm must stay unchanged."),
        Mutant(_clip_mutant("squared"), "the total norm is squared: take the square root of the sum "
               "of squares."),
        Mutant(_clip_mutant("l1"), "you used an L1 norm: clipping uses the L2 (Euclidean) norm."),
        Mutant(_clip_mutant("coef"), "you returned the scaling factor: return the total norm "
               "measured before clipping."),
        Mutant(_clip_mutant("inverse"), "your scaling factor is inverted: large gradients must get "
               "smaller."),
    ]


def _clip_ref():
    from ..reference import clip_grad_norm

    return clip_grad_norm


def _clip_compare(ex, case, got, want):
    fn = ex.name
    a = case.arrays
    k = int(a["n_params"])
    dtype = case_dtype(case)
    zero = all(not np.any(a[f"g_{i}"]) for i in range(k))
    if "out" not in got:
        t = scalar_text(got.get("out_type", "nothing"))
        if t == "NoneType":
            return f"`{fn}` returned None: return the total norm (measured before clipping)."
        if t in ("list", "tuple"):
            return (f"`{fn}` returned a {t}: return one total norm over all gradients together, "
                    "as a number or a 0-d tensor.")
        return f"`{fn}` must return the total norm as a number or a 0-d tensor, it returned a {t}."
    out = got["out"]
    if out.size != 1:
        return (f"`{fn}` returned {out.size} numbers: return one total norm over all gradients "
                "together, not one per parameter.")
    for i in range(k):
        if bool(want[f"has_grad_{i}"]) != bool(got[f"has_grad_{i}"]):
            return (f"`{fn}` gave a gradient to a parameter whose .grad was None (or removed one): "
                    "skip parameters without a gradient.")
    # the result's schema is checked first (_schema): every orig_i of the reference's is in `got`, and a
    # grad_i wherever has_grad_i (the same as the reference's, from here on)
    grads_ok = all(close(got[f"orig_{i}"], want[f"orig_{i}"], dtype) for i in range(k) if f"orig_{i}" in want)
    nonfinite = any(not np.all(np.isfinite(got[key])) for key in got if key.startswith(("grad_", "orig_")))
    if zero and (nonfinite or not np.isfinite(out).all()):
        return (f"`{fn}` produced NaN or inf when every gradient is zero: the total norm is 0 "
                "there, so guard the division (PyTorch adds 1e-6 to the norm).")
    if not grads_ok:
        current_ok = all(close(got[f"grad_{i}"], want[f"orig_{i}"], dtype)
                         for i in range(k) if f"orig_{i}" in want)
        if current_ok:
            return (f"`{fn}` replaced p.grad with new tensors instead of scaling the existing ones "
                    "in place: code that holds the gradient tensors (optimizers, hooks) never sees "
                    "the clipping. Scale each p.grad in place.")
        if bool(a["as_generator"]) and all(close(got[f"orig_{i}"], a[f"g_{i}"].reshape(-1), dtype)
                                           for i in range(k)):
            return (f"`{fn}` left the gradients unchanged when parameters came as a generator "
                    "(like model.parameters()): a generator can be looped over only once, so "
                    "turn it into a list first.")
        return "values"
    if not close(out.reshape(()), want["out"].reshape(()), dtype):
        if bool(a["as_generator"]) and float(out) == 0.0:
            return (f"`{fn}` returned 0 when parameters came as a generator (like "
                    "model.parameters()): a generator can be looped over only once, so turn it "
                    "into a list first.")
        return "values"
    return None


def _clip_error_hint(case, etype, msg):
    a = case.arrays
    k = int(a["n_params"])
    if etype == "ZeroDivisionError" or all(not np.any(a[f"g_{i}"]) for i in range(k)) and "zero" in msg.lower():
        return ("when every gradient is zero the total norm is 0: guard the division "
                "(PyTorch adds 1e-6 to the norm).")
    if "NoneType" in msg or any(not bool(a[f"has_grad_{i}"]) for i in range(k)) and etype in ("AttributeError", "TypeError"):
        return "some parameters have no gradient (p.grad is None): skip them."
    if "generator" in msg.lower() or "len()" in msg:
        return ("parameters may be a generator (like model.parameters()): turn it into a list "
                "before using it more than once.")
    return None


CLIP_GRAD_NORM = Exercise("clip_grad_norm", 3, "clip", [], _clip_cases, _clip_ref, _clip_mutants,
                          compare=_clip_compare, error_hint=_clip_error_hint, output_kind="number")


EXERCISES = {ex.name: ex for ex in (RNN_STEP, STEP_JACOBIAN, GRADIENT_NORMS, SPECTRAL_BOUND, CLIP_GRAD_NORM)}
