"""course_lib.models: shapes, forget-gate bias, last-valid-step read-out, residual rule, CharLM state."""
import itertools

import pytest
import torch

from course_lib.models import CarryState, CharLM, SequenceModel, count_parameters, set_forget_bias

B, T, I, H, O = 3, 7, 5, 6, 4


@pytest.mark.parametrize("cell,bidirectional,readout,residual",
                         list(itertools.product(["rnn", "lstm", "gru"], [False, True], ["last", "all"], [False, True])))
def test_output_shapes(cell, bidirectional, readout, residual):
    m = SequenceModel(cell, I, H, O, num_layers=2, bidirectional=bidirectional, readout=readout, residual=residual)
    out = m(torch.randn(B, T, I))
    assert out.shape == ((B, O) if readout == "last" else (B, T, O))
    feats = m.features(torch.randn(B, T, I))
    assert feats.shape == (B, T, H * (2 if bidirectional else 1))


def test_embedding_reads_token_ids_and_refuses_floats():
    m = SequenceModel("gru", 8, H, O, embedding=11, readout="all")
    assert m(torch.randint(0, 11, (B, T))).shape == (B, T, O)
    with pytest.raises(ValueError, match="token ids"):
        m(torch.randn(B, T, 8))
    with pytest.raises(ValueError, match=r"x must have shape \(\?, \?, 5\)"):
        SequenceModel("rnn", I, H, O)(torch.randn(B, T, I + 1))


def test_forget_bias_sets_the_forget_gate_of_every_layer_and_direction():
    m = SequenceModel("lstm", I, H, O, num_layers=2, bidirectional=True, forget_bias=1.0)
    n_checked = 0
    for mod in m.recurrent_modules():
        params = dict(mod.named_parameters())
        for name in params:
            if name.startswith("bias_ih"):
                total = params[name] + params[name.replace("bias_ih", "bias_hh")]
                assert torch.allclose(total[H:2 * H], torch.ones(H))  # gates i, f, g, o: f is rows H..2H
                assert not torch.allclose(total[:H], torch.ones(H))  # the others are untouched
                n_checked += 1
    assert n_checked == 4  # 2 layers x 2 directions
    res = SequenceModel("lstm", H, H, O, num_layers=3, residual=True, forget_bias=2.0)
    for mod in res.recurrent_modules():
        assert torch.allclose((mod.bias_ih_l0 + mod.bias_hh_l0)[H:2 * H], torch.full((H,), 2.0))
    with pytest.raises(ValueError, match="forget_bias"):
        SequenceModel("gru", I, H, O, forget_bias=1.0)
    with pytest.raises(ValueError, match="nn.LSTM"):
        set_forget_bias(torch.nn.GRU(2, 3), 1.0)


@pytest.mark.parametrize("cell,bidirectional,residual", [("rnn", False, False), ("lstm", True, False),
                                                         ("gru", True, True), ("lstm", False, True)])
def test_last_valid_step_readout_matches_each_sequence_run_alone(cell, bidirectional, residual):
    torch.manual_seed(1)
    m = SequenceModel(cell, I, H, O, num_layers=2, bidirectional=bidirectional, residual=residual).eval()
    x = torch.randn(4, T, I)
    lengths = torch.tensor([7, 3, 1, 5])
    out = m(x, lengths)
    for i, L in enumerate(lengths.tolist()):
        alone = m(x[i: i + 1, :L])
        assert torch.allclose(out[i], alone[0], atol=1e-6), i
    # what sits in the padding cannot change the answer
    x2 = x.clone()
    for i, L in enumerate(lengths.tolist()):
        x2[i, L:] = 100.0
    assert torch.allclose(m(x2, lengths), out, atol=1e-6)
    # and without lengths the padding is read (the outputs differ): the test can fail
    assert not torch.allclose(m(x2), out, atol=1e-3)


def test_lengths_are_validated():
    m = SequenceModel("rnn", I, H, O)
    with pytest.raises(ValueError, match="lengths must lie in"):
        m(torch.randn(2, T, I), torch.tensor([T + 1, 2]))
    with pytest.raises(ValueError, match="lengths must have shape"):
        m(torch.randn(2, T, I), torch.tensor([2, 2, 2]))


