"""Assignment 3, deep and bidirectional RNNs: the judge's pieces of each exercise (cases, comparison, the
parametrised mistake families); the exercises themselves are specs in ``course_lib/exercises/a3_deep_bidirectional.py``.

Signatures, points and contracts are written in the specs (and the README's contract section is made
from them). The exercises are built on the student's own ``lstm_cell`` and ``run_rnn`` (from assignment 2,
pasted into the notebook). The checks *probe* those two as well, so that when a result is wrong
because a building block is, the hint says which.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import _protocol
from ._core import Case, Mutant, scalar_text, family, padding_kinds, size_kinds
from ._rnn_common import (F32, F64, PROTOCOL, describe_rnn, leaves, make_compare, normal, shape_error_hint,
                          value_problem, weight_names, weights)

W = weight_names()
FW, BW = weight_names("fw_"), weight_names("bw_")


def _lengths(v):
    return np.array(v, dtype=np.int64)


def _probe_arrays(rng, B, I, H, dtype):
    return {"px": normal(rng, (B, I), 1.0, dtype), "ph": np.tanh(normal(rng, (B, H), 1.0, dtype)),
            "pc": normal(rng, (B, H), 1.0, dtype)}


def _probes(prefix, bidirectional=False, second=None):
    w = weight_names(prefix)
    out = [{"name": "lstm_cell", "args": ["px", ["ph", "pc"], *w]},
           {"name": "run_rnn", "args": ["x", w, "@lstm", "lengths", ["ph", "pc"]]}]
    if bidirectional:
        out.append({"name": "bidirectional_rnn", "args": ["x", w, weight_names(second), "lengths"]})
    return out


def _probe_refs():
    from .. import reference as R

    def run_rnn(x, weights, cell_fn, lengths, state):
        return R.run_rnn(x, weights, "lstm", lengths, state)

    return {"lstm_cell": R.lstm_cell, "run_rnn": run_rnn, "bidirectional_rnn": _bidir_ref()}


PROBE_HINTS = {
    "lstm_cell": "your `lstm_cell` (from assignment 2, at the top of this notebook) gives wrong results, and "
                 "everything here is built on it: fix it first (`check_lstm_cell(lstm_cell)` names the mistake).",
    "run_rnn": "your `run_rnn` (from assignment 2, at the top of this notebook) gives wrong results, and this "
               "function is built on it: fix it first (`check_run_rnn(run_rnn)` names the mistake).",
    "bidirectional_rnn": "your `bidirectional_rnn` gives wrong results, and `stacked_rnn` is built on it: fix it "
                         "first (`check_bidirectional_rnn`).",
}


def probe_problem(case, got, probes) -> str | None:
    """The hint for the first of the student's building blocks that is wrong on this case, if any."""
    refs = _probe_refs()
    for p in probes:
        key = f"probe.{p['name']}."
        sub = {k[len(key):]: v for k, v in got.items() if k.startswith(key)}
        if not sub or scalar_text(sub.get("error_type", "")) == "Missing":
            continue  # not defined: the function may not use it
        if "error_type" in sub:
            return PROBE_HINTS[p["name"]] + f" (it raised {scalar_text(sub['error_type'])})"
        want = _protocol.call(PROTOCOL, refs[p["name"]], case.arrays, {"args": p["args"]}, [])
        if "error_type" in want:
            continue
        if scalar_text(sub.get("out_type")) != scalar_text(want.get("out_type")):
            return PROBE_HINTS[p["name"]]
        wl, gl = leaves(want), leaves(sub)
        if set(wl) != set(gl) or value_problem(p["name"], case, sub, want, {}) is not None:
            return PROBE_HINTS[p["name"]]
    return None


def compare_with_probes(names, inputs, probes_of):
    """A comparison (see ``make_compare``) that, on a mismatch, runs ``probes_of``'s probes to name the mistake."""
    base = make_compare(names, inputs)

    def compare(ex, case, got, want):
        p = base(ex, case, got, want)
        if p is None:
            return None
        probes = probes_of(case)
        blame = probe_problem(case, got, probes) if probes else None
        return blame or p
    return compare


