"""Assignment 1, gradient flow: the judge's pieces of each exercise (cases, comparison, the parametrised mistake
families); the exercises themselves are specs in ``course_lib/exercises/a1_gradient_flow.py``.

Signatures, points and contracts are written in the specs (the README's contract section is made from
them).
"""
from __future__ import annotations

import numpy as np
import torch

from ._core import Case, Mutant, scalar_text, case_dtype, close, default_compare, family, size_kinds
from ._rnn_common import shape_error_hint

F32, F64 = np.float32, np.float64


def _n(rng, shape, scale=1.0, dtype=F64):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _square(case, a="x", b="h"):
    return case.arrays[a].shape[-1] == case.arrays[b].shape[-1]


_matmul_hint = shape_error_hint("Weights follow torch.nn's layout (out_features, in_features): W_xh is (H, I) and "
                                "W_hh is (H, H), while x is (B, I) and h is (B, H).")


# ======================================================================== rnn_step
def _rnn_cases(rng, hidden):
    def case(B, I, H, dtype, scale, label):
        return Case({"x": _n(rng, (B, I), 1.0, dtype), "h": np.tanh(_n(rng, (B, H), 1.0, dtype)),
                     "W_xh": _n(rng, (H, I), scale / np.sqrt(I), dtype),
                     "W_hh": _n(rng, (H, H), scale / np.sqrt(H), dtype),
                     "b": _n(rng, (H,), 0.5, dtype)}, label, kinds=size_kinds(B, I, H, scale))

    if not hidden:
        return [case(3, 4, 5, F32, 1.0, "float32, B=3, I=4, H=5"),
                case(2, 3, 2, F64, 1.0, "float64, B=2, I=3, H=2"),
                case(1, 1, 1, F64, 1.0, "float64, a batch of one, I=H=1"),
                case(3, 3, 3, F32, 3.0, "float32, large weights (saturated units), I=H=3")]
    return [case(4, 5, 6, F64, 1.0, "float64, B=4, I=5, H=6"),
            case(1, 4, 4, F32, 1.0, "float32, a batch of one, I=H=4"),
            case(2, 1, 1, F64, 1.0, "float64, I=H=1"),
            case(3, 3, 3, F64, 3.0, "float64, large weights (saturated units), I=H=3"),
            case(5, 6, 6, F64, 1.0, "float64, B=5, I=H=6")]


@family
def _rnn_mutant(act="tanh", W_hh_transposed=False, W_xh_transposed=False, swapped=False, bias="inside",
                drop=None, split=False):
    """An RNN step with the given mistakes (right: tanh(x W_xh^T + h W_hh^T + b)). ``bias``: "inside",
    "missing" or "after" the nonlinearity; ``drop``: "h" or "x" left out; ``split``: the nonlinearity
    applied to each term separately."""
    f = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "none": lambda a: a}[act]

    def fn(x, h, Wx, Wh, b):
        if swapped:
            Wx, Wh = Wh, Wx
        tx = x @ (Wx if W_xh_transposed else Wx.t())
        th = h @ (Wh if W_hh_transposed else Wh.t())
        bb = b if bias == "inside" else torch.zeros_like(b)
        if split:
            out = f(tx) + f(th + bb)
        else:
            out = f({"h": tx, "x": th}.get(drop, tx + th) + bb)
        return out + b if bias == "after" else out
    return fn


