"""course_lib.checks for assignment 2: correct cells written differently pass (float32 and float64,
per-gate slices, loops, float64 inside), and every known mistake, written the way a student would,
gets its own hint, outputs *and gradients* compared (a cut autograd graph is a mistake of its own)."""
import pytest
import torch
import torch.nn.functional as F

from course_lib import checks
from course_lib.checks import LSTM_GRU
from course_lib.checks._core import verdict
from test_checks_gradflow import assert_hides_expected, hint_of, mistake_params


# ------------------------------------------------------------------ lstm_cell
def lstm_vectorised(x, state, W_ih, W_hh, b_ih, b_hh):
    h, c = state
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, 1)
    c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c2), c2


def lstm_per_gate(x, state, W_ih, W_hh, b_ih, b_hh):
    h, c = state
    H = h.shape[1]
    pre = [F.linear(x, W_ih[k * H:(k + 1) * H], b_ih[k * H:(k + 1) * H])
           + F.linear(h, W_hh[k * H:(k + 1) * H], b_hh[k * H:(k + 1) * H]) for k in range(4)]
    c2 = torch.sigmoid(pre[1]) * c + torch.sigmoid(pre[0]) * torch.tanh(pre[2])
    return torch.sigmoid(pre[3]) * torch.tanh(c2), c2


def lstm_loops(x, state, W_ih, W_hh, b_ih, b_hh):
    h, c = state
    B, H = h.shape
    hs, cs = [], []
    for n in range(B):  # one example at a time, gate by gate, manual sigmoid
        a = W_ih @ x[n] + b_ih + W_hh @ h[n] + b_hh
        s = lambda v: 1 / (1 + torch.exp(-v))  # noqa: E731
        cn = s(a[H:2 * H]) * c[n] + s(a[:H]) * torch.tanh(a[2 * H:3 * H])
        hs.append(s(a[3 * H:]) * torch.tanh(cn))
        cs.append(cn)
    return torch.stack(hs), torch.stack(cs)


def lstm_list_return(x, state, *w):
    return list(lstm_vectorised(x, state, *w))


def lstm_nn_module(x, state, W_ih, W_hh, b_ih, b_hh):
    return torch.lstm_cell(x, state, W_ih, W_hh, b_ih, b_hh)


@pytest.mark.parametrize("fn", [lstm_vectorised, lstm_per_gate, lstm_loops, lstm_list_return, lstm_nn_module])
def test_lstm_cell_correct_variants_pass(fn):
    assert checks.check_lstm_cell(fn, hidden=True, seed=11) is None


def _lstm(order="ifgo", act_g=torch.tanh, act_f=torch.sigmoid, out=torch.tanh, no_f=False, no_bhh=False,
          swap=False, unpack=None):
    def fn(x, state, W_ih, W_hh, b_ih, b_hh):
        h, c = unpack(state) if unpack else state
        a = x @ W_ih.T + b_ih + h @ W_hh.T + (0 if no_bhh else b_hh)
        blocks = dict(zip(order, a.chunk(4, 1)))
        i, f, g, o = torch.sigmoid(blocks["i"]), act_f(blocks["f"]), act_g(blocks["g"]), torch.sigmoid(blocks["o"])
        c2 = (1 if no_f else f) * c + i * g
        h2 = o * out(c2)
        return (c2, h2) if swap else (h2, c2)
    return fn


def lstm_in_place(x, state, W_ih, W_hh, b_ih, b_hh):
    h, c = state
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, 1)
    c.mul_(torch.sigmoid(f)).add_(torch.sigmoid(i) * torch.tanh(g))
    return torch.sigmoid(o) * torch.tanh(c), c


def lstm_data(x, state, W_ih, W_hh, b_ih, b_hh):
    return lstm_vectorised(x, state, W_ih.data, W_hh.data, b_ih, b_hh)


def lstm_no_grad(x, state, *w):
    with torch.no_grad():
        return lstm_vectorised(x, state, *w)


def lstm_numpy_roundtrip(x, state, *w):
    h, c = lstm_vectorised(x, state, *w)
    return torch.tensor(h.detach().numpy()), c


