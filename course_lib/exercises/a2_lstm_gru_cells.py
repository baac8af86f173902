"""Assignment 2, LSTM and GRU cells (lectures 3 and 4): its exercises as specs.

Not yet moved into the spec form: the judge's pieces (cases, mistakes) are still the ``Exercise`` objects of
``course_lib/checks/lstm_gru.py``, and the sample class is in ``autograder/samples/make_samples_rnn.py``.
The signature, docstring, points and contract below are the only place they are written.
"""
from __future__ import annotations

from ..checks import lstm_gru as L
from ._spec import Assignment, Spec

ASSIGNMENT = Assignment("02_lstm_gru_cells", "Assignment 2 (`02_lstm_gru_cells`):", [
    Spec("lstm_cell", 4, "lstm_cell(x, state, W_ih, W_hh, b_ih, b_hh) -> (h_next, c_next)",
         "One LSTM step: x (B, I), state (h, c) each (B, H), W_ih (4H, I), W_hh (4H, H), biases (4H,) -> "
         "(h_next, c_next).",
         "`state` is `(h, c)`; `W_ih` (4H, I), `W_hh` (4H, H), biases (4H,), gates in PyTorch order i, f, g, o "
         "(as `nn.LSTMCell`).", exercise_object=L.LSTM_CELL),
    Spec("gru_cell", 3, "gru_cell(x, h, W_ih, W_hh, b_ih, b_hh) -> h_next",
         "One GRU step: x (B, I), h (B, H), W_ih (3H, I), W_hh (3H, H), biases (3H,) -> h_next (B, H).",
         "`W_ih` (3H, I), `W_hh` (3H, H), order r, z, n, the reset gate applied to (W_hn h + b_hn), "
         "h' = (1 - z) * n + z * h (as `nn.GRUCell`).", exercise_object=L.GRU_CELL),
    Spec("run_rnn", 3, "run_rnn(x, weights, cell_fn, lengths, state) -> (out, final_state)",
         "Run cell_fn over x (B, T, I) from state, honouring lengths (B,) -> (out (B, T, H), final_state).",
         "`x` (B, T, I); `weights` the tuple `(W_ih, W_hh, b_ih, b_hh)`; `cell_fn` a cell with the signature "
         "above; `state` the initial state, `(h0, c0)` for an LSTM cell or `h0` for a GRU cell; `out` (B, T, H), "
         "zeros at padded steps; `final_state` has `state`'s structure, taken after each sequence's last valid "
         "step. (The grader calls it with correct cells of its own, so it is graded apart from the cells.)",
         exercise_object=L.RUN_RNN),
    Spec("numerical_gradient", 2, "numerical_gradient(f, x, eps=1e-6) -> grad",
         "Central differences of the scalar function f at x, one entry at a time -> a tensor shaped like x.",
         "central differences (f(x + eps e_i) - f(x - eps e_i)) / (2 eps), one entry at a time, same shape and "
         "dtype as `x`, `x` left unchanged; `f` maps a tensor shaped like `x` to a scalar.",
         exercise_object=L.NUMERICAL_GRADIENT),
], notes=("A written answer, LSTM or GRU for a described situation (2 points, graded by hand).",),
    manual={"written_lstm_or_gru": 2}, topic="LSTM and GRU cells",
    ungraded="a gradient check of your cells, a written answer")
