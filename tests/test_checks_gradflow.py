"""course_lib.checks for assignment 1: correct code written differently passes, and every known
mistake, written the way a student would, gets its own hint (and never the answer)."""
import math

import pytest
import torch

from course_lib import checks
from course_lib.checks import GRADFLOW
from course_lib.checks._core import verdict


def hint_of(check, fn, hidden=True):
    with pytest.raises(AssertionError) as e:
        check(fn, hidden=hidden, seed=123)
    return str(e.value)


def mistake_params(tables):
    """``(check, fn, words)`` for every row of ``{exercise: (check, {name: (fn, words)})}``, id ``exercise/name``:
    one parametrised test serves every exercise's mistake table."""
    return [pytest.param(check, fn, words, id=f"{exercise}/{name}")
            for exercise, (check, table) in tables.items() for name, (fn, words) in table.items()]


def assert_hides_expected(hint, ex, output):
    """The hint names no expected value of ``output`` on ex's first visible case (3 decimals, as hints print)."""
    want = ex.call(ex.reference(), ex.cases(0, False)[0])[output]
    for v in want.ravel()[:5]:
        assert f"{v:.3f}" not in hint


# ------------------------------------------------------------------ rnn_step
def rnn_vectorised(x, h, W_xh, W_hh, b):
    return torch.tanh(x @ W_xh.T + h @ W_hh.T + b)


def rnn_loops(x, h, W_xh, W_hh, b):
    B, H = h.shape
    out = torch.zeros(B, H, dtype=x.dtype)
    for n in range(B):
        for i in range(H):
            a = b[i] + sum(W_xh[i, k] * x[n, k] for k in range(x.shape[1])) \
                + sum(W_hh[i, k] * h[n, k] for k in range(H))
            out[n, i] = torch.tanh(a)
    return out


def rnn_linear(x, h, W_xh, W_hh, b):
    return torch.tanh(torch.nn.functional.linear(x, W_xh, b) + torch.nn.functional.linear(h, W_hh))


def rnn_einsum_manual_tanh(x, h, W_xh, W_hh, b):
    a = torch.einsum("bi,hi->bh", x, W_xh) + torch.einsum("bk,hk->bh", h, W_hh) + b
    return (torch.exp(2 * a) - 1) / (torch.exp(2 * a) + 1)


@pytest.mark.parametrize("fn", [rnn_vectorised, rnn_loops, rnn_linear, rnn_einsum_manual_tanh])
def test_rnn_step_correct_variants_pass(fn):
    assert checks.check_rnn_step(fn, hidden=True, seed=7) is None


RNN_MUTANTS = {
    "sigmoid": (lambda x, h, Wx, Wh, b: torch.sigmoid(x @ Wx.T + h @ Wh.T + b), "sigmoid"),
    "no tanh": (lambda x, h, Wx, Wh, b: x @ Wx.T + h @ Wh.T + b, "nonlinearity is missing"),
    "W_hh not transposed": (lambda x, h, Wx, Wh, b: torch.tanh(x @ Wx.T + h @ Wh + b), "W_hh is used transposed"),
    "no bias": (lambda x, h, Wx, Wh, b: torch.tanh(x @ Wx.T + h @ Wh.T), "bias b is missing"),
    "bias outside": (lambda x, h, Wx, Wh, b: torch.tanh(x @ Wx.T + h @ Wh.T) + b, "after the nonlinearity"),
    "no recurrence": (lambda x, h, Wx, Wh, b: torch.tanh(x @ Wx.T + b), "recurrence is missing"),
    "W_xh not transposed": (lambda x, h, Wx, Wh, b: torch.tanh(x @ Wx + h @ Wh.T + b), "mismatched shapes"),
    "float32 always": (lambda x, h, Wx, Wh, b: torch.tanh(x.float() @ Wx.float().T + h.float() @ Wh.float().T + b.float()), "keep the inputs' dtype"),
    "in place": (lambda x, h, Wx, Wh, b: h.copy_(torch.tanh(x @ Wx.T + h @ Wh.T + b)), "in place"),
    "no return": (lambda x, h, Wx, Wh, b: None, "forget the `return`"),
    "list": (lambda x, h, Wx, Wh, b: torch.tanh(x @ Wx.T + h @ Wh.T + b).tolist(), "must return a torch.Tensor"),
    "transposed output": (lambda x, h, Wx, Wh, b: torch.tanh(x @ Wx.T + h @ Wh.T + b).T, "shape"),
}