def _rnn_mutants():
    R = _rnn_mutant
    sq = lambda c: _square(c)  # noqa: E731
    return [
        Mutant(R(act="sigmoid"), "your output matches a sigmoid RNN: this course's RNN step uses tanh."),
        Mutant(R(act="relu"), "your output matches a ReLU RNN: this course's RNN step uses tanh."),
        Mutant(R(act="none"), "your output is the pre-activation: the nonlinearity is missing."),
        Mutant(R(W_hh_transposed=True),
               "W_hh is used transposed. torch.nn stores a weight as (out_features, in_features): "
               "check which index of W_hh runs over the previous state."),
        Mutant(R(W_xh_transposed=True),
               "W_xh is used transposed. torch.nn stores a weight as (out_features, in_features): "
               "check which index of W_xh runs over the input.", sq),
        Mutant(R(W_xh_transposed=True, W_hh_transposed=True),
               "both weight matrices are used transposed. torch.nn stores a weight as "
               "(out_features, in_features).", sq),
        Mutant(R(swapped=True),
               "W_xh and W_hh are swapped: one weighs the input x, the other the previous state h.", sq),
        Mutant(R(bias="missing"), "the bias b is missing."),
        Mutant(R(bias="after"), "the bias is added after the nonlinearity: it belongs to the pre-activation."),
        Mutant(R(drop="h"), "the previous state h does not enter your step: the recurrence is missing."),
        Mutant(R(drop="x"), "the input x does not enter your step."),
        Mutant(R(split=True), "the nonlinearity is applied to each term separately: it applies to their sum."),
    ]


def _rnn_ref():
    from ..reference import rnn_step

    return rnn_step


RNN_ARGS = ["x", "h", "W_xh", "W_hh", "b"]
RNN_STEP = dict(cases=_rnn_cases, reference=_rnn_ref, families=_rnn_mutants, check=dict(error_hint=_matmul_hint))


# ======================================================================== step_jacobian
def _jac_cases(rng, hidden):
    def case(H, dtype, label, sat=1.0, zero=False):
        h = np.zeros(H) if zero else np.tanh(_n(rng, (H,), sat))
        kinds = tuple(k for k, on in (("h_next = 0", zero), ("H = 1", H == 1), ("saturated units", sat > 1.5)) if on)
        return Case({"h_next": h.astype(dtype), "W_hh": _n(rng, (H, H), 1 / np.sqrt(H), dtype)}, label,
                    kinds=kinds)

    if not hidden:
        return [case(4, F32, "float32, H=4"), case(3, F64, "float64, H=3"), case(1, F64, "float64, H=1"),
                case(4, F64, "float64, H=4, saturated units (|h_next| close to 1)", sat=4.0),
                case(2, F32, "float32, h_next = 0", zero=True)]
    return [case(1, F64, "float64, H=1"),
            case(6, F64, "float64, H=6, saturated units (|h_next| close to 1)", sat=4.0),
            case(3, F32, "float32, h_next = 0", zero=True),
            case(5, F64, "float64, H=5"),
            case(7, F32, "float32, H=7")]


DERIVATIVES = {"1-h^2": lambda h: 1 - h**2, "none": torch.ones_like, "1-h": lambda h: 1 - h,
               "1-|h|": lambda h: 1 - h.abs(), "tanh again": lambda h: 1 - torch.tanh(h) ** 2,
               "sigmoid": lambda h: h * (1 - h), "negated": lambda h: h**2 - 1}


@family
def _jac_mutant(derivative="1-h^2", layout="rows"):
    """A step Jacobian with the given mistakes (right: d[i] * W_hh[i, k], d = 1 - h_next^2). ``layout``:
    "rows" (right), "transposed" (d[i] * W_hh[k, i]), "columns" (d[k] * W_hh[i, k]), "diag only" (no W_hh)."""
    d = DERIVATIVES[derivative]

    def fn(h, W):
        dh = d(h)
        if layout == "diag only":
            return torch.diag(dh)
        if layout == "columns":
            return W * dh.unsqueeze(0)
        return dh.unsqueeze(1) * (W.t() if layout == "transposed" else W)
    return fn


JAC_DERIVATIVE_HINT = "the derivative factor is wrong: write tanh'(a) in terms of tanh(a) = h_next again."


