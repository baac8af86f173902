"""course_lib.checks for assignment 3: correct code written differently passes, every known mistake
gets its own hint, and a wrong building block from assignment 2 (the student's lstm_cell or
run_rnn, found next to the graded function) is named as the cause."""
import pytest
import torch
import torch.nn.functional as F

from course_lib import checks
from course_lib.checks import DEEP_BIDIR
from course_lib.checks._core import verdict
from course_lib.exercises import a2_lstm_gru_cells as A2
from course_lib.exercises import a3_deep_bidirectional as A3
from course_lib.exercises import compile_function
from test_checks_gradflow import hint_of


# ------------------------------------------------------------------ the student's building blocks
def lstm_cell(x, state, W_ih, W_hh, b_ih, b_hh):
    h, c = state
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, 1)
    c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c2), c2


def run_rnn(x, weights, cell_fn, lengths, state):
    outs = []
    for t in range(x.shape[1]):
        new = cell_fn(x[:, t], state, *weights)
        m = (t < lengths).unsqueeze(1)
        state, h = tuple(torch.where(m, a, b) for a, b in zip(new, state)), new[0]
        outs.append(torch.where(m, h, torch.zeros_like(h)))
    return torch.stack(outs, 1), state


def reverse_padded(x, lengths):
    B, T = x.shape[:2]
    t = torch.arange(T).expand(B, T)
    L = lengths[:, None]
    return x.gather(1, torch.where(t < L, L - 1 - t, t)[..., None].expand_as(x))


def bidirectional_rnn(x, fw, bw, lengths):
    z = x.new_zeros(x.shape[0], fw[1].shape[1])
    of, (hf, cf) = run_rnn(x, fw, lstm_cell, lengths, (z, z))
    ob, (hb, cb) = run_rnn(reverse_padded(x, lengths), bw, lstm_cell, lengths, (z, z))
    return torch.cat([of, reverse_padded(ob, lengths)], -1), (torch.stack([hf, hb]), torch.stack([cf, cb]))


STACKED_SOURCE = A3.stacked_code()  # the correct stacked_rnn as the student writes it (the spec's)
stacked_rnn = compile_function(STACKED_SOURCE, "stacked_rnn", {"lstm_cell": lstm_cell, "run_rnn": run_rnn,
                                                              "bidirectional_rnn": bidirectional_rnn})


# ------------------------------------------------------------------ reverse_padded
def rev_loop(x, lengths):
    out = x.clone()
    for b, n in enumerate(lengths.tolist()):
        out[b, :n] = x[b, :n].flip(0)
    return out


def rev_index_list(x, lengths):
    rows = []
    for b in range(x.shape[0]):
        n = int(lengths[b])
        idx = list(range(n - 1, -1, -1)) + list(range(n, x.shape[1]))
        rows.append(x[b, idx])
    return torch.stack(rows)


@pytest.mark.parametrize("fn", [reverse_padded, rev_loop, rev_index_list])
def test_reverse_padded_correct_variants_pass(fn):
    assert checks.check_reverse_padded(fn, hidden=True, seed=21) is None


REV_MUTANTS = {
    "padded length": (lambda x, L: x.flip(1), "reversed over the padded length"),
    "padding zeroed": (lambda x, L: rev_loop(x, L) * (torch.arange(x.shape[1])[None] < L[:, None])[..., None],
                       "not become zeros"),
    "in place": (lambda x, L: x.copy_(rev_loop(x, L)), "in place"),
}


@pytest.mark.parametrize("name", REV_MUTANTS)
def test_reverse_padded_mistakes_get_their_hint(name):
    fn, expected = REV_MUTANTS[name]
    assert expected in hint_of(checks.check_reverse_padded, fn)


# ------------------------------------------------------------------ bidirectional_rnn
def bidir_per_sequence(x, fw, bw, lengths):
    H = fw[1].shape[1]
    outs, hn, cn = [], [], []
    for b in range(x.shape[0]):
        n = int(lengths[b])
        seq, one, z = x[b:b + 1, :n], lengths[b:b + 1], x.new_zeros(1, H)
        of, (hf, cf) = run_rnn(seq, fw, lstm_cell, one, (z, z))
        ob, (hb, cb) = run_rnn(seq.flip(1), bw, lstm_cell, one, (z, z))
        outs.append(F.pad(torch.cat([of, ob.flip(1)], -1), (0, 0, 0, x.shape[1] - n)))
        hn.append(torch.stack([hf, hb]))
        cn.append(torch.stack([cf, cb]))
    return torch.cat(outs), (torch.cat(hn, 1), torch.cat(cn, 1))