@pytest.mark.parametrize("name", RNN_MUTANTS)
def test_rnn_step_mutants_get_their_hint(name):
    fn, expected = RNN_MUTANTS[name]
    hint = hint_of(checks.check_rnn_step, fn)
    assert expected in hint, hint


def test_swapped_weights_found_on_hidden_square_case():
    swapped = lambda x, h, Wx, Wh, b: torch.tanh(x @ Wh.T + h @ Wx.T + b)  # noqa: E731
    assert "swapped" in hint_of(checks.check_rnn_step, swapped) or "mismatched" in hint_of(checks.check_rnn_step, swapped)
    ex = GRADFLOW["rnn_step"]
    square = [c for c in ex.cases(5, hidden=True) if c.arrays["x"].shape[1] == c.arrays["h"].shape[1]]
    v = verdict(ex, square, [ex.call(swapped, c) for c in square])
    assert not v.passed and "swapped" in v.hint


def test_not_implemented_and_exceptions_become_hints():
    def blank(*a):
        raise NotImplementedError()

    assert "not implemented yet" in hint_of(checks.check_rnn_step, blank)

    def boom(x, h, Wx, Wh, b):
        return {}["missing"]

    assert "raised KeyError" in hint_of(checks.check_rnn_step, boom)
    assert "is not a function" in hint_of(checks.check_rnn_step, 42)


def test_hints_never_reveal_expected_values():
    bad = lambda x, h, Wx, Wh, b: torch.tanh(x @ Wx.T + h @ Wh.T + b) + 0.01  # noqa: E731
    hint = hint_of(checks.check_rnn_step, bad)
    assert "None of the usual mistakes" in hint
    assert_hides_expected(hint, GRADFLOW["rnn_step"], "out")


def test_time_limit_in_kernel(monkeypatch):
    monkeypatch.setattr("course_lib.checks._core.KERNEL_TIME_LIMIT", 0.3)

    def slow(*a):
        while True:
            pass

    assert "time limit" in hint_of(checks.check_rnn_step, slow, hidden=False)


# ------------------------------------------------------------------ step_jacobian
def jac_diag(h, W):
    return torch.diag(1 - h**2) @ W


def jac_loops(h, W):
    H = h.shape[0]
    J = torch.empty(H, H, dtype=h.dtype)
    for i in range(H):
        for j in range(H):
            J[i, j] = (1 - h[i] * h[i]) * W[i, j]
    return J


def jac_autograd(h, W):
    a = torch.atanh(h.clamp(-1 + 1e-12, 1 - 1e-12)).detach()  # recover a pre-activation with tanh(a) = h
    h_prev = torch.linalg.lstsq(W, a.unsqueeze(1)).solution.squeeze(1)
    return torch.autograd.functional.jacobian(lambda hp: torch.tanh(W @ hp), h_prev)


@pytest.mark.parametrize("fn", [jac_diag, jac_loops])
def test_step_jacobian_correct_variants_pass(fn):
    assert checks.check_step_jacobian(fn, hidden=True, seed=3) is None


def test_step_jacobian_autograd_variant_passes_visible():
    assert checks.check_step_jacobian(jac_autograd) is None


JAC_MUTANTS = {
    "no derivative": (lambda h, W: W, "derivative of tanh is missing"),
    "transposed": (lambda h, W: torch.diag(1 - h**2) @ W.T, "transposed"),
    "columns": (lambda h, W: W @ torch.diag(1 - h**2), "wrong axis"),
    "1 - h": (lambda h, W: torch.diag(1 - h) @ W, "derivative factor is wrong"),
    "tanh again": (lambda h, W: torch.diag(1 - torch.tanh(h) ** 2) @ W, "applied tanh to h_next again"),
    "sigmoid": (lambda h, W: torch.diag(h * (1 - h)) @ W, "sigmoid"),
    "diag only": (lambda h, W: torch.diag(1 - h**2), "W_hh, through which h enters, is missing"),
    "vector": (lambda h, W: (1 - h**2) * W.diagonal(), "shape"),
}


@pytest.mark.parametrize("name", JAC_MUTANTS)
def test_step_jacobian_mutants_get_their_hint(name):
    fn, expected = JAC_MUTANTS[name]
    assert expected in hint_of(checks.check_step_jacobian, fn)


