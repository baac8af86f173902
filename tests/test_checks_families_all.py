"""Mistakes as families in every exercise (issue 17): each known mistake is named whether or not another one is
made too, two mistakes made together are both named (also when the second shows on another case only), an
exercise built on earlier ones is graded with the grader's own pieces, and correct variants still pass."""
import itertools

import numpy as np
import pytest
import torch

from course_lib import checks
from course_lib.checks import ASSIGNMENTS
from course_lib.checks._core import case_dtype, close, combine, run_check

EXERCISES = {name: ex for exs in ASSIGNMENTS.values() for name, ex in exs.items()}


def _outputs(ex, fn, cases):
    return [ex.call(fn, c) for c in cases]


def _same(o1, o2, cases):
    """Two lists of results that are the same (a pair of mistakes that amounts to one of them)."""
    for a, b, case in zip(o1, o2, cases):
        if set(a) != set(b):
            return False
        for k in a:
            x, y = np.asarray(a[k]), np.asarray(b[k])
            if x.dtype.kind in "fiub":
                if not close(x, y, case_dtype(case)):
                    return False
            elif str(x) != str(y):
                return False
    return True


def distinct_pairs(name, seed=11):
    """Every pair of one family's mistakes that runs and differs from each single mistake (some pairs amount to
    one mistake: clipping per parameter ignores how the global factor is clamped)."""
    ex = EXERCISES[name]
    ms = ex.mutants()
    cases = ex.cases(0, hidden=False) + ex.cases(seed, hidden=True)
    single = [_outputs(ex, m.fn, cases) for m in ms]
    out = []
    for a, b in itertools.combinations(ms, 2):
        both = combine(a, b)
        if both is None:
            continue
        o = _outputs(ex, both.fn, cases)
        if any("error_type" in r for r in o) or any(_same(o, s, cases) for s in single):
            continue
        out.append((a, b, both))
    return out


def hint(name, fn, seed=11):
    with pytest.raises(AssertionError) as e:
        run_check(EXERCISES[name], fn, hidden=True, seed=seed)
    return str(e.value)


@pytest.mark.parametrize("name", ["rnn_step", "step_jacobian", "gradient_norms", "spectral_bound",
                                  "clip_grad_norm", "numerical_gradient", "run_rnn"])
def test_every_two_mistakes_of_a_family_are_both_named(name):
    pairs = distinct_pairs(name)
    assert len(pairs) >= 5, name  # a family, not single forms
    for a, b, both in pairs:
        h = hint(name, both.fn)
        assert a.hint in h and b.hint in h, (a.hint, b.hint, h)


@pytest.mark.parametrize("name,knobs", [
    ("stacked_rnn", [({"residual_mode": "mismatched"}, {"hn_order": "direction"}),
                     ({"residual_masked": False}, {"hn_order": "direction"}),
                     ({"residual_fed": False}, {"hn_order": "direction"})]),
    ("train_loop", [({"resume": "model only"}, {"nan": "same lr"}),
                    ({"periodic": False}, {"nan": "skip only"}),
                    ({"saved_step": "this"}, {"nan": "model only"})]),
])
def test_two_mistakes_in_the_costly_exercises_are_both_named(name, knobs):
    ex = EXERCISES[name]
    by_knobs = {tuple(sorted(m.knobs.items())): m for m in ex.mutants()}
    for ka, kb in knobs:
        a, b = by_knobs[tuple(sorted(ka.items()))], by_knobs[tuple(sorted(kb.items()))]
        h = hint(name, combine(a, b).fn)
        assert a.hint in h and b.hint in h, (a.hint, b.hint, h)


@pytest.mark.parametrize("name", ["rnn_step", "step_jacobian", "gradient_norms", "spectral_bound", "clip_grad_norm",
                                  "numerical_gradient", "run_rnn", "stacked_rnn", "train_loop"])
def test_every_single_mistake_is_named(name):
    ex = EXERCISES[name]
    cases = ex.cases(0, hidden=False) + ex.cases(11, hidden=True)
    for m in ex.mutants():
        if any("error_type" in r for r in _outputs(ex, m.fn, cases)):
            continue  # a mistake that cannot run on some case gets the error's own hint (test_checks_*.py)
        assert m.hint in hint(name, m.fn), m.hint


