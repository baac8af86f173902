"""Mistakes as families (issue 17): the published mistakes and their neighbours are named, two mistakes made
together are both named, and when no known mistake explains a result the hint still says which output is
wrong, on which case and how far, without giving expected values away. Correct variants still pass."""
import pytest
import torch
import torch.nn.functional as F

from course_lib import checks
from course_lib.checks import DEEP_BIDIR, LSTM_GRU, TRAINING
from course_lib.checks._core import verdict
from course_lib.reference.training import detach_state
from test_checks_deep_bidir import lstm_cell, reverse_padded, run_rnn
from test_checks_gradflow import hint_of, mistake_params

FALLBACK = "None of the usual mistakes explains them"


# ------------------------------------------------------------------ lstm_cell: the cell update
def _lstm(update, order="ifgo"):
    def fn(x, state, W_ih, W_hh, b_ih, b_hh):
        h, c = state
        blocks = dict(zip(order, (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, 1)))
        i, f, o = (torch.sigmoid(blocks[k]) for k in "ifo")
        g = torch.tanh(blocks["g"])
        c2 = update(i, f, g, o, c)
        return o * torch.tanh(c2), c2
    return fn


LSTM_UPDATES = {
    "f * c + f * g (published)": (lambda i, f, g, o, c: f * c + f * g, "c' = f * c + f * g"),
    "i * c + i * g": (lambda i, f, g, o, c: i * c + i * g, "c' = i * c + i * g"),
    "f * c + g": (lambda i, f, g, o, c: f * c + g, "the input gate i is missing"),
    "c + i * g": (lambda i, f, g, o, c: c + i * g, "the forget gate f is missing"),
    "c + g": (lambda i, f, g, o, c: c + g, "c' = 1 * c + 1 * g"),
    "f * c + (1 - f) * g": (lambda i, f, g, o, c: f * c + (1 - f) * g, "coupling the input gate"),
    "f * c + o * g": (lambda i, f, g, o, c: f * c + o * g, "scaled by o where the input gate i belongs"),
    "(1 - i) * c + i * g": (lambda i, f, g, o, c: (1 - i) * c + i * g, "scaled by (1 - i) where the forget gate"),
}


@pytest.mark.parametrize("name", LSTM_UPDATES)
def test_lstm_cell_update_family_is_named(name):
    update, words = LSTM_UPDATES[name]
    hint = hint_of(checks.check_lstm_cell, _lstm(update))
    assert words in hint and FALLBACK not in hint, hint
    assert "f * g" not in hint or "f * c + f * g" in hint  # the student's own update, not the answer


def test_lstm_two_mistakes_together_are_both_named():
    hint = hint_of(checks.check_lstm_cell, _lstm(lambda i, f, g, o, c: f * c + f * g, order="ifog"))
    assert "two mistakes" in hint and "c' = f * c + f * g" in hint and "order i, f, o, g" in hint, hint


def lstm_einsum(x, state, W_ih, W_hh, b_ih, b_hh):
    h, c = state
    a = torch.einsum("bi,gi->bg", x, W_ih) + torch.einsum("bh,gh->bg", h, W_hh) + b_ih + b_hh
    i, f, g, o = a.chunk(4, dim=1)
    c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c2), c2


def lstm_float64_inside(x, state, *w):
    h, c = lstm_einsum(x.double(), tuple(s.double() for s in state), *(t.double() for t in w))
    return h.to(x.dtype), c.to(x.dtype)


