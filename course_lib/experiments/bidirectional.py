"""Lecture 6, bidirectional and multi-layer RNNs: every measurement the lecture shows, and its plot.

Each experiment takes explicit sizes (defaulting to :func:`course_lib.budget.pick`) and seeds,
is deterministic given them, and returns plain numbers (dicts of floats, lists, numpy arrays).
The notebook plots what they return; ``tests/test_lecture06_bidirectional.py`` asserts the same
numbers at the ``ci`` budget.

- :func:`who_sees_what`            which outputs of a bidirectional LSTM change when one input token changes
- :func:`tagging_uni_vs_bi`        right-context tagging ("terribly exciting"): one direction against two,
  with the unidirectional ceiling computed from the task's generating chain
- :func:`tagging_explorer`         pick a test sentence, see what each model tags
- :func:`next_token_leak`          why not for language modelling: a bidirectional "language model"
  reads the answer
- :func:`layer_order_check`        a multi-layer RNN computed layer by layer equals step by step
  (unidirectional), and equals ``nn.LSTM(num_layers=L)``
- :func:`variable_length_check`    a padded batch with lengths (packing or masking) equals running
  each sequence alone; ignoring the lengths does not
- :func:`make_window_lookup`, :func:`depth_experiment`  1 to 4 stacked layers, with and without
  residual links, on a task that needs several nonlinear steps per time step

Each experiment has a ``*_claim(result)`` (see :func:`course_lib.experiments.skip.record`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .. import budget, plots, widgets
from ..claims import Claim
from ..models import SequenceModel, count_parameters
from ..reference import lstm_cell, stacked_rnn, weights_from_module
from ..tasks import TAG_NAMES, TaskData, fresh_batches, make_right_context_tagging
from ..train import evaluate, train
from .._validate import int_list, positive_int as _positive_int, seed_list as _seed_list
from ..seeding import seeded
from .skip import claim

TAG_COLOURS = {0: "#D9D9D9", 1: plots.PALETTE["blue"], 2: plots.PALETTE["vermillion"]}  # neutral, pos, neg


# ---------------------------------------------------------------------------------------------
# who sees what: the forward half reads the left context, the backward half the right
# ---------------------------------------------------------------------------------------------
def who_sees_what(T=12, position=6, input_size=4, hidden=8, seed=0):
    """Change the input at ``position`` and measure how much each output of a bidirectional LSTM moves.

    A random ``nn.LSTM(bidirectional=True)`` (float64) reads a random sequence twice, the second
    time with ``x[position]`` replaced. Returns ``{"steps": (T,), "forward": (T,), "backward": (T,),
    "position", ...}``: the largest change of the forward half and of the backward half of the
    output at every step. The forward half cannot move before ``position``, the backward half
    cannot move after it: to compute the backward half at step 0 the model needs the whole input.
    """
    T, position = _positive_int("T", T), int(position)
    if not 0 <= position < T:
        raise ValueError(f"position must lie in [0, {T}), got {position}")
    g = torch.Generator().manual_seed(int(seed))
    module = seeded(seed, lambda: nn.LSTM(input_size, hidden, batch_first=True, bidirectional=True).double())
    x = torch.randn(1, T, input_size, generator=g, dtype=torch.float64)
    x2 = x.clone()
    x2[0, position] = torch.randn(input_size, generator=g, dtype=torch.float64)
    with torch.no_grad():
        d = (module(x2)[0] - module(x)[0]).abs()[0]
    return {"steps": np.arange(T), "forward": d[:, :hidden].max(1).values.numpy(),
            "backward": d[:, hidden:].max(1).values.numpy(), "position": position, "T": T, "seed": int(seed)}


def who_sees_what_claim(result, tol=1e-12):
    """The forward half is unchanged before ``position`` and changed from it on; the backward half
    is changed up to ``position`` and unchanged after it."""
    p, f, b = result["position"], result["forward"], result["backward"]
    holds = bool(np.all(f[:p] < tol) and np.all(f[p:] > tol) and np.all(b[: p + 1] > tol) and np.all(b[p + 1:] < tol))
    return claim(f"changing input {p} moves the forward states only from step {p} on and the backward states only "
                 f"up to step {p}", holds, forward_before=float(f[:p].max()) if p else 0.0,
                 backward_after=float(b[p + 1:].max()) if p + 1 < len(b) else 0.0, seeds=(result["seed"],))


def plot_who_sees_what(result, name="lecture06_who_sees_what", caption=None):
    """The change of each half of the output at every step (log scale), the changed input marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    floor = 1e-17
    t = result["steps"]
    ax.bar(t - 0.2, np.maximum(result["forward"], floor), width=0.38, color=plots.PALETTE["blue"],
           label=r"forward half $\overrightarrow{h}_t$")
    ax.bar(t + 0.2, np.maximum(result["backward"], floor), width=0.38, color=plots.PALETTE["orange"],
           label=r"backward half $\overleftarrow{h}_t$")
    ax.axvline(result["position"], color="0.3", ls="--", lw=1)
    ax.text(result["position"], 3, f" input {result['position']} changed", fontsize=8, va="bottom")
    ax.set_yscale("log")
    ax.set_ylim(floor / 2, 1e3)
    ax.set_xticks(t)
    ax.set_xlabel("step t")
    ax.set_ylabel("largest change of the output")
    ax.set_title("one input changed: which outputs of a bidirectional LSTM move?")
    ax.legend(fontsize=8, loc="upper left")
    return plots.finish(fig, name, caption, default=(
        "Bars at the bottom are exactly zero. The forward half moves only from the changed step on, "
        "the backward half only up to it. The backward half at step 0 depends on the last input: a "
        "bidirectional layer cannot give its first output before it has read the whole sequence."))


