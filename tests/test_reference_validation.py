"""Bad input raises ValueError naming the argument, the expected and the actual shape."""
import pytest
import torch

from course_lib import reference as ref


def test_cell_shapes_named():
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    with pytest.raises(ValueError, match=r"W_hh must have shape \(16, 4\), got \(4, 16\)"):
        ref.lstm_cell(x, (h, h), torch.randn(16, 3), torch.randn(4, 16))
    with pytest.raises(ValueError, match=r"W_xh must have shape \(4, 3\), got \(3, 4\)"):
        ref.rnn_step(x, h, torch.randn(3, 4), torch.randn(4, 4), torch.zeros(4))
    with pytest.raises(ValueError, match=r"h must have shape \(2, 4\), got \(3, 4\)"):
        ref.gru_cell(x, torch.randn(3, 4), torch.randn(12, 3), torch.randn(12, 4))
    with pytest.raises(ValueError, match="state must be a pair"):
        ref.lstm_cell(x, h, torch.randn(16, 3), torch.randn(16, 4))


def test_dtype_and_device_mismatch_named():
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    with pytest.raises(ValueError, match="dtype"):
        ref.gru_cell(x, h, torch.randn(12, 3, dtype=torch.float64), torch.randn(12, 4))
    with pytest.raises(ValueError, match="floating dtype"):
        ref.rnn_step(torch.ones(2, 3, dtype=torch.long), h, torch.randn(4, 3), torch.randn(4, 4), torch.zeros(4))
    with pytest.raises(ValueError, match="must be a torch.Tensor"):
        ref.rnn_step([[1.0]], h, torch.randn(4, 3), torch.randn(4, 4), torch.zeros(4))


def test_sequence_arguments_named():
    m = torch.nn.LSTM(3, 4, batch_first=True)
    w = ref.weights_from_module(m)
    with pytest.raises(ValueError, match=r"x must be 3-D"):
        ref.stacked_rnn(torch.randn(5, 3), w)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 5\]"):
        ref.run_rnn(torch.randn(2, 5, 3), w[0], "lstm", lengths=torch.tensor([6, 2]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        ref.run_rnn(torch.randn(2, 5, 3), w[0], "lstm", lengths=torch.tensor([5]))
    with pytest.raises(ValueError, match="cell must be one of"):
        ref.run_rnn(torch.randn(2, 5, 3), w[0], "transformer")
    with pytest.raises(ValueError, match=r"W_ih\) must have shape \(12, 3\)"):
        ref.run_rnn(torch.randn(2, 5, 3), w[0], "gru")
    with pytest.raises(ValueError, match="num_layers \\* 2"):
        ref.stacked_rnn(torch.randn(2, 5, 3), w, bidirectional=True)
    with pytest.raises(ValueError, match="dropout"):
        ref.stacked_rnn(torch.randn(2, 5, 3), w, dropout=1.5)


def test_gradflow_arguments_named():
    H = 4
    W = torch.eye(H, dtype=torch.float64)
    with pytest.raises(ValueError, match="nonlinearity"):
        ref.spectral_bound(W, 5, "softplus")
    with pytest.raises(ValueError, match=r"h0 must have shape \(4,\)"):
        ref.jacobian_norms_products(torch.randn(5, 2, dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
                                    torch.zeros(H, 2, dtype=torch.float64), W, torch.zeros(H, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"W_hh must have shape \(4, 4\)"):
        ref.step_jacobian(torch.rand(4), torch.randn(4, 5))


def test_connections_arguments_named():
    with pytest.raises(ValueError, match="residual connection needs"):
        ref.residual(torch.randn(2, 3), lambda z: z[:, :2])
    with pytest.raises(ValueError, match="connection must be one of"):
        ref.DeepNet(2, 4, 2, depth=3, connection="skip")
    with pytest.raises(ValueError, match="depth"):
        ref.DeepNet(2, 4, 2, depth=0)


def test_deepnet_shapes_for_every_connection():
    for conn in ("plain", "residual", "highway", "dense"):
        net = ref.DeepNet(5, 8, 3, depth=4, connection=conn)
        assert net(torch.randn(7, 5)).shape == (7, 3)
        assert len(net.hidden_layers()) == 4