# ======================================================================== reverse_padded
def _rev_cases(rng, hidden):
    def case(B, T, Fe, lengths, dtype, label):
        kinds = (*padding_kinds(lengths, T), *(("a batch of one",) if B == 1 else ()), *(("T = 1",) if T == 1 else ()))
        return Case({"x": normal(rng, (B, T, Fe), 1.0, dtype), "lengths": _lengths(lengths)}, label, kinds=kinds)

    if not hidden:
        return [case(3, 5, 2, [5, 3, 1], F32, "float32, B=3, T=5, lengths [5, 3, 1]"),
                case(2, 4, 1, [2, 4], F64, "float64, B=2, T=4, unsorted lengths [2, 4]"),
                case(1, 1, 2, [1], F64, "float64, a batch of one, T=1"),
                case(2, 3, 2, [3, 3], F32, "float32, every sequence full length")]
    return [case(2, 4, 3, [4, 4], F64, "float64, every sequence full length"),
            case(4, 6, 2, [2, 6, 4, 5], F64, "float64, unsorted lengths [2, 6, 4, 5]"),
            case(1, 3, 2, [2], F32, "float32, a batch of one, length 2 of T=3"),
            case(2, 1, 3, [1, 1], F64, "float64, T=1")]


def _rev_mutant(kind):
    def fn(x, lengths):
        if kind == "flip":
            return x.flip(1)
        out = torch.zeros_like(x) if kind == "zero_pad" else x.clone()
        for b in range(x.shape[0]):
            L = int(lengths[b])
            if kind == "shift":
                out[b, :L] = x[b, :L].flip(0) if L == x.shape[1] else x[b, 1:L + 1].flip(0)
            else:
                out[b, :L] = x[b, :L].flip(0)
        if kind == "pad_front":
            return torch.stack([torch.cat([x[b, int(lengths[b]):], x[b, :int(lengths[b])].flip(0)])
                                for b in range(x.shape[0])])
        return out
    return fn


def _rev_mutants():
    return [
        Mutant(_rev_mutant("flip"), "you reversed over the padded length T: a shorter sequence then starts with "
               "padding. Reverse each sequence within its own length lengths[b]."),
        Mutant(_rev_mutant("zero_pad"), "positions past a sequence's length must stay as they are, not become "
               "zeros (so that reversing twice gives x back)."),
        Mutant(_rev_mutant("pad_front"), "you moved the padding to the front: padded positions (t >= lengths[b]) "
               "stay at the end, where they were."),
        Mutant(_rev_mutant("shift"), "your reversal is off by one position: step t of a sequence of length L goes "
               "to position L - 1 - t."),
    ]


def _rev_ref():
    from ..reference import reverse_padded

    return reverse_padded


REV_ARGS = {"args": ["x", "lengths"], "grad": False}
REVERSE_PADDED = dict(cases=_rev_cases, reference=_rev_ref, families=_rev_mutants, check=dict(
    compare=make_compare({"__all__": "one tensor shaped like x", "": "the result"}, {}),
    describe=describe_rnn({"": "the result"}),
    error_hint=shape_error_hint("x is (B, T, F) and lengths (B,) holds integers.")))


# ======================================================================== bidirectional_rnn
def _bidir_cases(rng, hidden):
    def case(B, T, I, H, lengths, dtype, label):
        return Case({"x": normal(rng, (B, T, I), 1.0, dtype), **weights(rng, "fw_", 4, I, H, dtype),
                     **weights(rng, "bw_", 4, I, H, dtype), "lengths": _lengths(lengths),
                     **_probe_arrays(rng, B, I, H, dtype)}, label,
                    kinds=(*padding_kinds(lengths, T), *size_kinds(B, I, H)))

    if not hidden:
        return [case(3, 5, 2, 3, [5, 3, 1], F32, "float32, B=3, T=5, I=2, H=3, lengths [5, 3, 1]"),
                case(2, 4, 3, 2, [2, 4], F64, "float64, B=2, T=4, I=3, H=2, unsorted lengths [2, 4]"),
                case(1, 3, 1, 1, [3], F64, "float64, a batch of one, I=H=1, full length"),
                case(2, 4, 2, 2, [4, 3], F32, "float32, I=H=2, lengths [4, 3]")]
    return [case(2, 4, 3, 3, [4, 4], F64, "float64, every sequence full length"),
            case(4, 6, 2, 3, [2, 6, 4, 6], F64, "float64, unsorted lengths [2, 6, 4, 6]"),
            case(1, 3, 2, 2, [2], F64, "float64, a batch of one, length 2 of T=3"),
            case(2, 6, 1, 1, [6, 3], F64, "float64, I=H=1, lengths [6, 3]"),
            case(3, 5, 4, 2, [1, 5, 3], F32, "float32, lengths [1, 5, 3]")]