# ------------------------------------------------------------------ gradient_norms
def gn_products(x, h0, W_xh, W_hh, b):
    hs = [h0]
    for t in range(x.shape[0]):
        hs.append(rnn_vectorised(x[t:t + 1], hs[-1].unsqueeze(0), W_xh, W_hh, b)[0])
    T = x.shape[0]
    J = torch.eye(h0.shape[0], dtype=x.dtype)
    norms = [torch.linalg.matrix_norm(J, ord=2)]
    for t in range(T, 0, -1):
        J = J @ jac_diag(hs[t], W_hh)
        norms.append(torch.linalg.matrix_norm(J, ord=2))
    return torch.stack(norms[::-1])


def gn_svd_list(x, h0, W_xh, W_hh, b):
    T = x.shape[0]
    hs = [h0]
    for t in range(T):
        hs.append(torch.tanh(W_xh @ x[t] + W_hh @ hs[-1] + b))
    out = []
    for j in range(T + 1):
        J = torch.eye(h0.shape[0], dtype=x.dtype)
        for t in range(j + 1, T + 1):
            J = jac_loops(hs[t], W_hh) @ J
        out.append(float(torch.linalg.svdvals(J)[0]))
    return torch.tensor(out, dtype=x.dtype)


@pytest.mark.parametrize("fn", [gn_products, gn_svd_list])
def test_gradient_norms_correct_variants_pass(fn):
    assert checks.check_gradient_norms(fn, hidden=True, seed=11) is None


def _gn(kind):
    def fn(x, h0, W_xh, W_hh, b):
        T = x.shape[0]
        hs = [h0]
        for t in range(T):
            hs.append(torch.tanh(W_xh @ x[t] + W_hh @ hs[-1] + b))
        J = torch.eye(h0.shape[0], dtype=x.dtype)
        norm = torch.linalg.matrix_norm if kind == "fro" else (lambda M: torch.linalg.matrix_norm(M, ord=2))
        norms = [norm(J)]
        for t in range(T, 0, -1):
            step = W_hh if kind == "noderiv" else jac_diag(hs[t - 1] if kind == "prev" else hs[t], W_hh)
            J = step @ J if kind == "order" else J @ step
            norms.append(norm(J))
        if kind == "short":
            return torch.stack(norms[1:][::-1]) if T else torch.zeros(0, dtype=x.dtype)
        return torch.stack(norms) if kind == "reversed" else torch.stack(norms[::-1])
    return fn


GN_MUTANTS = {
    "fro": "Frobenius", "reversed": "reverse order", "noderiv": "lack the derivative of tanh",
    "prev": "wrong state", "order": "wrong order", "short": "return T+1",
}


@pytest.mark.parametrize("kind", GN_MUTANTS)
def test_gradient_norms_mutants_get_their_hint(kind):
    assert GN_MUTANTS[kind] in hint_of(checks.check_gradient_norms, _gn(kind))


# ------------------------------------------------------------------ spectral_bound
def sb_svd(W, T, gamma=1.0):
    s = torch.linalg.svdvals(W)[0]
    return torch.stack([(gamma * s) ** (T - j) for j in range(T + 1)])


def sb_power_loop(W, T, gamma=1.0):
    s = float(torch.linalg.matrix_norm(W.double(), ord=2))
    return torch.tensor([(gamma * s) ** (T - j) for j in range(T + 1)], dtype=W.dtype)


@pytest.mark.parametrize("fn", [sb_svd, sb_power_loop])
def test_spectral_bound_correct_variants_pass(fn):
    assert checks.check_spectral_bound(fn, hidden=True, seed=5) is None


def _sb(kind):
    def fn(W, T, gamma=1.0):
        s = {"eig": lambda: torch.linalg.eigvals(W).abs().max().to(W.dtype),
             "fro": lambda: torch.linalg.norm(W)}.get(kind, lambda: torch.linalg.svdvals(W)[0])()
        d = torch.arange(T + 1, dtype=W.dtype) if kind == "rev" else torch.arange(T, -1, -1, dtype=W.dtype)
        if kind == "outside":
            return gamma * s**d
        if kind == "nogamma":
            return s**d
        if kind == "short":
            return (gamma * s) ** torch.arange(T, 0, -1, dtype=W.dtype)
        return (gamma * s) ** d
    return fn


