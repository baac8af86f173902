"""Assignment 2, LSTM and GRU cells: the judge's pieces of each exercise (cases, comparison, the parametrised
mistake families); the exercises themselves are specs in ``course_lib/exercises/a2_lstm_gru_cells.py``.

Signatures, points and contracts are written in the specs (the README's contract section is made from
them). Outputs *and* gradients are compared (for the loss sum_k <out_k, v_k> with fixed random v_k), so
a cell that cuts the autograd graph fails with its own hint.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from ._core import Case, Mutant, family, padding_kinds, size_kinds
from ._rnn_common import (F32, F64, describe_rnn, make_compare, normal, shape_error_hint,
                          value_problem, weight_names, weights)

W = weight_names()
LSTM_LAYOUT = ("Layouts follow torch.nn: x (B, I), h and c (B, H), W_ih (4H, I), W_hh (4H, H), biases (4H,); "
               "a weight is (out_features, in_features), so x @ W_ih.T is (B, 4H).")
GRU_LAYOUT = ("Layouts follow torch.nn: x (B, I), h (B, H), W_ih (3H, I), W_hh (3H, H), biases (3H,); "
              "a weight is (out_features, in_features), so x @ W_ih.T is (B, 3H).")



def _cell_sizes(case, hidden):
    """The (B, I, H, dtype) grid both cells are checked on: visible cases, then hidden ones."""
    if not hidden:
        return [case(3, 4, 5, F32, "float32, B=3, I=4, H=5"), case(2, 3, 2, F64, "float64, B=2, I=3, H=2"),
                case(1, 1, 1, F64, "float64, a batch of one, I=H=1"),
                case(2, 3, 3, F32, "float32, large weights (saturated gates), I=H=3", scale=3.0)]
    return [case(4, 5, 6, F64, "float64, B=4, I=5, H=6"),
            case(1, 3, 3, F32, "float32, a batch of one, I=H=3"),
            case(2, 1, 1, F64, "float64, I=H=1"),
            case(3, 4, 4, F64, "float64, large weights (saturated gates), I=H=4", scale=3.0),
            case(5, 7, 3, F64, "float64, B=5, I=7, H=3")]

def _state(rng, B, H, dtype, scale=1.0):
    return {"h": np.tanh(normal(rng, (B, H), scale, dtype)), "c": normal(rng, (B, H), scale, dtype)}


# ======================================================================== lstm_cell
LSTM_ROLES = "ifgo"
GATE_NAMES = {"i": "input gate i", "f": "forget gate f", "g": "cell candidate g", "o": "output gate o",
              "r": "reset gate r", "z": "update gate z", "n": "candidate n"}


def _lstm_cases(rng, hidden):
    def case(B, I, H, dtype, label, scale=1.0):
        return Case({"x": normal(rng, (B, I), 1.0, dtype), **_state(rng, B, H, dtype),
                     **weights(rng, "", 4, I, H, dtype, scale)}, label, kinds=size_kinds(B, I, H, scale))

    return _cell_sizes(case, hidden)


GATE_FACTORS = {"f": "f", "i": "i", "o": "o", "1": "1", "1-f": "(1 - f)", "1-i": "(1 - i)"}


@family
def _lstm_mutant(order=LSTM_ROLES, act=None, out="tanh", drop=(), bias=("ih", "hh"), swap_out=False,
                 swap_state=False, old_c=False, keep="f", write="i", swap_w=False):
    """An LSTM cell with the given mistakes; ``keep`` and ``write`` are what scales the old cell state c and
    the candidate g in the cell update (right: c' = f * c + i * g)."""
    act = {"i": torch.sigmoid, "f": torch.sigmoid, "g": torch.tanh, "o": torch.sigmoid, **(act or {})}

    def fn(x, state, W_ih, W_hh, b_ih, b_hh):
        h, c = state
        if swap_state:
            h, c = c, h
        Wi, Wh = (W_hh, W_ih) if swap_w else (W_ih, W_hh)
        a = x @ Wi.t() + h @ Wh.t()
        if "ih" in bias:
            a = a + b_ih
        if "hh" in bias:
            a = a + b_hh
        blocks = dict(zip(order, a.chunk(4, 1)))
        i, f, g, o = (act[k](blocks[k]) for k in LSTM_ROLES)
        if "o" in drop:
            o = torch.ones_like(o)
        gate = {"f": f, "i": i, "o": o, "1": torch.ones_like(f), "1-f": 1 - f, "1-i": 1 - i}
        c_next = gate[keep] * c + gate[write] * g
        read = c if old_c else c_next
        h_next = o * {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "none": lambda t: t}[out](read)
        return (c_next, h_next) if swap_out else (h_next, c_next)
    return fn


def _cell_update_hint(keep, write):
    """The hint for c' = keep * c + write * g (the right update: c' = f * c + i * g)."""
    special = {("1", "i"): "the forget gate f is missing: the old cell state is scaled by f before the new content "
                           "is added, c' = f * c + i * g.",
               ("f", "1"): "the input gate i is missing: the candidate g is scaled by i before it is written, "
                           "c' = f * c + i * g.",
               ("f", "1-f"): "you wrote (1 - f) * g, coupling the input gate to the forget gate: the LSTM has its "
                             "own input gate i, c' = f * c + i * g."}
    if (keep, write) in special:
        return special[(keep, write)]
    wrong = []
    if keep != "f":
        wrong.append(f"the old cell state c is scaled by {GATE_FACTORS[keep]} where the forget gate f belongs")
    if write != "i":
        wrong.append(f"the candidate g is scaled by {GATE_FACTORS[write]} where the input gate i belongs")
    return (f"your cell update is c' = {GATE_FACTORS[keep]} * c + {GATE_FACTORS[write]} * g: "
            + " and ".join(wrong) + ". Each gate has one job: f decides how much of the old cell state is kept, "
            "i how much of the new content g is written.")


def _order_hint(order, canonical, what):
    return (f"your gates are read in the order {', '.join(order)}: PyTorch stacks the blocks of W_ih, W_hh "
            f"and the biases in the order {', '.join(canonical)} ({what}), H rows each. Take block k "
            "(rows k*H to (k+1)*H) for the gate in place k.")


def _lstm_mutants():
    L = _lstm_mutant

    def m(hint, applies=None, **knobs):
        return Mutant(L(**knobs), hint, applies)

    ms = [m("your cell returns (c_next, h_next): the contract, like nn.LSTMCell, returns (h_next, c_next).",
            swap_out=True),
          m("you unpacked the state as (c, h): it comes as (h, c), hidden state first, as in nn.LSTMCell.",
            swap_state=True),
          m("the cell candidate g goes through a sigmoid: it is the content written into the cell and "
            "takes tanh (values in -1..1). Sigmoids are for the gates i, f, o (fractions in 0..1).",
            act={"g": torch.sigmoid}),
          m("h_next = o * c_next: the tanh on the cell output is missing (h' = o * tanh(c')).", out="none"),
          m("the cell output goes through a sigmoid: h' = o * tanh(c'), tanh where you put a sigmoid.",
            out="sigmoid"),
          m("h_next reads the old cell state c: the output gate reads the new one, h' = o * tanh(c').", old_c=True),
          m("the output gate o is missing: h' = o * tanh(c').", drop="o"),
          m("the bias b_ih is missing (every gate adds b_ih and b_hh).", bias=("hh",)),
          m("the bias b_hh is missing (every gate adds b_ih and b_hh).", bias=("ih",)),
          m("both biases are missing (every gate adds b_ih and b_hh).", bias=()),
          m("W_ih and W_hh are swapped: W_ih weighs the input x, W_hh the previous state h.",
            lambda c: c.arrays["x"].shape[1] == c.arrays["h"].shape[1], swap_w=True)]
    # the cell update c' = keep * c + write * g, every way of putting a wrong factor in either place
    # ((i, f) is the gate order f, i, g, o, named below)
    updates = [(k, w) for k in ("f", "i", "o", "1", "1-i") for w in ("i", "f", "o", "1", "1-f")
               if (k, w) not in (("f", "i"), ("i", "f"))]
    # (each sets both keep and write, so two wrong updates are never paired: the grid has them all)
    ms[6:6] = [m(_cell_update_hint(k, w), keep=k, write=w) for k, w in updates]
    for k in "ifo":
        ms.append(m(f"the {GATE_NAMES[k]} goes through tanh: gates are sigmoids, a fraction in 0..1 of what "
                    "passes.", act={k: torch.tanh}))
    ms.append(m("every gate goes through tanh: i, f and o are sigmoids; only g (and the cell output) take tanh.",
                act={k: torch.tanh for k in "ifgo"}))
    ms.append(m("everything goes through a sigmoid: g and the cell output take tanh.",
                act={k: torch.sigmoid for k in "ifgo"}, out="sigmoid"))
    for perm in itertools.permutations(LSTM_ROLES):
        order = "".join(perm)
        if order != LSTM_ROLES:
            ms.append(m(_order_hint(order, LSTM_ROLES, "input, forget, cell candidate, output"), order=order))
    return ms


def _lstm_ref():
    from ..reference import lstm_cell

    return lstm_cell


LSTM_NAMES = {"__all__": "a pair (h_next, c_next) of tensors", ".0": "h_next (the first item)",
              ".1": "c_next (the second item)"}
LSTM_INPUTS = {"x": "the input `x`", "h": "the state `h`", "c": "the cell state `c`", "W_ih": "`W_ih`",
               "W_hh": "`W_hh`", "b_ih": "`b_ih`", "b_hh": "`b_hh`"}

LSTM_ARGS = {"args": ["x", ["h", "c"], *W], "grad": True}
LSTM_CELL = dict(cases=_lstm_cases, reference=_lstm_ref, families=_lstm_mutants, check=dict(
    compare=make_compare(LSTM_NAMES, LSTM_INPUTS), error_hint=shape_error_hint(LSTM_LAYOUT),
    describe=describe_rnn(LSTM_NAMES, LSTM_INPUTS)))


# ======================================================================== gru_cell
GRU_ROLES = "rzn"


def _gru_cases(rng, hidden):
    def case(B, I, H, dtype, label, scale=1.0):
        return Case({"x": normal(rng, (B, I), 1.0, dtype), "h": np.tanh(normal(rng, (B, H), 1.0, dtype)),
                     **weights(rng, "", 3, I, H, dtype, scale)}, label, kinds=size_kinds(B, I, H, scale))

    return _cell_sizes(case, hidden)


@family
def _gru_mutant(order=GRU_ROLES, act=None, reset="after", bhn_outside=False, swap_z=False, drop=(),
                bias=("ih", "hh"), swap_w=False):
    act = {"r": torch.sigmoid, "z": torch.sigmoid, "n": torch.tanh, **(act or {})}

    def fn(x, h, W_ih, W_hh, b_ih, b_hh):
        Wi, Wh = (W_hh, W_ih) if swap_w else (W_ih, W_hh)
        xp, hp = x @ Wi.t(), h @ Wh.t()
        if "ih" in bias:
            xp = xp + b_ih
        bh = b_hh if "hh" in bias else torch.zeros_like(b_hh)
        xs = dict(zip(order, xp.chunk(3, 1)))
        hs = dict(zip(order, (hp + bh).chunk(3, 1)))
        hs_nobias = dict(zip(order, hp.chunk(3, 1)))
        bs = dict(zip(order, bh.chunk(3, 0)))
        r = act["r"](xs["r"] + hs["r"])
        z = act["z"](xs["z"] + hs["z"])
        if "r" in drop:
            r = torch.ones_like(r)
        if reset == "before":
            Wn = dict(zip(order, Wh.chunk(3, 0)))["n"]
            n = act["n"](xs["n"] + (r * h) @ Wn.t() + bs["n"])
        elif reset == "both":
            n = act["n"](r * (xs["n"] + hs["n"]))
        elif bhn_outside:
            n = act["n"](xs["n"] + r * hs_nobias["n"] + bs["n"])
        else:
            n = act["n"](xs["n"] + r * hs["n"])
        if "z" in drop:
            return n
        return z * n + (1 - z) * h if swap_z else (1 - z) * n + z * h
    return fn


def _gru_mutants():
    ms = [Mutant(_gru_mutant(reset="before"),
                 "your reset gate multiplies h before the matmul, W_hn (r * h), as in the original GRU paper (and "
                 "Keras' reset_after=False): this course follows nn.GRUCell, which applies it after the matmul, "
                 "n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."),
          Mutant(_gru_mutant(bhn_outside=True),
                 "b_hn is added outside the reset gate: nn.GRUCell scales the whole (W_hn h + b_hn) by r."),
          Mutant(_gru_mutant(reset="both"),
                 "the reset gate scales the input term too: it applies to the hidden term only, "
                 "n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."),
          Mutant(_gru_mutant(swap_z=True),
                 "the roles of z and 1 - z are swapped: in PyTorch's convention z = 1 keeps the old state, "
                 "h' = (1 - z) * n + z * h. (The lecture's update gate is u = 1 - z: u = 0 keeps the state.)"),
          Mutant(_gru_mutant(act={"n": torch.sigmoid}),
                 "the candidate n goes through a sigmoid: it is the new content and takes tanh (values in -1..1)."),
          Mutant(_gru_mutant(drop="r"), "the reset gate r is missing: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."),
          Mutant(_gru_mutant(drop="z"), "the update gate z is missing: you return the candidate n, but "
                 "h' = (1 - z) * n + z * h mixes it with the old state."),
          Mutant(_gru_mutant(bias=("hh",)), "the bias b_ih is missing (it is added to the input projections)."),
          Mutant(_gru_mutant(bias=("ih",)), "the bias b_hh is missing (it is added to the hidden projections, "
                 "b_hn inside the reset gate)."),
          Mutant(_gru_mutant(bias=()), "both biases are missing."),
          Mutant(_gru_mutant(swap_w=True), "W_ih and W_hh are swapped: W_ih weighs the input x, W_hh the "
                 "previous state h.", lambda c: c.arrays["x"].shape[1] == c.arrays["h"].shape[1])]
    for k in "rz":
        ms.append(Mutant(_gru_mutant(act={k: torch.tanh}),
                         f"the {GATE_NAMES[k]} goes through tanh: gates are sigmoids, a fraction in 0..1."))
    for perm in itertools.permutations(GRU_ROLES):
        order = "".join(perm)
        if order != GRU_ROLES:
            ms.append(Mutant(_gru_mutant(order=order), _order_hint(order, GRU_ROLES, "reset, update, new")))
            ms.append(Mutant(_gru_mutant(order=order, reset="before"), _order_hint(order, GRU_ROLES, "reset, update, new")
                             + " Also, the reset gate applies after the matmul: r * (W_hn h + b_hn)."))
    return ms


def _gru_ref():
    from ..reference import gru_cell

    return gru_cell


GRU_NAMES = {"__all__": "one tensor h_next", "": "h_next"}
GRU_INPUTS = {"x": "the input `x`", "h": "the state `h`", "W_ih": "`W_ih`", "W_hh": "`W_hh`", "b_ih": "`b_ih`",
              "b_hh": "`b_hh`"}

GRU_ARGS = {"args": ["x", "h", *W], "grad": True}
GRU_CELL = dict(cases=_gru_cases, reference=_gru_ref, families=_gru_mutants, check=dict(
    compare=make_compare(GRU_NAMES, GRU_INPUTS), error_hint=shape_error_hint(GRU_LAYOUT),
    describe=describe_rnn(GRU_NAMES, GRU_INPUTS)))


# ======================================================================== run_rnn
def _run_cases(rng, hidden):
    def case(cell, B, T, I, H, lengths, dtype, label, zero_state=False):
        G = 4 if cell == "lstm" else 3
        a = {"x": normal(rng, (B, T, I), 1.0, dtype), **weights(rng, "", G, I, H, dtype),
             "lengths": np.array(lengths, dtype=np.int64), "cell": np.array(cell),
             "h0": np.zeros((B, H), dtype) if zero_state else np.tanh(normal(rng, (B, H), 1.0, dtype))}
        if cell == "lstm":
            a["c0"] = np.zeros((B, H), dtype) if zero_state else normal(rng, (B, H), 1.0, dtype)
        return Case(a, label, kinds=(f"{cell} cell", *padding_kinds(lengths, T), *size_kinds(B, I, H),
                                     *(("zero initial state",) if zero_state else ())))

    if not hidden:
        return [case("lstm", 3, 5, 2, 4, [5, 3, 1], F32, "float32, LSTM cell, B=3, T=5, lengths [5, 3, 1]"),
                case("gru", 2, 4, 3, 2, [2, 4], F64, "float64, GRU cell, B=2, T=4, unsorted lengths [2, 4]"),
                case("lstm", 1, 3, 1, 1, [3], F64, "float64, LSTM cell, a batch of one, I=H=1, full length, zero "
                     "initial state", zero_state=True),
                case("gru", 2, 4, 2, 3, [4, 4], F32, "float32, GRU cell, every sequence full length")]
    return [case("lstm", 2, 4, 3, 3, [4, 4], F64, "float64, LSTM cell, every sequence full length"),
            case("lstm", 4, 6, 2, 3, [2, 6, 4, 6], F64, "float64, LSTM cell, unsorted lengths [2, 6, 4, 6]"),
            case("gru", 3, 5, 2, 4, [1, 5, 3], F32, "float32, GRU cell, lengths [1, 5, 3]"),
            case("lstm", 1, 3, 2, 2, [2], F64, "float64, LSTM cell, a batch of one, length 2 of T=3"),
            case("gru", 2, 6, 1, 1, [6, 3], F64, "float64, GRU cell, I=H=1"),
            case("lstm", 3, 4, 2, 3, [4, 1, 2], F64, "float64, LSTM cell, zero initial state", zero_state=True)]


def _tree_where(m, new, old):
    if isinstance(new, tuple):
        return tuple(torch.where(m, a, b) for a, b in zip(new, old))
    return torch.where(m, new, old)


def _first(s):
    return s[0] if isinstance(s, tuple) else s


@family
def _run_mutant(lengths_used=True, state_masked=True, out_masked=True, mask_off_by_one=False, zero_state=False,
                final="state", cell_state_masked=True):
    """run_rnn with the given mistakes. ``lengths_used``: False runs every sequence over all T steps (no mask
    at all); ``state_masked`` / ``out_masked``: the state kept / the output zeroed at padded steps;
    ``cell_state_masked``: an LSTM's c kept too (False: only h is kept); ``final``: "state" (right), "out"
    (the output at step T-1) or "gathered" (h read from out at lengths - 1, c from step T-1)."""
    def fn(x, weights, cell_fn, lengths, state):
        B, T, _ = x.shape
        state = tuple(state) if isinstance(state, (tuple, list)) else state
        if zero_state:
            state = tuple(torch.zeros_like(s) for s in state) if isinstance(state, tuple) else torch.zeros_like(state)
        outs, last = [], state
        for t in range(T):
            new = cell_fn(x[:, t], state, *weights)
            last = new = tuple(new) if isinstance(new, (tuple, list)) else new
            valid = (t <= lengths) if mask_off_by_one else (t < lengths)
            m = valid.unsqueeze(1).to(x.device)
            h = _first(new)
            if not (lengths_used and state_masked):
                state = new
            elif isinstance(new, tuple) and not cell_state_masked:
                state = (torch.where(m, new[0], state[0]), new[1])
            else:
                state = _tree_where(m, new, state)
            outs.append(torch.where(m, h, torch.zeros_like(h)) if lengths_used and out_masked else h)
        out = torch.stack(outs, 1)
        if final == "out":
            state = (out[:, -1], state[1]) if isinstance(state, tuple) else out[:, -1]
        elif final == "gathered":
            h = out[torch.arange(B), lengths - 1]
            state = (h, last[1]) if isinstance(state, tuple) else h
        return out, state
    return fn


def _padded(case):
    return int(case.arrays["lengths"].min()) < case.arrays["x"].shape[1]


def _run_mutants():
    R = _run_mutant
    lstm_padded = lambda c: _padded(c) and str(c.arrays["cell"]) == "lstm"  # noqa: E731
    return [
        Mutant(R(lengths_used=False),
               "your run ignores `lengths`: a padded step (t >= lengths[b]) must not change that sequence's state, "
               "and its output must be zero (as pad_packed_sequence gives).", _padded),
        Mutant(R(state_masked=False),
               "the state keeps changing on padded steps (t >= lengths[b]): the final state must be the one after "
               "each sequence's last valid step, so keep the old state where the step is padding.", _padded),
        Mutant(R(out_masked=False),
               "`out` is not zero at padded steps (t >= lengths[b]): the state is right, but the output there must "
               "be zero, as pad_packed_sequence gives.", _padded),
        Mutant(R(mask_off_by_one=True),
               "your mask is off by one: step t of sequence b is valid when t < lengths[b] (a sequence of length L "
               "has steps 0..L-1).", _padded),
        Mutant(R(zero_state=True), "your run starts from zeros instead of the given initial `state`."),
        Mutant(R(final="out"),
               "your final state is the output at the last padded step T-1 (zero for a shorter sequence): return the "
               "state after each sequence's own last valid step.", _padded),
        Mutant(R(cell_state_masked=False),
               "you keep h at padded steps but not the cell state c: an LSTM's state is the pair (h, c), and both "
               "must stay as they were after each sequence's last valid step.", lstm_padded),
        Mutant(R(final="gathered"),
               "your final h is read from `out` at lengths - 1 (right), but your final c is the one after step T-1, "
               "which has read the padding: keep the whole state (h, c) at padded steps.", lstm_padded),
    ]


def _run_ref():
    from ..reference import run_rnn

    def ref(x, weights, cell_fn, lengths, state):
        return run_rnn(x, weights, cell=cell_fn.__name__, lengths=lengths, state=state)
    return ref


RUN_NAMES = {"lstm": ({"__all__": "a pair (out, final_state) whose final_state is a pair (h, c) for an LSTM cell",
                      ".0": "`out`", ".1.0": "the final h", ".1.1": "the final c"},
                     {"x": "the input `x`", "h0": "the initial `h0`", "c0": "the initial `c0`", "W_ih": "`W_ih`",
                      "W_hh": "`W_hh`", "b_ih": "`b_ih`", "b_hh": "`b_hh`"}),
             "gru": ({"__all__": "a pair (out, final_state) whose final_state is one tensor h for a GRU cell",
                      ".0": "`out`", ".1": "the final state"},
                     {"x": "the input `x`", "h0": "the initial state", "W_ih": "`W_ih`", "W_hh": "`W_hh`",
                      "b_ih": "`b_ih`", "b_hh": "`b_hh`"})}


def _run_describe(case, got, want):
    return describe_rnn(*RUN_NAMES[str(case.arrays["cell"])])(case, got, want)


def _run_compare():
    lstm = make_compare({"__all__": "a pair (out, final_state) whose final_state is a pair (h, c) for an LSTM cell",
                         ".0": "`out`", ".1.0": "the final h", ".1.1": "the final c"},
                        {"x": "the input `x`", "h0": "the initial `h0`", "c0": "the initial `c0`", "W_ih": "`W_ih`",
                         "W_hh": "`W_hh`", "b_ih": "`b_ih`", "b_hh": "`b_hh`"})
    gru = make_compare({"__all__": "a pair (out, final_state) whose final_state is one tensor h for a GRU cell",
                        ".0": "`out`", ".1": "the final state"},
                       {"x": "the input `x`", "h0": "the initial state", "W_ih": "`W_ih`", "W_hh": "`W_hh`",
                        "b_ih": "`b_ih`", "b_hh": "`b_hh`"})

    def compare(ex, case, got, want):
        return (lstm if str(case.arrays["cell"]) == "lstm" else gru)(ex, case, got, want)
    return compare


def _run_error_hint(case, etype, msg):
    m = msg.lower()
    if "unpack" in m or "tuple" in m or "not subscriptable" in m:
        return ("`state` is a pair (h0, c0) for an LSTM cell and one tensor h0 for a GRU cell: pass it to "
                "cell_fn as it is, and keep whatever cell_fn returns as the new state.")
    return shape_error_hint("x is (B, T, I) and x[:, t] is step t of every sequence; out is (B, T, H).")(case, etype, msg)


RUN_ARGS = {"args": ["x", W, "@cell", "lengths", {"present": "c0", "then": ["h0", "c0"], "else": "h0"}],
            "grad": True}
RUN_RNN = dict(cases=_run_cases, reference=_run_ref, families=_run_mutants, check=dict(
    compare=_run_compare(), error_hint=_run_error_hint, describe=_run_describe))


# ======================================================================== numerical_gradient
def _ng_cases(rng, hidden):
    def case(shape, m, eps, label):
        d = shape[-1]
        kinds = tuple(k for k, on in (("one entry", np.prod(shape) == 1), ("x with 2 dimensions", len(shape) == 2),
                                      ("a large eps (>= 1e-3)", eps >= 1e-3)) if on)
        return Case({"x": normal(rng, shape, 1.0), "f_B": normal(rng, (d, m), 1.0 / np.sqrt(d)),
                     "f_A": normal(rng, (m,), 1.0), "eps": np.array(float(eps))}, label, kinds=kinds)

    if not hidden:
        return [case((4,), 3, 1e-6, "float64, x of shape (4,), eps=1e-6"),
                case((2, 3), 2, 1e-3, "float64, x of shape (2, 3), eps=1e-3"),
                case((1,), 2, 1e-5, "float64, one entry, eps=1e-5")]
    return [case((1,), 1, 1e-5, "float64, one entry"),
            case((3, 4), 5, 1e-4, "float64, x of shape (3, 4), eps=1e-4"),
            case((6,), 2, 1e-2, "float64, x of shape (6,), eps=1e-2"),
            case((2, 2), 3, 1e-6, "float64, x of shape (2, 2)")]


def _central(f, x, eps):
    g = torch.zeros_like(x)
    flat, gf = x.detach().clone().reshape(-1), g.reshape(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + eps
        fp = float(f(flat.reshape(x.shape)))
        flat[i] = old - eps
        fm = float(f(flat.reshape(x.shape)))
        flat[i] = old
        gf[i] = (fp - fm) / (2 * eps)
    return g


def _ng_ref():
    def numerical_gradient(f, x, eps=1e-6):
        return _central(f, x, eps)
    return numerical_gradient


@family
def _ng_mutant(difference="central", denominator="2 eps", restore=True, one_at_a_time=True, autograd=False):
    """numerical_gradient with the given mistakes (right: central differences (f(x + eps e_i) - f(x - eps e_i))
    / (2 eps), one entry at a time, each put back). ``difference``: "central" or "forward"; ``denominator``:
    "2 eps" or "eps"; ``restore``: each entry put back before the next."""
    def fn(f, x, eps=1e-6):
        if autograd:
            xx = x.detach().clone().requires_grad_(True)
            return torch.autograd.grad(f(xx), xx)[0]
        div = 2 * eps if denominator == "2 eps" else eps
        if difference == "forward":
            div = div / 2
        if not one_at_a_time:
            low = x if difference == "forward" else x - eps
            return torch.full_like(x, (float(f(x + eps)) - float(f(low))) / div)
        g = torch.zeros_like(x)
        flat, gf = x.detach().clone().reshape(-1), g.reshape(-1)
        f0 = float(f(x))
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps
            fp = float(f(flat.reshape(x.shape)))
            if difference == "forward":
                gf[i] = (fp - f0) / div
            else:
                flat[i] = (old - eps) if restore else flat[i] - 2 * eps
                gf[i] = (fp - float(f(flat.reshape(x.shape)))) / div
            if restore:
                flat[i] = old
        return g
    return fn


def _ng_mutants():
    N = _ng_mutant
    return [
        Mutant(N(difference="forward"), "you used a one-sided (forward) difference (f(x + eps) - f(x)) / eps: its "
               "error shrinks like eps, the central difference (f(x + eps) - f(x - eps)) / (2 eps) like eps^2."),
        Mutant(N(denominator="eps"), "you divided the central difference by eps: the two points are 2 eps apart."),
        Mutant(N(restore=False), "you do not put each entry back after perturbing it: every later entry is "
               "then measured at a shifted point. Restore x[i] before moving on to the next entry."),
        Mutant(N(one_at_a_time=False), "you perturbed every entry at once: that measures a single directional "
               "derivative. Perturb one entry at a time."),
        Mutant(N(autograd=True), "your result is the exact (autograd) gradient: this exercise asks for the "
               "finite-difference estimate, which is what checks autograd."),
    ]


def _ng_compare(ex, case, got, want):
    from ._rnn_common import structure_problem

    p = structure_problem(ex.name, got, want, {"__all__": "a tensor shaped like x"})
    if p:
        return p
    return value_problem(ex.name, case, got, want, {"": "the gradient"}, dtype=np.float64)


NG_ARGS = {"args": ["@f", "x", "eps"], "grad": False}
NUMERICAL_GRADIENT = dict(cases=_ng_cases, reference=_ng_ref, families=_ng_mutants, check=dict(
    compare=_ng_compare, describe=describe_rnn({"": "the gradient"})))
