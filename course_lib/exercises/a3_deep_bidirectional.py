"""Assignment 3, deep and bidirectional RNNs (lectures 5 and 6): one spec per exercise.

Each spec is everything the course says about the exercise: points, signature, stub docstring, contract,
how the judge calls it, its cases and reference, its known mistakes (as student code, with the hint each
must get and the sample it becomes) and correct code written differently. The judge's parametrised
mistake families stay code in ``course_lib/checks/deep_bidir.py``.
"""
from __future__ import annotations

import numpy as np

from ..checks import deep_bidir as D
from ..checks._core import Case
from ..checks._rnn_common import F32, F64, PROTOCOL, describe_rnn, make_compare, normal, shape_error_hint
from ._spec import Assignment, Call, Mistake, Spec, Variant

DIFFERENT = "correct_written_differently"  # the sample that holds every variant

# ---------------------------------------------------------------------------------------- reverse_padded
REV = "def reverse_padded(x, lengths):\n"

REVERSE_PADDED = Spec(
    "reverse_padded", 2, "reverse_padded(x, lengths) -> x_rev",
    "Reverse each sequence of x (B, T, F) within its own length; padded positions stay in place.",
    "`x` (B, T, F); each sequence reversed within its own length, padded positions left in place (applying it "
    "twice gives `x`).",
    call=Call(PROTOCOL, D.REV_ARGS), **D.REVERSE_PADDED,
    mistakes=(Mistake(REV + "    return x.flip(1)", "reversed over the padded length", "mistake_reverse_flip"),),
    variants=(Variant(REV + """    out = x.clone()
    for b in range(x.shape[0]):
        n = int(lengths[b])
        out[b, :n] = torch.flip(x[b, :n], dims=[0])
    return out""", DIFFERENT),))

# ---------------------------------------------------------------------------------------- bidirectional_rnn
BI = "def bidirectional_rnn(x, fw_weights, bw_weights, lengths):\n"


# the student's bidirectional_rnn, written the usual way with one thing changed (the defaults: correct)
def bidir_code(backward="reverse_padded(x, lengths)", back_out="reverse_padded(out_b, lengths)", cat="out_f, back",
        back_lengths="lengths"):
    return BI + f"""    B, H = x.shape[0], fw_weights[1].shape[1]
    zeros = x.new_zeros(B, H)
    out_f, (h_f, c_f) = run_rnn(x, fw_weights, lstm_cell, lengths, (zeros, zeros))
    out_b, (h_b, c_b) = run_rnn({backward}, bw_weights, lstm_cell, {back_lengths}, (zeros, zeros))
    back = {back_out}
    return torch.cat([{cat}], dim=-1), (torch.stack([h_f, h_b]), torch.stack([c_f, c_b]))"""


BIDIRECTIONAL_RNN = Spec(
    "bidirectional_rnn", 4, "bidirectional_rnn(x, fw_weights, bw_weights, lengths) -> (out, (h_n, c_n))",
    "A forward and a backward LSTM over x (B, T, I) -> (out (B, T, 2H), (h_n, c_n) each (2, B, H)).",
    "`out` (B, T, 2H) = [forward, backward] along the last axis; `h_n`, `c_n` (2, B, H), index 0 the forward "
    "direction's state after each sequence's last valid step, index 1 the backward direction's after step 0.",
    call=Call(PROTOCOL, D.BIDIR_ARGS), **D.BIDIRECTIONAL_RNN, uses=("reverse_padded",),
    mistakes=(
        Mistake(bidir_code(backward="x.flip(1)", back_out="out_b.flip(1)"), "reverses the padded length",
                "mistake_bidir_padded_reverse"),
        # published: the whole padded batch flipped, run over every step, no mask
        Mistake(bidir_code(backward="torch.flip(x, dims=[1])", back_out="torch.flip(out_b, dims=[1])",
                    back_lengths="torch.full_like(lengths, x.shape[1])"),
                "flips the whole padded batch", "mistake_bidir_flip_full_unmasked"),
        Mistake(bidir_code(back_out="out_b"), "still in reversed order", "mistake_bidir_not_rereversed"),
        Mistake(bidir_code(cat="back, out_f"), "[backward, forward]", "mistake_bidir_cat_order"),
    ),
    variants=(Variant(BI + """    H = fw_weights[1].shape[1]
    outs, hn, cn = [], [], []
    for b in range(x.shape[0]):  # one sequence at a time, cut to its own length
        n = int(lengths[b])
        seq = x[b:b + 1, :n]
        one = torch.ones(1, dtype=lengths.dtype) * n
        z = x.new_zeros(1, H)
        of, (hf, cf) = run_rnn(seq, fw_weights, lstm_cell, one, (z, z))
        ob, (hb, cb) = run_rnn(seq.flip(1), bw_weights, lstm_cell, one, (z, z))
        o = torch.cat([of, ob.flip(1)], dim=-1)
        outs.append(torch.cat([o, x.new_zeros(1, x.shape[1] - n, 2 * H)], dim=1))
        hn.append(torch.stack([hf, hb]))
        cn.append(torch.stack([cf, cb]))
    return torch.cat(outs), (torch.cat(hn, dim=1), torch.cat(cn, dim=1))""", DIFFERENT),))

