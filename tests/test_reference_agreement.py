"""The reference cells and sequence runners agree with PyTorch's own modules, weights copied.

Tolerances (issue 2): max abs difference 1e-5 in float32, 1e-10 in float64. Each comparison with
``torch.nn`` runs on the CPU and, marked ``cuda``, on a GPU (cuDNN, cuBLAS) with the same tolerances:
there TF32 is turned off for the comparison (cuDNN's recurrent layers use TF32 by default on Ampere
and later GPUs, about 1e-3 off in float32; ``tests/test_cuda.py`` measures that separately).
"""
import pytest
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from course_lib import reference as ref

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
DTYPES = [torch.float32, torch.float64]


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    """The device to compare on; on CUDA with TF32 off in cuDNN and cuBLAS for the test's duration."""
    if request.param == "cpu":
        yield torch.device("cpu")
        return
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield torch.device("cuda")
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def randn(*shape, dtype, device):
    """Drawn on the CPU (the same numbers whatever the device), then moved."""
    return torch.randn(*shape, dtype=dtype).to(device)


def maxdiff(a, b):
    return (a - b).abs().max().item()


@pytest.mark.parametrize("dtype", DTYPES)
def test_rnn_step_matches_rnncell(dtype, device):
    cell = nn.RNNCell(5, 7).to(device, dtype)
    x, h = randn(4, 5, dtype=dtype, device=device), randn(4, 7, dtype=dtype, device=device)
    ours = ref.rnn_step(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih + cell.bias_hh)
    assert maxdiff(ours, cell(x, h)) <= TOL[dtype]
    ours2 = ref.rnn_cell(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    assert maxdiff(ours2, cell(x, h)) <= TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_cell_matches_lstmcell(dtype, device):
    cell = nn.LSTMCell(5, 7).to(device, dtype)
    x, h, c = (randn(4, n, dtype=dtype, device=device) for n in (5, 7, 7))
    h1, c1 = ref.lstm_cell(x, (h, c), cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    h2, c2 = cell(x, (h, c))
    assert maxdiff(h1, h2) <= TOL[dtype] and maxdiff(c1, c2) <= TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_gru_cell_matches_grucell(dtype, device):
    cell = nn.GRUCell(5, 7).to(device, dtype)
    x, h = randn(4, 5, dtype=dtype, device=device), randn(4, 7, dtype=dtype, device=device)
    ours = ref.gru_cell(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    assert maxdiff(ours, cell(x, h)) <= TOL[dtype]


def test_step_jacobian_matches_autograd(device):
    W_xh, W_hh, b = (randn(*s, dtype=torch.float64, device=device) for s in ((6, 3), (6, 6), (6,)))
    x, h = randn(1, 3, dtype=torch.float64, device=device), randn(1, 6, dtype=torch.float64, device=device)
    J_auto = torch.autograd.functional.jacobian(lambda hh: ref.rnn_step(x, hh.unsqueeze(0), W_xh, W_hh, b)[0], h[0])
    J = ref.step_jacobian(ref.rnn_step(x, h, W_xh, W_hh, b)[0], W_hh)
    assert J.shape == (6, 6) and maxdiff(J, J_auto) <= 1e-12
    # a batch of states gives a batch of Jacobians
    assert ref.step_jacobian(torch.rand(3, 6, dtype=torch.float64).to(device), W_hh).shape == (3, 6, 6)


def _packed_run(module, x, lengths):
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, state = module(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, state


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_stacked_bidirectional_with_lengths_matches_torch(kind, dtype, device):
    torch.manual_seed(1)
    Module = {"lstm": nn.LSTM, "gru": nn.GRU}[kind]
    m = Module(5, 6, num_layers=2, bidirectional=True, batch_first=True).to(device, dtype)
    ours_w = [tuple(w.detach().clone().requires_grad_(True) for w in ws) for ws in ref.weights_from_module(m)]
    x = randn(4, 7, 5, dtype=dtype, device=device)
    lengths = torch.tensor([7, 3, 5, 1]).to(device)  # on the GPU too: both sides must accept that
    out_t, st_t = _packed_run(m, x, lengths)
    out_o, st_o = ref.stacked_rnn(x, ours_w, cell=kind, lengths=lengths, bidirectional=True)
    tol = TOL[dtype]
    assert out_o.shape == out_t.shape
    assert maxdiff(out_o, out_t) <= tol  # every valid step, and zeros at padded steps
    if kind == "lstm":
        assert maxdiff(st_o[0], st_t[0]) <= tol and maxdiff(st_o[1], st_t[1]) <= tol
    else:
        assert maxdiff(st_o, st_t) <= tol
    # gradients of every weight, through outputs and final states
    g = randn(*out_t.shape, dtype=dtype, device=device)
    hn_t = st_t[0] if kind == "lstm" else st_t
    hn_o = st_o[0] if kind == "lstm" else st_o
    ((out_t * g).sum() + hn_t.pow(2).sum()).backward()
    ((out_o * g).sum() + hn_o.pow(2).sum()).backward()
    for ws_t, ws_o in zip(m.all_weights, ours_w):
        for wt, wo in zip(ws_t, ws_o):
            assert wo.grad.device == wt.grad.device == x.device
            assert maxdiff(wo.grad, wt.grad) <= 10 * tol * max(1.0, wt.grad.abs().max().item())


def test_single_layer_matches_rnn_with_relu(device):
    m = nn.RNN(3, 4, nonlinearity="relu", batch_first=True).to(device, torch.float64)
    x = randn(2, 5, 3, dtype=torch.float64, device=device)
    out, h = m(x)
    out2, h2 = ref.run_rnn(x, ref.weights_from_module(m)[0], cell="rnn_relu")
    assert maxdiff(out, out2) <= 1e-10 and maxdiff(h[0], h2) <= 1e-10


def test_padded_steps_never_change_state_or_outputs():
    m = nn.LSTM(3, 4, batch_first=True).double()
    w = ref.weights_from_module(m)[0]
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 2])
    out, (h, c) = ref.run_rnn(x, w, "lstm", lengths)
    x_garbage = x.clone()
    x_garbage[1, 2:] = 1e3  # whatever sits in the padding
    out2, (h2, c2) = ref.run_rnn(x_garbage, w, "lstm", lengths)
    assert torch.equal(out, out2) and torch.equal(h, h2) and torch.equal(c, c2)
    assert torch.all(out[1, 2:] == 0)
    # equal to running the short sequence alone
    out_alone, (h_alone, _) = ref.run_rnn(x[1:, :2], w, "lstm")
    assert maxdiff(out[1, :2], out_alone[0]) <= 1e-12 and maxdiff(h[1], h_alone[0]) <= 1e-12


def test_reverse_padded_reverses_within_length():
    x = torch.arange(12.0).reshape(2, 6)
    r = ref.reverse_padded(x, torch.tensor([6, 3]))
    assert r[0].tolist() == [5, 4, 3, 2, 1, 0]
    assert r[1].tolist() == [8, 7, 6, 9, 10, 11]
    assert torch.equal(ref.reverse_padded(r, torch.tensor([6, 3])), x)


def test_bidirectional_backward_direction_starts_at_each_sequences_end(device):
    fw = nn.GRU(2, 3, batch_first=True).to(device, torch.float64)
    bw = nn.GRU(2, 3, batch_first=True).to(device, torch.float64)
    x = randn(1, 5, 2, dtype=torch.float64, device=device)
    out, _ = ref.bidirectional_rnn(x, ref.weights_from_module(fw)[0], ref.weights_from_module(bw)[0],
                                   cell="gru", lengths=torch.tensor([3]))
    # the backward half at step 0 has read x[2], x[1], x[0] (not the padding)
    expected, _ = bw(x[:, :3].flip(1))
    assert maxdiff(out[0, 0, 3:], expected[0, -1]) <= 1e-12
    assert torch.all(out[0, 3:] == 0)


def test_residual_and_dropout_in_stacks():
    m = nn.LSTM(4, 4, num_layers=3, batch_first=True).double()
    w = ref.weights_from_module(m)
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    plain, _ = ref.stacked_rnn(x, w, "lstm")
    res, _ = ref.stacked_rnn(x, w, "lstm", residual=True)
    assert not torch.allclose(plain, res)
    # layer-by-layer: with residual each layer adds its input
    h = x
    for ws in w:
        o, _ = ref.run_rnn(h, ws, "lstm")
        h = o + h
    assert maxdiff(res, h) <= 1e-12
    # dropout acts only in training and only between layers
    d_eval, _ = ref.stacked_rnn(x, w, "lstm", dropout=0.5, training=False)
    assert torch.equal(d_eval, plain)
    d_train, _ = ref.stacked_rnn(x, w, "lstm", dropout=0.5, training=True)
    assert not torch.allclose(d_train, plain)
    # residual is skipped where the sizes differ (input 3 -> hidden 4)
    m2 = nn.GRU(3, 4, num_layers=2, batch_first=True).double()
    x2 = torch.randn(2, 5, 3, dtype=torch.float64)
    r2, _ = ref.stacked_rnn(x2, ref.weights_from_module(m2), "gru", residual=True)
    assert r2.shape == (2, 5, 4)