def gru_lerp(x, h, W_ih, W_hh, b_ih, b_hh):
    xr, xz, xn = F.linear(x, W_ih, b_ih).chunk(3, 1)
    hr, hz, hn = F.linear(h, W_hh, b_hh).chunk(3, 1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    return torch.lerp(torch.tanh(xn + r * hn), h, z)


@pytest.mark.parametrize("check,fn", [(checks.check_lstm_cell, lstm_einsum),
                                      (checks.check_lstm_cell, lstm_float64_inside),
                                      (checks.check_gru_cell, gru_lerp)])
def test_correct_variants_still_pass(check, fn):
    assert check(fn, hidden=True, seed=17) is None


# ------------------------------------------------------------------ the fallback
def test_fallback_names_the_output_and_a_constant_factor():
    def doubled_c(x, state, *w):
        h, c = lstm_cell(x, state, *w)
        return h, 2 * c

    hint = hint_of(checks.check_lstm_cell, doubled_c)
    assert FALLBACK in hint and "c_next (the second item) is about 2 times the expected values" in hint, hint
    assert "h_next" not in hint.split("(on")[0]  # h_next is right


def test_fallback_names_the_wrong_direction_of_h_n_without_expected_values():
    from test_checks_deep_bidir import bidirectional_rnn

    def off_backward(*a):
        out, (h, c) = bidirectional_rnn(*a)
        return out, (torch.stack([h[0], h[1] + 0.05]), c)

    ex = DEEP_BIDIR["bidirectional_rnn"]
    cases = ex.cases(3, hidden=True)
    v = verdict(ex, cases, [ex.call(off_backward, c) for c in cases])
    assert not v.passed and FALLBACK in v.hint
    assert "`h_n` of the backward direction (index 1) is off by up to about 0.05" in v.hint, v.hint
    assert "forward direction" not in v.hint
    want = ex.call(ex.reference(), cases[0])["out.1.0"]
    for val in want.ravel()[:6]:
        assert f"{val:.3f}" not in v.hint


def test_fallback_says_at_which_steps():
    def out_nonzero_at_padding(x, weights, cell_fn, lengths, state):
        out, final = run_rnn(x, weights, cell_fn, lengths, state)
        return out + 0.5 * (torch.arange(x.shape[1])[None, :, None] >= lengths[:, None, None]), final

    hint = hint_of(checks.check_run_rnn, out_nonzero_at_padding)
    assert FALLBACK in hint and "`out` is off by up to 0.5" in hint and "at padded steps only" in hint, hint


# ------------------------------------------------------------------ bidirectional_rnn: the flipped padded batch
def _bidir(backward, reflip=True, mask=False, cat_order=False):
    def fn(x, fw, bw, lengths):
        z = x.new_zeros(x.shape[0], fw[1].shape[1])
        of, (hf, cf) = run_rnn(x, fw, lstm_cell, lengths, (z, z))
        ob, (hb, cb) = backward(x, bw, lengths, z)
        if reflip:
            ob = torch.flip(ob, dims=[1])
        if mask:
            ob = ob * (torch.arange(x.shape[1])[None, :] < lengths[:, None])[..., None]
        halves = [ob, of] if cat_order else [of, ob]
        return torch.cat(halves, -1), (torch.stack([hf, hb]), torch.stack([cf, cb]))
    return fn


def flip_full(x, bw, lengths, z):  # the whole padded batch, every step valid
    return run_rnn(torch.flip(x, dims=[1]), bw, lstm_cell, torch.full_like(lengths, x.shape[1]), (z, z))


def flip_lengths(x, bw, lengths, z):
    return run_rnn(torch.flip(x, dims=[1]), bw, lstm_cell, lengths, (z, z))


BIDIR_FAMILY = {
    "flip, full lengths, no mask (published)": (_bidir(flip_full), "flips the whole padded batch"),
    "flip, full lengths, masked": (_bidir(flip_full, mask=True), "runs over all T steps, padding included"),
    "flip, full lengths, not flipped back": (_bidir(flip_full, reflip=False), "left in reversed order"),
    "flip with lengths, not flipped back": (_bidir(flip_lengths, reflip=False), "left in reversed order"),
    "flip with lengths": (_bidir(flip_lengths), "reverses the padded length T"),
}


def test_bidirectional_flip_and_concatenation_order_are_both_named():
    hint = hint_of(checks.check_bidirectional_rnn, _bidir(flip_full, cat_order=True))
    assert "two mistakes" in hint and "flips the whole padded batch" in hint and "[backward, forward]" in hint, hint


def test_bidirectional_full_lengths_with_reverse_padded_is_named():
    def fn(x, bw, lengths, z):
        return run_rnn(reverse_padded(x, lengths), bw, lstm_cell, torch.full_like(lengths, x.shape[1]), (z, z))

    def student(x, fw, bw, lengths):
        z = x.new_zeros(x.shape[0], fw[1].shape[1])
        of, (hf, cf) = run_rnn(x, fw, lstm_cell, lengths, (z, z))
        ob, (hb, cb) = fn(x, bw, lengths, z)
        return torch.cat([of, reverse_padded(ob, lengths)], -1), (torch.stack([hf, hb]), torch.stack([cf, cb]))

    assert "runs over all T steps" in hint_of(checks.check_bidirectional_rnn, student)


# ------------------------------------------------------------------ train_step: where the clipping happens
def _loss(model, x, y, state):
    logits, state = model(x, detach_state(state))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), state


