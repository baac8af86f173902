"""The reference highway layer (Srivastava et al. 2015) that assignment 3's ``check_highway`` judges against:
the formula written out, its limits (all carry, all transform), lecture 5's ``DeepNet`` layer, clear errors."""
import pytest
import torch

from course_lib import reference as ref
from course_lib.reference.connections import DeepNet


def _weights(D, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=dtype) for s in ((D, D), (D,), (D, D), (D,))]


def test_highway_is_the_formula_with_carry_one_minus_transform():
    x = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    W_H, b_H, W_T, b_T = _weights(4)
    T = 1 / (1 + torch.exp(-(x @ W_T.T + b_T)))
    H = torch.clamp(x @ W_H.T + b_H, min=0)
    C = 1 - T
    assert torch.allclose(ref.highway(x, W_H, b_H, W_T, b_T), T * H + C * x, atol=1e-12)
    y_tanh = ref.highway(x, W_H, b_H, W_T, b_T, activation=torch.tanh)
    assert torch.allclose(y_tanh, T * torch.tanh(x @ W_H.T + b_H) + C * x, atol=1e-12)


@pytest.mark.parametrize("bias,which", [(-40.0, "carry"), (40.0, "transform")])
def test_a_saturated_gate_carries_x_or_transforms_it(bias, which):
    x = torch.randn(3, 6, dtype=torch.float64)
    W_H, b_H, W_T, _ = _weights(6, seed=2)
    y = ref.highway(x, W_H, b_H, W_T, torch.full((6,), bias, dtype=torch.float64))
    want = x if which == "carry" else torch.relu(x @ W_H.T + b_H)
    assert torch.allclose(y, want, atol=1e-12)


def test_highway_is_lecture_5s_deepnet_layer():
    torch.manual_seed(3)
    net = DeepNet(3, 5, 2, depth=1, connection="highway", activation="relu").double()
    h = torch.relu(net.inp(torch.randn(4, 3, dtype=torch.float64)))
    layer, gate = net.layers[0], net.gates[0]
    want = ref.highway(h, layer.weight, layer.bias, gate.weight, gate.bias)
    t = torch.sigmoid(gate(h))
    assert torch.allclose(t * torch.relu(layer(h)) + (1 - t) * h, want, atol=1e-12)


def test_highway_keeps_float32_and_names_a_wrong_shape():
    x = torch.randn(2, 3)
    assert ref.highway(x, *_weights(3, dtype=torch.float32)).dtype == torch.float32
    W_H, b_H, W_T, b_T = _weights(3, dtype=torch.float32)
    with pytest.raises(ValueError, match="W_T"):
        ref.highway(x, W_H, b_H, W_T[:2], b_T)


def test_highway_names_a_weight_of_another_dtype():
    x = torch.randn(2, 3, dtype=torch.float64)
    W_H, b_H, W_T, b_T = _weights(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="b_T has dtype torch.float32 but x has torch.float64"):
        ref.highway(x, W_H, b_H, W_T, b_T.float())