# ---------------------------------------------------------------------------------------- stacked_rnn
ST = "def stacked_rnn(x, weights, lengths, bidirectional=False, residual=False):\n"


# the student's stacked_rnn, written the usual way with one thing changed (the defaults: correct; the
# assignment 3 tests use it as the correct stacked_rnn)
def stacked_code(layer_input="inp", residual_other=""):
    return ST + f"""    D = 2 if bidirectional else 1
    B, T, _ = x.shape
    H = weights[0][1].shape[1]
    mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1).to(x.dtype)
    inp, hs, cs = x, [], []
    for layer in range(len(weights) // D):
        src = {layer_input}
        if bidirectional:
            out, (h, c) = bidirectional_rnn(src, weights[2 * layer], weights[2 * layer + 1], lengths)
            hs += [h[0], h[1]]
            cs += [c[0], c[1]]
        else:
            zeros = x.new_zeros(B, H)
            out, (h, c) = run_rnn(src, weights[layer], lstm_cell, lengths, (zeros, zeros))
            hs.append(h)
            cs.append(c)
        if residual and out.shape[-1] == src.shape[-1]:
            out = out + src * mask{residual_other}
        inp = out
    return inp, (torch.stack(hs), torch.stack(cs))"""


STACKED_RNN = Spec(
    "stacked_rnn", 4, "stacked_rnn(x, weights, lengths, bidirectional=False, residual=False) -> (out, (h_n, c_n))",
    "A stack of LSTM layers over x (B, T, I) -> (out (B, T, D*H), (h_n, c_n) each (L*D, B, H)).",
    "`weights` holds num_layers * D tuples `(W_ih, W_hh, b_ih, b_hh)` in `nn.LSTM.all_weights` order (layer 0 "
    "forward, layer 0 backward, layer 1 forward, ...); layer l + 1 reads layer l's output (both directions "
    "concatenated); `residual=True` adds a layer's input to its output wherever their sizes match (zero at "
    "padded steps) and the sum is what the next layer reads; `out` (B, T, D*H), `h_n`, `c_n` "
    "(num_layers * D, B, H), as `nn.LSTM(batch_first=True)` on packed sequences.",
    call=Call(PROTOCOL, D.STACK_SPEC, ("bidirectional", "residual")), **D.STACKED_RNN, uses=("bidirectional_rnn",),
    mistakes=(
        Mistake(stacked_code(layer_input="x"), "every later layer reads the output of the layer below",
                "mistake_stacked_layer_input"),
        Mistake(stacked_code(residual_other="""
        elif residual:  # sizes differ: pad the input with zeros to make them fit
            out = out + torch.nn.functional.pad(src, (0, out.shape[-1] - src.shape[-1])) * mask"""),
                "sizes differ", "mistake_stacked_residual_shapes"),
    ),
    variants=(Variant(ST + """    D = 2 if bidirectional else 1
    H = weights[0][1].shape[1]
    valid = (torch.arange(x.shape[1])[None, :] < lengths[:, None])[..., None]
    layer_in, finals_h, finals_c = x, [], []
    for k in range(0, len(weights), D):
        z = x.new_zeros(x.shape[0], H)
        if D == 2:
            y, (h, c) = bidirectional_rnn(layer_in, weights[k], weights[k + 1], lengths)
            finals_h.extend(h.unbind(0))
            finals_c.extend(c.unbind(0))
        else:
            y, (h, c) = run_rnn(layer_in, weights[k], lstm_cell, lengths, (z, z))
            finals_h.append(h)
            finals_c.append(c)
        if residual and y.shape == layer_in.shape:
            y = y + torch.where(valid, layer_in, torch.zeros_like(layer_in))
        layer_in = y
    return layer_in, (torch.stack(finals_h), torch.stack(finals_c))""", DIFFERENT),))


# ---------------------------------------------------------------------------------------- highway (lecture 5)
def _highway_cases(rng, hidden):
    def case(B, D, dtype, label, gate_bias=0.0):
        k = 1.5 / np.sqrt(D)
        return Case({"x": normal(rng, (B, D), 1.0, dtype), "W_H": normal(rng, (D, D), k, dtype),
                     "b_H": normal(rng, (D,), 0.5, dtype), "W_T": normal(rng, (D, D), k, dtype),
                     "b_T": (normal(rng, (D,), 0.5) + gate_bias).astype(dtype)}, label)

    if not hidden:
        return [case(3, 4, F32, "float32, B=3, D=4"), case(2, 3, F64, "float64, B=2, D=3, b_T near -2 (mostly carry)",
                                                          gate_bias=-2.0)]
    return [case(4, 6, F64, "float64, B=4, D=6"), case(1, 5, F32, "float32, a batch of one, D=5"),
            case(3, 1, F64, "float64, D=1"), case(2, 4, F64, "float64, b_T near -3 (mostly carry)", gate_bias=-3.0),
            case(2, 4, F64, "float64, b_T near +3 (mostly transform)", gate_bias=3.0)]