@pytest.mark.parametrize("fn", [bidirectional_rnn, bidir_per_sequence])
def test_bidirectional_rnn_correct_variants_pass(fn):
    assert checks.check_bidirectional_rnn(fn, hidden=True, seed=22) is None


def _bidir(kind):
    def fn(x, fw, bw, lengths):
        z = x.new_zeros(x.shape[0], fw[1].shape[1])
        of, (hf, cf) = run_rnn(x, fw, lstm_cell, lengths, (z, z))
        if kind == "flip":
            ob, (hb, cb) = run_rnn(x.flip(1), bw, lstm_cell, lengths, (z, z))
            back = ob.flip(1)
        else:
            ob, (hb, cb) = run_rnn(reverse_padded(x, lengths), bw, lstm_cell, lengths, (z, z))
            back = ob if kind == "not_rereversed" else reverse_padded(ob, lengths)
        halves = [back, of] if kind == "cat_order" else [of, back]
        return torch.cat(halves, -1), (torch.stack([hf, hb]), torch.stack([cf, cb]))
    return fn


BIDIR_MUTANTS = {
    "reversed over the padded length": (_bidir("flip"), "reverses the padded length"),
    "backward outputs not re-reversed": (_bidir("not_rereversed"), "still in reversed order"),
    "directions concatenated in the wrong order": (_bidir("cat_order"), "[backward, forward]"),
    "final states of one direction": (lambda *a: (bidirectional_rnn(*a)[0], tuple(t[0] for t in bidirectional_rnn(*a)[1])),
                                      "shape (2, 3, 3) is expected"),
    "a list instead of a tuple": (lambda *a: bidirectional_rnn(*a)[0], "must return a pair (out, (h_n, c_n))"),
}


@pytest.mark.parametrize("name", BIDIR_MUTANTS)
def test_bidirectional_rnn_mistakes_get_their_hint(name):
    fn, expected = BIDIR_MUTANTS[name]
    assert expected in hint_of(checks.check_bidirectional_rnn, fn)


def _namespace(**overrides):
    """A notebook namespace: the correct functions, some replaced, defined as the student would."""
    ns = {"torch": torch, "lstm_cell": lstm_cell, "run_rnn": run_rnn, "reverse_padded": reverse_padded}
    ns.update(overrides)
    src = __import__("inspect").getsource(bidirectional_rnn) + "\n" + STACKED_SOURCE
    exec(compile(src, "<notebook>", "exec"), ns)
    return ns


wrong_cell = compile_function(A2.lstm_code(order="i, f, o, g"), "lstm_cell")  # assignment 2's gate-order mistake


def run_ignoring_lengths(x, weights, cell_fn, lengths, state):
    return run_rnn(x, weights, cell_fn, torch.full_like(lengths, x.shape[1]), state)


@pytest.mark.parametrize("block,wrong,expected", [("lstm_cell", wrong_cell, "your `lstm_cell`"),
                                                   ("run_rnn", run_ignoring_lengths, "your `run_rnn`")])
def test_a_wrong_building_block_is_named(block, wrong, expected):
    ns = _namespace(**{block: wrong})
    assert expected in hint_of(checks.check_bidirectional_rnn, ns["bidirectional_rnn"])
    assert expected in hint_of(checks.check_stacked_rnn, ns["stacked_rnn"])


def test_a_wrong_bidirectional_rnn_is_named_by_stacked_rnn():
    ns = _namespace(reverse_padded=lambda x, L: x.flip(1))
    assert "your `bidirectional_rnn`" in hint_of(checks.check_stacked_rnn, ns["stacked_rnn"])


def test_building_blocks_that_are_right_never_take_the_blame():
    ns = _namespace()
    assert checks.check_stacked_rnn(ns["stacked_rnn"], hidden=True, seed=3) is None
    hint = hint_of(checks.check_bidirectional_rnn, _bidir("cat_order"))  # module-level blocks are correct
    assert "your `" not in hint


# ------------------------------------------------------------------ stacked_rnn
def stacked_flat(x, weights, lengths, bidirectional=False, residual=False):
    D = 2 if bidirectional else 1
    valid = (torch.arange(x.shape[1])[None, :] < lengths[:, None])[..., None]
    y_in, hs, cs = x, [], []
    for k in range(0, len(weights), D):
        if D == 2:
            y, (h, c) = bidirectional_rnn(y_in, weights[k], weights[k + 1], lengths)
        else:
            z = x.new_zeros(x.shape[0], weights[k][1].shape[1])
            y, (h, c) = run_rnn(y_in, weights[k], lstm_cell, lengths, (z, z))
            h, c = h[None], c[None]
        hs.append(h)
        cs.append(c)
        if residual and y.shape == y_in.shape:
            y = y + torch.where(valid, y_in, torch.zeros_like(y_in))
        y_in = y
    return y_in, (torch.cat(hs), torch.cat(cs))