def _step(*order):
    """A train step doing ``order`` ("zero_grad", "clip", "backward": forward pass and backward) in that order,
    then ``optimizer.step()``: the right order is zero_grad, backward, clip; each family member moves one."""
    def train_step(model, x, y, state, optimizer, max_norm):
        x, y = x.to(next(model.parameters()).device), y.to(next(model.parameters()).device)
        for action in order:
            if action == "zero_grad":
                optimizer.zero_grad()
            elif action == "clip":
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            else:
                loss, state = _loss(model, x, y, state)
                loss.backward()
        optimizer.step()
        return loss.item(), float(norm), state
    return train_step


def _scaler_step(unscale_first, move=True, init_scale=2.0 ** 16):
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)

    def train_step(model, x, y, state, optimizer, max_norm):
        if move:
            x, y = x.to(next(model.parameters()).device), y.to(next(model.parameters()).device)
        optimizer.zero_grad()
        loss, state = _loss(model, x, y, state)
        scaler.scale(loss).backward()
        if unscale_first:
            scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scaler.step(optimizer)  # unscales first when unscale_ was not called
        scaler.update()
        return loss.item(), norm.item(), state
    return train_step


STEP_FAMILY = {
    "clip between zero_grad and backward (published)": (_step("zero_grad", "clip", "backward"), "the norm you report is 0"),
    "clip before backward, no zero_grad": (_step("clip", "backward"), "never clear the gradients"),
    "clip before zero_grad": (_step("clip", "zero_grad", "backward"), "you clip before `optimizer.zero_grad()`"),
    "zero_grad after backward": (_step("backward", "zero_grad", "clip"), "comes after `loss.backward()`"),
    "GradScaler: clip before unscale_ (published)": (_scaler_step(False), "you clip before `scaler.unscale_"),
}


def test_train_step_with_a_grad_scaler_used_right_passes():
    assert checks.check_train_step(_scaler_step(True), hidden=True, seed=17) is None


def test_train_step_two_mistakes_are_both_named():
    hint = hint_of(checks.check_train_step, _scaler_step(False, move=False))
    assert "two mistakes" in hint and "scaler.unscale_" in hint and "does not move the batch" in hint, hint


def test_train_step_fallback_names_the_norm_on_another_scale():
    hint = hint_of(checks.check_train_step, _scaler_step(False, init_scale=1024.0))
    assert FALLBACK in hint and "the gradient norm it returns (one per step) is off by" in hint, hint


# one test per family table: the bidirectional flips and the train-step clipping orders
FAMILIES = {"bidirectional_rnn": (checks.check_bidirectional_rnn, BIDIR_FAMILY),
            "train_step": (checks.check_train_step, STEP_FAMILY)}


@pytest.mark.parametrize("check,fn,words", mistake_params(FAMILIES))
def test_family_member_is_named(check, fn, words):
    hint = hint_of(check, fn)
    assert words in hint and FALLBACK not in hint, hint


@pytest.mark.parametrize("ex", [TRAINING["train_step"], LSTM_GRU["lstm_cell"]], ids=lambda ex: ex.name)
def test_every_mutant_differs_from_the_reference(ex):
    case = ex.cases(0, hidden=False)[0]
    want = ex.call(ex.reference(), case)
    for m in ex.mutants():
        assert ex.compare(ex, case, ex.call(m.fn, case), want) is not None, m.hint