def _jac_mutants():
    J = _jac_mutant
    return [
        Mutant(J(derivative="none"), "you returned W_hh unchanged: the derivative of tanh is missing."),
        Mutant(J(layout="diag only"),
               "your Jacobian is only the derivative of tanh: W_hh, through which h enters, is missing."),
        Mutant(J(layout="transposed"), "your Jacobian is transposed: J[i, j] must be d h_next[i] / d h[j]."),
        Mutant(J(layout="columns"),
               "the derivative factors scale the wrong axis of W_hh: think about which index of J "
               "belongs to h_next and which to h."),
        Mutant(J(derivative="1-h"), JAC_DERIVATIVE_HINT),
        Mutant(J(derivative="1-|h|"), JAC_DERIVATIVE_HINT),
        Mutant(J(derivative="tanh again"),
               "you applied tanh to h_next again: h_next is already tanh(a), the step's output."),
        Mutant(J(derivative="sigmoid"), "that derivative factor is the sigmoid's (s(1 - s)): this RNN uses tanh."),
        Mutant(J(derivative="negated"), "your Jacobian has the wrong sign."),
    ]


def _jac_ref():
    from ..reference import step_jacobian

    return step_jacobian


def _jac_error_hint(case, etype, msg):
    return _matmul_hint(case, etype, msg)


JAC_ARGS = ["h_next", "W_hh"]
STEP_JACOBIAN = dict(cases=_jac_cases, reference=_jac_ref, families=_jac_mutants,
                     check=dict(error_hint=_jac_error_hint))


# ======================================================================== gradient_norms
def _seq_case(rng, T, I, H, dtype, scale, label, triangular=False):
    W = _n(rng, (H, H), scale / np.sqrt(H))
    if triangular:  # strongly non-normal: products in the wrong order differ a lot
        W = np.triu(W) * 1.5
    kinds = tuple(k for k, on in (("T = 0", T == 0), ("T = 1", T == 1), ("H = 1", H == 1),
                                  ("non-normal W_hh", triangular), ("small W_hh", scale < 1)) if on)
    a = {"x": _n(rng, (T, I), 1.0, dtype), "h0": np.tanh(_n(rng, (H,), 1.0, dtype)),
         "W_xh": _n(rng, (H, I), 1 / np.sqrt(I), dtype), "W_hh": W.astype(dtype), "b": _n(rng, (H,), 0.3, dtype)}
    return Case({**a, **_grader_pieces(a)}, label, kinds=kinds)


def _grader_pieces(a: dict) -> dict:
    """The grader's own states and step Jacobians for the sequence: ``gradient_norms`` is graded with them
    in place of the student's ``rnn_step`` and ``step_jacobian`` (``_protocol._grader_pieces``), so that a
    mistake in those is charged once, in its own exercise."""
    from ..reference import rnn_step, step_jacobian

    t = {k: torch.from_numpy(v) for k, v in a.items()}
    hs = [t["h0"]]
    for k in range(t["x"].shape[0]):
        hs.append(rnn_step(t["x"][k:k + 1], hs[-1].unsqueeze(0), t["W_xh"], t["W_hh"], t["b"])[0])
    J = [step_jacobian(h, t["W_hh"]) for h in hs[1:]]
    H = t["h0"].shape[0]
    return {"pieces.hs": torch.stack(hs).numpy(),
            "pieces.J": (torch.stack(J) if J else t["h0"].new_zeros(0, H, H)).numpy()}


def _gn_cases(rng, hidden):
    if not hidden:
        return [_seq_case(rng, 5, 3, 4, F64, 1.2, "float64, T=5, I=3, H=4"),
                _seq_case(rng, 3, 2, 3, F64, 2.0, "float64, T=3, I=2, H=3, large W_hh"),
                _seq_case(rng, 0, 2, 3, F64, 1.0, "float64, T=0 (no steps)"),
                _seq_case(rng, 1, 2, 1, F64, 0.8, "float64, T=1, H=1, small W_hh"),
                _seq_case(rng, 4, 3, 4, F32, 1.0, "float32, T=4, non-normal W_hh", triangular=True)]
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