@pytest.mark.parametrize("fn", [stacked_rnn, stacked_flat])
def test_stacked_rnn_correct_variants_pass(fn):
    assert checks.check_stacked_rnn(fn, hidden=True, seed=23) is None


def _stacked(kind):
    def fn(x, weights, lengths, bidirectional=False, residual=False):
        D = 2 if bidirectional else 1
        mask = (torch.arange(x.shape[1])[None] < lengths[:, None])[..., None].to(x.dtype)
        inp, hs, cs = x, [], []
        for layer in range(len(weights) // D):
            src = x if kind == "layer_input_x" else inp
            if bidirectional:
                out, (h, c) = bidirectional_rnn(src, weights[2 * layer], weights[2 * layer + 1], lengths)
                hs += list(h)
                cs += list(c)
            else:
                z = x.new_zeros(x.shape[0], weights[layer][1].shape[1])
                out, (h, c) = run_rnn(src, weights[layer], lstm_cell, lengths, (z, z))
                hs.append(h)
                cs.append(c)
            if residual and kind != "residual_ignored":
                if out.shape[-1] == src.shape[-1]:
                    out = out + src * (1 if kind == "residual_unmasked" else mask)
                elif kind == "residual_shapes_differ":
                    out = out + F.pad(src, (0, out.shape[-1] - src.shape[-1])) * mask
                elif kind == "residual_broadcast" and src.shape[-1] == 1:
                    out = out + src * mask  # broadcasting makes the sizes "fit"
            inp = out
        return inp, (torch.stack(hs), torch.stack(cs))
    return fn


STACK_MUTANTS = {
    "layer 2 fed x (shapes allow it)": (_stacked("layer_input_x"), "every layer reads the original input x"),
    "residual where shapes differ (padded)": (_stacked("residual_shapes_differ"), "sizes differ"),
    "residual ignored": (_stacked("residual_ignored"), "residual=True changes nothing"),
    "residual at padded steps": (_stacked("residual_unmasked"), "at padded steps too"),
}


@pytest.mark.parametrize("name", STACK_MUTANTS)
def test_stacked_rnn_mistakes_get_their_hint_where_the_case_shows_them(name):
    fn, expected = STACK_MUTANTS[name]
    ex = DEEP_BIDIR["stacked_rnn"]
    cases = ex.cases(0, False) + ex.cases(7, True)
    v = verdict(ex, cases, [ex.call(fn, c) for c in cases])
    assert not v.passed
    # the first case that shows the mistake names it (a shape error on an earlier case names the layout)
    for c in cases:
        v = verdict(ex, [c], [ex.call(fn, c)])
        if not v.passed and "raised" not in v.hint:
            assert expected in v.hint, v.hint
            return
    raise AssertionError("no case shows the mistake")


def test_layer_2_fed_the_wrong_input_names_the_layout_when_shapes_differ():
    hint = hint_of(checks.check_stacked_rnn, _stacked("layer_input_x"))
    assert "every later layer reads the output of the layer below" in hint


def test_residual_broadcast_where_shapes_differ_is_named():
    ex = DEEP_BIDIR["stacked_rnn"]
    case = next(c for c in ex.cases(7, True) if c.arrays["x"].shape[-1] == 1)
    v = verdict(ex, [case], [ex.call(_stacked("residual_broadcast"), case)])
    assert not v.passed and "sizes differ" in v.hint, v.hint


def test_stacked_equals_nn_lstm_on_packed_sequences():
    """The contract is nn.LSTM's: the reference the checks compare with agrees with it."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    m = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    x, lengths = torch.randn(3, 6, 3, dtype=torch.float64), torch.tensor([6, 2, 4])
    p, (h, c) = m(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    want, _ = pad_packed_sequence(p, batch_first=True, total_length=6)
    ref = DEEP_BIDIR["stacked_rnn"].reference()
    out, (my_h, my_c) = ref(x, [tuple(w) for w in m.all_weights], lengths, bidirectional=True)
    assert torch.allclose(out, want, atol=1e-12) and torch.allclose(my_h, h, atol=1e-12)
    out2, (h2, _) = stacked_rnn(x, [tuple(w) for w in m.all_weights], lengths, bidirectional=True)
    assert torch.allclose(out2, want, atol=1e-12) and torch.allclose(h2, h, atol=1e-12)
