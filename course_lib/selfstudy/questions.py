""""Check your understanding": the questions of each lecture, written once.

:data:`QUESTIONS` maps a lecture notebook's stem to its questions. A :class:`Question` is either a
choice (``choices``: letter -> text, ``answer`` a letter, ``hints``: a wrong letter -> why it is
wrong, never which one is right) or a number (``answer`` a float within ``rel_tol``; ``mistakes``:
the values common mistakes give -> what went wrong). ``explanation`` is shown only once the answer
is right. :func:`course_lib.selfstudy.check` reads them.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Question:
    text: str
    answer: object
    explanation: str
    choices: dict = field(default_factory=dict)
    hints: dict = field(default_factory=dict)
    mistakes: tuple = ()
    hint: str = "Go back to the section this question is about and redo the computation step by step."
    rel_tol: float = 0.02

    @property
    def numeric(self) -> bool:
        return not self.choices


def _q(text, answer, explanation, choices=None, hints=None, **kw):
    return Question(text, answer, explanation, dict(choices or {}), dict(hints or {}), **kw)


QUESTIONS = {
    "01_vanishing_gradients": (
        _q("For h_t = tanh(W_h h_(t-1) + W_x x_t + b) with pre-activation a_t, what is the step Jacobian ∂h_t/∂h_(t-1)?",
           "c", "The chain rule through tanh gives diag(tanh'(a_t)), and a_t depends on h_(t-1) through W_h: "
           "∂h_t/∂h_(t-1) = diag(1 - tanh²(a_t)) W_h. Its spectral norm is at most γ σ_max(W_h).",
           {"a": "W_h", "b": "diag(tanh'(a_t))", "c": "diag(tanh'(a_t)) W_h", "d": "W_h + diag(tanh'(a_t))"},
           {"a": "That forgets the nonlinearity: the derivative of tanh at a_t multiplies every row.",
            "b": "That is only the derivative of tanh with respect to its own input a_t; a_t depends on h_(t-1) "
                 "through a matrix.",
            "d": "The chain rule multiplies the derivatives of the two maps; it does not add them."}),
        _q("A tanh RNN has σ_max(W_h) = 0.9. What upper bound does the lecture give for ‖∂h_T/∂h_j‖ at distance "
           "T - j = 20? (a number)", 0.9 ** 20,
           "γ = 1 for tanh, so the bound is (γ σ_max)^(T-j) = 0.9^20 ≈ 0.12: at most 12 % of the gradient's size "
           "survives 20 steps, and a saturated unit (tanh' < 1) makes it smaller still.",
           mistakes=((0.9 * 20, "The bound multiplies one factor per step: a power, not a product with 20."),
                     (0.25 ** 20, "γ = 1/4 is the sigmoid's; for tanh, tanh'(0) = 1.")),
           hint="One factor γ σ_max(W_h) per step; what is γ for tanh?"),
        _q("Why does the plain tanh RNN of section 6.1 fall to chance when the key is 40 distractors back?", "b",
           "The loss reaches the key's step only through a product of 40 step Jacobians, which shrinks the "
           "gradient exponentially, so training gets almost no signal to keep the key in the state. The same "
           "network could store it (its state is large enough); it is not taught to.",
           {"a": "Its hidden state is too small to hold one key among 8.",
            "b": "The gradient from the loss to the key's step is vanishingly small, so nothing teaches it to keep the key.",
            "c": "The learning rate is too high, so training diverges.",
            "d": "The key is not in its input."},
           {"a": "The same network recalls the key at k = 2, and a state of many units can hold one of 8 symbols.",
            "c": "Lecture 1's losses stay finite; a diverging run would look different (lecture 2).",
            "d": "The key is the first token of every sequence; the question is whether training reaches it."}),
        _q("What makes Le et al.'s IRNN the plain RNN's 'best chance' in section 6.3?", "a",
           "ReLU units with W_h initialised to the identity copy the state at the start, so the step Jacobian "
           "starts near the identity: the gradient neither vanishes nor explodes before training shapes it.",
           {"a": "ReLU units and an identity-initialised recurrent matrix.",
            "b": "tanh units and a recurrent matrix scaled down to σ_max = 0.5.",
            "c": "A forget gate added to the plain RNN.",
            "d": "Sigmoid units, which saturate less than tanh."},
           {"b": "A smaller σ_max makes the bound (γ σ_max)^(T-j) fall faster: that is the vanishing case.",
            "c": "A gate would make it a gated cell (lecture 3), no longer a plain RNN.",
            "d": "The sigmoid's derivative is at most 1/4: its gradient vanishes faster than tanh's."}),
    ),
    "02_exploding_gradients_and_clipping": (
        _q("The gradient has global norm ‖g‖ = 10 and you clip at τ = 2. What is the norm of the clipped gradient? "
           "(a number)", 2.0,
           "ĝ = g · min(1, τ/‖g‖) = g · 0.2, so ‖ĝ‖ = τ = 2, in the same direction as g.",
           mistakes=((10.0, "10 > τ, so the rule does rescale."), (0.2, "0.2 is the factor, not the new norm."),
                     (20.0, "Clipping makes a long gradient shorter, never longer.")),
           hint="Write ĝ = g · min(1, τ/‖g‖) and take the norm of both sides."),
        _q("Which rule keeps the gradient's direction?", "b",
           "Global-norm clipping multiplies the whole gradient vector by one positive number, so the cosine with "
           "the original is exactly 1; clamping each element changes the large components and not the small ones.",
           {"a": "Clamping each element to [-τ, τ].", "b": "Rescaling the whole gradient to norm τ when it is longer.",
            "c": "Both.", "d": "Neither."},
           {"a": "Clamping cuts the large components and leaves the small ones: the vector turns (section 4 "
                 "measured its cosine).",
            "c": "Section 4 measured one of them at cosine 1 and the other well below.",
            "d": "One of the two multiplies every component by the same positive factor."}),
        _q("For a tanh RNN, which condition must hold for the gradient through time to explode?", "a",
           "If ‖∂h_T/∂h_j‖ grows without bound, so must its bound (γ σ_max)^(T-j) with γ = 1, hence σ_max(W_h) > 1. "
           "It is necessary, not sufficient: saturated units make tanh' small and can stop the growth.",
           {"a": "σ_max(W_h) > 1", "b": "σ_max(W_h) < 1", "c": "a learning rate above 1", "d": "sequences longer than 100"},
           {"b": "Then the bound falls exponentially: that is the vanishing case.",
            "c": "The gradient's size does not depend on the learning rate; the step's size does.",
            "d": "Length makes growth larger once it happens; it does not start it."}),
        _q("Does gradient clipping cure vanishing gradients?", "b",
           "Clipping only shortens gradients longer than τ and leaves the rest unchanged: a vanished gradient "
           "stays vanished. Vanishing needs another architecture (lecture 3).",
           {"a": "Yes: it rescales every gradient to norm τ.", "b": "No: it only shortens gradients longer than τ."},
           {"a": "Look at the rule again: min(1, τ/‖g‖) is 1 when ‖g‖ ≤ τ."}),
    ),
    "03_lstm": (
        _q("Along the cell path, what is ∂c_t/∂c_(t-1) (holding the gates fixed)?", "b",
           "c_t = f_t ⊙ c_(t-1) + i_t ⊙ g_t, so the cell path contributes diag(f_t): no weight matrix and no tanh "
           "derivative. With f_t near 1 the gradient passes almost unchanged over many steps.",
           {"a": "diag(tanh'(c_t)) W_hh", "b": "diag(f_t)", "c": "diag(i_t)", "d": "the identity, always"},
           {"a": "That is the shape of a plain RNN's step Jacobian; the cell update has no matrix product.",
            "c": "The input gate scales what is written, g_t, not the old cell.",
            "d": "Only when the forget gate is exactly 1 (the 1997 LSTM's constant error carousel)."}),
        _q("The LSTM of Hochreiter and Schmidhuber (1997) had which gates?", "c",
           "It had input and output gates and a cell that kept everything (f ≡ 1); Gers, Schmidhuber and Cummins "
           "(2000) added the forget gate.",
           {"a": "input, forget and output gates", "b": "update and reset gates", "c": "input and output gates only",
            "d": "a forget gate only"},
           {"a": "Today's LSTM has those three, but not all of them come from the 1997 paper: see the note on "
                 "history in section 1.",
            "b": "Those are the GRU's (2014).",
            "d": "Its cell kept everything; gating what is kept came later."}),
        _q("On the adding problem, a model that ignores the first marked number and predicts 0.5 plus the second "
           "one: what normalised MSE (MSE / Var(y)) does it score? (a number)", 0.5,
           "The first number is uniform on [0, 1] with variance 1/12 and y's variance is 2/12; predicting its "
           "mean 0.5 leaves an error of variance 1/12: 0.5 of Var(y). A model using neither number scores 1.",
           mistakes=((1.0, "1 is a model that uses neither number: predicting the mean of y."),
                     (0.0, "The ignored number still costs its whole variance."),
                     (0.25, "Var(y) is the sum of two variances: compare one with two.")),
           hint="The error is the ignored number minus its mean; compare its variance with Var(y)."),
        _q("Why set the forget-gate bias to 1 at initialisation?", "a",
           "σ(1) ≈ 0.73 for every forget gate at the start, so the cell keeps most of its content and the gradient "
           "along the cell path decays slowly from the first step; PyTorch's default bias near 0 gives σ ≈ 0.5.",
           {"a": "It starts every forget gate near 0.73, so the cell path passes gradient from the first step.",
            "b": "It makes the LSTM forget faster, so it does not overfit.",
            "c": "It is needed for the LSTM to be differentiable.",
            "d": "It halves the number of parameters."},
           {"b": "A larger bias opens the gate: the cell keeps more, not less.",
            "c": "The LSTM is differentiable for any bias.",
            "d": "A bias value changes no parameter count."}),
    ),
    "04_gru_and_choosing": (
        _q("With the same input and hidden sizes, how many parameters does a GRU layer have as a fraction of an "
           "LSTM layer's? (a number)", 0.75,
           "Both have the same weights per gate block (W_ih, W_hh, two biases); the GRU has 3 blocks (r, z, n), "
           "the LSTM 4 (i, f, g, o): 3/4.",
           mistakes=((2 / 3, "Count the LSTM's blocks: i, f, g and o."), (0.5, "Count the GRU's candidate n too.")),
           hint="Count the gate blocks of each cell: every block has the same shapes."),
        _q("In PyTorch's convention, h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_(t-1). What does z_t = 1 do?", "a",
           "z = 1 keeps the old state exactly (the lecture's u = 0); z = 0 replaces it with the candidate.",
           {"a": "keeps the previous state", "b": "replaces the state with the candidate",
            "c": "resets the state to zero", "d": "averages state and candidate equally"},
           {"b": "Put z = 1 in the formula: the candidate's weight is 1 - z.",
            "c": "Resetting acts inside the candidate, through r_t, not through z.",
            "d": "That is z = 0.5."}),
        _q("Hold a GRU unit's update gate at z = 0.9 (PyTorch's convention). What share of a pulse is still in "
           "the state 10 steps later? (a number)", 0.9 ** 10,
           "Each step keeps the fraction z of the state, so after k steps z^k remains: 0.9^10 ≈ 0.35 (a half-life "
           "of ln 0.5 / ln 0.9 ≈ 6.6 steps).",
           mistakes=((0.1 ** 10, "z is the fraction kept, not the fraction written."),
                     (0.1, "That is one step's write, not ten steps' keep.")),
           hint="What fraction of the state survives one step? Then ten."),
        _q("In the memorisation view, why is the plain RNN's connectivity to characters 30 back many orders of "
           "magnitude below the LSTM's?", "b",
           "Its gradient to a character 30 back is a product of about 30 step Jacobians diag(tanh') W_h, each "
           "shrinking it; the LSTM's cell path multiplies by forget gates instead, which training keeps near 1.",
           {"a": "The RNN was trained on less text.",
            "b": "Its gradient passes through a product of ~30 shrinking step Jacobians; the cell path multiplies "
                 "by forget gates near 1.",
            "c": "The RNN has more parameters, which dilutes each gradient.",
            "d": "Characters 30 back never matter in English text."},
           {"a": "All three cells saw the same text, for the same steps, from the same seeds.",
            "c": "A plain RNN has fewer parameters than an LSTM of the same size, and the count does not set "
                 "a gradient's decay.",
            "d": "The same text gives the gated cells a large gradient there: the difference is the cell."}),
    ),
    "05_skip_connections": (
        _q("For a residual layer y = x + F(x), what is ∂y/∂x?", "a",
           "The identity comes from the skip, ∂F/∂x from the branch: I + ∂F/∂x. Even when ∂F/∂x is small, the "
           "product of such Jacobians over depth keeps the identity path.",
           {"a": "I + ∂F/∂x", "b": "∂F/∂x", "c": "I", "d": "I · ∂F/∂x"},
           {"b": "That forgets the skip: x itself is part of y.",
            "c": "That forgets the branch F, which also depends on x.",
            "d": "The two paths add; a product is what a plain stack has."}),
        _q("A highway layer h = T ⊙ F(x) + (1 - T) ⊙ x has its transform gate closed, T = 0. What is the layer?", "c",
           "With T = 0 the output is x: the identity, with Jacobian I. Highway networks start with a negative gate "
           "bias, so that every layer begins close to this.",
           {"a": "F(x)", "b": "zero", "c": "the identity", "d": "x + F(x)"},
           {"a": "That is T = 1.", "b": "Only the transformed part is switched off.", "d": "That is a residual layer."}),
        _q("Which problem did He et al. (2016) introduce residual connections to address?", "b",
           "Deeper plain networks reached a higher *training* error than shallower ones (degradation); with "
           "normalisation their gradients did not simply vanish, yet they were harder to optimise. Residual "
           "connections made the deeper network at least as easy to fit.",
           {"a": "overfitting of very deep networks", "b": "the degradation problem: deeper plain networks training worse",
            "c": "exploding gradients", "d": "slow inference"},
           {"a": "The deeper plain networks were worse on the training set too: not overfitting.",
            "c": "Clipping (lecture 2) is the usual answer to that.",
            "d": "A residual layer adds work; speed was not its aim."}),
        _q("In a dense connection, what does layer k read?", "d",
           "h_k = F_k([h_0; h_1; ...; h_(k-1)]): the concatenation of the input and every earlier layer's output, "
           "so every layer has a one-step path to every earlier one.",
           {"a": "only h_(k-1)", "b": "h_(k-1) + h_(k-2)", "c": "the input only",
            "d": "the concatenation of the input and every earlier layer's output"},
           {"a": "That is a plain stack.", "b": "Dense connections concatenate, they do not add.",
            "c": "Then the layers would not build on each other."}),
    ),
    "06_bidirectional_and_stacked": (
        _q("A bidirectional LSTM with hidden size 64: what is the size of its output at each step? (a number)", 128,
           "The forward and backward states are concatenated: 2 × 64 = 128 (nn.LSTM(..., bidirectional=True) "
           "returns exactly that).",
           mistakes=((64, "Two directions, each with its own state of 64."), (256, "The output is each direction's h, concatenated; the cell state c is not part of it.")),
           hint="How many directions, and what is concatenated?"),
        _q("Why can a bidirectional RNN not be used as a next-character language model for generating text?", "a",
           "Its backward state at step t has read x_(t+1), ..., x_T, the very characters it must predict: it can "
           "copy the answer in training (section 4), and when generating those characters do not exist yet.",
           {"a": "Its backward half reads the characters it is asked to predict.",
            "b": "It has too many parameters.",
            "c": "It cannot be trained with cross-entropy.",
            "d": "Its output is twice as large as the vocabulary."},
           {"b": "A larger one-directional model would be fine.",
            "c": "Cross-entropy works for any model with a softmax output.",
            "d": "A linear read-out maps any state size to the vocabulary."}),
        _q("In a stacked (multi-layer) RNN, what is layer 2's input at time t?", "c",
           "Each layer reads the output sequence of the layer below: layer 2 at time t reads layer 1's output at "
           "time t (for a bidirectional stack, both directions' outputs, concatenated).",
           {"a": "x_t, the same input as layer 1", "b": "layer 1's final state only",
            "c": "layer 1's output at time t", "d": "layer 2's own output at time t - 1 and nothing else"},
           {"a": "Then the layers would be parallel, not stacked.",
            "b": "That is an encoder's summary, used by a decoder, not by the next layer.",
            "d": "That is its recurrent input; it also has an input from below."}),
    ),
    "07_training_on_a_gpu": (
        _q("A character model's cross-entropy is 1.386 nats per character. How many bits per character is that? "
           "(a number)", 1.386 / 0.6931471805599453,
           "bpc = nats / ln 2 = 1.386 / 0.693 ≈ 2.0.",
           mistakes=((1.386 * 0.6931471805599453, "Divide by ln 2, do not multiply."),
                     (1.386 / 2.302585092994046, "ln 10 converts to digits (bans), not bits.")),
           hint="One bit is ln 2 nats."),
        _q("What does a model that guesses uniformly over 64 characters score, in bits per character? (a number)", 6.0,
           "−log2(1/64) = 6 bits for every character: the upper reference line of the lecture (log2 V).",
           mistakes=((64.0, "Bits are a logarithm of the number of choices."),
                     (4.1588830833596715, "That is the natural logarithm: use log base 2.")),
           hint="A uniform guess costs log2 V bits."),
        _q("Why is the carried state detached between chunks?", "b",
           "Detaching keeps the values and cuts the graph, so the backward pass stops at the chunk's start: memory "
           "and time per step no longer grow with the text, and the previous chunk's freed graph is never "
           "traversed again.",
           {"a": "To move the state to the GPU.",
            "b": "So the gradient stops at the chunk's start while the forward pass still sees the text before.",
            "c": "To reset the state to zero at every chunk.",
            "d": "Because a detached tensor is faster to multiply."},
           {"a": ".to(device) moves a tensor; detach() does not.",
            "c": "detach() keeps the values: section 3 compared carrying with resetting.",
            "d": "The arithmetic is the same; what changes is what backward() visits."}),
        _q("Why does bf16 autocast train without loss scaling, while float16 needs it?", "c",
           "bf16 keeps float32's 8 exponent bits, so it has the same range (up to about 3e38) and small gradients "
           "do not underflow; float16 has 5 exponent bits and overflows at 65504.",
           {"a": "bf16 has more mantissa bits than float16.", "b": "bf16 is computed in float64 internally.",
            "c": "bf16 has float32's exponent range; float16's range is much narrower.",
            "d": "Autocast converts the weights to bf16 permanently."},
           {"a": "It has fewer (7 stored against float16's 10).",
            "b": "Nothing is computed in float64 here.",
            "d": "The weights and their gradients stay float32 under autocast."}),
    ),
}