LSTM_MUTANTS = {
    "gate order i,f,o,g": (_lstm(order="ifog"), "order i, f, o, g"),
    "gate order f,i,g,o": (_lstm(order="figo"), "order f, i, g, o"),
    "sigmoid where tanh belongs": (_lstm(act_g=torch.sigmoid), "cell candidate g goes through a sigmoid"),
    "tanh where sigmoid belongs": (_lstm(act_f=torch.tanh), "forget gate f goes through tanh"),
    "missing tanh on the cell output": (_lstm(out=lambda t: t), "tanh on the cell output is missing"),
    "missing gate": (_lstm(no_f=True), "forget gate f is missing"),
    "missing bias": (_lstm(no_bhh=True), "b_hh is missing"),
    "swapped return values": (_lstm(swap=True), "returns (c_next, h_next)"),
    "state unpacked as (c, h)": (_lstm(unpack=lambda s: (s[1], s[0])), "unpacked the state as (c, h)"),
    "detach": (_lstm(unpack=lambda s: (s[0].detach(), s[1])), "no gradient reaches the state `h`"),
    ".data": (lstm_data, "no gradient reaches `W_ih`"),
    "no_grad": (lstm_no_grad, "cut from the autograd graph"),
    "numpy round trip": (lstm_numpy_roundtrip, "h_next (the first item) returned by `lstm_cell` has the right "
                         "values but is cut from the autograd graph"),
    "in place": (lstm_in_place, "changed its input(s) c in place"),
    "one tensor": (lambda x, s, *w: lstm_vectorised(x, s, *w)[0], "must return a pair (h_next, c_next)"),
    "W_hh not transposed": (lambda x, s, Wi, Wh, bi, bh: lstm_vectorised(x, s, Wi, Wh.T, bi, bh), "mismatched shapes"),
    "float32 always": (lambda x, s, *w: tuple(t.float() for t in lstm_vectorised(x, s, *w)), "keep the inputs' dtype"),
}


def test_swapped_weights_found_on_a_square_case():
    ex = LSTM_GRU["lstm_cell"]
    swapped = lambda x, s, Wi, Wh, bi, bh: lstm_vectorised(x, s, Wh, Wi, bi, bh)  # noqa: E731
    square = [c for c in ex.cases(5, hidden=True) if c.arrays["x"].shape[1] == c.arrays["h"].shape[1]]
    v = verdict(ex, square, [ex.call(swapped, c) for c in square])
    assert not v.passed and "swapped" in v.hint


def test_every_gate_order_is_named():
    import itertools

    for perm in itertools.permutations("ifgo"):
        order = "".join(perm)
        if order != "ifgo":
            assert f"order {', '.join(order)}:" in hint_of(checks.check_lstm_cell, _lstm(order=order))


def test_hints_never_reveal_expected_values():
    def off(x, s, *w):
        h, c = lstm_vectorised(x, s, *w)
        return h + 0.01, c

    hint = hint_of(checks.check_lstm_cell, off)
    assert "None of the usual mistakes" in hint
    assert_hides_expected(hint, LSTM_GRU["lstm_cell"], "out.0")


