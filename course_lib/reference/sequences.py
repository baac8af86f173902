"""Running a cell over a padded batch: lengths, reversal, bidirectional and stacked layers.

Weights come as PyTorch keeps them: one tuple ``(W_ih, W_hh, b_ih, b_hh)`` per layer and direction,
in ``nn.LSTM.all_weights`` order (layer 0 forward, layer 0 backward, layer 1 forward, ...), so
``weights_from_module(nn.LSTM(...))`` gives exactly what these functions take. Outputs and final
states have ``nn.LSTM``'s batch-first layout: ``out`` (B, T, D*H), ``h_n`` (L*D, B, H).

Padded steps (t >= lengths[b]) never change the state and output zeros, as
``pad_packed_sequence`` does. The backward direction reverses each sequence *within its own
length*: reversing the padded length would start the backward pass on padding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _validate as v
from .cells import affine, gru_proj, lstm_proj, rnn_proj

CELLS = {"rnn": 1, "rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def _gates(cell: str) -> int:
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {tuple(CELLS)}, got {cell!r}")
    return CELLS[cell]


def weights_from_module(module) -> list[tuple]:
    """``[(W_ih, W_hh, b_ih, b_hh), ...]`` of an ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (shared, not copied).

    Returns ``num_layers * D`` tuples in ``module.all_weights`` order; ``b_*`` are None when the module has
    ``bias=False``. Raises ``ValueError`` for a module that is not one of the three.
    Source: PyTorch's ``nn.LSTM`` documentation (``weight_ih_l[k]`` and friends).
    Used by lecture 6 and lecture 7 (the reference run on an ``nn.LSTM``'s own weights).
    """
    if not isinstance(module, torch.nn.RNNBase):
        raise ValueError(f"module must be an nn.RNN, nn.LSTM or nn.GRU, got {type(module).__name__}")
    out = []
    for ws in module.all_weights:
        w = list(ws) + [None] * (4 - len(ws))  # bias=False modules have no biases
        out.append(tuple(w[:4]))
    return out


def reverse_padded(x, lengths):
    """Reverse each sequence of a batch-first ``x`` (B, T, ...) within its own length.

    Positions past a sequence's length stay where they are, so applying it twice is the identity.

    x (B, T, ...) and ``lengths`` (B,) integers in [1, T] -> x's shape. Raises ``ValueError`` naming the
    argument when a shape, dtype or device is wrong.
    Source: Schuster and Paliwal 1997 (the backward direction reads each sequence from its end); PyTorch's
    ``pack_padded_sequence`` documentation for the padding convention.
    Used by lecture 6 and graded in assignment 3 (``check_reverse_padded``).
    """
    v.tensor("x", x, ndim=(2, 3), floating=False)
    B, T = x.shape[:2]
    lengths = v.lengths("lengths", lengths, B, T).to(x.device)
    t = torch.arange(T, device=x.device).unsqueeze(0).expand(B, T)
    L = lengths.unsqueeze(1)
    idx = torch.where(t < L, L - 1 - t, t)
    if x.dim() == 3:
        idx = idx.unsqueeze(-1).expand_as(x)
    return x.gather(1, idx)


def _initial_state(cell, state, B, H, like):
    if state is None:
        z = like.new_zeros(B, H)
        return (z, z.clone()) if cell == "lstm" else z
    if cell == "lstm":
        if not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise ValueError("state for an LSTM must be a pair (h0, c0)")
        v.shape("h0", state[0], (B, H))
        v.shape("c0", state[1], (B, H))
        return tuple(state)
    v.shape("h0", state, (B, H))
    return state


def _check_weights(name, weights, cell, I, like):
    if not (isinstance(weights, (tuple, list)) and len(weights) in (2, 4)):
        raise ValueError(f"{name} must be a tuple (W_ih, W_hh, b_ih, b_hh), got {type(weights).__name__}")
    W_ih, W_hh = weights[0], weights[1]
    b_ih, b_hh = (weights[2], weights[3]) if len(weights) == 4 else (None, None)
    G = _gates(cell)
    v.tensor(f"{name}[1] (W_hh)", W_hh, ndim=2)
    H = W_hh.shape[1]
    v.shapes({f"{name}[0] (W_ih)": (W_ih, (G * H, I)), f"{name}[1] (W_hh)": (W_hh, (G * H, H)),
              f"{name}[2] (b_ih)": (b_ih, (G * H,)), f"{name}[3] (b_hh)": (b_hh, (G * H,))})
    v.same_dtype_device(x=like, W_ih=W_ih)
    return W_ih, W_hh, b_ih, b_hh, H


def run_rnn(x, weights, cell="lstm", lengths=None, state=None, reverse=False):
    """Run one layer, one direction, over ``x`` (B, T, I).

    Returns ``(out, final)``: ``out`` (B, T, H) with zeros at padded steps, and the state after
    each sequence's last valid step (``(h, c)`` for an LSTM). ``reverse=True`` runs the backward
    direction: each sequence is read from its last valid step to its first, and ``out`` is put
    back in the original order.

    ``weights``: ``(W_ih, W_hh, b_ih, b_hh)`` in PyTorch's layout (biases may be None); ``lengths`` (B,) or
    None (all T). Raises ``ValueError`` naming the argument when a shape, dtype or device is wrong.
    Source: PyTorch's ``nn.RNN``/``nn.LSTM``/``nn.GRU`` documentation; Hochreiter and Schmidhuber 1997, Cho et
    al. 2014 for the cells.
    Used by lecture 6 and lecture 7; graded in assignments 2 and 3 (``check_run_rnn``).
    """
    v.tensor("x", x, ndim=3)
    B, T, I = x.shape
    W_ih, W_hh, b_ih, b_hh, H = _check_weights("weights", weights, cell, I, x)
    if lengths is not None:
        lengths = v.lengths("lengths", lengths, B, T)
    state = _initial_state(cell, state, B, H, x)
    if reverse:
        x = reverse_padded(x, lengths if lengths is not None else torch.full((B,), T))

    # The input projection does not depend on the state: one big matmul before the loop instead
    # of T small ones inside it. unbind (not xp[:, t]) keeps backward linear in T.
    xp = affine(x, W_ih, b_ih).unbind(1)
    valid = None
    if lengths is not None:
        valid = (torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)).to(x.device)  # (T, B)
        valid = valid.unsqueeze(-1).unbind(0)

    outs = []
    for t in range(T):
        if cell == "lstm":
            new = lstm_proj(xp[t], state, W_hh, b_hh)
            h_new = new[0]
        elif cell == "gru":
            new = h_new = gru_proj(xp[t], state, W_hh, b_hh)
        else:
            new = h_new = rnn_proj(xp[t], state, W_hh, b_hh, "relu" if cell == "rnn_relu" else "tanh")
        if valid is not None:  # padded steps keep the old state and output zeros
            m = valid[t]
            if cell == "lstm":
                new = (torch.where(m, new[0], state[0]), torch.where(m, new[1], state[1]))
            else:
                new = torch.where(m, new, state)
            h_new = torch.where(m, h_new, torch.zeros_like(h_new))
        state = new
        outs.append(h_new)
    out = torch.stack(outs, 1) if outs else x.new_zeros(B, 0, H)
    if reverse:
        out = reverse_padded(out, lengths if lengths is not None else torch.full((B,), T))
    return out, state


def bidirectional_rnn(x, fw_weights, bw_weights, cell="lstm", lengths=None, state=None):
    """A forward and a separate backward RNN over ``x``, outputs concatenated [forward, backward].

    Returns ``(out (B, T, 2H), (final_fw, final_bw))``. ``state`` is ``None`` or a pair of
    initial states (forward, backward).

    Raises ``ValueError`` naming the argument when a shape, dtype or device is wrong.
    Source: Schuster and Paliwal 1997, "Bidirectional recurrent neural networks".
    Used by lecture 6 (right-context tagging) and graded in assignment 3 (``check_bidirectional_rnn``).
    """
    s_fw, s_bw = (None, None) if state is None else state
    out_f, fin_f = run_rnn(x, fw_weights, cell, lengths, s_fw)
    out_b, fin_b = run_rnn(x, bw_weights, cell, lengths, s_bw, reverse=True)
    return torch.cat([out_f, out_b], dim=-1), (fin_f, fin_b)


def _split_layer_state(cell, state, k):
    if state is None:
        return None
    if cell == "lstm":
        return (state[0][k], state[1][k])
    return state[k]


def stacked_rnn(x, weights, cell="lstm", lengths=None, state=None, bidirectional=False,
                residual=False, dropout=0.0, training=False, generator=None):
    """A multi-layer (optionally bidirectional) RNN, as ``nn.LSTM(batch_first=True)`` computes it.

    ``weights`` holds ``num_layers * D`` tuples in ``all_weights`` order (D = 2 if bidirectional).
    Layer l + 1 reads layer l's output sequence (both directions concatenated). With
    ``residual=True`` a layer's input is added to its output wherever their sizes match (so not
    after a first layer whose input size differs), giving the gradient a path that skips the layer.
    Dropout (``training=True`` only) is applied between layers, never after the last.

    Returns ``(out (B, T, D*H), h_n)`` with ``h_n`` (L*D, B, H), or ``(h_n, c_n)`` for an LSTM.

    x (B, T, I). Raises ``ValueError`` naming the argument when a shape, dtype or device is wrong.
    Source: Graves et al. 2013 (deep RNNs); He et al. 2016 (residual connections); PyTorch's ``nn.LSTM``
    documentation (``num_layers``, ``dropout``).
    Used by lecture 5 and lecture 6; graded in assignment 3 (``check_stacked_rnn``).
    """
    v.tensor("x", x, ndim=3)
    D = 2 if bidirectional else 1
    if not isinstance(weights, (list, tuple)) or len(weights) == 0 or len(weights) % D:
        raise ValueError(f"weights must be a non-empty list of num_layers * {D} weight tuples, "
                         f"got {type(weights).__name__} of length {len(weights) if hasattr(weights, '__len__') else '?'}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
    L = len(weights) // D
    B, T, _ = x.shape
    if lengths is not None:
        lengths = v.lengths("lengths", lengths, B, T)
    mask = None
    if lengths is not None:
        mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).to(x.device).unsqueeze(-1).to(x.dtype)

    inp, finals = x, []
    for layer in range(L):
        outs = []
        for d in range(D):
            k = layer * D + d
            out, fin = run_rnn(inp, weights[k], cell, lengths, _split_layer_state(cell, state, k), reverse=d == 1)
            outs.append(out)
            finals.append(fin)
        out = torch.cat(outs, -1) if D == 2 else outs[0]
        if residual and out.shape[-1] == inp.shape[-1]:
            out = out + (inp if mask is None else inp * mask)  # padded steps stay zero
        if dropout and training and layer < L - 1:
            out = F.dropout(out, dropout, training=True) if generator is None else \
                out * (torch.rand(out.shape, generator=generator).to(out.device) >= dropout) / (1 - dropout)
        inp = out
    if cell == "lstm":
        h_n = torch.stack([f[0] for f in finals])
        c_n = torch.stack([f[1] for f in finals])
        return inp, (h_n, c_n)
    return inp, torch.stack(finals)
