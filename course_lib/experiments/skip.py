"""Lecture 5, skip connections: every measurement the lecture shows, and its plot.

Each experiment takes explicit sizes (defaulting to :func:`course_lib.budget.pick`) and seeds,
is deterministic given them, and returns plain numbers (dicts of floats, lists, numpy arrays).
The notebook plots what they return; ``tests/test_lecture05_skip.py`` asserts the same numbers at
the ``ci`` budget.

Deep feed-forward stacks (no recurrence at all: depth alone makes gradients vanish),
:class:`course_lib.reference.DeepNet` with plain, residual, highway or dense connections:

- :func:`mlp_gradient_norms`   ||dL/dW_k|| of every layer k at initialisation
- :func:`mlp_depth_training`   test accuracy after training, against depth, per connection
- :func:`gradient_explorer`    sliders for depth and activation, static panels without them

Deep stacked LSTMs (:class:`course_lib.models.SequenceModel`, ``residual=False`` / ``True``):

- :func:`stacked_rnn_gradients` per-layer gradient norms of a 16-layer LSTM at initialisation
- :func:`stacked_rnn_depth`     recall accuracy against the number of layers, plain and residual

Each experiment has a ``*_claim(result)`` that states what the lecture claims about it, whether it
held, and the numbers behind it; :func:`record` files it with :mod:`course_lib.report` and returns
the sentence the notebook prints. The tests assert the same claims.
"""
from __future__ import annotations

import re

import numpy as np
import torch
from matplotlib.ticker import MaxNLocator

from .._validate import int_list, positive_int as _positive_int, seed_list as _seed_list
from ..seeding import seeded
from .. import budget, plots, report, widgets
from ..models import SequenceModel
from ..reference.connections import CONNECTIONS, DeepNet
from ..tasks import fresh_batches, make_recall
from ..train import evaluate, train

ACTIVATIONS = ("tanh", "sigmoid", "relu")
FEATURES = 16  # input features of the feed-forward task


# ---------------------------------------------------------------------------------------------
# small shared pieces (bidirectional.py uses them too)
# ---------------------------------------------------------------------------------------------
def _check_connections(connections):
    connections = [connections] if isinstance(connections, str) else list(connections)
    bad = [c for c in connections if c not in CONNECTIONS]
    if not connections or bad:
        raise ValueError(f"connections must be a non-empty list drawn from {CONNECTIONS}, got {connections!r}")
    return connections


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def _geo_mean(a, axis=-1):
    return np.exp(np.log(np.asarray(a, dtype=float)).mean(axis))


def claim(text, holds, seeds=(), **numbers):
    """A compound claim (several comparisons at once) as a :class:`course_lib.claims.Claim` (``Claim.fact``)."""
    from ..claims import Claim

    return Claim.fact(text, holds, seeds=tuple(seeds), **numbers)


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"
    return str(v)


def record(c, section):
    """File claim ``c`` (a :class:`course_lib.claims.Claim` or a dict from :func:`claim`) for the main
    job's report and return it as a sentence with its numbers, for the notebook to print."""
    from .. import claims as C

    c = C.from_dict(c)
    report.record_claim(c, section)
    return str(c)


# ---------------------------------------------------------------------------------------------
# a feed-forward task: which quadrant of two random hyperplanes a point falls in
# ---------------------------------------------------------------------------------------------
def make_quadrants(n, seed=0, features=FEATURES):
    """``(x, y)``: x ~ N(0, I) in ``features`` dimensions, y in {0, 1, 2, 3} the side of two fixed
    random hyperplanes through the origin (the same planes for every seed). Two layers solve it;
    the question is whether a *deep* stack can still be trained to."""
    n = _positive_int("n", n)
    features = _positive_int("features", features)
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn(n, features, generator=g)
    planes = torch.randn(2, features, generator=torch.Generator().manual_seed(2024))
    side = (x @ planes.t() > 0).long()
    return x, side[:, 0] * 2 + side[:, 1]


def _quadrant_batches(batch_size):
    def batch_fn(step, generator):
        return make_quadrants(batch_size, seed=int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))

    return batch_fn