def _zero_recurrent_weights(m):
    with torch.no_grad():
        for mod in m.recurrent_modules():
            for p in mod.parameters():
                p.zero_()


def test_residual_adds_each_layers_input_and_follows_the_first_layer_rule():
    # zero recurrent weights: every tanh layer outputs 0, so the features are exactly what skips carry
    x = torch.randn(B, T, H)
    same = SequenceModel("rnn", H, H, O, num_layers=3, residual=True)
    _zero_recurrent_weights(same)
    assert same.first_layer_skip and torch.allclose(same.features(x), x)  # input_size == hidden: skip
    other = SequenceModel("rnn", I, H, O, num_layers=3, residual=True)
    _zero_recurrent_weights(other)
    assert not other.first_layer_skip
    assert torch.equal(other.features(torch.randn(B, T, I)), torch.zeros(B, T, H))  # no first skip
    plain = SequenceModel("rnn", H, H, O, num_layers=3, residual=False)
    _zero_recurrent_weights(plain)
    assert torch.equal(plain.features(x), torch.zeros(B, T, H))
    # the flag changes the wiring, not the parameter count or the output shape
    assert count_parameters(same) == count_parameters(plain)
    assert same(x).shape == plain(x).shape == (B, O)


def test_bad_arguments_raise_value_error_naming_them():
    with pytest.raises(ValueError, match="cell must be one of"):
        SequenceModel("transformer", I, H, O)
    with pytest.raises(ValueError, match="hidden_size"):
        SequenceModel("rnn", I, 0, O)
    with pytest.raises(ValueError, match="readout"):
        SequenceModel("rnn", I, H, O, readout="first")
    with pytest.raises(ValueError, match="nonlinearity"):
        SequenceModel("lstm", I, H, O, nonlinearity="relu")
    assert SequenceModel("rnn", I, H, O, nonlinearity="relu").rnn.nonlinearity == "relu"


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_charlm_state_carry_equals_one_long_pass(cell):
    torch.manual_seed(0)
    lm = CharLM(20, hidden=16, cell=cell, num_layers=2).eval()
    x = torch.randint(0, 20, (2, 12))
    full, _ = lm(x)
    first, state = lm(x[:, :5])
    second, _ = lm(x[:, 5:], CharLM.detach_state(state))
    assert full.shape == (2, 12, 20)
    assert torch.allclose(torch.cat([first, second], 1), full, atol=1e-6)
    fresh, _ = lm(x[:, 5:])  # dropping the state changes the predictions
    assert not torch.allclose(fresh, second, atol=1e-4)
    wrapped = CarryState(lm)
    a, b = wrapped(x[:, :5]), wrapped(x[:, 5:])
    assert torch.allclose(torch.cat([a, b], 1), full, atol=1e-6)
    assert not (wrapped.state[0] if isinstance(wrapped.state, tuple) else wrapped.state).requires_grad
    wrapped.reset_state()
    assert wrapped.state is None


def test_charlm_sampling_is_seeded_and_in_range():
    torch.manual_seed(0)
    lm = CharLM(15, hidden=8)
    s1 = lm.sample([1, 2, 3], 25, temperature=1.0, generator=torch.Generator().manual_seed(5))
    s2 = lm.sample(torch.tensor([1, 2, 3]), 25, temperature=1.0, generator=torch.Generator().manual_seed(5))
    s3 = lm.sample([1, 2, 3], 25, temperature=1.0, generator=torch.Generator().manual_seed(6))
    assert s1.shape == (25,) and s1.dtype == torch.long and torch.equal(s1, s2) and not torch.equal(s1, s3)
    assert 0 <= int(s1.min()) and int(s1.max()) < 15
    greedy = lm.sample([4], 5, temperature=0)
    logits, _ = lm(torch.tensor([[4]]))
    assert int(greedy[0]) == int(logits[0, -1].argmax())
    assert lm.training  # sampling restores the mode
    with pytest.raises(ValueError, match="prefix"):
        lm.sample([], 3)
    with pytest.raises(ValueError, match="temperature"):
        lm.sample([1], 3, temperature=-1)
