"""Assignment 2, LSTM and GRU cells (lectures 3 and 4): one spec per exercise.

Each spec is everything the course says about the exercise: points, signature, stub docstring, contract,
how the judge calls it, its cases and reference, its known mistakes (as student code, with the hint each
must get and the sample it becomes) and correct code written differently. The judge's parametrised
mistake families (every gate order, every gate's activation, ...) stay code in
``course_lib/checks/lstm_gru.py``.
"""
from __future__ import annotations

from ..checks import lstm_gru as L
from ..checks._rnn_common import PROTOCOL
from ._spec import Assignment, Call, Mistake, Spec, Variant

DIFFERENT = "correct_written_differently"  # the sample that holds every variant

# the student's code, written the usual way with one thing changed (the samples and the tests use these)
LSTM_HEAD = "def lstm_cell(x, state, W_ih, W_hh, b_ih, b_hh):\n"
GRU_HEAD = "def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):\n"
RUN_HEAD = "def run_rnn(x, weights, cell_fn, lengths, state):\n"
NG_HEAD = "def numerical_gradient(f, x, eps=1e-6):\n"


def lstm_code(i="i", f="f", g="g", o="o", order="i, f, g, o", gates="x @ W_ih.T + b_ih + h @ W_hh.T + b_hh",
          c_next="f * c + i * g", h_next="o * torch.tanh(c_next)", ret="h_next, c_next", unpack="h, c = state",
          act_i="torch.sigmoid", act_f="torch.sigmoid", act_g="torch.tanh", act_o="torch.sigmoid"):
    return LSTM_HEAD + f"""    {unpack}
    {order} = ({gates}).chunk(4, dim=1)
    i, f, g, o = {act_i}(i), {act_f}(f), {act_g}(g), {act_o}(o)
    c_next = {c_next}
    h_next = {h_next}
    return {ret}"""


def gru_code(reset="xn + r * hn", update="(1 - z) * n + z * h", wrap=None):
    body = f"""xr, xz, xn = (x @ W_ih.T + b_ih).chunk(3, dim=1)
hr, hz, hn = (h @ W_hh.T + b_hh).chunk(3, dim=1)
r = torch.sigmoid(xr + hr)
z = torch.sigmoid(xz + hz)
n = torch.tanh({reset})
return {update}"""
    if wrap:
        body = wrap + "\n" + "\n".join("    " + ln for ln in body.splitlines())
    return GRU_HEAD + "\n".join("    " + ln for ln in body.splitlines())


def run_code(mask_state=True, mask_out=True, use_lengths=True):
    valid = "(t < lengths).unsqueeze(1)" if use_lengths else "torch.ones(x.shape[0], 1, dtype=torch.bool)"
    keep = ("tuple(torch.where(valid, n, s) for n, s in zip(new, state))" if mask_state else "tuple(new)")
    keep_h = "torch.where(valid, new, state)" if mask_state else "new"
    out = "torch.where(valid, h, torch.zeros_like(h))" if mask_out else "h"
    return RUN_HEAD + f"""    outs = []
    for t in range(x.shape[1]):
        new = cell_fn(x[:, t], state, *weights)
        valid = {valid}
        if isinstance(state, tuple):
            state = {keep}
            h = new[0]
        else:
            state = {keep_h}
            h = new
        outs.append({out})
    return torch.stack(outs, dim=1), state"""


def ng_code(kind="central"):
    if kind == "forward":
        step = """        flat[i] = old + eps
        grad[i] = (float(f(x)) - f0) / eps
        flat[i] = old"""
    elif kind == "no_restore":
        step = """        flat[i] += eps
        f_plus = float(f(x))
        flat[i] -= 2 * eps
        grad[i] = (f_plus - float(f(x))) / (2 * eps)"""
    return NG_HEAD + f"""    x = x.detach().clone()
    flat = x.reshape(-1)
    grad = torch.zeros_like(flat)
    f0 = float(f(x))
    for i in range(flat.numel()):
        old = flat[i].item()
{step}
    return grad.reshape(x.shape)"""

