"""Skip connections: residual, highway and dense, as functions and as a deep test-bed network.

Each adds a path along which the gradient reaches early layers without passing through every
layer's Jacobian:

- residual (He et al. 2016):      y = x + F(x)                  dy/dx = I + dF/dx
- highway (Srivastava et al. 2015): y = T(x) * F(x) + (1 - T(x)) * x, T a sigmoid gate
- dense (Huang et al. 2017):       layer k reads the concatenation of x and every earlier output
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .. import _validate as v

CONNECTIONS = ("plain", "residual", "highway", "dense")


def residual(x, f):
    """x + f(x); ``f`` must keep the shape.

    x any shape -> x's shape. Raises ``ValueError`` when ``f(x)`` changes the shape.
    Source: He et al. 2016, "Deep residual learning for image recognition".
    Used by lecture 5 (skip connections) and lecture 6 (residual stacked RNNs).
    """
    y = f(x)
    if y.shape != x.shape:
        raise ValueError(f"a residual connection needs f(x) with x's shape {tuple(x.shape)}, got {tuple(y.shape)}")
    return x + y


def highway(x, W_H, b_H, W_T, b_T, activation=torch.relu):
    """One highway layer (Srivastava et al. 2015, "Highway Networks"): y = T * H + (1 - T) * x.

    The transform gate T = sigmoid(x W_T^T + b_T) decides, per unit, how much of the candidate
    H = activation(x W_H^T + b_H) to take; the carry gate is C = 1 - T, so what is not transformed is
    carried through unchanged, and so is the gradient (dy/dx = diag(1 - T) + ...). A negative ``b_T``
    starts the layer close to the identity. Shapes: x (B, D), W_H and W_T (D, D) in torch.nn's
    (out_features, in_features) layout, b_H and b_T (D,) -> y (B, D), x's dtype and device.
    Raises ValueError naming the argument when a shape is wrong. Used by lecture 5 (``DeepNet``'s
    highway layers) and graded in assignment 3 (``check_highway``).

    Source: Srivastava et al. 2015.
    """
    v.tensor("x", x, ndim=2)
    B, D = x.shape
    v.shapes({"x": (x, (B, D)), "W_H": (W_H, (D, D)), "W_T": (W_T, (D, D)), "b_H": (b_H, (D,)), "b_T": (b_T, (D,))})
    transform = torch.sigmoid(x @ W_T.t() + b_T)
    return transform * activation(x @ W_H.t() + b_H) + (1 - transform) * x


def dense_block(x, layers, activation=torch.relu):
    """DenseNet-style block: layer k reads cat(x, y_1, ..., y_{k-1}); returns cat(x, y_1, ..., y_K).

    ``layers`` is a list of ``(W_k, b_k)`` with ``W_k`` (growth, D + (k-1) * growth).

    x (B, D) -> (B, D + K * growth). Raises ``ValueError`` naming the layer whose weight has the wrong shape.
    Source: Huang et al. 2017, "Densely connected convolutional networks" (DenseNet).
    Used by lecture 5 (``DeepNet``'s dense connections).
    """
    v.tensor("x", x, ndim=2)
    feats = [x]
    for k, (W, b) in enumerate(layers):
        inp = torch.cat(feats, dim=1)
        v.shape(f"layers[{k}][0]", W, (None, inp.shape[1]))
        feats.append(activation(inp @ W.t() + b))
    return torch.cat(feats, dim=1)


_ACTIVATIONS = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}


class DeepNet(nn.Module):
    """A deep MLP of ``depth`` hidden layers of ``width`` units, plain or with skip connections.

    Used to show that depth alone, without any recurrence, makes gradients vanish, and that
    residual, highway and dense connections let them through.

    ``forward(x)``: x (B, in_features) -> (B, out_features). Raises ``ValueError`` for an unknown
    ``connection`` or ``activation`` or a ``depth`` below 1.
    Source: He et al. 2016 (residual), Srivastava et al. 2015 (highway), Huang et al. 2017 (dense).
    Used by lecture 5 (per-layer gradient norms at growing depth).
    """

    def __init__(self, in_features, width, out_features, depth, connection="plain", activation="tanh",
                 growth=None):
        super().__init__()
        if connection not in CONNECTIONS:
            raise ValueError(f"connection must be one of {CONNECTIONS}, got {connection!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(_ACTIVATIONS)}, got {activation!r}")
        if int(depth) < 1:
            raise ValueError(f"depth must be at least 1, got {depth!r}")
        self.connection, self.act = connection, _ACTIVATIONS[activation]
        self.inp = nn.Linear(in_features, width)
        if connection == "dense":
            g = growth or max(4, width // 4)
            self.layers = nn.ModuleList(nn.Linear(width + k * g, g) for k in range(depth))
            self.out = nn.Linear(width + depth * g, out_features)
        else:
            self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
            if connection == "highway":
                self.gates = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
                for gate in self.gates:
                    nn.init.constant_(gate.bias, -2.0)  # start near carry
            self.out = nn.Linear(width, out_features)

    def hidden_layers(self):
        """The per-depth layers, in order (for per-layer gradient norms)."""
        return list(self.layers)

    def forward(self, x):
        """x (B, in_features) -> (B, out_features) through the stack of ``depth`` connected layers."""
        h = self.act(self.inp(x))
        feats = [h]
        for k, layer in enumerate(self.layers):
            if self.connection == "plain":
                h = self.act(layer(h))
            elif self.connection == "residual":
                h = h + self.act(layer(h))
            elif self.connection == "highway":
                t = torch.sigmoid(self.gates[k](h))
                h = t * self.act(layer(h)) + (1 - t) * h
            else:
                feats.append(self.act(layer(torch.cat(feats, 1))))
        return self.out(torch.cat(feats, 1) if self.connection == "dense" else h)