SB_MUTANTS = {"eig": "eigenvalue", "fro": "Frobenius", "rev": "reverse order", "outside": "inside the power",
              "nogamma": "gamma is ignored", "short": "return T+1"}


@pytest.mark.parametrize("kind", SB_MUTANTS)
def test_spectral_bound_mutants_get_their_hint(kind):
    assert SB_MUTANTS[kind] in hint_of(checks.check_spectral_bound, _sb(kind))


# ------------------------------------------------------------------ clip_grad_norm
def clip_loop(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    total = math.sqrt(sum(float((g**2).sum()) for g in grads))
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g.mul_(coef)
    return torch.tensor(total)


def clip_vectorised(parameters, max_norm):
    grads = [p.grad for p in list(parameters) if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.cat([g.reshape(-1) for g in grads]).norm()
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g *= scale
    return total


def clip_float(parameters, max_norm):
    ps = [p for p in parameters if p.grad is not None]
    total = sum(p.grad.pow(2).sum().item() for p in ps) ** 0.5
    if total > max_norm:
        for p in ps:
            p.grad.data.mul_(max_norm / (total + 1e-6))
    return total


@pytest.mark.parametrize("fn", [clip_loop, clip_vectorised, clip_float, torch.nn.utils.clip_grad_norm_])
def test_clip_correct_variants_pass(fn):
    assert checks.check_clip_grad_norm(fn, hidden=True, seed=9) is None


def _clip(kind):
    def fn(parameters, max_norm):
        ps = list(parameters) if kind != "generator" else parameters
        if kind == "generator":
            total = math.sqrt(sum(float((p.grad**2).sum()) for p in ps if p.grad is not None))
            for p in ps:
                if p.grad is not None:
                    p.grad.mul_(min(1.0, max_norm / (total + 1e-6)))
            return torch.tensor(total)
        ps = [p for p in ps if kind == "none" or p.grad is not None]
        if kind == "per_param":
            for p in ps:
                n = float(p.grad.norm())
                if n > max_norm:
                    p.grad.mul_(max_norm / n)
            return torch.tensor(math.sqrt(sum(float(p.grad.norm()) ** 2 for p in ps)))
        total = torch.sqrt(sum((p.grad**2).sum() for p in ps))
        if kind == "clamp":
            for p in ps:
                p.grad.clamp_(-max_norm, max_norm)
            return total
        if kind == "noguard":
            coef = max_norm / float(total)
            if coef < 1:
                for p in ps:
                    p.grad.mul_(coef)
            return total
        if kind == "always":
            for p in ps:
                p.grad.mul_(max_norm / (total + 1e-6))
            return total
        coef = min(1.0, max_norm / (float(total) + 1e-6))
        for p in ps:
            if kind == "copy":
                p.grad = p.grad * coef
            else:
                p.grad.mul_(coef)
        if kind == "after":
            return torch.sqrt(sum((p.grad**2).sum() for p in ps))
        if kind == "list":
            return [p.grad.norm() for p in ps]
        if kind == "noreturn":
            return None
        return total
    return fn


CLIP_MUTANTS = {
    "per_param": "global norm", "clamp": "element-wise", "after": "after clipping",
    "copy": "in place", "always": "already under the limit", "noguard": "guard the division",
    "generator": "generator", "none": "no gradient", "list": "one total norm", "noreturn": "returned None",
}


@pytest.mark.parametrize("kind", CLIP_MUTANTS)
def test_clip_mutants_get_their_hint(kind):
    hint = hint_of(checks.check_clip_grad_norm, _clip(kind))
    assert CLIP_MUTANTS[kind] in hint, hint


@pytest.mark.parametrize("kind", ["per_param", "clamp", "after", "copy", "always", "noguard"])
def test_clip_mistakes_in_the_spec_are_caught_on_visible_cases(kind):
    with pytest.raises(AssertionError):
        checks.check_clip_grad_norm(_clip(kind))


def test_verdict_is_computed_from_arrays_only():
    """The judge's inputs and outputs are plain numpy arrays: no objects cross the boundary."""
    import numpy as np

    for ex in GRADFLOW.values():
        for hidden in (False, True):
            for case in ex.cases(1, hidden):
                assert all(isinstance(v, np.ndarray) and v.dtype != object for v in case.arrays.values())
                out = ex.call(ex.reference(), case)
                assert all(isinstance(v, np.ndarray) and v.dtype != object for v in out.values())