# ---------------------------------------------------------------------------------------------
# right-context tagging
# ---------------------------------------------------------------------------------------------
def _tagger(input_size, hidden, bidirectional, seed):
    return seeded(seed, lambda: SequenceModel("lstm", input_size, hidden, len(TAG_NAMES),
                                               bidirectional=bidirectional, forget_bias=1.0, readout="all"))


def tagging_uni_vs_bi(seeds=None, steps=None, T=20, hidden=32, lr=1e-2, batch_size=32, test_size=None,
                      n_examples=8, clip=1.0, device=None):
    """Tag every token of :func:`course_lib.tasks.make_right_context_tagging` with a one-directional
    and a bidirectional LSTM (same hidden size per direction, forget-gate bias 1).

    Each model trains ``steps`` Adam steps (lr ``lr``, clipping at ``clip``) on fresh batches and is
    scored on a held-out set (seed 12_345): over all tokens, at the intensifiers (whose tag is the
    *next* word's sentiment) and elsewhere. ``ceiling`` is the best expected accuracy any model that
    reads only the left context can reach (``info["unidirectional_ceiling"]``, computed exactly).

    Returns ``{"seeds", "accuracy": {"uni": (S,), "bi": (S,)}, "intensifier_accuracy": {...},
    "other_accuracy": {...}, "ceiling", "chance", "intensifier_share", "examples": {...}, ...}``;
    ``examples`` holds the words, true tags and both models' tag probabilities (seed ``seeds[0]``)
    for the first ``n_examples`` test sentences that contain an intensifier.
    """
    seeds = _seed_list("seeds", budget.pick(ci=3, default=3, full=5) if seeds is None else seeds)
    steps = _positive_int("steps", budget.pick(ci=150, default=300, full=1000) if steps is None else steps)
    test_size = _positive_int("test_size", budget.pick(ci=1000, default=2000, full=5000)
                              if test_size is None else test_size)
    test = make_right_context_tagging(test_size, T=T, seed=12_345)
    ints = test.info["is_intensifier"]
    with_int = torch.nonzero(ints.any(1)).flatten()[:n_examples]
    out = {k: {"uni": [], "bi": []} for k in ("accuracy", "intensifier_accuracy", "other_accuracy")}
    probs = {}
    for name, bi in (("uni", False), ("bi", True)):
        for seed in seeds:
            model = _tagger(test.input_size, hidden, bi, seed)
            train(model, fresh_batches(make_right_context_tagging, batch_size, T=T), "cross_entropy", steps,
                  lr=lr, clip=clip, seed=seed, device=device, progress=False)
            model.eval()
            with torch.no_grad():
                p = torch.softmax(model(test.x.to(next(model.parameters()).device)).cpu(), -1)
            right = p.argmax(-1) == test.y
            out["accuracy"][name].append(float(right.float().mean()))
            out["intensifier_accuracy"][name].append(float(right[ints].float().mean()))
            out["other_accuracy"][name].append(float(right[~ints].float().mean()))
            if seed == seeds[0]:
                probs[name] = p[with_int].numpy()
    res = {k: {n: np.array(v) for n, v in d.items()} for k, d in out.items()}
    res.update({
        "seeds": seeds, "steps": steps, "T": T, "hidden": hidden, "lr": lr, "batch_size": batch_size,
        "test_size": test_size, "ceiling": float(test.info["unidirectional_ceiling"]), "chance": float(test.chance),
        "intensifier_share": float(ints.float().mean()),
        "examples": {"words": [[test.vocab[t] for t in row] for row in test.tokens[with_int].tolist()],
                     "tags": test.y[with_int].numpy(), "uni": probs["uni"], "bi": probs["bi"],
                     "is_intensifier": ints[with_int].numpy()},
    })
    return res