LSTM_CELL = Spec(
    "lstm_cell", 4, "lstm_cell(x, state, W_ih, W_hh, b_ih, b_hh) -> (h_next, c_next)",
    "One LSTM step: x (B, I), state (h, c) each (B, H), W_ih (4H, I), W_hh (4H, H), biases (4H,) -> (h_next, c_next).",
    "`state` is `(h, c)`; `W_ih` (4H, I), `W_hh` (4H, H), biases (4H,), gates in PyTorch order i, f, g, o "
    "(as `nn.LSTMCell`).",
    call=Call(PROTOCOL, L.LSTM_ARGS), **L.LSTM_CELL,
    mistakes=(
        Mistake(lstm_code(order="i, f, o, g"),
                'order i, f, o, g', 'mistake_lstm_gate_order'),
        Mistake(lstm_code(act_g="torch.sigmoid"),
                'cell candidate g goes through a sigmoid', 'mistake_lstm_sigmoid_candidate'),
        Mistake(lstm_code(act_f="torch.tanh"),
                'forget gate f goes through tanh', 'mistake_lstm_tanh_forget_gate'),
        Mistake(lstm_code(h_next="o * c_next"),
                'tanh on the cell output is missing', 'mistake_lstm_no_output_tanh'),
        Mistake(lstm_code(c_next="c + i * g"),
                'forget gate f is missing', 'mistake_lstm_no_forget_gate'),
        # published: the forget gate where the input gate belongs
        Mistake(lstm_code(c_next="f * c + f * g"),
                "c' = f * c + f * g", 'mistake_lstm_forget_as_input'),
        Mistake(lstm_code(gates="x @ W_ih.T + b_ih + h @ W_hh.T"),
                'b_hh is missing', 'mistake_lstm_no_bias'),
        Mistake(lstm_code(ret="c_next, h_next"),
                'returns (c_next, h_next)', 'mistake_lstm_swapped_return'),
        Mistake(lstm_code(unpack="h, c = state[0].detach(), state[1].detach()"),
                'no gradient reaches the state `h`', 'mistake_lstm_detach'),
        Mistake(LSTM_HEAD + """    h, c = state
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
    c *= torch.sigmoid(f)
    c += torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c""",
                'in place', 'mistake_lstm_in_place'),
    ),
    variants=(Variant(LSTM_HEAD + """    h, c = state
    H = h.shape[1]

    def pre(k):  # the pre-activation of gate block k, from its own rows of the stacked weights
        rows = slice(k * H, (k + 1) * H)
        return (torch.nn.functional.linear(x, W_ih[rows], b_ih[rows])
                + torch.nn.functional.linear(h, W_hh[rows], b_hh[rows]))

    i, f, g, o = torch.sigmoid(pre(0)), torch.sigmoid(pre(1)), torch.tanh(pre(2)), torch.sigmoid(pre(3))
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c_new""", DIFFERENT),))

GRU_CELL = Spec(
    "gru_cell", 3, "gru_cell(x, h, W_ih, W_hh, b_ih, b_hh) -> h_next",
    "One GRU step: x (B, I), h (B, H), W_ih (3H, I), W_hh (3H, H), biases (3H,) -> h_next (B, H).",
    "`W_ih` (3H, I), `W_hh` (3H, H), order r, z, n, the reset gate applied to (W_hn h + b_hn), "
    "h' = (1 - z) * n + z * h (as `nn.GRUCell`).",
    call=Call(PROTOCOL, L.GRU_ARGS), **L.GRU_CELL,
    mistakes=(
        Mistake(gru_code(reset="xn + (r * h) @ W_hh[2 * h.shape[1]:].T + b_hh[2 * h.shape[1]:]"),
                'before the matmul', 'mistake_gru_reset_before'),
        Mistake(gru_code(update="z * n + (1 - z) * h"),
                'z and 1 - z are swapped', 'mistake_gru_swapped_z'),
        Mistake(gru_code(wrap="with torch.no_grad():"),
                'cut from the autograd graph', 'mistake_gru_no_grad'),
    ),
    variants=(Variant(GRU_HEAD + """    d = x.dtype
    x, h, W_ih, W_hh, b_ih, b_hh = (t.double() for t in (x, h, W_ih, W_hh, b_ih, b_hh))
    H = h.shape[1]
    gi, gh = x @ W_ih.T + b_ih, h @ W_hh.T + b_hh
    r = 1 / (1 + torch.exp(-(gi[:, :H] + gh[:, :H])))
    z = 1 / (1 + torch.exp(-(gi[:, H:2 * H] + gh[:, H:2 * H])))
    n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    return (n + z * (h - n)).to(d)""", DIFFERENT),))