def _bidir_ref():
    from ..reference import bidirectional_rnn

    def ref(x, fw_weights, bw_weights, lengths):
        out, (ff, fb) = bidirectional_rnn(x, fw_weights, bw_weights, "lstm", lengths)
        return out, (torch.stack([ff[0], fb[0]]), torch.stack([ff[1], fb[1]]))
    return ref


def _mask(x, lengths):
    T = x.shape[1]
    return (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)


@family
def _bidir_mutant(back="reverse", full=False, mask=True, reflip=True, cat_order=False, hn_order=False,
                  same_weights=False):
    """A bidirectional RNN with the given mistakes. The backward direction reads ``back``: "reverse" (each
    sequence reversed within its own length, right), "flip" (the whole padded batch, x.flip(1)) or "none";
    ``full``: it runs over all T steps instead of ``lengths``; ``mask``: its outputs are zeroed at padded
    steps afterwards; ``reflip``: its outputs are put back in order (the same way they were reversed)."""
    from ..reference import reverse_padded, run_rnn

    def fn(x, fw, bw, lengths):
        out_f, (hf, cf) = run_rnn(x, fw, "lstm", lengths)
        if same_weights:
            bw = fw
        run_len = None if full else lengths
        if back == "none":
            out_b, (hb, cb) = run_rnn(x, bw, "lstm", run_len)
        elif back == "flip":
            ob, (hb, cb) = run_rnn(x.flip(1), bw, "lstm", run_len)
            out_b = ob.flip(1) if reflip else ob
        else:
            ob, (hb, cb) = run_rnn(reverse_padded(x, lengths), bw, "lstm", run_len)
            out_b = reverse_padded(ob, lengths) if reflip else ob
        if mask:
            out_b = out_b * _mask(x, lengths)
        pair = [out_b, out_f] if cat_order else [out_f, out_b]
        hn = [hb, hf] if hn_order else [hf, hb]
        cn = [cb, cf] if hn_order else [cf, cb]
        return torch.cat(pair, -1), (torch.stack(hn), torch.stack(cn))
    return fn


BIDIR_HINTS = {
    "flip": "your backward direction reverses the padded length T (e.g. x.flip(1)): a shorter sequence's backward "
            "pass then starts on padding. Reverse each sequence within its own length (your reverse_padded), "
            "run, and reverse the outputs back the same way.",
    "not_rereversed": "the backward outputs are still in reversed order: put them back (reverse_padded again) so "
                      "that out[:, t] holds both directions' states for step t.",
    "cat_order": "the two halves are concatenated [backward, forward]: nn.LSTM puts the forward direction first, "
                 "out = [forward, backward] along the last axis.",
    "hn_order": "h_n and c_n are in the wrong order: index 0 is the forward direction, index 1 the backward one, "
                "as in nn.LSTM.",
    "same_weights": "both directions use fw_weights: the backward direction is a separate RNN with bw_weights.",
    "no_reverse": "your backward direction reads each sequence left to right: it must read it from its last "
                  "valid step to its first.",
    "full": "your backward direction runs over all T steps, padding included (full lengths instead of `lengths`): "
            "its state then also reads the padded steps, and its outputs there are not zero. Pass `lengths` to "
            "run_rnn for the backward direction too.",
}