def _highway_ref():
    from ..reference import highway

    return highway


HW = "def highway(x, W_H, b_H, W_T, b_T):\n"
HW_NAMES = {"": "`y`", "__all__": "one tensor y (B, D)"}
HW_INPUTS = {"x": "the input `x`", "W_H": "`W_H`", "b_H": "`b_H`", "W_T": "`W_T`", "b_T": "`b_T`"}

HIGHWAY = Spec(
    "highway", 3, "highway(x, W_H, b_H, W_T, b_T) -> y",
    "One highway layer: x (B, D), W_H and W_T (D, D), b_H and b_T (D,) -> y (B, D).",
    "`x` (B, D); `W_H`, `W_T` (D, D), `b_H`, `b_T` (D,); transform gate T = sigmoid(x W_T^T + b_T), "
    "H = relu(x W_H^T + b_H), y = T * H + (1 - T) * x: the carry gate is 1 - T (Srivastava et al. 2015, "
    "lecture 5).",
    call=Call(PROTOCOL, {"args": ["x", "W_H", "b_H", "W_T", "b_T"], "grad": True}),
    cases=_highway_cases, reference=_highway_ref,
    check=dict(compare=make_compare(HW_NAMES, HW_INPUTS), describe=describe_rnn(HW_NAMES, HW_INPUTS),
               error_hint=shape_error_hint("x is (B, D); W_H and W_T are (D, D) in torch.nn's (out_features, "
                                           "in_features) layout, so x @ W_T.T is (B, D); b_H and b_T are (D,).")),
    solution="""T = torch.sigmoid(x @ W_T.T + b_T)  # transform gate, in (0, 1)
H = torch.relu(x @ W_H.T + b_H)
return T * H + (1 - T) * x  # carry gate C = 1 - T""",
    mistakes=(
        Mistake(HW + """    T = torch.sigmoid(x @ W_T.T + b_T)
    H = torch.relu(x @ W_H.T + b_H)
    return T * H + T * x""", "your carry gate is the transform gate T itself: the carry gate is C = 1 - T, so "
                "y = T * H + (1 - T) * x.", "mistake_highway_carry_is_transform", mutant=True),
        Mistake(HW + """    T = x @ W_T.T + b_T
    H = torch.relu(x @ W_H.T + b_H)
    return T * H + (1 - T) * x""", "your transform gate has no sigmoid: T = sigmoid(x W_T^T + b_T) lies in "
                "(0, 1), so that y mixes H(x) and x.", "mistake_highway_no_sigmoid", mutant=True),
        Mistake(HW + """    T = torch.sigmoid(x @ W_T.T + b_T)
    H = torch.relu(x @ W_H.T + b_H)
    return (1 - T) * H + T * x""", "T and 1 - T are swapped: the transform gate T weighs H(x), the carry gate "
                "1 - T weighs x.", mutant=True),
        Mistake(HW + """    T = torch.sigmoid(x @ W_T.T + b_T)
    return T * (x @ W_H.T + b_H) + (1 - T) * x""", "H(x) has no nonlinearity: H = relu(x W_H^T + b_H).",
                mutant=True),
        Mistake(HW + """    T = torch.sigmoid(x @ W_T + b_T)
    H = torch.relu(x @ W_H + b_H)
    return T * H + (1 - T) * x""", "W_H and W_T are used transposed. torch.nn stores a weight as (out_features, "
                "in_features), so the layer computes x @ W.T.", mutant=True),
        Mistake(HW + """    T = torch.sigmoid(x @ W_H.T + b_H)
    H = torch.relu(x @ W_T.T + b_T)
    return T * H + (1 - T) * x""", "the two layers are swapped: W_T and b_T make the transform gate T, W_H and "
                "b_H the candidate H(x).", mutant=True),
    ),
    variants=(
        Variant(HW + """    T = torch.sigmoid(torch.nn.functional.linear(x, W_T, b_T))
    H = torch.relu(torch.nn.functional.linear(x, W_H, b_H))
    return torch.lerp(x, H, T)  # x + T * (H - x)""", DIFFERENT),
        Variant(HW + """    gate = 1 / (1 + torch.exp(-(torch.einsum("bi,oi->bo", x.double(), W_T.double()) + b_T)))
    cand = torch.clamp(torch.einsum("bi,oi->bo", x.double(), W_H.double()) + b_H, min=0)
    return (gate * cand + (1 - gate) * x).to(x.dtype)"""),
    ))

ASSIGNMENT = Assignment(
    "03_deep_bidirectional", [REVERSE_PADDED, BIDIRECTIONAL_RNN, STACKED_RNN, HIGHWAY],
    about="LSTM only, zero initial states; built on the student's own `lstm_cell` and `run_rnn`, pasted from "
          "assignment 2 into the notebook and probed by the checks",
    topic="deep and bidirectional", ungraded="matching `nn.LSTM`, tagging past the unidirectional ceiling",
    warm=("torch._dynamo",))  # its tagger trains with torch.optim
