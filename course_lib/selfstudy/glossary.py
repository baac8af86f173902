"""The course's glossary, written once: term -> (definition, the lecture that introduces it).

The static site's glossary page is built from it (coursetools/site.py, :func:`course_lib.selfstudy.glossary_markdown`);
tests/test_selfstudy.py checks that each term appears in the lecture named for it. Definitions use
PyTorch's and the papers' terms, in plain text (no LaTeX), so they read the same everywhere.
"""
from __future__ import annotations

GLOSSARY = {
    "backpropagation through time": (
        "The chain rule applied to a recurrent network unrolled over its time steps: the gradient at step t "
        "reaches an earlier step j through the product of the step Jacobians in between (lecture 1 derives it; "
        "lecture 7 names and truncates it).", "07_training_on_a_gpu"),
    "Jacobian": (
        "The matrix of partial derivatives of one vector with respect to another. The step Jacobian "
        "∂h_t/∂h_(t-1) = diag(f'(a_t)) W_h of a simple RNN is the factor the gradient is multiplied by per step.",
        "01_vanishing_gradients"),
    "vanishing gradient": (
        "A gradient that shrinks exponentially with the distance it travels back (through time or depth), so "
        "distant inputs or early layers barely learn. For a simple RNN, guaranteed when γ σ_max(W_h) < 1.",
        "01_vanishing_gradients"),
    "spectral norm": (
        "The largest singular value σ_max of a matrix: the most it can stretch a vector. Submultiplicative, "
        "which gives the bound (γ σ_max)^(T-j) on a product of step Jacobians.", "01_vanishing_gradients"),
    "attractor": (
        "In subject-verb agreement, a noun between the subject and the verb whose number differs from the "
        "subject's, luring a model that follows the nearest noun (Linzen et al. 2016).", "01_vanishing_gradients"),
    "IRNN": (
        "A plain RNN with ReLU units and the recurrent matrix initialised to the identity (Le et al. 2015): "
        "at the start it copies its state, so gradients neither vanish nor explode.", "01_vanishing_gradients"),
    "exploding gradient": (
        "A gradient that grows exponentially with the distance it travels back; one step along it can throw the "
        "weights far away (or to inf and NaN). Possible only when γ σ_max(W_h) > 1.",
        "02_exploding_gradients_and_clipping"),
    "clipping": (
        "Rescaling the gradient before the step. Global-norm clipping multiplies every parameter's gradient "
        "by min(1, τ/‖g‖): same direction, length at most τ (torch.nn.utils.clip_grad_norm_).",
        "02_exploding_gradients_and_clipping"),
    "LSTM": (
        "Long short-term memory (Hochreiter and Schmidhuber 1997, forget gate by Gers et al. 2000): a recurrent "
        "cell with a cell state updated by gated addition, c_t = f_t ⊙ c_(t-1) + i_t ⊙ g_t, and an output "
        "h_t = o_t ⊙ tanh(c_t).", "03_lstm"),
    "forget gate": (
        "The LSTM gate f_t that scales the old cell state; ∂c_t/∂c_(t-1) along the cell path is diag(f_t). "
        "Initialising its bias to 1 keeps it open at the start.", "03_lstm"),
    "cell state": (
        "The LSTM's memory vector c_t, changed only by element-wise gating and addition, so its gradient "
        "path through time has no matrix product.", "03_lstm"),
    "adding problem": (
        "A synthetic task (Hochreiter and Schmidhuber 1997): two numbers in a long sequence are marked; the "
        "target is their sum. Scored by MSE divided by the target's variance (1: uses neither number).", "03_lstm"),
    "GRU": (
        "Gated recurrent unit (Cho et al. 2014): one state vector, an update gate that interpolates between "
        "the old state and a candidate, and a reset gate on the candidate's view of the past; 3/4 of an "
        "LSTM's parameters.", "04_gru_and_choosing"),
    "update gate": (
        "The GRU gate that decides how much of the state to rewrite. In PyTorch's convention "
        "h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_(t-1), so z = 1 keeps the old state.", "04_gru_and_choosing"),
    "reset gate": (
        "The GRU gate r_t that scales how much of the previous state the candidate n_t sees.",
        "04_gru_and_choosing"),
    "connectivity": (
        "In the memorisation view, the size of the gradient of one prediction with respect to one earlier "
        "input; where it is negligible, that input can no longer move the prediction (Madsen 2019).",
        "04_gru_and_choosing"),
    "residual connection": (
        "A layer that adds its input to its output, y = x + F(x), so its Jacobian is I + ∂F/∂x and the gradient "
        "has a path through depth that is never multiplied down (He et al. 2016).", "05_skip_connections"),
    "highway connection": (
        "A gated skip, y = T ⊙ F(x) + (1 - T) ⊙ x, with a learned transform gate T (Srivastava et al. 2015); "
        "the LSTM's cell update is the same idea through time.", "05_skip_connections"),
    "dense connection": (
        "Each layer reads the concatenation of the input and every earlier layer's output (Huang et al. 2017).",
        "05_skip_connections"),
    "degradation": (
        "Deeper plain networks reaching a higher training error than shallower ones, which residual "
        "connections were introduced to address (He et al. 2016).", "05_skip_connections"),
    "bidirectional RNN": (
        "Two RNNs over the same sequence, one forward and one backward, whose states are concatenated at every "
        "step, so each position sees its left and right context (nn.LSTM(..., bidirectional=True)).",
        "06_bidirectional_and_stacked"),
    "stacked RNN": (
        "Several recurrent layers, each reading the outputs of the one below at every step (nn.LSTM(..., "
        "num_layers=L)); also called a multi-layer or deep RNN.", "06_bidirectional_and_stacked"),
    "packing": (
        "Telling a recurrent layer where each sequence of a padded batch ends (torch.nn.utils.rnn."
        "pack_padded_sequence), so it never reads the padding and each backward direction starts at its "
        "sequence's own last step.", "06_bidirectional_and_stacked"),
    "bits per character": (
        "A character language model's average cross-entropy in bits, -(1/N) Σ log2 p(x_(t+1) | x_≤t): "
        "the nats of the loss divided by ln 2.", "07_training_on_a_gpu"),
    "truncated backpropagation through time": (
        "Training on consecutive chunks of a long text with the state carried forward but detached, so the "
        "gradient stops at the chunk's start while the forward pass still sees everything before.",
        "07_training_on_a_gpu"),
    "temperature": (
        "A divisor of the logits before the softmax when sampling: below 1 sharpens the distribution, above 1 "
        "flattens it.", "07_training_on_a_gpu"),
    "mixed precision": (
        "Running the operations that tolerate it (matrix products) in a 16-bit type under torch.autocast while "
        "the weights and the loss stay float32; bf16 keeps float32's exponent range, so needs no loss scaling.",
        "07_training_on_a_gpu"),
    "fused kernel": (
        "One compiled routine doing the work of many small operations, such as cuDNN's or oneDNN's whole LSTM "
        "layer, saving the per-operation overhead of a Python loop.", "07_training_on_a_gpu"),
}