NORMS = {"spectral": lambda M: torch.linalg.matrix_norm(M, ord=2), "frobenius": torch.linalg.matrix_norm,
         "eigenvalue": lambda M: torch.linalg.eigvals(M).abs().max().to(M.dtype)}


@family
def _gn_mutant(norm="spectral", reversed_=False, derivative=True, state="produced", order="right",
               single_step=False):
    """Gradient norms by Jacobian products with the given mistakes (right: entry j is the spectral norm of
    J_T ... J_{j+1}, J_t = diag(1 - h_t^2) W_hh). ``state``: the state each J_t is evaluated at, "produced"
    (h_t, right) or "previous" (h_{t-1}); ``order``: "right" (the latest step on the left) or "left" (which
    gives the norms that transposed step Jacobians in the right order give)."""
    def fn(x, h0, Wx, Wh, b):
        hs = _states(x, h0, Wx, Wh, b)
        T, H = x.shape[0], h0.shape[0]
        steps = []  # steps[t-1] = dh_t/dh_{t-1}
        for t in range(1, T + 1):
            at = hs[t - 1] if state == "previous" else hs[t]
            steps.append((1 - at**2).unsqueeze(1) * Wh if derivative else Wh.clone())
        out = [None] * (T + 1)
        J = torch.eye(H, dtype=x.dtype)
        out[T] = NORMS[norm](J)
        for j in range(T - 1, -1, -1):
            if single_step:
                out[j] = NORMS[norm](steps[j])
                continue
            J = steps[j] @ J if order == "left" else J @ steps[j]
            out[j] = NORMS[norm](J)
        res = torch.stack(out)
        return res.flip(0) if reversed_ else res
    return fn