# ------------------------------------------------------------------ gru_cell
def gru_vectorised(x, h, W_ih, W_hh, b_ih, b_hh):
    xr, xz, xn = (x @ W_ih.T + b_ih).chunk(3, 1)
    hr, hz, hn = (h @ W_hh.T + b_hh).chunk(3, 1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    return (1 - z) * torch.tanh(xn + r * hn) + z * h


def gru_float64_inside(x, h, W_ih, W_hh, b_ih, b_hh):
    return gru_vectorised(*(t.double() for t in (x, h, W_ih, W_hh, b_ih, b_hh))).to(x.dtype)


def gru_slices_u(x, h, W_ih, W_hh, b_ih, b_hh):
    H = h.shape[1]
    r = torch.sigmoid(F.linear(x, W_ih[:H], b_ih[:H]) + F.linear(h, W_hh[:H], b_hh[:H]))
    u = 1 - torch.sigmoid(F.linear(x, W_ih[H:2 * H], b_ih[H:2 * H]) + F.linear(h, W_hh[H:2 * H], b_hh[H:2 * H]))
    n = torch.tanh(F.linear(x, W_ih[2 * H:], b_ih[2 * H:]) + r * F.linear(h, W_hh[2 * H:], b_hh[2 * H:]))
    return h + u * (n - h)  # the lecture's form, u = 1 - z


def gru_torch(x, h, *w):
    return torch.gru_cell(x, h, *w)


@pytest.mark.parametrize("fn", [gru_vectorised, gru_float64_inside, gru_slices_u, gru_torch])
def test_gru_cell_correct_variants_pass(fn):
    assert checks.check_gru_cell(fn, hidden=True, seed=12) is None


def _gru(order="rzn", reset_before=False, swap_z=False, act_n=torch.tanh, no_r=False, no_bih=False):
    def fn(x, h, W_ih, W_hh, b_ih, b_hh):
        H = h.shape[1]
        xs = dict(zip(order, (x @ W_ih.T + (0 if no_bih else b_ih)).chunk(3, 1)))
        hs = dict(zip(order, (h @ W_hh.T + b_hh).chunk(3, 1)))
        r, z = torch.sigmoid(xs["r"] + hs["r"]), torch.sigmoid(xs["z"] + hs["z"])
        if no_r:
            r = torch.ones_like(r)
        if reset_before:
            k = order.index("n")
            n = act_n(xs["n"] + (r * h) @ W_hh[k * H:(k + 1) * H].T + b_hh[k * H:(k + 1) * H])
        else:
            n = act_n(xs["n"] + r * hs["n"])
        return z * n + (1 - z) * h if swap_z else (1 - z) * n + z * h
    return fn


def gru_detach_h(x, h, *w):
    return gru_vectorised(x, h.detach(), *w)


GRU_MUTANTS = {
    "reset gate before the matmul": (_gru(reset_before=True), "before the matmul"),
    "swapped z and 1 - z": (_gru(swap_z=True), "z and 1 - z are swapped"),
    "gate order z,r,n": (_gru(order="zrn"), "order z, r, n"),
    "sigmoid where tanh belongs": (_gru(act_n=torch.sigmoid), "candidate n goes through a sigmoid"),
    "missing gate": (_gru(no_r=True), "reset gate r is missing"),
    "missing bias": (_gru(no_bih=True), "b_ih is missing"),
    "detach": (gru_detach_h, "no gradient reaches the state `h`"),
    "no return": (lambda *a: None, "forget the `return`"),
}


# ------------------------------------------------------------------ run_rnn
def run_where(x, weights, cell_fn, lengths, state):
    outs = []
    for t in range(x.shape[1]):
        new = cell_fn(x[:, t], state, *weights)
        m = (t < lengths).unsqueeze(1)
        if isinstance(state, tuple):
            state, h = tuple(torch.where(m, a, b) for a, b in zip(new, state)), new[0]
        else:
            state = h = torch.where(m, new, state)
        outs.append(torch.where(m, h, torch.zeros_like(h)))
    return torch.stack(outs, 1), state


def run_preallocated(x, weights, cell_fn, lengths, state):
    B, T, _ = x.shape
    out = None
    for t in range(T):
        new = cell_fn(x[:, t], state, *weights)
        h = new[0] if isinstance(new, tuple) else new
        if out is None:
            out = x.new_zeros(B, T, h.shape[1])
        keep = (t >= lengths).to(x.dtype)[:, None]
        if isinstance(state, tuple):
            state = tuple(keep * s + (1 - keep) * n for s, n in zip(state, new))
        else:
            state = keep * state + (1 - keep) * new
        out[:, t] = (1 - keep) * h
    return out, state


def run_per_sequence(x, weights, cell_fn, lengths, state):
    outs, finals = [], []
    for b in range(x.shape[0]):
        s = tuple(t[b:b + 1] for t in state) if isinstance(state, tuple) else state[b:b + 1]
        steps = []
        for t in range(int(lengths[b])):
            s = cell_fn(x[b:b + 1, t], s, *weights)
            steps.append(s[0] if isinstance(s, tuple) else s)
        H = steps[0].shape[1]
        outs.append(torch.cat(steps + [x.new_zeros(1, H)] * (x.shape[1] - len(steps))).unsqueeze(0))
        finals.append(s)
    if isinstance(state, tuple):
        return torch.cat(outs), tuple(torch.cat(p) for p in zip(*finals))
    return torch.cat(outs), torch.cat(finals)


@pytest.mark.parametrize("fn", [run_where, run_preallocated, run_per_sequence])
def test_run_rnn_correct_variants_pass(fn):
    assert checks.check_run_rnn(fn, hidden=True, seed=13) is None


def _run(kind):
    def fn(x, weights, cell_fn, lengths, state):
        outs = []
        for t in range(x.shape[1]):
            new = cell_fn(x[:, t], state, *weights)
            m = (t < lengths).unsqueeze(1) if kind != "off_by_one" else (t <= lengths).unsqueeze(1)
            h = new[0] if isinstance(new, tuple) else new
            if kind in ("ignore", "state"):
                state = new
            elif isinstance(state, tuple):
                state = tuple(torch.where(m, a, b) for a, b in zip(new, state))
            else:
                state = torch.where(m, new, state)
            outs.append(h if kind in ("ignore", "out") else torch.where(m, h, torch.zeros_like(h)))
        return torch.stack(outs, 1), state
    return fn


def run_detached_state(x, weights, cell_fn, lengths, state):
    out, final = run_where(x, weights, cell_fn, lengths, state)
    return out, tuple(s.detach() for s in final) if isinstance(final, tuple) else final.detach()


RUN_MUTANTS = {
    "ignores lengths": (_run("ignore"), "ignores `lengths`"),
    "state not masked": (_run("state"), "keeps changing on padded steps"),
    "out not masked": (_run("out"), "not zero at padded steps"),
    "off by one": (_run("off_by_one"), "off by one"),
    "zero initial state": (lambda x, w, cf, L, s: run_where(x, w, cf, L, tuple(torch.zeros_like(t) for t in s)
                                                            if isinstance(s, tuple) else torch.zeros_like(s)),
                           "starts from zeros"),
    "time-major output": (lambda *a: (run_where(*a)[0].transpose(0, 1), run_where(*a)[1]), "shape"),
    "detached final state": (run_detached_state, "cut from the autograd graph"),
}


def test_run_rnn_is_graded_with_the_protocols_own_cells():
    """A wrong lstm_cell in the student's notebook cannot cost run_rnn its points (and vice versa)."""
    ex = LSTM_GRU["run_rnn"]
    assert {str(c.arrays["cell"]) for c in ex.cases(0, False) + ex.cases(1, True)} == {"lstm", "gru"}
    assert ex.arg_names["args"][2] == "@cell"


# ------------------------------------------------------------------ numerical_gradient
def ng_loop(f, x, eps=1e-6, restore=True):
    """Central differences entry by entry; ``restore=False`` is the mistake: x perturbed in place, left so."""
    if restore:
        x = x.detach().clone()
    g = torch.zeros_like(x)
    for i in range(x.numel()):
        old = x.view(-1)[i].item()
        x.view(-1)[i] = old + eps
        fp = f(x).item()
        x.view(-1)[i] = old - eps
        fm = f(x).item()
        if restore:
            x.view(-1)[i] = old
        g.view(-1)[i] = (fp - fm) / (2 * eps)
    return g


def ng_basis(f, x, eps=1e-6):
    flat = x.reshape(-1)
    E = torch.eye(flat.numel(), dtype=x.dtype) * eps
    return torch.stack([(f((flat + e).reshape(x.shape)) - f((flat - e).reshape(x.shape))) / (2 * eps)
                        for e in E]).reshape(x.shape)


@pytest.mark.parametrize("fn", [ng_loop, ng_basis])
def test_numerical_gradient_correct_variants_pass(fn):
    assert checks.check_numerical_gradient(fn, hidden=True, seed=14) is None


def ng_autograd(f, x, eps=1e-6):
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(f(x), x)[0]


NG_MUTANTS = {
    "forward difference": (lambda f, x, eps=1e-6: torch.stack([
        (f(x + eps * e.reshape(x.shape)) - f(x)) / eps for e in torch.eye(x.numel(), dtype=x.dtype)]).reshape(x.shape),
        "one-sided"),
    "divided by eps": (lambda f, x, eps=1e-6: 2 * ng_loop(f, x, eps), "divided the central difference by eps"),
    "all at once": (lambda f, x, eps=1e-6: torch.full_like(x, ((f(x + eps) - f(x - eps)) / (2 * eps)).item()),
                    "perturbed every entry at once"),
    "x not restored": (lambda f, x, eps=1e-6: ng_loop(f, x, eps, restore=False), "x in place"),
    "autograd": (ng_autograd, "exact (autograd) gradient"),
}


# ------------------------------------------------------------------ every exercise's mistake table
MISTAKES = {"lstm_cell": (checks.check_lstm_cell, LSTM_MUTANTS), "gru_cell": (checks.check_gru_cell, GRU_MUTANTS),
            "run_rnn": (checks.check_run_rnn, RUN_MUTANTS),
            "numerical_gradient": (checks.check_numerical_gradient, NG_MUTANTS)}


@pytest.mark.parametrize("check,fn,expected", mistake_params(MISTAKES))
def test_mistakes_get_their_hint(check, fn, expected):
    hint = hint_of(check, fn)
    assert expected in hint, hint


# ------------------------------------------------------------------ the protocol
def test_protocol_reports_structure_gradients_and_in_place_changes():
    from course_lib.checks import _protocol

    ex = LSTM_GRU["lstm_cell"]
    case = ex.cases(0, False)[1]
    got = _protocol.call(ex.protocol, lstm_in_place, case.arrays, ex.arg_names, [])
    assert str(got["out_type"]) == "tuple(Tensor,Tensor)"
    assert str(got["inputs_changed"]) == "c" and str(got["grad_status"]) == "ok"
    assert {k for k in got if k.startswith("grad.")} == {f"grad.{n}" for n in ("x", "h", "c", "W_ih", "W_hh", "b_ih", "b_hh")}
    assert (case.arrays["c"] == ex.cases(0, False)[1].arrays["c"]).all()  # the case itself is never changed