# ---------------------------------------------------------------------------------------------
# per-layer gradient norms of a deep MLP at initialisation
# ---------------------------------------------------------------------------------------------
def mlp_gradient_norms(depth=None, activation="tanh", connections=CONNECTIONS, seeds=None, width=32,
                       batch_size=512):
    """||dL/dW_k||_F for every hidden layer k = 1..depth of a freshly initialised ``DeepNet``.

    One cross-entropy loss on a batch of :func:`make_quadrants` (seed 0), one backward pass, for
    each connection type and seed (the seed sets the weights). Layer 1 is next to the input,
    layer ``depth`` next to the output.

    Returns ``{"layers": (depth,), "norms": {connection: (S, depth)}, "ratio": {connection: (S,)}``
    (layer 1's norm over layer ``depth``'s: 1 when the gradient reaches the bottom undiminished),
    ``"depth", "activation", "connections", "seeds", "width"}``.
    """
    depth = _positive_int("depth", budget.pick(ci=20, default=20, full=30) if depth is None else depth)
    _check_activation(activation)
    connections = _check_connections(connections)
    seeds = _seed_list("seeds", budget.pick(ci=3, default=5, full=10) if seeds is None else seeds)
    x, y = make_quadrants(_positive_int("batch_size", batch_size), seed=0)
    norms, ratio = {}, {}
    for conn in connections:
        rows = []
        for seed in seeds:
            net = seeded(seed, lambda: DeepNet(FEATURES, width, 4, depth, conn, activation))
            torch.nn.functional.cross_entropy(net(x), y).backward()
            rows.append([float(layer.weight.grad.norm()) for layer in net.hidden_layers()])
        norms[conn] = np.array(rows)
        ratio[conn] = norms[conn][:, 0] / norms[conn][:, -1]
    return {"layers": np.arange(1, depth + 1), "norms": norms, "ratio": ratio, "depth": depth,
            "activation": activation, "connections": connections, "seeds": seeds, "width": width}


def mlp_gradient_claim(result, plain_below=1e-2, skip_above=0.05):
    """Plain: layer 1 gets less than ``plain_below`` of the top layer's gradient in every seed;
    residual, highway and dense: more than ``skip_above`` in every seed."""
    r = result["ratio"]
    skips = [c for c in result["connections"] if c != "plain"]
    holds = ("plain" in r and bool(np.all(r["plain"] < plain_below))
             and all(np.all(r[c] > skip_above) for c in skips))
    nums = {f"{c}_bottom_over_top": float(_geo_mean(r[c])) for c in result["connections"]}
    nums["plain_worst"] = float(np.max(r["plain"])) if "plain" in r else None
    nums["skip_worst"] = float(min(np.min(r[c]) for c in skips)) if skips else None
    return claim(f"{result['depth']} {result['activation']} layers at initialisation: the bottom layer's gradient "
                 f"is under {plain_below:g} of the top layer's without skip connections and over {skip_above:g} "
                 f"with {', '.join(skips)} connections, in every seed", holds, seeds=result["seeds"], **nums)