FLIP_FULL_HINT = ("your backward direction flips the whole padded batch (torch.flip over T) and runs it over all T "
                  "steps with no mask: a shorter sequence's backward pass then starts on its padding, so its "
                  "states and h_n/c_n have read the padded steps, and its outputs at padded steps are not zero. "
                  "Reverse each sequence within its own length (your reverse_padded), run with `lengths`, and "
                  "reverse the outputs back the same way.")


def _flip_hint(full, mask, reflip):
    if full and not mask:
        hint = FLIP_FULL_HINT
    else:
        hint = BIDIR_HINTS["flip"]
        if full:
            hint += " It also runs over all T steps, padding included: pass `lengths`."
    if not reflip:
        hint += " And its outputs are left in reversed order: put them back so that out[:, t] is step t."
    return hint


def _bidir_mutants():
    ms = [Mutant(_bidir_mutant(back="flip"), BIDIR_HINTS["flip"]),
          Mutant(_bidir_mutant(reflip=False), BIDIR_HINTS["not_rereversed"]),
          Mutant(_bidir_mutant(cat_order=True), BIDIR_HINTS["cat_order"]),
          Mutant(_bidir_mutant(hn_order=True), BIDIR_HINTS["hn_order"]),
          Mutant(_bidir_mutant(same_weights=True), BIDIR_HINTS["same_weights"]),
          Mutant(_bidir_mutant(back="none"), BIDIR_HINTS["no_reverse"]),
          Mutant(_bidir_mutant(full=True, mask=False), BIDIR_HINTS["full"]),
          Mutant(_bidir_mutant(full=True), BIDIR_HINTS["full"])]
    # the padded batch flipped as a whole: every combination of lengths or full runs, masked or not, put back
    # in order or not (the first one is above)
    for full in (False, True):
        for mask in (True, False):
            for reflip in (True, False):
                if full or not mask or not reflip:
                    ms.append(Mutant(_bidir_mutant(back="flip", full=full, mask=mask, reflip=reflip),
                                     _flip_hint(full, mask, reflip)))
    return ms


def _bidir_split(case, path, w):
    """Which direction: index 0 / 1 of h_n and c_n, the first / second half of out's last axis."""
    if path in (".1.0", ".1.1") and w.ndim == 3 and w.shape[0] == 2:
        return [(" of the forward direction (index 0)", 0), (" of the backward direction (index 1)", 1)]
    if path == ".0" and w.ndim == 3 and w.shape[-1] % 2 == 0:
        H = w.shape[-1] // 2
        return [(" in its forward half (out[..., :H])", (..., slice(0, H))),
                (" in its backward half (out[..., H:])", (..., slice(H, None)))]
    return None


OUT_NAMES = {"__all__": "a pair (out, (h_n, c_n))", ".0": "`out`", ".1.0": "`h_n`", ".1.1": "`c_n`"}
BIDIR_INPUTS = {"x": "the input `x`", **{n: f"`fw_weights` ({n[3:]})" for n in FW},
                **{n: f"`bw_weights` ({n[3:]})" for n in BW}}

BIDIR_ARGS = {"args": ["x", FW, BW, "lengths"], "grad": True, "probes": _probes("fw_")}
BIDIRECTIONAL_RNN = dict(cases=_bidir_cases, reference=_bidir_ref, families=_bidir_mutants, check=dict(
    compare=compare_with_probes(OUT_NAMES, BIDIR_INPUTS, lambda case: _probes("fw_")),
    describe=describe_rnn(OUT_NAMES, BIDIR_INPUTS, _bidir_split),
    error_hint=shape_error_hint("x is (B, T, I); each direction's out is (B, T, H), and the two are concatenated "
                                "along the last axis into (B, T, 2H); h_n and c_n are (2, B, H).")))