RUN_RNN = Spec(
    "run_rnn", 3, "run_rnn(x, weights, cell_fn, lengths, state) -> (out, final_state)",
    "Run cell_fn over x (B, T, I) from state, honouring lengths (B,) -> (out (B, T, H), final_state).",
    "`x` (B, T, I); `weights` the tuple `(W_ih, W_hh, b_ih, b_hh)`; `cell_fn` a cell with the signature "
    "above; `state` the initial state, `(h0, c0)` for an LSTM cell or `h0` for a GRU cell; `out` (B, T, H), "
    "zeros at padded steps; `final_state` has `state`'s structure, taken after each sequence's last valid "
    "step. (The grader calls it with correct cells of its own, so it is graded apart from the cells.)",
    call=Call(PROTOCOL, L.RUN_ARGS), **L.RUN_RNN,
    mistakes=(
        Mistake(run_code(use_lengths=False),
                'ignores `lengths`', 'mistake_run_ignores_lengths'),
        Mistake(run_code(mask_state=False),
                'keeps changing on padded steps', 'mistake_run_state_not_masked'),
    ),
    variants=(Variant(RUN_HEAD + """    steps = []
    for t in range(x.shape[1]):
        new = cell_fn(x[:, t], state, *weights)
        m = (t < lengths).to(x.dtype).unsqueeze(1)
        if isinstance(state, (tuple, list)):
            state = tuple(m * a + (1 - m) * b for a, b in zip(new, state))
            steps.append(m * new[0])
        else:
            state = m * new + (1 - m) * state
            steps.append(m * new)
    return torch.stack(steps, dim=1), state""", DIFFERENT),))

NUMERICAL_GRADIENT = Spec(
    "numerical_gradient", 2, "numerical_gradient(f, x, eps=1e-6) -> grad",
    "Central differences of the scalar function f at x, one entry at a time -> a tensor shaped like x.",
    "central differences (f(x + eps e_i) - f(x - eps e_i)) / (2 eps), one entry at a time, same shape and "
    "dtype as `x`, `x` left unchanged; `f` maps a tensor shaped like `x` to a scalar.",
    call=Call(PROTOCOL, L.NG_ARGS, ("eps",)), **L.NUMERICAL_GRADIENT,
    mistakes=(
        Mistake(ng_code("forward"),
                'one-sided', 'mistake_numgrad_forward'),
        Mistake(ng_code("no_restore"),
                'put each entry back', 'mistake_numgrad_no_restore'),
    ),
    variants=(Variant(NG_HEAD + """    grad = torch.empty_like(x)
    for idx in range(x.numel()):
        e = torch.zeros_like(x)
        e.view(-1)[idx] = eps
        grad.view(-1)[idx] = (f(x + e) - f(x - e)) / (2 * eps)
    return grad.detach()""", DIFFERENT),))

ASSIGNMENT = Assignment("02_lstm_gru_cells", [LSTM_CELL, GRU_CELL, RUN_RNN, NUMERICAL_GRADIENT],
                        notes=("A written answer, LSTM or GRU for a described situation (2 points, graded by hand).",),
                        manual={"written_lstm_or_gru": 2}, topic="LSTM and GRU cells",
                        ungraded="a gradient check of your cells, a written answer")