def _draw_layer_norms(ax, result, legend=True):
    for conn in result["connections"]:
        n = result["norms"][conn]
        ax.semilogy(result["layers"], _geo_mean(n, 0), color=plots.colour(conn), lw=2, marker="o", ms=3,
                    label=conn)
        if n.shape[0] > 1:
            ax.fill_between(result["layers"], n.min(0), n.max(0), color=plots.colour(conn), alpha=0.15, lw=0)
    ax.set_xlabel("layer (1 = next to the input)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(r"$\|\partial L/\partial W_k\|$ at initialisation")
    if legend:
        ax.legend(fontsize=8, loc="lower right")


def plot_mlp_gradients(result, name="lecture05_mlp_gradients", caption=None):
    """Per-layer gradient norms, one line per connection type (geometric mean over seeds, the
    band spans the seeds), log scale."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    _draw_layer_norms(ax, result)
    ax.set_title(f"{result['depth']} {result['activation']} layers of {result['width']} units")
    return plots.finish(fig, name, caption, default=(
        "Plain (vermillion): the gradient shrinks layer after layer on its way down, "
        "so the first layers barely learn. Residual, highway and dense connections give it a path "
        "around every layer: their lines are flat, the bottom layer hears as much as the top."))


def draw_gradient_explorer(ax, depth=20, activation="tanh"):
    """The explorer's panel: per-layer gradient norms of all four connection types (3 seeds)."""
    _draw_layer_norms(ax, mlp_gradient_norms(depth=int(depth), activation=activation, seeds=3), legend=True)


def gradient_explorer(static_settings=None):
    """Sliders for depth and activation that redraw the per-layer gradient norms; without a widget
    front end the static panels of ``static_settings`` are what shows."""
    if static_settings is None:
        static_settings = [{"depth": 10, "activation": "sigmoid"}, {"depth": 30, "activation": "tanh"},
                           {"depth": 30, "activation": "relu"}]
    return widgets.explorer(
        draw_gradient_explorer,
        sliders={"depth": (2, 60, 1), "activation": list(ACTIVATIONS)},
        static_settings=static_settings,
        title="Gradient norm of each layer at initialisation",
        name="lecture05_explorer",
        caption=("Sigmoid vanishes fastest (its derivative is at most 1/4); tanh more slowly; ReLU plain "
                 "stacks vanish too at PyTorch's default initialisation. The skip connections stay within a factor "
                 "of about ten from bottom to top at every depth, against the plain stack's many orders of magnitude."),
    )


# ---------------------------------------------------------------------------------------------
# training deep MLPs: accuracy against depth
# ---------------------------------------------------------------------------------------------
def mlp_depth_training(depths=None, connections=CONNECTIONS, activation="sigmoid", seeds=None, steps=None,
                       width=32, lr=3e-3, batch_size=64, test_size=2000, clip=1.0, device=None):
    """Train ``DeepNet`` of each depth and connection type on :func:`make_quadrants`.

    ``steps`` Adam steps (lr ``lr``, clipping at ``clip``) on fresh batches, then accuracy on a
    held-out set (seed 1). ``chance`` is the majority class's share of that set.

    Returns ``{"depths", "connections", "seeds", "accuracy": {connection: (D, S)}, "chance", "steps", ...}``.
    """
    depths = int_list("depths", budget.pick(ci=(2, 10), default=(2, 5, 10, 20), full=(2, 5, 10, 20, 40))
                       if depths is None else depths)
    connections = _check_connections(connections)
    _check_activation(activation)
    seeds = _seed_list("seeds", budget.pick(ci=2, default=3, full=5) if seeds is None else seeds)
    steps = _positive_int("steps", budget.pick(ci=200, default=300, full=1000) if steps is None else steps)
    xt, yt = make_quadrants(_positive_int("test_size", test_size), seed=1)
    chance = float(torch.bincount(yt).max()) / len(yt)
    acc = {}
    for conn in connections:
        acc[conn] = np.zeros((len(depths), len(seeds)))
        for i, depth in enumerate(depths):
            for j, seed in enumerate(seeds):
                net = seeded(seed, lambda: DeepNet(FEATURES, width, 4, depth, conn, activation))
                train(net, _quadrant_batches(batch_size), "cross_entropy", steps, lr=lr, clip=clip, seed=seed,
                      device=device, progress=False)
                acc[conn][i, j] = evaluate(net, (xt, yt), "accuracy")
    return {"depths": depths, "connections": connections, "seeds": seeds, "accuracy": acc, "chance": chance,
            "activation": activation, "steps": steps, "width": width, "lr": lr, "batch_size": batch_size}


def mlp_depth_claim(result, margin=0.1, trained=0.9):
    """At every depth of 10 or more the plain stack stays within ``margin`` of chance (mean over
    seeds) while every skip connection's mean exceeds ``trained``; at the smallest depth, if under
    10, the plain stack trains too (mean above ``trained``)."""
    acc, d = result["accuracy"], np.array(result["depths"])
    deep = d >= 10
    skips = [c for c in result["connections"] if c != "plain"]
    # "within margin of chance" is two-sided: neither above nor (a broken evaluation) below it
    holds = bool(deep.any()) and bool(np.all(np.abs(acc["plain"][deep].mean(1) - result["chance"]) < margin))
    holds = holds and all(np.all(acc[c][deep].mean(1) > trained) for c in skips)
    nums = {}
    if d.min() < 10:
        holds = holds and float(acc["plain"][np.argmin(d)].mean()) > trained
        nums[f"plain_depth{d.min()}"] = float(acc["plain"][np.argmin(d)].mean())
    deepest = int(np.argmax(d))
    nums.update({f"{c}_depth{d.max()}": float(acc[c][deepest].mean()) for c in result["connections"]})
    return claim(f"{result['activation']} MLPs of {', '.join(str(x) for x in d[deep])} layers: plain stays within "
                 f"{margin:g} of chance ({result['chance']:.3f}), {', '.join(skips)} exceed {trained:g} accuracy "
                 f"after {result['steps']} steps (means over seeds)", holds, seeds=result["seeds"], **nums)


def plot_mlp_depth(result, name="lecture05_mlp_depth", caption=None):
    """Test accuracy against depth: mean per connection type, one dot per seed, chance dashed."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    d = np.array(result["depths"], dtype=float)
    k = len(result["connections"])
    for i, conn in enumerate(result["connections"]):
        a = result["accuracy"][conn]
        shift = d * (1 + 0.04 * (i - (k - 1) / 2))  # spread the dots on the log axis
        for j in range(a.shape[1]):
            ax.scatter(shift, a[:, j], color=plots.colour(conn), alpha=0.4, s=20, lw=0)
        ax.plot(shift, a.mean(1), color=plots.colour(conn), lw=2, marker="o", label=conn)
    ax.axhline(result["chance"], color="0.4", ls="--", lw=1, label="chance")
    plots.accuracy_by_depth_axes(ax, d, "hidden layers")
    ax.set_title(f"{result['activation']} MLP, {result['steps']} Adam steps, {len(result['seeds'])} seeds")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return plots.finish(fig, name, caption, default=(
        "Two layers learn the task whatever the wiring. From about ten sigmoid layers on, the plain "
        "stack stays at chance, while the same depth with residual, highway or dense connections "
        "learns it as well as the shallow net."))


# ---------------------------------------------------------------------------------------------
# deep stacked LSTMs
# ---------------------------------------------------------------------------------------------
def _lstm_stack(num_layers, residual, hidden, vocab, seed):
    # the embedding has ``hidden`` features, so even the first layer gets a skip connection
    return seeded(seed, lambda: SequenceModel("lstm", hidden, hidden, vocab, num_layers=num_layers,
                                               residual=residual, embedding=vocab + 8 + 1, forget_bias=1.0))


def _per_layer_grad_norms(model):
    """Gradient norm of each recurrent layer's parameters, bottom first (fused or per-layer modules)."""
    sq = {}
    for l, module in enumerate(model.recurrent_modules()):
        for pname, p in module.named_parameters():
            m = re.search(r"_l(\d+)", pname)
            layer = l + (int(m.group(1)) if m else 0)
            sq[layer] = sq.get(layer, 0.0) + float((p.grad**2).sum())
    return [sq[k] ** 0.5 for k in sorted(sq)]


def stacked_rnn_gradients(num_layers=None, seeds=None, hidden=32, k=5, vocab=8, batch_size=256):
    """Per-layer gradient norms of a stacked LSTM at initialisation, plain against residual.

    The loss is the cross-entropy of :func:`course_lib.tasks.make_recall` (``k`` distractors,
    seed 0) read out at the last step; the norm of layer l is over all its weights and biases.

    Returns ``{"layers": (L,), "norms": {"plain": (S, L), "residual": (S, L)}, "ratio": {...: (S,)}``
    (bottom layer over top layer), ``"num_layers", "seeds", "hidden", "k"}``.
    """
    num_layers = _positive_int("num_layers", budget.pick(ci=16, default=16, full=16) if num_layers is None
                               else num_layers)
    seeds = _seed_list("seeds", budget.pick(ci=3, default=5, full=10) if seeds is None else seeds)
    data = make_recall(_positive_int("batch_size", batch_size), k, seed=0, vocab=vocab)
    norms, ratio = {}, {}
    for name, residual in (("plain", False), ("residual", True)):
        rows = []
        for seed in seeds:
            model = _lstm_stack(num_layers, residual, hidden, vocab, seed)
            torch.nn.functional.cross_entropy(model(data.tokens), data.y).backward()
            rows.append(_per_layer_grad_norms(model))
        norms[name] = np.array(rows)
        ratio[name] = norms[name][:, 0] / norms[name][:, -1]
    return {"layers": np.arange(1, num_layers + 1), "norms": norms, "ratio": ratio, "num_layers": num_layers,
            "seeds": seeds, "hidden": hidden, "k": k, "connections": ["plain", "residual"]}


def stacked_rnn_gradient_claim(result, plain_below=1e-3, residual_range=(0.1, 10.0)):
    """Plain stack: bottom layer's gradient under ``plain_below`` of the top's in every seed;
    residual: the ratio inside ``residual_range`` in every seed."""
    r = result["ratio"]
    lo, hi = residual_range
    holds = bool(np.all(r["plain"] < plain_below)) and bool(np.all((r["residual"] > lo) & (r["residual"] < hi)))
    return claim(f"{result['num_layers']}-layer LSTM at initialisation: bottom/top gradient norm under "
                 f"{plain_below:g} plain, between {lo:g} and {hi:g} residual, in every seed", holds,
                 plain_bottom_over_top=float(_geo_mean(r["plain"])),
                 residual_bottom_over_top=float(_geo_mean(r["residual"])), seeds=result["seeds"],
                 plain_worst=float(np.max(r["plain"])), residual_range_seen=(float(np.min(r["residual"])),
                                                                              float(np.max(r["residual"]))))


def stacked_rnn_depth_claim(result, margin=0.1, trained=0.95):
    """At the deepest stack: every plain seed within ``margin`` of chance, every residual seed above
    ``trained``."""
    i = int(np.argmax(result["depths"]))
    plain, res = result["accuracy"]["plain"][i], result["accuracy"]["residual"][i]
    holds = bool(np.all(np.abs(plain - result["chance"]) < margin)) and bool(np.all(res > trained))  # two-sided
    return claim(f"a {result['depths'][i]}-layer stacked LSTM trains to recall only with residual connections: "
                 f"plain within {margin:g} of chance, residual above {trained:g}, every seed, "
                 f"{result['steps']} steps", holds, plain_accuracy=float(plain.mean()),
                 residual_accuracy=float(res.mean()), chance=float(result["chance"]), seeds=result["seeds"],
                 plain_per_seed=[float(u) for u in plain], residual_per_seed=[float(u) for u in res])


def stacked_rnn_depth(depths=None, seeds=None, steps=None, hidden=32, k=5, vocab=8, lr=3e-3, batch_size=32,
                      test_size=1000, clip=1.0, device=None):
    """Recall across ``k`` distractors with a stacked LSTM of each depth, plain and residual.

    Each model (forget-gate bias 1, an embedding of ``hidden`` features so every layer gets a skip)
    is trained ``steps`` Adam steps on fresh batches of :func:`course_lib.tasks.make_recall`, then
    scored on a held-out set (seed 10_000). The training losses are kept for the deepest stack.

    Returns ``{"depths", "seeds", "accuracy": {"plain": (D, S), "residual": (D, S)},
    "loss_curves": {"plain": (S, steps), "residual": (S, steps)}, "chance", "steps", ...}``.
    """
    depths = int_list("depths", budget.pick(ci=(16,), default=(1, 2, 4, 8, 16), full=(1, 2, 4, 8, 16, 24))
                       if depths is None else depths)
    seeds = _seed_list("seeds", budget.pick(ci=2, default=3, full=5) if seeds is None else seeds)
    steps = _positive_int("steps", budget.pick(ci=150, default=200, full=1000) if steps is None else steps)
    test = make_recall(_positive_int("test_size", test_size), k, seed=10_000, vocab=vocab)
    acc = {"plain": np.zeros((len(depths), len(seeds))), "residual": np.zeros((len(depths), len(seeds)))}
    curves = {"plain": [], "residual": []}
    for name, residual in (("plain", False), ("residual", True)):
        for i, depth in enumerate(depths):
            for j, seed in enumerate(seeds):
                model = _lstm_stack(depth, residual, hidden, vocab, seed)
                h = train(model, fresh_batches(make_recall, batch_size, use_tokens=True, k=k, vocab=vocab),
                          "cross_entropy", steps, lr=lr, clip=clip, seed=seed, device=device, progress=False)
                acc[name][i, j] = evaluate(model, test.as_batch(use_tokens=True), "accuracy")
                if depth == max(depths):
                    curves[name].append(h.loss)
    return {"depths": depths, "seeds": seeds, "accuracy": acc,
            "loss_curves": {n: np.array(c) for n, c in curves.items()}, "chance": 1.0 / vocab,
            "chance_loss": float(np.log(vocab)), "steps": steps, "hidden": hidden, "k": k, "lr": lr,
            "batch_size": batch_size}


def plot_stacked_rnn(grads, depth_result, name="lecture05_stacked_lstm", caption=None):
    """Three panels: per-layer gradient norms at initialisation (from :func:`stacked_rnn_gradients`),
    test accuracy against depth, and the training loss of the deepest stack (from
    :func:`stacked_rnn_depth`)."""
    import matplotlib.pyplot as plt

    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(15, 4.2))
    _draw_layer_norms(a1, grads)
    a1.set_title(f"{grads['num_layers']}-layer LSTM at initialisation")
    a1.set_ylabel(r"$\|\partial L/\partial \theta_l\|$ of layer $l$")

    d = np.array(depth_result["depths"], dtype=float)
    for i, conn in enumerate(("plain", "residual")):
        a = depth_result["accuracy"][conn]
        shift = d * (1 + 0.05 * (i - 0.5))
        for j in range(a.shape[1]):
            a2.scatter(shift, a[:, j], color=plots.colour(conn), alpha=0.4, s=20, lw=0)
        a2.plot(shift, a.mean(1), color=plots.colour(conn), lw=2, marker="o", label=conn)
    a2.axhline(depth_result["chance"], color="0.4", ls="--", lw=1, label=f"chance (1/{round(1 / depth_result['chance'])})")
    plots.accuracy_by_depth_axes(a2, d, "stacked LSTM layers")
    a2.set_title(f"recall across {depth_result['k']} distractors, {depth_result['steps']} steps")
    a2.legend(fontsize=8, loc="center left")

    deepest = max(depth_result["depths"])
    for conn in ("plain", "residual"):
        c = depth_result["loss_curves"][conn]
        if len(c) == 0:
            continue
        w = max(1, c.shape[1] // 30)
        kernel = np.ones(w) / w
        for j, row in enumerate(c):
            sm = np.convolve(row, kernel, mode="valid")
            a3.plot(sm, alpha=0.8, lw=1.3, label=conn if j == 0 else None, **plots.line_style(conn, n_points=len(sm)))
    a3.axhline(depth_result["chance_loss"], color="0.4", ls="--", lw=1, label="log 8 (guessing)")
    a3.set_xlabel("training step")
    a3.set_ylabel("training loss (nats, running mean)")
    a3.set_title(f"{deepest} layers: training loss, one line per seed")
    a3.legend(fontsize=8)
    return plots.finish(fig, name, caption, default=(
        "Left: in a plain 16-layer LSTM the gradient reaching the bottom layer is orders of magnitude "
        "smaller than at the top; with residual links it is about the same. Middle: a few plain layers "
        "learn the task, deeper plain stacks fail and sit at chance at 16 layers; residual stacks learn "
        "at every depth. "
        "Right (plain dashed with squares, residual solid with circles): the plain deep stack never leaves "
        "the guessing loss."))