# ------------------------------------------------------------------ the published forms, written as students do
def clip_after_per_param(parameters, max_norm):  # per-parameter clipping, and the norm measured after it
    ps = [p for p in parameters if p.grad is not None]
    for p in ps:
        n = p.grad.norm()
        if n > max_norm:
            p.grad.mul_(max_norm / (n + 1e-6))
    return torch.sqrt(sum((p.grad ** 2).sum() for p in ps))


def clip_no_guard_generator(parameters, max_norm):  # a generator used twice, and no guard against a zero norm
    total = float(torch.sqrt(sum((p.grad ** 2).sum() for p in parameters if p.grad is not None)))
    factor = max_norm / total
    for p in parameters:
        if p.grad is not None and factor < 1:
            p.grad.mul_(factor)
    return torch.tensor(total)


def jacobian_transposed_no_derivative(h_next, W_hh):
    return W_hh.T.clone()


def bound_eig_gamma_outside(W_hh, T, gamma=1.0):
    s = torch.linalg.eigvals(W_hh).abs().max().to(W_hh.dtype)
    return gamma * s ** torch.arange(T, -1, -1, dtype=W_hh.dtype)


@pytest.mark.parametrize("name,fn,words", [
    ("clip_grad_norm", clip_after_per_param, ["clipped by its own norm", "norm after clipping"]),
    ("clip_grad_norm", clip_no_guard_generator, ["guard the division", "turn it into a list first"]),
    ("step_jacobian", jacobian_transposed_no_derivative, ["derivative of tanh is missing", "transposed"]),
    ("spectral_bound", bound_eig_gamma_outside, ["|eigenvalue|", "gamma multiplies once"]),
])
def test_published_forms_with_two_mistakes_are_both_named(name, fn, words):
    h = hint(name, fn)
    assert all(w in h for w in words), h


# ------------------------------------------------------------------ gradient_norms on the grader's own pieces
def rnn_step(x, h, W_xh, W_hh, b):  # wrong: a sigmoid RNN
    return torch.sigmoid(x @ W_xh.T + h @ W_hh.T + b)


def step_jacobian(h_next, W_hh):  # wrong: transposed
    return (1 - h_next ** 2).unsqueeze(1) * W_hh.T


def _gradient_norms(ord):
    """gradient_norms built on the (wrong) pieces above, by the grader's globals: right with ``ord=2`` (spectral
    norm), the Frobenius mistake itself with ``ord="fro"``."""
    def gradient_norms(x, h0, W_xh, W_hh, b):
        hs = [h0]
        for t in range(x.shape[0]):
            hs.append(rnn_step(x[t:t + 1], hs[-1].unsqueeze(0), W_xh, W_hh, b)[0])
        J = torch.eye(h0.shape[0], dtype=x.dtype)
        norms = [torch.linalg.matrix_norm(J, ord=ord)]
        for t in range(x.shape[0], 0, -1):
            J = J @ step_jacobian(hs[t], W_hh)
            norms.append(torch.linalg.matrix_norm(J, ord=ord))
        return torch.stack(norms[::-1])
    return gradient_norms


gradient_norms, gradient_norms_frobenius = _gradient_norms(2), _gradient_norms("fro")


def test_gradient_norms_is_graded_with_the_graders_own_pieces():
    """A wrong rnn_step or step_jacobian costs its own points only: gradient_norms, built on them, passes when
    its own part is right, and its own mistake is still named; the student's functions are put back."""
    assert "sigmoid" in hint("rnn_step", rnn_step) and "transposed" in hint("step_jacobian", step_jacobian)
    assert checks.check_gradient_norms(gradient_norms, hidden=True, seed=3) is None
    assert "Frobenius" in hint("gradient_norms", gradient_norms_frobenius)
    assert globals()["rnn_step"] is rnn_step and globals()["step_jacobian"] is step_jacobian