# ======================================================================== stacked_rnn
def _stack_cases(rng, hidden):
    def case(B, T, I, H, L, bi, residual, lengths, dtype, label):
        D = 2 if bi else 1
        a = {"x": normal(rng, (B, T, I), 1.0, dtype), "lengths": _lengths(lengths),
             "n_weights": np.array(L * D), "bidirectional": np.array(bi), "residual": np.array(residual),
             **_probe_arrays(rng, B, I, H, dtype)}
        for layer in range(L):
            for d in range(D):
                a.update(weights(rng, f"w{layer * D + d}_", 4, I if layer == 0 else D * H, H, dtype))
        kinds = (*padding_kinds(lengths, T), "bidirectional" if bi else "one direction",
                 "residual" if residual else "no residual", f"{min(L, 3)} layer(s)",
                 *(("a skip at layer 0 (I = D*H)",) if residual and I == D * H else ()))
        return Case(a, label, kinds=kinds)

    if not hidden:
        return [case(3, 5, 3, 2, 2, True, False, [5, 2, 4], F64,
                     "float64, 2 layers, bidirectional, I=3, H=2, lengths [5, 2, 4]"),
                case(3, 4, 3, 4, 2, False, True, [4, 4, 1], F32,
                     "float32, 2 layers, residual, I=3 (no skip at layer 1), H=4, lengths [4, 4, 1]"),
                case(2, 4, 2, 2, 3, False, True, [4, 4], F64,
                     "float64, 3 layers, residual, I=H=2, every sequence full length"),
                case(2, 4, 4, 2, 1, True, True, [3, 4], F32, "float32, 1 layer, bidirectional, residual, I=2H=4")]
    return [case(2, 6, 3, 3, 3, False, True, [6, 3], F64, "float64, 3 layers, residual, I=H=3, lengths [6, 3]"),
            case(3, 5, 1, 2, 2, True, True, [5, 1, 3], F64,
                 "float64, 2 layers, bidirectional, residual, I=1 (no skip at layer 1), H=2"),
            case(2, 4, 2, 3, 1, True, False, [4, 4], F64, "float64, 1 layer, bidirectional, full lengths"),
            case(2, 5, 4, 2, 2, True, True, [3, 5], F32, "float32, 2 layers, bidirectional, residual, I=2H=4"),
            case(3, 4, 2, 2, 2, False, False, [4, 2, 3], F64, "float64, 2 layers, I=H=2, lengths [4, 2, 3]")]


def _stack_ref():
    from ..reference import stacked_rnn

    def ref(x, weights, lengths, bidirectional=False, residual=False):
        return stacked_rnn(x, list(weights), "lstm", lengths, bidirectional=bidirectional, residual=residual)
    return ref


@family
def _stack_mutant(layer_input="below", residual_mode="matching", residual_fed=True, residual_masked=True,
                  hn_order="layer", weights_order="layer"):
    """stacked_rnn with the given mistakes. ``layer_input``: "below" (layer l's output, right) or "x" (every
    layer reads x); ``residual_mode``: "matching" (a skip where sizes match, right), "ignored", "always" (also
    when residual=False) or "mismatched" (also where sizes differ: cut or padded); ``residual_fed``: the next
    layer reads the sum; ``residual_masked``: the skip zero at padded steps; ``hn_order`` / ``weights_order``:
    by "layer" (nn.LSTM's, right) or by "direction" first."""
    from ..reference import run_rnn

    def skip_for(src, out, residual):
        if residual_mode == "ignored" or not (residual or residual_mode == "always"):
            return None
        if out.shape[-1] == src.shape[-1]:
            return src
        if residual_mode != "mismatched":
            return None
        if src.shape[-1] > out.shape[-1]:
            return src[..., :out.shape[-1]]
        return src if src.shape[-1] == 1 else F.pad(src, (0, out.shape[-1] - src.shape[-1]))

    def fn(x, weights, lengths, bidirectional=False, residual=False):
        D = 2 if bidirectional else 1
        L = len(weights) // D
        mask = _mask(x, lengths).to(x.dtype)
        inp, hs, cs = x, [], []
        for layer in range(L):
            src = x if (layer_input == "x" and layer > 0) else inp
            outs = []
            for d in range(D):
                k = (d * L + layer) if weights_order == "direction" else layer * D + d
                out, (h, c) = run_rnn(src, weights[k], "lstm", lengths, reverse=d == 1)
                outs.append(out)
                hs.append(h)
                cs.append(c)
            raw = out = torch.cat(outs, -1)
            skip = skip_for(src, out, residual)
            if skip is not None:
                out = out + (skip * mask if residual_masked else skip)
            inp = raw if (not residual_fed and layer < L - 1) else out
        if hn_order == "direction" and D == 2:
            order = [layer * D + d for d in range(D) for layer in range(L)]
            hs, cs = [hs[i] for i in order], [cs[i] for i in order]
        return inp, (torch.stack(hs), torch.stack(cs))
    return fn


