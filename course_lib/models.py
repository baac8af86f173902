"""Small ``nn.Module`` wrappers that the experiments train.

They use PyTorch's fused recurrent layers (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``: oneDNN on a CPU,
cuDNN on a GPU), which are far faster than a Python loop over time steps. The hand-written cells
that the lectures derive live in ``course_lib.reference``; these models are for measuring.

Input conventions
-----------------
- Feature inputs: a float tensor ``(B, T, input_size)`` (values, or one-hot tokens as
  ``TaskData.x`` gives them).
- Token inputs: build the model with ``embedding=V`` and pass int64 ids ``(B, T)`` in ``[0, V)``
  (``TaskData.tokens``); an ``nn.Embedding(V, input_size)`` turns them into features.
- Variable lengths: pass ``lengths`` (``(B,)`` ints, ``TaskData.lengths``); the padded steps are
  skipped (``pack_padded_sequence``), and ``readout="last"`` reads each sequence at its own last
  valid step.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from . import _validate
from ._validate import int_at_least

__all__ = ["SequenceModel", "CharLM", "CarryState", "count_parameters", "set_forget_bias"]

_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _make_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool,
              dropout: float, nonlinearity: str) -> nn.RNNBase:
    kwargs = dict(num_layers=num_layers, batch_first=True, bidirectional=bidirectional,
                  dropout=dropout if num_layers > 1 else 0.0)
    if cell == "rnn":
        kwargs["nonlinearity"] = nonlinearity
    return _CELLS[cell](input_size, hidden_size, **kwargs)


def set_forget_bias(module: nn.LSTM, value: float) -> None:
    """Set every forget-gate bias of ``module`` (an ``nn.LSTM``) so that ``b_ih + b_hh = value``.

    PyTorch stacks the LSTM gates in the order i, f, g, o, so the forget gate is rows
    ``[H, 2H)`` of each bias; the value is split in half between ``bias_ih`` and ``bias_hh``.
    A forget bias of 1 keeps the forget gate open (sigmoid(1) = 0.73) at the start of training.
    """
    if not isinstance(module, nn.LSTM):
        raise ValueError(f"module must be an nn.LSTM, got {type(module).__name__}")
    H = module.hidden_size
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.startswith("bias_ih") or name.startswith("bias_hh"):
                p[H: 2 * H] = value / 2.0


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class SequenceModel(nn.Module):
    """A recurrent network with a linear read-out, for the synthetic tasks.

    Parameters
    ----------
    cell : ``"rnn"`` (Elman, ``nonlinearity`` tanh or relu), ``"lstm"`` or ``"gru"``.
    input_size : feature size of ``x``; with ``embedding`` it is the embedding size.
    hidden_size : units per direction per layer.
    output_size : size of the read-out (classes, or 1 for regression).
    num_layers : stacked recurrent layers (one fused module when ``residual=False``).
    bidirectional : a forward and a separate backward RNN per layer; their states are concatenated,
        so each layer outputs ``hidden_size * 2`` features.
    residual : build one module per layer and add each layer's input to its output,
        ``out_l = layer_l(in_l) + in_l``. The first layer's input has ``input_size`` features;
        it gets the skip only when that equals the layer's output size
        (``hidden_size * num_directions``), otherwise the first layer has no skip. Every later
        layer has one.
    dropout : dropout on each layer's output except the last (as in ``nn.LSTM``).
    forget_bias : LSTM only; sets the forget-gate bias of every layer (see :func:`set_forget_bias`).
        ``None`` keeps PyTorch's initialisation (about 0).
    nonlinearity : ``"tanh"`` or ``"relu"``, plain RNN only.
    embedding : vocabulary size ``V`` to read int64 token ids through ``nn.Embedding(V, input_size)``;
        ``None`` reads float features.
    readout : ``"last"`` gives one output per sequence ``(B, output_size)``: the forward direction
        at the last valid step and (bidirectional) the backward direction at step 0, i.e. each
        direction's final state. ``"all"`` gives one per step ``(B, T, output_size)`` (tagging).

    ``forward(x, lengths=None)``; ``lengths`` (``(B,)``) marks the valid steps of padded batches.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, output_size: int,
                 num_layers: int = 1, bidirectional: bool = False, residual: bool = False,
                 dropout: float = 0.0, forget_bias: float | None = None, nonlinearity: str = "tanh",
                 embedding: int | None = None, readout: str = "last"):
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"cell must be one of {tuple(_CELLS)}, got {cell!r}")
        input_size = int_at_least("input_size", input_size, 1)
        hidden_size = int_at_least("hidden_size", hidden_size, 1)
        output_size = int_at_least("output_size", output_size, 1)
        num_layers = int_at_least("num_layers", num_layers, 1)
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        if cell != "rnn" and nonlinearity != "tanh":
            raise ValueError(f"nonlinearity applies to cell='rnn' only, got nonlinearity={nonlinearity!r} "
                             f"with cell={cell!r}")
        if forget_bias is not None and cell != "lstm":
            raise ValueError(f"forget_bias applies to cell='lstm' only, got cell={cell!r}")
        if readout not in ("last", "all"):
            raise ValueError(f"readout must be 'last' or 'all', got {readout!r}")
        if embedding is not None:
            embedding = int_at_least("embedding", embedding, 1)

        self.cell, self.input_size, self.hidden_size = cell, input_size, hidden_size
        self.num_layers, self.bidirectional, self.residual = num_layers, bool(bidirectional), bool(residual)
        self.readout, self.forget_bias = readout, forget_bias
        self.num_directions = 2 if bidirectional else 1
        feat = hidden_size * self.num_directions

        self.embedding = nn.Embedding(embedding, input_size) if embedding is not None else None
        if not residual:
            # one fused module runs the whole stack (fastest)
            self.rnn = _make_rnn(cell, input_size, hidden_size, num_layers, bidirectional, dropout, nonlinearity)
            self.layers = None
        else:
            # one module per layer, so the skip connections can go between them
            self.rnn = None
            self.layers = nn.ModuleList(
                _make_rnn(cell, input_size if l == 0 else feat, hidden_size, 1, bidirectional, 0.0, nonlinearity)
                for l in range(num_layers)
            )
            self.first_layer_skip = input_size == feat
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feat, output_size)
        if forget_bias is not None:
            for m in self.recurrent_modules():
                set_forget_bias(m, float(forget_bias))

    def recurrent_modules(self) -> list[nn.RNNBase]:
        """The ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` modules, bottom layer first."""
        return [self.rnn] if self.rnn is not None else list(self.layers)

    # -- helpers ----------------------------------------------------------------------------------
    @staticmethod
    def _run(module: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Outputs ``(B, T, D*H)`` of ``module``; with ``lengths``, padded steps are skipped (and zero)."""
        if lengths is None:
            return module(x)[0]
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = module(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]

    def features(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        """The top layer's outputs ``(B, T, hidden_size * num_directions)`` (before the read-out)."""
        if self.embedding is not None:
            if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.is_floating_point():
                raise ValueError(f"x must be int64 token ids of shape (B, T) (the model has an embedding), "
                                 f"got {getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
            x = self.embedding(x)
        else:
            _validate.shape("x", x, (None, None, self.input_size))
        if x.shape[1] == 0:
            raise ValueError("x must have at least one time step, got T = 0")
        if lengths is not None:
            lengths = _validate.lengths("lengths", lengths, x.shape[0], x.shape[1])
        if self.rnn is not None:
            return self._run(self.rnn, x, lengths)
        h = x
        for l, layer in enumerate(self.layers):
            out = self._run(layer, h, lengths)
            if l < len(self.layers) - 1:
                out = self.dropout(out)
            if l > 0 or self.first_layer_skip:
                out = out + h
            h = out
        return h

    def forward(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        """``(B, output_size)`` for ``readout="last"``, ``(B, T, output_size)`` for ``"all"``."""
        h = self.features(x, lengths)
        if self.readout == "all":
            return self.head(h)
        B, T, _ = h.shape
        if lengths is not None:  # already checked by features()
            last = _validate.lengths("lengths", lengths, B, T).to(h.device) - 1
        else:
            last = torch.full((B,), T - 1, device=h.device, dtype=torch.long)
        H = self.hidden_size
        final = h[torch.arange(B, device=h.device), last, :H]  # forward direction, last valid step
        if self.bidirectional:
            final = torch.cat([final, h[:, 0, H:]], dim=1)  # backward direction ends at step 0
        return self.head(final)


class CharLM(nn.Module):
    """A character-level language model: embedding, recurrent stack, linear read-out to the vocabulary.

    ``forward(x_ids, state=None) -> (logits, state)``: ``x_ids`` int64 ``(B, T)``, ``logits``
    ``(B, T, vocab_size)``; ``state`` is the recurrent state (``h``, or ``(h, c)`` for an LSTM) to
    pass to the next call for truncated backpropagation through time. Detach it between chunks
    (:meth:`detach_state`) so gradients stop at the chunk boundary.
    """

    def __init__(self, vocab_size: int, hidden: int = 256, cell: str = "lstm", num_layers: int = 1,
                 embed_dim: int | None = None, dropout: float = 0.0):
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"cell must be one of {tuple(_CELLS)}, got {cell!r}")
        self.vocab_size = int_at_least("vocab_size", vocab_size, 2)
        self.hidden = int_at_least("hidden", hidden, 1)
        num_layers = int_at_least("num_layers", num_layers, 1)
        embed_dim = int_at_least("embed_dim", embed_dim, 1) if embed_dim is not None else min(hidden, 64)
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.rnn = _make_rnn(cell, embed_dim, hidden, num_layers, False, dropout, "tanh")
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, x_ids: torch.Tensor, state=None):
        if not isinstance(x_ids, torch.Tensor) or x_ids.dim() != 2 or x_ids.is_floating_point():
            raise ValueError(f"x_ids must be int64 token ids of shape (B, T), got "
                             f"{getattr(x_ids, 'dtype', type(x_ids).__name__)} {tuple(getattr(x_ids, 'shape', ()))}")
        out, state = self.rnn(self.embedding(x_ids), state)
        return self.head(out), state

    @staticmethod
    def detach_state(state):
        """The same state cut off from the graph (``None`` stays ``None``)."""
        if state is None:
            return None
        if isinstance(state, tuple):
            return tuple(s.detach() for s in state)
        return state.detach()

    @torch.no_grad()
    def sample(self, prefix, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """Generate ``n`` ids after ``prefix`` (a 1-D tensor or list of ids, at least one).

        Each next id is drawn from softmax(logits / ``temperature``); ``temperature=0`` takes the
        most likely id (greedy). Draws use ``generator`` (a CPU ``torch.Generator``) when given,
        so a seeded generator gives the same text. Returns the ``n`` new ids (1-D int64, on CPU);
        decode them with ``corpus.decode``.
        """
        prefix = torch.as_tensor(prefix, dtype=torch.long)
        if prefix.dim() != 1 or prefix.numel() == 0:
            raise ValueError(f"prefix must be a non-empty 1-D sequence of ids, got shape {tuple(prefix.shape)}")
        if int(prefix.min()) < 0 or int(prefix.max()) >= self.vocab_size:
            raise ValueError(f"prefix ids must lie in [0, {self.vocab_size}), got min {int(prefix.min())} "
                             f"max {int(prefix.max())}")
        n = int_at_least("n", n, 0)
        if not isinstance(temperature, (int, float)) or temperature < 0:
            raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
        was_training = self.training
        self.eval()
        try:
            device = next(self.parameters()).device
            logits, state = self(prefix.to(device)[None, :])
            last = logits[0, -1]
            out = []
            for _ in range(n):
                if temperature == 0:
                    nxt = int(last.argmax())
                else:
                    probs = torch.softmax(last.double().cpu() / temperature, dim=-1)
                    nxt = int(torch.multinomial(probs, 1, generator=generator))
                out.append(nxt)
                logits, state = self(torch.tensor([[nxt]], device=device), state)
                last = logits[0, -1]
        finally:
            self.train(was_training)
        return torch.tensor(out, dtype=torch.long)


class CarryState(nn.Module):
    """Wrap a :class:`CharLM` so that ``model(x) -> logits`` carries its state between calls.

    Truncated BPTT in :func:`course_lib.train.train`: feed consecutive chunks of the same streams
    (``Corpus.batch_fn``); each call starts from the previous call's final state, detached. The
    state is dropped when the batch size changes and on :meth:`reset_state` (the training loop
    calls it after restoring a checkpoint).
    """

    def __init__(self, lm: CharLM):
        super().__init__()
        self.lm = lm
        self.state = None

    def reset_state(self) -> None:
        self.state = None

    def forward(self, x_ids: torch.Tensor) -> torch.Tensor:
        state = self.state
        if state is not None:
            h = state[0] if isinstance(state, tuple) else state
            if h.shape[1] != x_ids.shape[0] or h.device != x_ids.device:
                state = None
        logits, state = self.lm(x_ids, state)
        self.state = CharLM.detach_state(state)
        return logits