def _gn_mutants():
    G = _gn_mutant
    return [
        Mutant(G(norm="frobenius"),
               "you measured the Frobenius norm (matrix_norm's default): the bound is about the "
               "spectral norm, the largest singular value."),
        Mutant(G(norm="eigenvalue"),
               "you measured the largest |eigenvalue|: the spectral norm is the largest singular value "
               "(torch.linalg.matrix_norm(M, ord=2)); the two differ for a non-symmetric product."),
        Mutant(G(reversed_=True),
               "your norms are in reverse order: entry j is ||dh_T/dh_j||, so the last entry is "
               "the norm of dh_T/dh_T."),
        Mutant(G(derivative=False),
               "your step Jacobians lack the derivative of tanh: you measured powers of W_hh."),
        Mutant(G(state="previous"),
               "each step's Jacobian is evaluated at the wrong state (off by one step in time): "
               "use the state that the step produced."),
        Mutant(G(order="left"),
               "the Jacobians are multiplied in the wrong order (or each step Jacobian is transposed, which "
               "gives the same norms): the chain rule puts the latest step's Jacobian on the left, and "
               "J_t[i, k] = d h_t[i] / d h_{t-1}[k]."),
        Mutant(G(single_step=True),
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


GN_ARGS = ["x", "h0", "W_xh", "W_hh", "b"]
GRADIENT_NORMS = dict(cases=_gn_cases, reference=_gn_ref, families=_gn_mutants,
                      check=dict(compare=_length_compare, error_hint=_matmul_hint))


# ======================================================================== spectral_bound
def _sb_cases(rng, hidden):
    def case(H, T, gamma, dtype, label, scale=1.2, kind="random"):
        W = _n(rng, (H, H), scale / np.sqrt(H))
        if kind == "triangular":
            W = np.triu(W) + np.diag(np.full(H, 0.3))
        kinds = tuple(k for k, on in (("T = 0", T == 0), ("H = 1", H == 1), ("gamma != 1", gamma != 1.0),
                                      ("non-normal W_hh", kind == "triangular")) if on)
        return Case({"W_hh": W.astype(dtype), "T": np.array(T, dtype=np.int64),
                     "gamma": np.array(gamma, dtype=np.float64)}, label, kinds=kinds)

    if not hidden:
        return [case(4, 6, 1.0, F64, "float64, H=4, T=6, gamma=1"),
                case(3, 4, 0.25, F32, "float32, H=3, T=4, gamma=0.25"),
                case(1, 0, 1.0, F64, "float64, H=1, T=0"),
                case(4, 5, 1.0, F64, "float64, H=4, T=5, non-normal (triangular) W_hh", kind="triangular")]
    return [case(3, 0, 1.0, F64, "float64, T=0"),
            case(1, 5, 1.0, F64, "float64, H=1"),
            case(5, 10, 1.0, F64, "float64, T=10, non-normal (triangular) W_hh", kind="triangular"),
            case(4, 7, 0.5, F64, "float64, T=7, gamma=0.5", scale=2.0),
            case(6, 5, 1.0, F32, "float32, H=6, T=5", kind="triangular")]


SIGMAS = {"svd": lambda W: torch.linalg.matrix_norm(W, ord=2), "eig": lambda W: torch.linalg.eigvals(W).abs().max().to(W.dtype),
          "fro": torch.linalg.matrix_norm, "min": lambda W: torch.linalg.svdvals(W).min(),
          "inf": lambda W: torch.linalg.matrix_norm(W, ord=float("inf")),
          "one": lambda W: torch.linalg.matrix_norm(W, ord=1)}


@family
def _sb_mutant(sigma="svd", distance="T-j", gamma="inside"):
    """The spectral bound with the given mistakes (right: (gamma sigma_max)^(T-j)). ``distance``: "T-j",
    "reversed" (j) or "off by one" (T-j+1); ``gamma``: "inside" the power, "outside" or "ignored"."""
    def fn(W, T, g=1.0):
        T = int(T)
        dist = torch.arange(T, -1, -1, dtype=W.dtype)
        s = SIGMAS[sigma](W)
        if distance == "reversed":
            dist = dist.flip(0)
        if distance == "off by one":
            dist = dist + 1
        if gamma == "outside":
            return g * s**dist
        if gamma == "ignored":
            return s**dist
        return (g * s) ** dist
    return fn


def _sb_mutants():
    S = _sb_mutant
    return [
        Mutant(S(sigma="eig"), "you used the largest |eigenvalue| of W_hh: the bound needs the "
               "largest singular value (the two differ when W_hh is not symmetric)."),
        Mutant(S(sigma="fro"), "you used the Frobenius norm of W_hh: the bound needs the spectral "
               "norm, its largest singular value."),
        Mutant(S(sigma="min"), "you used the smallest singular value of W_hh: the bound needs "
               "the largest."),
        Mutant(S(sigma="inf"), "you used the max-row-sum (infinity) norm of W_hh: the bound "
               "needs the largest singular value."),
        Mutant(S(sigma="one"), "you used the max-column-sum (1-) norm of W_hh: the bound needs "
               "the largest singular value."),
        Mutant(S(distance="reversed"), "your bound is in reverse order: entry j bounds ||dh_T/dh_j||, "
               "whose distance is T - j."),
        Mutant(S(distance="off by one"), "the exponent is off by one: the entry for j = T covers "
               "no step at all."),
        Mutant(S(gamma="outside"), "gamma multiplies once instead of once per step: it "
               "belongs inside the power."),
        Mutant(S(gamma="ignored"), "gamma is ignored."),
    ]


def _sb_ref():
    from ..reference import spectral_bound

    def bound(W, T, gamma=1.0):
        dist = torch.arange(int(T), -1, -1, dtype=W.dtype)
        return spectral_bound(W, int(T), "linear") * torch.as_tensor(gamma, dtype=W.dtype) ** dist
    return bound


SB_ARGS = ["W_hh", "T", "gamma"]
SPECTRAL_BOUND = dict(cases=_sb_cases, reference=_sb_ref, families=_sb_mutants, check=dict(compare=_length_compare))


# ======================================================================== clip_grad_norm
def _clip_case(rng, shapes, dtype, max_norm, label, scale=1.0, zero=False, none=(), gen=False):
    arr = {"n_params": np.array(len(shapes)), "as_generator": np.array(gen),
           "max_norm": np.array(float(max_norm))}
    for i, s in enumerate(shapes):
        g = np.zeros(s) if zero else _n(rng, s, scale * (1 + 2 * i))
        arr[f"shape_{i}"] = np.array(s, dtype=np.int64)
        arr[f"g_{i}"] = g.astype(dtype)
        arr[f"has_grad_{i}"] = np.array(i not in none)
    norm = np.sqrt(sum(float(np.sum(arr[f"g_{i}"].astype(F64) ** 2)) for i in range(len(shapes)) if i not in none))
    kinds = [k for k, on in (("parameters as a generator", gen), ("a .grad that is None", bool(none)),
                             ("one parameter", len(shapes) == 1), ("every gradient zero", zero)) if on]
    kinds.append("global norm above max_norm" if norm > max_norm else "global norm below max_norm")
    return Case(arr, label, kinds=tuple(kinds))


def _clip_cases(rng, hidden):
    sh = [(3, 4), (4,), (2, 2)]
    if not hidden:
        return [_clip_case(rng, sh, F32, 1.0, "float32, 3 parameters, global norm above max_norm"),
                _clip_case(rng, sh, F32, 100.0, "float32, 3 parameters, global norm below max_norm"),
                _clip_case(rng, sh, F32, 1.0, "float32, every gradient zero", zero=True),
                _clip_case(rng, [(2, 3), (3,), (4,)], F64, 1.0,
                           "float64, parameters given as a generator, one .grad is None", none=(1,), gen=True),
                _clip_case(rng, [(5,)], F64, 0.5, "float64, one parameter, above max_norm")]
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


@family
def _clip_mutant(scope="global", norm="l2", report="before", rescale="above", in_place=True, guard=True,
                 listed=True):
    """clip_grad_norm with the given mistakes. ``scope``: "global" (right), "per_param" (each by its own
    norm) or "clamp" (element-wise); ``norm``: "l2", "l1" or "squared"; ``report``: the norm "before"
    clipping (right), "after" it, or the "coef"; ``rescale``: only "above" max_norm (right), "always", or
    "inverse" (by norm / max_norm); ``guard``: 1e-6 added to the norm; ``listed``: the parameters made a list
    first (a generator, like model.parameters(), is used up by the first loop over it)."""
    def fn(parameters, max_norm):
        if listed:
            parameters = list(parameters)
        gs = [p.grad for p in parameters if p.grad is not None]
        total = _norm(gs, 1.0 if norm == "l1" else 2.0)
        if norm == "squared":
            total = total**2
        eps = 1e-6
        if not guard:  # the factor in Python floats, no 1e-6 added: ZeroDivisionError when every gradient is 0
            eps = max_norm / float(total) * 0.0
        if scope == "per_param":
            coefs = [torch.clamp(max_norm / (torch.linalg.vector_norm(g) + eps), max=1.0) for g in gs]
        elif rescale == "inverse":
            coefs = [torch.clamp((total + eps) / max_norm, max=1.0)] * len(gs)
        else:
            coef = max_norm / (total + eps)
            coefs = [coef if rescale == "always" else torch.clamp(coef, max=1.0)] * len(gs)
        for p, c in zip([p for p in parameters if p.grad is not None], coefs):
            if scope == "clamp":
                p.grad.clamp_(-max_norm, max_norm)
            elif in_place:
                p.grad.mul_(c)
            else:
                p.grad = p.grad * c
        if report == "after":
            return _norm([p.grad for p in parameters if p.grad is not None])
        return coefs[0] if report == "coef" and coefs else total
    return fn


def _clip_mutants():
    C = _clip_mutant
    return [
        Mutant(C(scope="per_param"), "each parameter is clipped by its own norm: clip by the "
               "global norm over all gradients together, so the whole update keeps its direction."),
        Mutant(C(scope="clamp"), "you clipped element-wise (clamping each entry): that changes "
               "the gradient's direction. Clipping by norm rescales all gradients by one factor."),
        Mutant(C(report="after"), "you returned the norm after clipping: return the total norm "
               "measured before clipping (useful for logging)."),
        Mutant(C(rescale="always"), "you rescaled gradients that were already under the limit: "
               "gradients whose global norm is at most max_norm must stay unchanged."),
        Mutant(C(norm="squared"), "the total norm is squared: take the square root of the sum "
               "of squares."),
        Mutant(C(norm="l1"), "you used an L1 norm: clipping uses the L2 (Euclidean) norm."),
        Mutant(C(report="coef"), "you returned the scaling factor: return the total norm "
               "measured before clipping."),
        Mutant(C(rescale="inverse"), "your scaling factor is inverted: large gradients must get "
               "smaller."),
        # alone, these get their own hints from _clip_compare; here for when they come with another mistake
        Mutant(C(in_place=False), NOT_IN_PLACE_HINT),
        Mutant(C(guard=False), NO_GUARD_HINT),
        Mutant(C(listed=False), GENERATOR_HINT),
    ]


NOT_IN_PLACE_HINT = ("p.grad is replaced with new tensors instead of scaling the existing ones in place: code that "
                     "holds the gradient tensors (optimizers, hooks) never sees the clipping. Scale each p.grad in "
                     "place.")
NO_GUARD_HINT = "when every gradient is zero the total norm is 0: guard the division (PyTorch adds 1e-6 to the norm)."
GENERATOR_HINT = ("parameters may come as a generator (like model.parameters()), which can be looped over only "
                  "once: turn it into a list first.")


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
    grads_ok = all(close(got[key], want[key], dtype) for i in range(k) for key in (f"orig_{i}", f"grad_{i}")
                   if key in want and key in got)
    nonfinite = any(not np.all(np.isfinite(got[key])) for key in got if key.startswith(("grad_", "orig_")))
    if zero and (nonfinite or not np.isfinite(out).all()):
        return f"`{fn}` produced NaN or inf: {NO_GUARD_HINT}"
    if not grads_ok:
        current_ok = all(close(got[f"grad_{i}"], want[f"orig_{i}"], dtype)
                         for i in range(k) if f"orig_{i}" in want)
        if current_ok and close(out.reshape(()), want["out"].reshape(()), dtype):
            return f"in `{fn}`, {NOT_IN_PLACE_HINT}"
        if bool(a["as_generator"]) and all(close(got[f"orig_{i}"], a[f"g_{i}"].reshape(-1), dtype)
                                           for i in range(k)):
            return f"`{fn}` left the gradients unchanged: {GENERATOR_HINT}"
        return "values"
    if not close(out.reshape(()), want["out"].reshape(()), dtype):
        if bool(a["as_generator"]) and float(out) == 0.0:
            return f"`{fn}` returned 0: {GENERATOR_HINT}"
        return "values"
    return None


def _clip_error_hint(case, etype, msg):
    a = case.arrays
    k = int(a["n_params"])
    if etype == "ZeroDivisionError" or all(not np.any(a[f"g_{i}"]) for i in range(k)) and "zero" in msg.lower():
        return NO_GUARD_HINT
    if "NoneType" in msg or any(not bool(a[f"has_grad_{i}"]) for i in range(k)) and etype in ("AttributeError", "TypeError"):
        return "some parameters have no gradient (p.grad is None): skip them."
    if "generator" in msg.lower() or "len()" in msg:
        return GENERATOR_HINT
    return None


CLIP_ARGS = []
CLIP_GRAD_NORM = dict(cases=_clip_cases, reference=_clip_ref, families=_clip_mutants, check=dict(
    compare=_clip_compare, error_hint=_clip_error_hint, output_kind="number"))