def _when(pred):
    return lambda c: bool(pred(c.arrays))


_deep = _when(lambda a: a["n_weights"] > (2 if a["bidirectional"] else 1))
_res = _when(lambda a: bool(a["residual"]))
_bi = _when(lambda a: bool(a["bidirectional"]))

STACK_HINTS = [
    ({"layer_input": "x"}, "every layer reads the original input x: layer l + 1 must read the output sequence of "
                           "layer l (both directions, concatenated).", _deep),
    ({"residual_mode": "mismatched"}, "you added a residual where the layer's input and output sizes differ (the "
                                      "first layer, I != D*H): the skip applies only where the sizes match, and "
                                      "nowhere else.", _res),
    ({"residual_mode": "ignored"}, "residual=True changes nothing in your stack: add each layer's input to its "
                                   "output wherever their sizes match.", _res),
    ({"residual_mode": "always"}, "you added residual links although residual=False.",
     _when(lambda a: not a["residual"])),
    ({"residual_fed": False}, "the next layer reads a layer's raw output: with residual=True it must read the sum "
                              "(output plus skip).", _res),
    ({"residual_masked": False}, "your skip adds the input at padded steps too: out must stay zero where t >= "
                                 "lengths[b], so add the input only at valid steps.", _res),
    ({"hn_order": "direction"}, "h_n and c_n are ordered by direction first: nn.LSTM orders them layer by layer "
                                "(layer 0 forward, layer 0 backward, layer 1 forward, ...).", _bi),
    ({"weights_order": "direction"}, "you read `weights` by direction first: they come in nn.LSTM.all_weights "
                                     "order, layer 0 forward, layer 0 backward, layer 1 forward, ...", _bi),
]


def _stack_mutants():
    return [Mutant(_stack_mutant(**knobs), h, applies) for knobs, h, applies in STACK_HINTS]


STACK_INPUTS = {"x": "the input `x`"}


def _stack_split(case, path, w):
    """Which layer and direction: the rows of h_n and c_n; the halves of out when bidirectional."""
    D = 2 if bool(case.arrays["bidirectional"]) else 1
    if path in (".1.0", ".1.1") and w.ndim == 3:
        return [(f" of layer {k // D}" + (f", {('forward', 'backward')[k % D]} direction" if D == 2 else "")
                 + f" (index {k})", k) for k in range(w.shape[0])]
    if path == ".0" and D == 2:
        return _bidir_split(case, path, w)
    return None


def _stack_probes(case):
    if bool(case.arrays["bidirectional"]):
        return _probes("w0_", bidirectional=True, second="w1_")
    return _probes("w0_")


STACK_SPEC = {"args": ["x", {"layers": "w{k}_", "count": "n_weights", "each": W}, "lengths", "bidirectional",
                       "residual"],
              "grad": True,
              "probes": _probes("w0_", bidirectional=True, second="w1_")}

STACKED_RNN = dict(cases=_stack_cases, reference=_stack_ref, families=_stack_mutants, check=dict(
    compare=compare_with_probes(OUT_NAMES, STACK_INPUTS, _stack_probes),
    describe=describe_rnn(OUT_NAMES, STACK_INPUTS, _stack_split),
    error_hint=shape_error_hint("layer 0 reads x (B, T, I); every later layer reads the output of the layer below, "
                                "(B, T, D*H) with both directions concatenated, so its W_ih is (4H, D*H).")))