def tagging_claim(result, tolerance=0.01, margin=0.05):
    """The one-directional mean accuracy lies within ``tolerance`` of the computed ceiling; every
    bidirectional seed is more than ``margin`` above it."""
    uni, bi, ceil = result["accuracy"]["uni"], result["accuracy"]["bi"], result["ceiling"]
    holds = abs(float(uni.mean()) - ceil) < tolerance and bool(np.all(bi > ceil + margin))
    return claim(f"right-context tagging: the one-directional LSTM stays within {tolerance:g} of its computed "
                 f"ceiling {ceil:.4f}; the bidirectional one goes more than {margin:g} past it, every seed", holds,
                 uni_accuracy=float(uni.mean()), bi_accuracy=float(bi.mean()), ceiling=ceil,
                 uni_at_intensifiers=float(result["intensifier_accuracy"]["uni"].mean()),
                 bi_at_intensifiers=float(result["intensifier_accuracy"]["bi"].mean()), seeds=result["seeds"])


def plot_tagging(result, name="lecture06_tagging", caption=None):
    """Left: overall accuracy of each model (a dot per seed) against the unidirectional ceiling.
    Right: accuracy at the intensifiers and at every other token."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
    labels = {"uni": "one direction", "bi": "bidirectional"}
    colours = {"uni": plots.colour("rnn"), "bi": plots.colour("lstm")}
    for i, n in enumerate(("uni", "bi")):
        a = result["accuracy"][n]
        a1.scatter(np.full(len(a), i) + np.linspace(-0.08, 0.08, len(a)), a, color=colours[n], s=40, zorder=3)
        a1.hlines(a.mean(), i - 0.25, i + 0.25, color=colours[n], lw=2.5)
    a1.axhline(result["ceiling"], color="0.2", ls="--", lw=1.2,
               label=f"left-context ceiling {result['ceiling']:.3f}")
    a1.axhline(1.0, color="0.6", ls=":", lw=1)
    a1.set_xticks([0, 1])
    a1.set_xticklabels([labels["uni"], labels["bi"]])
    a1.set_xlim(-0.6, 1.6)
    lo = min(result["ceiling"] - 0.03, result["accuracy"]["uni"].min() - 0.01)
    a1.set_ylim(lo, 1.005)
    a1.set_ylabel("test accuracy, all tokens")
    a1.set_title(f"LSTM taggers, H = {result['hidden']} per direction, {result['steps']} steps")
    a1.legend(fontsize=8, loc="lower right")

    x = np.arange(2)
    for i, n in enumerate(("uni", "bi")):
        vals = [result["intensifier_accuracy"][n].mean(), result["other_accuracy"][n].mean()]
        bars = a2.bar(x + (i - 0.5) * 0.36, vals, width=0.34, color=colours[n], label=labels[n])
        for b, v in zip(bars, vals):
            a2.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.2f}", ha="center", fontsize=8)
    a2.axhline(0.5, color="0.4", ls="--", lw=1, label="coin flip")
    a2.set_xticks(x)
    a2.set_xticklabels([f"intensifiers ({result['intensifier_share']:.0%} of tokens)", "every other token"])
    a2.set_ylim(0, 1.25)
    a2.set_ylabel("test accuracy (mean over seeds)")
    a2.set_title("where the one-directional model loses")
    a2.legend(fontsize=8, loc="upper left", ncol=3)
    return plots.finish(fig, name, caption, default=(
        "Left: the one-directional tagger stops exactly at the ceiling computed from the task, the "
        "bidirectional one goes past it to 1.0. Right: the whole gap is at the intensifiers, whose tag "
        "is the next word's sentiment: from the left alone it is a coin flip."))


def draw_tagged_sentence(ax, result, example=0, width=10):
    """Test sentence ``example``: the true tags and each model's prediction, shaded by its confidence.

    Shows ``width`` words around the first intensifier; the number in a cell is the probability the
    model gives to the right tag, printed where it is below 0.99 (so where the models hesitate).
    """
    ex = result["examples"]
    i = int(example) % len(ex["words"])
    first = int(np.argmax(ex["is_intensifier"][i]))
    start = int(np.clip(first - width // 2, 0, max(0, len(ex["words"][i]) - width)))
    sl = slice(start, start + width)
    words, tags, ints = ex["words"][i][sl], ex["tags"][i][sl], ex["is_intensifier"][i][sl]
    rows = [("truth", None), ("one direction", ex["uni"][i][sl]), ("bidirectional", ex["bi"][i][sl])]
    for r, (label, p) in enumerate(rows):
        for t, w in enumerate(words):
            if p is None:
                tag, conf = int(tags[t]), 1.0
            else:
                tag, conf = int(p[t].argmax()), float(p[t].max())
            ax.add_patch(_rect((t, -r - 0.45), 0.92, 0.9, TAG_COLOURS[tag], 0.25 + 0.75 * conf))
            if p is not None and float(p[t][tags[t]]) < 0.99:
                ax.text(t + 0.46, -r, f"{float(p[t][tags[t]]):.2f}", ha="center", va="center", fontsize=8,
                        fontweight="bold")
    ax.set_xlim(-0.1, len(words))
    ax.set_ylim(-2.55, 0.55)
    ax.set_yticks([0, -1, -2])
    ax.set_yticklabels([r[0] for r in rows], fontsize=8)
    ax.set_xticks(np.arange(len(words)) + 0.46)
    ax.set_xticklabels(words, rotation=45, ha="right", fontsize=8)
    for lab, is_int in zip(ax.get_xticklabels(), ints):
        if is_int:
            lab.set_fontweight("bold")
    ax.grid(False)


def _rect(xy, w, h, colour, alpha):
    from matplotlib.patches import Rectangle

    return Rectangle(xy, w, h, facecolor=colour, alpha=alpha, edgecolor="none")


def tagging_explorer(result, static_settings=None):
    """A slider over the test sentences of a :func:`tagging_uni_vs_bi` result; without a widget
    front end the static panels of ``static_settings`` are what shows."""
    n = len(result["examples"]["words"])
    if static_settings is None:
        static_settings = [{"example": i} for i in range(min(2, n))]
    return widgets.explorer(
        lambda ax, example=0: draw_tagged_sentence(ax, result, example),
        sliders={"example": (0, n - 1, 1)},
        static_settings=static_settings,
        title="What each tagger says, word by word (bold: intensifiers)",
        name="lecture06_tagging_explorer",
        caption=("Colour: the predicted tag (grey neutral, blue positive, vermillion negative), paler when "
                 "less sure; a number is the probability given to the right tag, shown where it is below 0.99. "
                 "At a bold intensifier the one-directional model hedges near 0.5; the bidirectional one has "
                 "read the next word and is sure."),
    )


# ---------------------------------------------------------------------------------------------
# why bidirectional is not for language modelling
# ---------------------------------------------------------------------------------------------
def _next_token_batches(batch_size, T):
    def batch_fn(step, generator):
        d = make_right_context_tagging(batch_size, T=T + 1, seed=int(torch.randint(0, 2**31 - 1, (1,),
                                                                                    generator=generator)))
        return d.tokens[:, :-1], d.tokens[:, 1:]

    return batch_fn


def next_token_leak(seeds=None, steps=None, T=20, hidden=32, lr=1e-2, batch_size=32, test_size=1000,
                    clip=1.0, device=None):
    """Train one-directional and bidirectional LSTMs to predict the next token of the tagging
    sentences (a language model's job) and score next-token accuracy on held-out sentences.

    The bidirectional model's backward half has already read token t + 1 when it predicts at step
    t, so it can copy the answer: a near-perfect score that is no use for generating text, where
    token t + 1 does not exist yet.

    Returns ``{"seeds", "accuracy": {"uni": (S,), "bi": (S,)}, "last_step_accuracy": {...}, "steps", ...}``;
    at the last step there is no next token to read, and the bidirectional model's advantage goes.
    """
    seeds = _seed_list("seeds", budget.pick(ci=2, default=3, full=5) if seeds is None else seeds)
    steps = _positive_int("steps", budget.pick(ci=150, default=300, full=1000) if steps is None else steps)
    d = make_right_context_tagging(_positive_int("test_size", test_size), T=T + 1, seed=54_321)
    test = (d.tokens[:, :-1], d.tokens[:, 1:])
    V = len(d.vocab)
    acc = {"uni": [], "bi": []}
    last = {"uni": [], "bi": []}
    for name, bi in (("uni", False), ("bi", True)):
        for seed in seeds:
            model = seeded(seed, lambda: SequenceModel("lstm", hidden, hidden, V, bidirectional=bi,
                                                        forget_bias=1.0, embedding=V, readout="all"))
            train(model, _next_token_batches(batch_size, T), "cross_entropy", steps, lr=lr, clip=clip, seed=seed,
                  device=device, progress=False)
            acc[name].append(evaluate(model, test, "accuracy"))
            last[name].append(evaluate(model, (test[0], test[1]),
                                       lambda out, y: (out[:, -1].argmax(-1) == y[:, -1]).float().mean()))
    return {"seeds": seeds, "accuracy": {k: np.array(v) for k, v in acc.items()},
            "last_step_accuracy": {k: np.array(v) for k, v in last.items()}, "steps": steps, "T": T,
            "hidden": hidden, "vocab_size": V, "chance": 1.0 / V}


def next_token_leak_claim(result, bi_above=0.9, uni_below=0.2):
    """Every bidirectional seed "predicts" the next token with accuracy above ``bi_above``, which
    no left-to-right model can (every one-directional seed stays below ``uni_below``)."""
    uni, bi = result["accuracy"]["uni"], result["accuracy"]["bi"]
    holds = bool(np.all(bi > bi_above)) and bool(np.all(uni < uni_below))
    return claim(f"next-token prediction: a bidirectional LSTM scores above {bi_above:g} by reading the next token, "
                 f"a one-directional one below {uni_below:g}, every seed", holds, uni_accuracy=float(uni.mean()),
                 bi_accuracy=float(bi.mean()), bi_at_last_step=float(result["last_step_accuracy"]["bi"].mean()),
                 chance=float(result["chance"]), seeds=result["seeds"])


# ---------------------------------------------------------------------------------------------
# the layer-by-layer order of a multi-layer RNN
# ---------------------------------------------------------------------------------------------
def layer_order_check(num_layers=3, batch_size=4, T=12, input_size=5, hidden=8, seed=0):
    """A unidirectional ``num_layers``-layer LSTM computed three ways on the same weights (float64):

    - ``nn.LSTM(num_layers=L)`` (PyTorch's fused kernel);
    - layer by layer: :func:`course_lib.reference.stacked_rnn`, the whole sequence through layer 1,
      then the whole sequence through layer 2, ...;
    - step by step: at each time step, up through every layer (``lstm_cell`` in a double loop).

    Returns ``{"layer_by_layer_vs_torch", "step_by_step_vs_torch"}`` (largest absolute differences
    of the top layer's outputs) and the sizes.
    """
    g = torch.Generator().manual_seed(int(seed))
    module = seeded(seed, lambda: nn.LSTM(input_size, hidden, num_layers=num_layers, batch_first=True).double())
    x = torch.randn(batch_size, T, input_size, generator=g, dtype=torch.float64)
    with torch.no_grad():
        ref, _ = module(x)
        weights = weights_from_module(module)
        by_layer, _ = stacked_rnn(x, weights, "lstm")
        state = [(x.new_zeros(batch_size, hidden), x.new_zeros(batch_size, hidden)) for _ in range(num_layers)]
        tops = []
        for t in range(T):
            inp = x[:, t]
            for l in range(num_layers):
                state[l] = lstm_cell(inp, state[l], *weights[l])
                inp = state[l][0]
            tops.append(inp)
        by_step = torch.stack(tops, 1)
    return {"layer_by_layer_vs_torch": float((by_layer - ref).abs().max()),
            "step_by_step_vs_torch": float((by_step - ref).abs().max()),
            "num_layers": num_layers, "T": T, "hidden": hidden, "seed": int(seed)}


def layer_order_claim(result, tol=1e-12):
    """Layer by layer and step by step both equal ``nn.LSTM`` to ``tol`` (float64)."""
    a, b = result["layer_by_layer_vs_torch"], result["step_by_step_vs_torch"]
    return Claim.compare(f"a {result['num_layers']}-layer LSTM computed layer by layer and step by step gives "
                         f"nn.LSTM's outputs to {tol:g} (the larger difference)", max(a, b), "<", tol,
                         (result["seed"],), layer_by_layer=a, step_by_step=b)


# ---------------------------------------------------------------------------------------------
# variable-length batches
# ---------------------------------------------------------------------------------------------
def variable_length_check(lengths=(12, 9, 7, 4, 2, 1), num_layers=2, bidirectional=True, input_size=5,
                          hidden=8, seed=0):
    """A padded batch with different lengths through a (bidirectional, multi-layer) LSTM, four ways,
    each compared with running every sequence alone, unpadded (float64, the same weights):

    - ``packed``: ``nn.LSTM`` on ``pack_padded_sequence(x, lengths)``;
    - ``masked``: :func:`course_lib.reference.stacked_rnn` with ``lengths`` (padded steps keep the
      state; the backward direction starts at each sequence's own last step);
    - ``ignored``: ``nn.LSTM`` on the padded batch as if the padding were input.

    Returns ``{"lengths", "padding", "outputs": {way: (B,)}, "finals": {way: (B,)}, "pad_outputs":
    {way: float}, ...}``: per sequence, the largest absolute difference from running it alone, of the
    outputs at its valid steps and of its final states (every layer and direction); ``pad_outputs``
    is the largest absolute output at padded steps (0 when padding is left untouched).
    """
    lengths = torch.tensor(int_list("lengths", lengths))
    B, T = len(lengths), int(lengths.max())
    g = torch.Generator().manual_seed(int(seed))
    module = seeded(seed, lambda: nn.LSTM(input_size, hidden, num_layers=num_layers, batch_first=True,
                                           bidirectional=bidirectional).double())
    x = torch.randn(B, T, input_size, generator=g, dtype=torch.float64)
    valid = torch.arange(T)[None, :] < lengths[:, None]
    x = x * valid[..., None]  # zero padding
    with torch.no_grad():
        alone = [module(x[b: b + 1, : int(lengths[b])]) for b in range(B)]
        packed_out, (ph, _) = module(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
        packed, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=T)
        masked, (mh, _) = stacked_rnn(x, weights_from_module(module), "lstm", lengths=lengths,
                                      bidirectional=bidirectional)
        ignored, (ih, _) = module(x)
    ways = {"packed": (packed, ph), "masked": (masked, mh), "ignored": (ignored, ih)}
    outputs = {w: np.zeros(B) for w in ways}
    finals = {w: np.zeros(B) for w in ways}
    for b, (out_b, (h_b, _)) in enumerate(alone):
        n = int(lengths[b])
        for w, (out, h) in ways.items():
            outputs[w][b] = float((out[b, :n] - out_b[0]).abs().max())
            finals[w][b] = float((h[:, b] - h_b[:, 0]).abs().max())
    pad = {w: float(out[~valid].abs().max()) if (~valid).any() else 0.0 for w, (out, _) in ways.items()}
    return {"lengths": lengths.numpy(), "padding": (T - lengths).numpy(), "outputs": outputs, "finals": finals,
            "pad_outputs": pad, "num_layers": num_layers, "bidirectional": bidirectional, "hidden": hidden,
            "seed": int(seed)}


def variable_length_claim(result, tol=1e-12, wrong_above=1e-3):
    """Packing and masking equal running each sequence alone to ``tol`` (outputs and final states,
    padded outputs zero); ignoring the lengths is off by more than ``wrong_above`` for every
    sequence that has padding."""
    exact = all(max(result["outputs"][w].max(), result["finals"][w].max(), result["pad_outputs"][w]) < tol
                for w in ("packed", "masked"))
    padded = result["padding"] > 0
    wrong = np.maximum(result["outputs"]["ignored"], result["finals"]["ignored"])[padded]
    holds = exact and bool(np.all(wrong > wrong_above))
    return claim(f"a padded batch with lengths (packing or masking) equals running each sequence alone to {tol:g}; "
                 f"running over the padding is off by more than {wrong_above:g} for every padded sequence", holds,
                 packed=float(max(result["outputs"]["packed"].max(), result["finals"]["packed"].max())),
                 masked=float(max(result["outputs"]["masked"].max(), result["finals"]["masked"].max())),
                 ignored_min=float(wrong.min()) if len(wrong) else float("nan"), seeds=(result["seed"],))


def plot_variable_length(result, name="lecture06_variable_length", caption=None):
    """Per sequence of the batch: how far each way of running the padded batch is from running
    that sequence alone (log scale; float64 round-off is about 1e-16)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4))
    labels = {"packed": "nn.LSTM + pack_padded_sequence", "masked": "reference stacked_rnn with lengths",
              "ignored": "nn.LSTM, lengths ignored"}
    colours = {"packed": plots.colour("lstm"), "masked": plots.colour("residual"), "ignored": plots.colour("rnn")}
    B = len(result["lengths"])
    x = np.arange(B)
    floor = 1e-17
    for i, w in enumerate(("packed", "masked", "ignored")):
        diff = np.maximum(np.maximum(result["outputs"][w], result["finals"][w]), floor)
        ax.bar(x + (i - 1) * 0.27, diff, width=0.25, color=colours[w], label=labels[w], bottom=0)
    ax.set_yscale("log")
    ax.set_ylim(floor / 2, 1e5)
    ax.set_xticks(x)
    ax.set_xticklabels([f"length {l}\n({p} padded)" for l, p in zip(result["lengths"], result["padding"])],
                       fontsize=8)
    ax.set_ylabel("largest |difference| from running it alone")
    kind = ("bidirectional " if result["bidirectional"] else "") + f"{result['num_layers']}-layer LSTM"
    ax.set_title(f"a padded batch through a {kind} (float64)")
    ax.legend(fontsize=8, loc="upper left")
    return plots.finish(fig, name, caption, default=(
        "Packing and masking give every sequence exactly what it gets alone (differences at float64 "
        "round-off, or exactly 0). Running over the padding as if it were input changes every sequence "
        "that has padding, through the backward direction and the final states; only the full-length "
        "one is untouched."))


# ---------------------------------------------------------------------------------------------
# depth: a task that needs several nonlinear steps per time step
# ---------------------------------------------------------------------------------------------
def _lookup_table(K, window, classes, table_seed):
    return torch.randint(0, classes, (K**window,), generator=torch.Generator().manual_seed(int(table_seed)))


def make_window_lookup(n, T=20, K=8, window=3, classes=2, seed=0, table_seed=7):
    """Tag each step with a fixed random function of the last ``window`` tokens (K symbols).

    ``tokens`` (n, T) uniform over K symbols; ``y[:, t] = table[tokens[t-window+1 .. t]]`` for a random
    table of ``K**window`` entries (``table_seed``), so no rule shorter than the table explains it:
    the network has to compute an arbitrary function of three symbols at every step. The first
    ``window - 1`` steps have no full window and are masked out. ``chance`` is the share of the
    table's most common class (the best input-blind accuracy).
    """
    n, T, K = _positive_int("n", n), _positive_int("T", T), _positive_int("K", K)
    window, classes = _positive_int("window", window), _positive_int("classes", classes)
    if T < window:
        raise ValueError(f"T must be at least window = {window}, got {T}")
    table = _lookup_table(K, window, classes, table_seed)
    g = torch.Generator().manual_seed(int(seed))
    tokens = torch.randint(0, K, (n, T), generator=g)
    idx = tokens.clone()
    for j in range(1, window):
        idx[:, j:] = idx[:, j:] * K + tokens[:, :-j]
    mask = torch.ones(n, T, dtype=torch.bool)
    mask[:, : window - 1] = False
    chance = float(torch.bincount(table, minlength=classes).max()) / len(table)
    return TaskData(x=nn.functional.one_hot(tokens, K).float(), y=table[idx], tokens=tokens, mask=mask,
                    chance=chance, kind="tagging", num_classes=classes, vocab=tuple(f"s{i}" for i in range(K)),
                    info={"window": window, "K": K, "table_seed": table_seed})


def depth_experiment(depths=None, seeds=None, steps=None, hidden=16, K=8, window=3, classes=2, T=20, lr=1e-2,
                     batch_size=32, test_size=1000, clip=1.0, device=None):
    """Stacked LSTM taggers of each depth, without and with residual links, on :func:`make_window_lookup`.

    Same width (``hidden`` units per layer, an embedding of ``hidden`` features, forget-gate bias 1),
    ``steps`` Adam steps on fresh batches, accuracy on a held-out set (seed 777). Deeper stacks also
    have more parameters (``parameters``).

    Returns ``{"depths", "seeds", "accuracy": {"plain": (D, S), "residual": (D, S)},
    "parameters": (D,), "chance", ...}``. Depth 1 has no link to skip, so its two rows are the same model.
    """
    depths = int_list("depths", budget.pick(ci=(1, 4), default=(1, 2, 3, 4), full=(1, 2, 3, 4, 6))
                       if depths is None else depths)
    seeds = _seed_list("seeds", budget.pick(ci=3, default=3, full=5) if seeds is None else seeds)
    steps = _positive_int("steps", budget.pick(ci=300, default=400, full=1500) if steps is None else steps)
    task = dict(T=T, K=K, window=window, classes=classes)
    test = make_window_lookup(_positive_int("test_size", test_size), seed=777, **task)
    acc = {"plain": np.zeros((len(depths), len(seeds))), "residual": np.zeros((len(depths), len(seeds)))}
    params = []
    for i, depth in enumerate(depths):
        for name, residual in (("plain", False), ("residual", True)):
            if depth == 1 and residual:  # nothing to skip: the same network as plain
                acc["residual"][i] = acc["plain"][i]
                continue
            for j, seed in enumerate(seeds):
                model = seeded(seed, lambda: SequenceModel("lstm", hidden, hidden, classes, num_layers=depth,
                                                            residual=residual, embedding=K, forget_bias=1.0,
                                                            readout="all"))
                train(model, fresh_batches(make_window_lookup, batch_size, use_tokens=True, **task),
                      "cross_entropy", steps, lr=lr, clip=clip, seed=seed, device=device, progress=False)
                acc[name][i, j] = evaluate(model, test.as_batch(use_tokens=True), "accuracy")
                if not residual and j == 0:
                    params.append(count_parameters(model))
    return {"depths": depths, "seeds": seeds, "accuracy": acc, "parameters": np.array(params), "chance": test.chance,
            "steps": steps, "hidden": hidden, "K": K, "window": window, "classes": classes, "T": T, "lr": lr,
            "batch_size": batch_size}


def depth_claims(result, factor=0.25):
    """What depth does, as a list of claims:

    - with 2 layers in ``depths``: every 2-layer seed (plain) beats every 1-layer seed;
    - the deepest residual stack's mean error is under ``factor`` times the 1-layer mean error;
    - at the deepest, residual beats plain in every seed.
    """
    d, acc = list(result["depths"]), result["accuracy"]
    out = []
    seeds = tuple(result["seeds"])
    if 1 in d and 2 in d:
        one, two = acc["plain"][d.index(1)], acc["plain"][d.index(2)]
        out.append(Claim.compare("a second stacked layer (same width) beats one layer: every 2-layer seed above every "
                                 "1-layer seed (worst 2-layer accuracy minus best 1-layer)", float(two.min() - one.max()),
                                 ">", 0, seeds, one_layer=float(one.mean()), two_layers=float(two.mean())))
    if 1 in d:
        i = int(np.argmax(d))
        e1, er = 1 - acc["plain"][d.index(1)].mean(), 1 - acc["residual"][i].mean()
        out.append(Claim.compare(f"{d[i]} residual layers cut the 1-layer error by more than {1 / factor:g}x (the ratio "
                                 f"of mean errors)", float(er / e1) if e1 > 0 else float("inf"), "<", factor, seeds,
                                 one_layer_error=float(e1), residual_error=float(er)))
    i = int(np.argmax(d))
    if d[i] > 1:
        p, r = acc["plain"][i], acc["residual"][i]
        out.append(Claim.every(f"at {d[i]} layers, residual beats plain in every seed (accuracy difference)", r - p,
                               ">", 0, seeds, plain=float(p.mean()), residual=float(r.mean())))
    return out


def plot_depth(result, name="lecture06_depth", caption=None):
    """Test error (log scale) against the number of layers, plain and residual: a dot per seed,
    the mean as a line."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    d = np.array(result["depths"], dtype=float)
    floor = 1e-4
    for i, conn in enumerate(("plain", "residual")):
        err = np.maximum(1 - result["accuracy"][conn], floor)
        shift = d + (i - 0.5) * 0.08
        for j in range(err.shape[1]):
            ax.scatter(shift, err[:, j], color=plots.colour(conn), alpha=0.45, s=22, lw=0)
        ax.plot(shift, err.mean(1), color=plots.colour(conn), lw=2, marker="o",
                label=f"{conn}, mean of {err.shape[1]} seeds")
    ax.set_yscale("log")
    ax.set_xticks(d)
    ax.set_xticklabels([f"{int(v)}\n({p/1000:.1f}k params)" for v, p in zip(d, result["parameters"])], fontsize=8)
    ax.set_xlabel("stacked LSTM layers")
    ax.set_ylabel(f"test error (floored at {floor:g})")
    ax.set_title(f"tag = random function of the last {result['window']} of {result['K']} symbols, "
                 f"H = {result['hidden']}, {result['steps']} steps", fontsize=9)
    ax.legend(fontsize=8)
    return plots.finish(fig, name, caption, default=(
        "At the same width, a second layer cuts the error of a single layer; with residual links "
        "every added layer helps further, while plain stacks stop improving or get worse "
        "as they deepen. (Deeper stacks also have more parameters: the tick labels say how many.)"))