def test_the_graders_pieces_answer_only_calls_with_the_cases_own_weights():
    """A stand-in answers step t's call only with the case's own weights: a transposed or swapped weight (a
    mistake in gradient_norms itself) goes to the student's function, so it is not graded right."""
    import numpy as np

    from course_lib.checks import _protocol, gradflow

    rng = np.random.default_rng(0)
    a = {"x": rng.normal(size=(3, 4)), "h0": np.tanh(rng.normal(size=4)), "W_xh": rng.normal(size=(4, 4)) / 2,
         "W_hh": rng.normal(size=(4, 4)) / 2, "b": rng.normal(size=4) / 3}
    case = {**a, **gradflow._grader_pieces(a)}
    own = {"rnn_step": lambda *args, **kw: "student's", "step_jacobian": lambda *args, **kw: "student's"}
    pieces = _protocol._grader_pieces(case, own)
    t = {k: torch.from_numpy(v) for k, v in case.items()}
    h1 = t["pieces.hs"][1]
    assert torch.equal(pieces["step_jacobian"](h1, t["W_hh"]), t["pieces.J"][0])  # J[k] is at hs[k + 1]
    assert pieces["step_jacobian"](h1, t["W_hh"].T) == "student's"
    x0, h0 = t["x"][:1], t["h0"].unsqueeze(0)
    assert torch.equal(pieces["rnn_step"](x0, h0, t["W_xh"], t["W_hh"], t["b"])[0], h1)
    assert torch.equal(pieces["rnn_step"](x0, h0, t["W_xh"], W_hh=t["W_hh"], b=t["b"])[0], h1)
    assert pieces["rnn_step"](x0, h0, t["W_hh"], t["W_xh"], t["b"]) == "student's"


def test_gradient_norms_built_another_way_still_passes():
    def gn_float64_inline(x, h0, W_xh, W_hh, b):  # no pieces called: states and Jacobians inline, in float64
        x, h, Wx, Wh, bb = (t.double() for t in (x, h0, W_xh, W_hh, b))
        Js = []
        for t in range(x.shape[0]):
            h = torch.tanh(Wx @ x[t] + Wh @ h + bb)
            Js.append(torch.einsum("i,ik->ik", 1 - h * h, Wh))
        P, out = torch.eye(h.shape[0], dtype=torch.float64), [torch.tensor(1.0, dtype=torch.float64)]
        for J in reversed(Js):
            P = P @ J
            out.append(torch.linalg.svdvals(P)[0])
        return torch.stack(out[::-1]).to(x.dtype if h0.dtype == torch.float64 else h0.dtype)

    assert checks.check_gradient_norms(gn_float64_inline, hidden=True, seed=4) is None


# ------------------------------------------------------------------ correct variants still pass
def run_rnn_index_assign(x, weights, cell_fn, lengths, state):
    B, T, _ = x.shape
    outs = []
    for t in range(T):
        new = cell_fn(x[:, t], state, *weights)
        keep = (t < lengths).unsqueeze(1)
        if isinstance(new, tuple):
            state = tuple(torch.lerp(s, n, keep.to(n.dtype)) for s, n in zip(state, new))
            outs.append(new[0] * keep)
        else:
            state = torch.lerp(state, new, keep.to(new.dtype))
            outs.append(new * keep)
    return torch.stack(outs, 1), state


def spectral_bound_loop(W_hh, T, gamma=1.0):
    s = float(torch.linalg.svdvals(W_hh.double())[0])
    return torch.tensor([(gamma * s) ** (T - j) for j in range(T + 1)], dtype=W_hh.dtype)


def numerical_gradient_vectorised(f, x, eps=1e-6):
    g = torch.empty_like(x)
    for i, e in enumerate(torch.eye(x.numel(), dtype=x.dtype)):
        e = e.reshape(x.shape) * eps
        g.view(-1)[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


@pytest.mark.parametrize("check,fn", [(checks.check_run_rnn, run_rnn_index_assign),
                                      (checks.check_spectral_bound, spectral_bound_loop),
                                      (checks.check_numerical_gradient, numerical_gradient_vectorised)])
def test_correct_variants_still_pass(check, fn):
    assert check(fn, hidden=True, seed=17) is None


def step_no_detach_retain_graph(model, x, y, state, optimizer, max_norm):
    """Truncated BPTT without cutting the graph between chunks, 'fixed' with retain_graph=True (a forum answer)."""
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    optimizer.zero_grad()
    logits, state = model(x, state)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward(retain_graph=True)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return loss.item(), float(norm), state


def test_truncated_bptt_without_detaching_is_named_even_with_retain_graph():
    assert "detach" in hint("train_step", step_no_detach_retain_graph)
