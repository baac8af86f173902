"""Lecture 3, the LSTM: the cell path, the forget-gate bias, and the adding problem at growing length.

Every function runs one measurement and returns plain numbers (floats, lists, numpy arrays); the
``plot_*`` functions next to them draw what they returned. The notebook and the tests call the same
functions; sizes default to :func:`course_lib.budget.pick`.

- :func:`cell_agreement`   the from-scratch ``reference.lstm_cell`` against ``nn.LSTMCell``
- :func:`gradient_flow`    ||dc_T/dc_t|| and ||dh_T/dh_t|| against distance at initialisation, for
  the tanh RNN and the LSTM at several forget-gate biases (Jozefowicz et al. 2015)
- :func:`adding_vs_length` the adding problem at growing T: the LSTM against the tanh RNN, several
  seeds, plus the gates and the gradient flow of the trained models
- :func:`lstm_gates`       the gate values of an ``nn.LSTM`` over a sequence (for the plots)

Why the cell path carries gradient: c_t = f_t * c_{t-1} + i_t * g_t, so the direct path from
c_t back to c_{t-1} has the Jacobian diag(f_t), and the direct path over k steps diag(prod f).
When the forget gates stay near 1 that product stays near 1, however long the path.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from .._validate import positive_int as _positive_int
from .. import budget, plots
from . import baselines
from ..claims import Claim
from .. import reference as ref
from ..models import SequenceModel, count_parameters
from ..tasks import fresh_batches, make_adding, normalized_mse
from ..seeding import budget_seeds
from ..train import experiment_device, train

__all__ = [
    "cell_agreement", "lstm_gates", "state_jacobian_norms", "gradient_flow", "adding_vs_length",
    "build_model", "plot_gradient_flow", "draw_forget_bias", "plot_adding_vs_length",
    "plot_learning_curves", "draw_gates", "plot_trained_gradient_flow", "marked_sensitivity",
    "claims_cell", "claims_gradient_flow", "claims_adding", "report_claims", "adding_baselines",
    "claims_adding_baselines", "plot_adding_baselines",
]

SOLVED_NMSE = 0.1  # normalised MSE below this counts as solved (chance is 1.0)
CHANCE_NMSE = 0.8  # at or above this a model is still at the chance baseline
TEST_SEED = 10_000  # test sets use their own seeds, never a training seed


def build_model(cell: str, hidden: int, seed: int, forget_bias: float | None = 1.0, input_size: int = 2,
                output_size: int = 1) -> SequenceModel:
    """A one-layer :class:`SequenceModel` for a task, initialised from ``seed`` (the global RNG is left as it was).

    ``forget_bias`` applies to the LSTM only (``None`` keeps PyTorch's initialisation, about 0).
    ``cell="irnn"``: the ReLU RNN with identity recurrent initialisation (Le et al. 2015), the fair
    baseline of :func:`adding_baselines` (see :mod:`course_lib.experiments.baselines`).
    """
    if cell == "irnn":
        return baselines.irnn(input_size, hidden, output_size, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return SequenceModel(cell, input_size, hidden, output_size,
                             forget_bias=forget_bias if cell == "lstm" else None)


# ---------------------------------------------------------------------------------------------
# the from-scratch cell is the PyTorch cell
# ---------------------------------------------------------------------------------------------
def cell_agreement(seed: int = 0, batch: int = 4, input_size: int = 3, hidden: int = 5,
                   dtype=torch.float64) -> dict:
    """Run ``reference.lstm_cell`` and ``nn.LSTMCell`` on the same weights and inputs.

    Returns the largest absolute differences of ``h`` and ``c`` after one step (``max_diff_h``,
    ``max_diff_c``) and of the weight gradients (``max_diff_grad``).
    """
    g = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        cell = torch.nn.LSTMCell(input_size, hidden).to(dtype)
    x = torch.randn(batch, input_size, generator=g, dtype=dtype)
    h = torch.randn(batch, hidden, generator=g, dtype=dtype)
    c = torch.randn(batch, hidden, generator=g, dtype=dtype)
    h_t, c_t = cell(x, (h, c))
    params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    grads_t = torch.autograd.grad((h_t.sum() + c_t.sum()), params)
    h_r, c_r = ref.lstm_cell(x, (h, c), *params)
    grads_r = torch.autograd.grad((h_r.sum() + c_r.sum()), params)
    return {
        "max_diff_h": float((h_t - h_r).detach().abs().max()),
        "max_diff_c": float((c_t - c_r).detach().abs().max()),
        "max_diff_grad": max(float((a - b).abs().max()) for a, b in zip(grads_t, grads_r)),
        "dtype": str(dtype).replace("torch.", ""),
    }


# ---------------------------------------------------------------------------------------------
# gates and Jacobians of a (trained or fresh) network
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def lstm_gates(lstm: torch.nn.LSTM, x: torch.Tensor) -> dict:
    """The gates of a one-layer ``nn.LSTM`` over ``x`` (B, T, I), step by step.

    Returns numpy arrays (B, T, H): ``i`` (input gate: how much to write), ``f`` (forget gate: how
    much to keep), ``g`` (candidate: what to write), ``o`` (output gate: how much to read), and the
    states ``c`` and ``h`` after each step. The state update is ``reference.lstm_cell``'s; the gates
    are recomputed from the same weights (PyTorch's order i, f, g, o) to be shown.
    """
    if not isinstance(lstm, torch.nn.LSTM) or lstm.num_layers != 1 or lstm.bidirectional:
        raise ValueError(f"lstm must be a one-layer, one-direction nn.LSTM, got {lstm!r}")
    W_ih, W_hh, b_ih, b_hh = ref.weights_from_module(lstm)[0]
    x = x.to(W_ih.dtype).to(W_ih.device)
    B, T, _ = x.shape
    H = lstm.hidden_size
    h = x.new_zeros(B, H)
    c = x.new_zeros(B, H)
    out = {k: [] for k in ("i", "f", "g", "o", "c", "h")}
    for t in range(T):
        pre = x[:, t] @ W_ih.t() + b_ih + h @ W_hh.t() + b_hh
        i, f, gg, o = pre.chunk(4, dim=1)
        out["i"].append(torch.sigmoid(i))
        out["f"].append(torch.sigmoid(f))
        out["g"].append(torch.tanh(gg))
        out["o"].append(torch.sigmoid(o))
        h, c = ref.lstm_cell(x[:, t], (h, c), W_ih, W_hh, b_ih, b_hh)
        out["c"].append(c)
        out["h"].append(h)
    return {k: torch.stack(v, 1).cpu().numpy() for k, v in out.items()}


def state_jacobian_norms(rnn: torch.nn.RNNBase, x: torch.Tensor) -> dict:
    """Spectral norms of the state Jacobians of one sequence ``x`` (T, I), in float64.

    For an ``nn.RNN`` (tanh): ``dh[t] = ||dh_T/dh_t||`` for t = 0..T. For an ``nn.LSTM`` also
    ``dc[t] = ||dc_T/dc_t||`` (every path from c_t to c_T, including through h_t = o_t tanh(c_t)), and
    ``direct[t]``, the
    norm of the direct cell path alone, diag(prod_{s>t} f_s): the largest product of forget gates.
    Index ``t`` is the step, so the distance is ``T - t``. Each Jacobian comes from one backward
    pass over H copies of the sequence (copy k asks for row k).
    """
    if not isinstance(rnn, (torch.nn.RNN, torch.nn.LSTM)) or rnn.num_layers != 1 or rnn.bidirectional:
        raise ValueError(f"rnn must be a one-layer, one-direction nn.RNN or nn.LSTM, got {rnn!r}")
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x must be one sequence of shape (T, I), got {getattr(x, 'shape', type(x).__name__)}")
    net = copy.deepcopy(rnn).double().cpu()
    W = [w.detach() for w in ref.weights_from_module(net)[0]]
    H = net.hidden_size
    T = x.shape[0]
    xs = x.detach().double().cpu().unsqueeze(0).expand(H, T, x.shape[1])
    eye = torch.eye(H, dtype=torch.float64)
    is_lstm = isinstance(net, torch.nn.LSTM)
    with torch.enable_grad():
        h = torch.zeros(H, H, dtype=torch.float64, requires_grad=True)
        c = torch.zeros(H, H, dtype=torch.float64, requires_grad=True)
        hs, cs = [h], [c]
        for t in range(T):
            if is_lstm:
                h, c = ref.lstm_cell(xs[:, t], (h, c), *W)
                cs.append(c)
            else:
                h = ref.rnn_cell(xs[:, t], h, *W)
            hs.append(h)

        def norms(target, states):
            grads = torch.autograd.grad(target, states, grad_outputs=eye, retain_graph=True)
            return np.array([float(torch.linalg.matrix_norm(g, ord=2)) for g in grads])

        out = {"dh": norms(hs[-1], hs)}
        if is_lstm:
            out["dc"] = norms(cs[-1], cs)
    if is_lstm:
        f = lstm_gates(net, x.detach().double().cpu().unsqueeze(0))["f"][0]  # (T, H)
        # product of the forget gates from step t+1 to T, for each t (t = T gives the empty product 1)
        logf = np.log(np.clip(f, 1e-300, None))
        suffix = np.concatenate([np.cumsum(logf[::-1], axis=0)[::-1], np.zeros((1, H))], axis=0)
        out["direct"] = np.exp(suffix).max(axis=1)
    return out


def marked_sensitivity(model: torch.nn.Module, data) -> dict:
    """How much the prediction moves with each marked number: d y_hat / d x_t (value channel).

    ``model`` maps (n, T, 2) to (n, 1); ``data`` is a :func:`course_lib.tasks.make_adding` set. The
    target is the sum of the two marked numbers, so a model that solves the task has both
    derivatives near 1; one that ignores the first marked number has ``first`` near 0. This is
    the like-for-like measure of "the gradient reaches the far input" for any cell (RNN, LSTM,
    GRU): the derivative of the output, not of a hidden state whose size differs between cells.
    Returns ``first`` and ``second``: the mean derivative over the set at the first / second
    marked step (floats), and ``per_step``: the mean |derivative| at each step (T,), numpy.
    """
    model = model.cpu()
    was_training = model.training
    model.eval()
    x = data.x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(model(x).sum(), x)  # each prediction depends on its own row only
    model.train(was_training)
    g = g[:, :, 0].double()
    rows = torch.arange(g.shape[0])
    pos = data.info["positions"]
    return {"first": float(g[rows, pos[:, 0]].mean()), "second": float(g[rows, pos[:, 1]].mean()),
            "per_step": g.abs().mean(0).numpy()}


# ---------------------------------------------------------------------------------------------
# gradient flow at initialisation
# ---------------------------------------------------------------------------------------------
def gradient_flow(T: int | None = None, hidden: int | None = None, forget_biases=(0.0, 1.0),
                  seeds=None) -> dict:
    """||dc_T/dc_t|| and ||dh_T/dh_t|| against distance, at initialisation, on adding-problem inputs.

    The tanh RNN and the LSTM get the same hidden size, the same PyTorch initialisation and the
    same input sequence per seed; the LSTM is built once per forget-gate bias in ``forget_biases``.

    Returns ``distance`` (0..T), ``rnn_dh`` (seeds, T+1), and for each bias ``b`` in ``lstm[b]``
    the arrays ``dh``, ``dc`` and ``direct`` (seeds, T+1), all indexed by distance, plus
    ``at_T``: the median over seeds at distance T of each curve (``"rnn_dh"``,
    ``"lstm_dc[b]"``, ...) and the sizes used.
    """
    T = _positive_int("T", T if T is not None else budget.pick(ci=30, default=100, full=200))
    hidden = _positive_int("hidden", hidden if hidden is not None else budget.pick(ci=16, default=32, full=64))
    seeds = budget_seeds(seeds)
    biases = tuple(float(b) for b in forget_biases)
    if not biases:
        raise ValueError("forget_biases must list at least one bias")
    rnn_dh, lstm = [], {b: {"dh": [], "dc": [], "direct": []} for b in biases}
    for s in seeds:
        x = make_adding(1, T, seed=TEST_SEED + s).x[0]
        rnn_dh.append(state_jacobian_norms(build_model("rnn", hidden, s).rnn, x)["dh"][::-1])
        for b in biases:
            r = state_jacobian_norms(build_model("lstm", hidden, s, forget_bias=b).rnn, x)
            for k in ("dh", "dc", "direct"):
                lstm[b][k].append(r[k][::-1])  # index by distance T - t
    rnn_dh = np.array(rnn_dh)
    lstm = {b: {k: np.array(v) for k, v in d.items()} for b, d in lstm.items()}
    at_T = {"rnn_dh": float(np.median(rnn_dh[:, T]))}
    for b in biases:
        for k in ("dh", "dc", "direct"):
            at_T[f"lstm_{k}[{b:g}]"] = float(np.median(lstm[b][k][:, T]))
    return {"distance": np.arange(T + 1), "rnn_dh": rnn_dh, "lstm": lstm, "forget_biases": biases,
            "at_T": at_T, "T": T, "hidden": hidden, "seeds": seeds}


def _band(ax, d, arr, colour, label, ls="-"):
    """Median line and min-max band over seeds, on a log axis."""
    arr = np.clip(arr, 1e-300, None)
    ax.fill_between(d, arr.min(0), arr.max(0), color=colour, alpha=0.15, lw=0)
    ax.plot(d, np.median(arr, 0), color=colour, ls=ls, lw=2, label=label)


def plot_gradient_flow(result: dict, biases=None, ax=None, name="lecture03_gradient_flow", caption=None):
    """||dc_T/dc_t|| (LSTM, per forget bias) and ||dh_T/dh_t|| (tanh RNN) against distance."""
    import matplotlib.pyplot as plt

    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
    d = result["distance"]
    biases = result["forget_biases"] if biases is None else biases
    _band(ax, d, result["rnn_dh"], plots.colour("rnn"), r"tanh RNN  $\|\partial h_T/\partial h_t\|$")
    styles = ["--", "-", "-.", ":"]
    shades = [plots.PALETTE["skyblue"], plots.colour("lstm"), plots.PALETTE["purple"], plots.PALETTE["black"]]
    for j, b in enumerate(biases):
        _band(ax, d, result["lstm"][b]["dc"], shades[j % len(shades)],
              rf"LSTM, forget bias {b:g}  $\|\partial c_T/\partial c_t\|$", ls=styles[j % len(styles)])
    ax.set_yscale("log")
    ax.set_xlabel("distance T - t (steps)")
    ax.set_ylabel("Jacobian norm (spectral)")
    ax.set_ylim(max(1e-30, ax.get_ylim()[0]), None)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(f"Gradient flow at initialisation (H = {result['hidden']}, {len(result['seeds'])} seeds)",
                 fontsize=10)
    if own:
        cap = caption or ("Median over seeds (line) and range (band). With the forget-gate bias at 0 the LSTM's "
                          "cell path decays about as fast as the plain RNN; at bias 1 it decays far more slowly.")
        return plots.finish(fig, name, cap)
    return ax


def draw_forget_bias(result: dict):
    """A ``draw(ax, forget_bias)`` for :func:`course_lib.widgets.explorer`: the RNN against the LSTM at one bias,
    with the direct cell path (the product of forget gates) dashed."""

    arrays = [result["rnn_dh"]] + [v for d in result["lstm"].values() for v in d.values()]
    lo = max(1e-30, min(float(np.clip(a, 1e-300, None).min()) for a in arrays)) / 3
    hi = max(float(a.max()) for a in arrays) * 3

    def draw(ax, forget_bias):
        b = min(result["forget_biases"], key=lambda v: abs(v - float(forget_bias)))
        d = result["distance"]
        _band(ax, d, result["rnn_dh"], plots.colour("rnn"), "RNN dh")
        _band(ax, d, result["lstm"][b]["dc"], plots.colour("lstm"), "LSTM dc")
        _band(ax, d, result["lstm"][b]["dh"], plots.PALETTE["skyblue"], "LSTM dh", ls="-.")
        ax.plot(d, np.median(result["lstm"][b]["direct"], 0), color=plots.PALETTE["black"], ls="--", lw=1.2,
                label=r"$\max_k \prod f$ (direct path)")
        ax.set_yscale("log")
        ax.set_ylim(lo, hi)  # the same axis at every bias, so the panels compare
        ax.set_xlabel("distance T - t")
        ax.set_ylabel("Jacobian norm")
        ax.legend(fontsize=7, loc="lower left")

    return draw


# ---------------------------------------------------------------------------------------------
# the adding problem at growing length
# ---------------------------------------------------------------------------------------------
def _train_adding(cell, T, hidden, steps, lr, seed, batch_size, forget_bias, eval_every, device, test):
    model = build_model(cell, hidden, seed, forget_bias=forget_bias)
    small = test.subset(slice(0, 256))

    def eval_fn(m):
        return normalized_mse(m(small.x.to(next(m.parameters()).device)).cpu(), small.y)

    hist = train(model, fresh_batches(make_adding, batch_size, T=T), "mse", steps, lr=lr, clip=1.0,
                 device=device, seed=seed, progress=False, eval_fn=eval_fn, eval_every=eval_every)
    model.eval()
    with torch.no_grad():
        nmse = normalized_mse(model(test.x.to(next(model.parameters()).device)).cpu(), test.y)
    return model.cpu(), nmse, hist


def adding_vs_length(lengths=None, cells=("rnn", "lstm"), steps: int | None = None, hidden: int | None = None,
                     lr: float = 1e-2, seeds=None, batch_size: int = 64, forget_bias: float = 1.0,
                     test_size: int = 1000, eval_every: int | None = None, n_trace: int = 4,
                     matched_rnn: bool = True, device=None) -> dict:
    """Train each cell on the adding problem at each length ``T``, for each seed, with clipping at 1.

    The score is the normalised MSE on a fixed test set of ``test_size`` sequences (1.0 = the
    predict-the-mean baseline, 0 = perfect; see ``tasks.normalized_mse``). Adam at ``lr`` (the
    learning rate matters more than anything else at this scale), LSTM forget bias ``forget_bias``.

    Returns ``lengths``, ``cells``, ``seeds``, ``nmse[cell]`` (len(lengths), len(seeds)),
    ``curves[cell][T]`` (seeds, evals) of the test score at ``eval_steps``, ``solved[cell]`` /
    ``at_chance[cell]``: counts of seeds per length with nMSE < ``SOLVED_NMSE`` /
    >= ``CHANCE_NMSE``, ``params[cell]``, and for the longest length (first seed) ``gates``: the
    trained LSTM's gates on ``n_trace`` test sequences (see :func:`lstm_gates`) with their ``x``
    and the indices of the ``memory_units`` (the cell states that best track the answer), and
    ``trained_flow``: :func:`state_jacobian_norms` of the trained models on one test sequence;
    ``sensitivity[cell]["init" | "trained"]``: :func:`marked_sensitivity` at the longest length for
    every seed, before and after training (``first``, ``second``: (seeds,); ``per_step``: (seeds, T)).
    With ``matched_rnn`` (and both cells present), ``matched_rnn`` also holds a control at the
    longest length: a tanh RNN widened until it has at least the LSTM's parameter count
    (``hidden``, ``params``, ``nmse`` per seed, ``at_chance``). ``device=None`` trains on the CPU,
    or on the best device at the ``full`` budget.
    """
    lengths = tuple(_positive_int("lengths[i]", T) for T in
                    (lengths if lengths is not None else budget.pick(ci=(10, 30), default=(10, 25, 50),
                                                                     full=(10, 25, 50, 100))))
    if any(T < 2 for T in lengths):
        raise ValueError(f"lengths must all be >= 2, got {lengths}")
    cells = tuple(cells)
    if bad := [c for c in cells if c not in ("rnn", "lstm", "gru")]:
        raise ValueError(f"cells must be among 'rnn', 'lstm', 'gru', got {bad[0]!r}")
    steps = _positive_int("steps", steps if steps is not None else budget.pick(ci=400, default=800, full=2000))
    hidden = _positive_int("hidden", hidden if hidden is not None else budget.pick(ci=32, default=32, full=64))
    seeds = budget_seeds(seeds)
    device = experiment_device(device)
    eval_every = _positive_int("eval_every", eval_every if eval_every is not None else max(1, steps // 20))
    nmse = {c: np.zeros((len(lengths), len(seeds))) for c in cells}
    curves = {c: {} for c in cells}
    params, trained = {}, {}
    sens = {c: {"init": [], "trained": []} for c in cells}
    sens_set = make_adding(500, lengths[-1], seed=TEST_SEED + 3)
    for li, T in enumerate(lengths):
        test = make_adding(test_size, T, seed=TEST_SEED + T)
        for c in cells:
            rows = []
            for si, s in enumerate(seeds):
                if li == len(lengths) - 1:
                    sens[c]["init"].append(marked_sensitivity(build_model(c, hidden, s, forget_bias=forget_bias),
                                                              sens_set))
                model, score, hist = _train_adding(c, T, hidden, steps, lr, s, batch_size, forget_bias,
                                                   eval_every, device, test)
                nmse[c][li, si] = score
                rows.append([v for _, v in hist.evals])
                params[c] = count_parameters(model)
                if li == len(lengths) - 1:
                    sens[c]["trained"].append(marked_sensitivity(model, sens_set))
                    if si == 0:
                        trained[c] = model
            curves[c][T] = np.array(rows)
    T = lengths[-1]
    matched = None
    if matched_rnn and "rnn" in cells and "lstm" in cells:
        matched = _matched_rnn(T, hidden, params["lstm"], steps, lr, seeds, batch_size, eval_every, device, test_size)
    out = {
        "lengths": lengths, "cells": cells, "seeds": seeds, "steps": steps, "hidden": hidden, "lr": lr,
        "forget_bias": forget_bias, "nmse": nmse, "curves": curves,
        "eval_steps": np.arange(1, steps // eval_every + 1) * eval_every,
        "solved": {c: [int((nmse[c][li] < SOLVED_NMSE).sum()) for li in range(len(lengths))] for c in cells},
        "at_chance": {c: [int((nmse[c][li] >= CHANCE_NMSE).sum()) for li in range(len(lengths))] for c in cells},
        "params": params, "matched_rnn": matched,
        "sensitivity": {c: {when: {k: np.array([r[k] for r in v[when]]) for k in ("first", "second", "per_step")}
                            for when in ("init", "trained")} for c, v in sens.items()},
    }
    flow_x = make_adding(1, T, seed=TEST_SEED + 1).x[0]
    out["trained_flow"] = {c: {k: v[::-1] for k, v in state_jacobian_norms(trained[c].rnn, flow_x).items()}
                           for c in cells if c in ("rnn", "lstm")}
    if "lstm" in trained:
        out["gates"] = _memory_gates(trained["lstm"], T, n_trace)
    return out


def _matched_rnn(T, hidden, lstm_params, steps, lr, seeds, batch_size, eval_every, device, test_size) -> dict:
    """The control of :func:`adding_vs_length`: a tanh RNN widened to at least the LSTM's parameters."""
    wide = hidden
    while count_parameters(build_model("rnn", wide, 0)) < lstm_params:
        wide += 1
    test = make_adding(test_size, T, seed=TEST_SEED + T)
    scores = np.array([_train_adding("rnn", T, wide, steps, lr, s, batch_size, None, eval_every, device, test)[1]
                       for s in seeds])
    return {"hidden": wide, "params": count_parameters(build_model("rnn", wide, 0)), "nmse": scores,
            "at_chance": int((scores >= CHANCE_NMSE).sum()), "T": T}


def _memory_gates(model, T, n_trace) -> dict:
    """The trained LSTM's gates on ``n_trace`` adding sequences, and its three memory units: those whose
    final cell state best tracks the target sum (``memory_units``, ``memory_corr``)."""
    tr = make_adding(max(n_trace, 256), T, seed=TEST_SEED + 2)
    gates = lstm_gates(model.rnn, tr.x)
    cT, y = gates["c"][:, -1, :], tr.y.numpy()[:, 0]
    corr = np.nan_to_num(np.array([abs(np.corrcoef(cT[:, k], y)[0, 1]) for k in range(cT.shape[1])]))
    out = {k: v[:n_trace] for k, v in gates.items()}
    out.update(x=tr.x[:n_trace].numpy(), y=y[:n_trace], memory_units=np.argsort(-corr)[:3],
               memory_corr=corr[np.argsort(-corr)[:3]])
    with torch.no_grad():
        out["pred"] = model(tr.x[:n_trace]).numpy()[:, 0]
    return out


IGNORE_FIRST_NMSE = 0.5  # predicting 0.5 + the second marked number: MSE Var(first) = 1/12, half of Var(y)


def _reference_lines(ax, x_text):
    """The two baselines of the adding problem on an nMSE axis: 1.0 uses neither marked number
    (predicts the mean); 0.5 uses only the second (predicts 0.5 + it: MSE 1/12 of Var(y) = 1/6)."""
    ax.axhline(1.0, color="grey", ls="--", lw=1)
    ax.text(x_text, 1.03, "1.0: uses neither marked number (predicts the mean)", fontsize=8, color="grey",
            va="bottom")
    ax.axhline(IGNORE_FIRST_NMSE, color="grey", ls="-.", lw=1)
    ax.text(x_text, IGNORE_FIRST_NMSE * 1.04, "0.5: ignores the first (predicts 0.5 + the second)", fontsize=8,
            color="grey", va="bottom")


def plot_adding_vs_length(result: dict, ax=None, name="lecture03_adding_vs_length", caption=None):
    """Test nMSE against sequence length, one dot per seed, the median joined by a line."""
    import matplotlib.pyplot as plt

    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(6.5, 4))
    L = np.array(result["lengths"])
    for j, c in enumerate(result["cells"]):
        v = result["nmse"][c]
        jitter = (j - (len(result["cells"]) - 1) / 2) * 0.6
        for si in range(v.shape[1]):
            ax.scatter(L + jitter, v[:, si], color=plots.colour(c), s=22, alpha=0.7, zorder=3)
        ax.plot(L + jitter, np.median(v, 1), color=plots.colour(c), lw=2, marker="o",
                label=f"{c.upper()}, H = {result['hidden']} ({result['params'][c]} parameters)")
    m = result.get("matched_rnn")
    if m is not None:
        ax.scatter(np.full(len(m["nmse"]), m["T"] + 1.5), m["nmse"], facecolors="none", edgecolors=plots.colour("rnn"),
                   s=30, zorder=3, label=f"RNN, H = {m['hidden']} ({m['params']} parameters)")
    _reference_lines(ax, L.min())
    ax.axhline(SOLVED_NMSE, color="grey", ls=":", lw=1)
    ax.text(L.min(), SOLVED_NMSE * 1.06, "solved", fontsize=8, color="grey", va="bottom")
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("test MSE / Var(y)")
    ax.set_xticks(L)
    ax.legend(fontsize=8, loc="center right")
    ax.set_title(f"Adding problem: {result['steps']} steps, H = {result['hidden']}, "
                 f"{len(result['seeds'])} seeds", fontsize=10)
    if own:
        cap = caption or ("One dot per seed, line through the medians. The plain RNN drops off the task as T grows, "
                          "up to the 1.0 line: it uses neither marked number (ignoring only the first would "
                          "score 0.5); the LSTM (forget bias 1) keeps solving it.")
        return plots.finish(fig, name, cap)
    return ax


def plot_learning_curves(result: dict, T=None, name="lecture03_learning_curves", caption=None):
    """Test nMSE during training at one length (the longest by default), one thin line per seed."""
    import matplotlib.pyplot as plt

    T = result["lengths"][-1] if T is None else T
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    steps = result["eval_steps"]
    styles = {"rnn": ("--", "s"), "lstm": ("-", "o"), "gru": (":", "^")}  # not by hue alone
    for c in result["cells"]:
        rows = result["curves"][c][T]
        ls, marker = styles.get(c, ("-", None))
        for si, row in enumerate(rows):
            ax.plot(steps[: len(row)], row, color=plots.colour(c), lw=1.4, alpha=0.85, ls=ls, marker=marker,
                    markevery=max(1, len(row) // 6), ms=4, label=c.upper() if si == 0 else None)
    _reference_lines(ax, steps[0])
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("test MSE / Var(y)")
    ax.set_title(f"Learning curves at T = {T}", fontsize=10)
    ax.legend()
    cap = caption or ("Each line one seed (RNN dashed with squares, LSTM solid with circles). The RNN never "
                      "leaves the 1.0 line; the LSTM sits there for a while, then drops by orders of magnitude "
                      "once it finds the marked numbers.")
    return plots.finish(fig, name, cap)


def draw_gates(result: dict):
    """A ``draw(ax, example, unit)`` for the explorer: one trained LSTM unit's gates over one test sequence."""
    gates = result["gates"]

    def draw(ax, example=0, unit=0):
        e = int(example) % gates["x"].shape[0]
        k = int(gates["memory_units"][int(unit) % len(gates["memory_units"])])
        T = gates["x"].shape[1]
        t = np.arange(1, T + 1)
        x = gates["x"][e]
        marks = np.flatnonzero(x[:, 1] > 0.5) + 1
        for m in marks:
            ax.axvline(m, color=plots.PALETTE["yellow"], lw=6, alpha=0.5, zorder=0)
        ax.plot(t, gates["f"][e, :, k], color=plots.colour("lstm"), lw=1.8, label="forget f (keep)")
        ax.plot(t, gates["i"][e, :, k], color=plots.PALETTE["orange"], lw=1.8, label="input i (write)")
        ax.plot(t, gates["o"][e, :, k], color=plots.PALETTE["purple"], lw=1.0, ls=":", label="output o (read)")
        ax.set_ylim(-0.05, 1.45)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.set_xlabel("step t (yellow: marked numbers)")
        ax.set_ylabel("gate value")
        ax2 = ax.twinx()
        c = gates["c"][e, :, k]
        ax2.plot(t, c, color=plots.PALETTE["black"], lw=1.5, ls="--", label="cell c")
        lo, hi = float(c.min()), float(c.max())
        pad = max(hi - lo, 1e-3)
        ax2.set_ylim(lo - 0.05 * pad, hi + 0.5 * pad)  # leave the top free for the legend
        ax2.set_ylabel("cell state c", fontsize=8)
        ax2.tick_params(labelsize=7)
        ax2.grid(False)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper center", ncol=2)
        ax.text(0.99, 0.5, f"hidden unit {k}\ntarget {gates['y'][e]:.2f}\nprediction {gates['pred'][e]:.2f}",
                transform=ax.transAxes, ha="right", va="center", fontsize=7)

    return draw


def plot_trained_gradient_flow(result: dict, name="lecture03_trained_gradient_flow", caption=None):
    """Two panels after training at the longest T. Left: ||dc_T/dc_t|| of the trained LSTM and
    ||dh_T/dh_t|| of the trained RNN against distance (first seed). Right: how much each trained
    model's prediction moves with the first and the second marked number (every seed; ideal 1)."""
    import matplotlib.pyplot as plt

    flow = result["trained_flow"]
    T = result["lengths"][-1]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10.5, 3.9), gridspec_kw={"width_ratios": [1.4, 1]})
    if "rnn" in flow:
        ax.plot(flow["rnn"]["dh"], color=plots.colour("rnn"), lw=2, ls="--",
                label=r"trained RNN $\|\partial h_T/\partial h_t\|$")
    if "lstm" in flow:
        ax.plot(flow["lstm"]["dc"], color=plots.colour("lstm"), lw=2, label=r"trained LSTM $\|\partial c_T/\partial c_t\|$")
        ax.plot(flow["lstm"]["direct"], color=plots.PALETTE["black"], lw=1.2, ls=":",
                label=r"LSTM direct path $\max_k \prod f$")
    ax.set_yscale("log")
    ax.set_xlabel("distance T - t (steps)")
    ax.set_ylabel("state-Jacobian norm")
    ax.set_title(f"State Jacobians after training on T = {T} (seed {result['seeds'][0]})", fontsize=10)
    ax.legend(fontsize=8)
    sens = result.get("sensitivity", {})
    cells = [c for c in result["cells"] if c in sens]
    for j, c in enumerate(cells):
        for k, (which, hatch) in enumerate((("first", None), ("second", "//"))):
            v = sens[c]["trained"][which]
            x = j * 3 + k
            ax2.bar(x, float(np.median(v)), color=plots.colour(c), alpha=0.6 if k else 0.9, hatch=hatch,
                    edgecolor="black", lw=0.6)
            ax2.scatter(np.full(len(v), x), v, color="black", s=12, zorder=3)
    ax2.axhline(1.0, color="grey", ls="--", lw=1)
    ax2.text(-0.5, 1.02, "ideal: 1 (y = first + second)", fontsize=8, color="grey", va="bottom")
    ax2.set_xticks([j * 3 + k for j in range(len(cells)) for k in (0, 1)])
    ax2.set_xticklabels([f"{c.upper()}\n{w}" for c in cells for w in ("first", "second")], fontsize=8)
    ax2.set_ylim(min(-0.1, ax2.get_ylim()[0]), 1.25)
    ax2.set_ylabel("d prediction / d marked number")
    ax2.set_title(f"What the trained models use ({len(result['seeds'])} seeds, dots)", fontsize=10)
    if caption is None and "rnn" in flow and "lstm" in flow and cells:
        rnn_T, lstm_T = float(flow["rnn"]["dh"][T]), float(flow["lstm"]["dc"][T])
        first = {c: float(np.median(sens[c]["trained"]["first"])) for c in cells}
        caption = (f"Left: after training, the state-Jacobian norms across all {T} steps are {lstm_T:.2g} (LSTM cell) "
                   f"and {rnn_T:.2g} (RNN): the trained RNN's does not vanish here, so these norms alone do not say "
                   f"which model uses the far input (and they measure different states). Right, like for like: the "
                   f"derivative of the prediction with respect to each marked number, ideal 1. With respect to the first: "
                   + ", ".join(f"{c.upper()} {first[c]:.2f}" for c in cells)
                   + " (medians over seeds). The gradient reaches the first marked number through the LSTM only.")
    return plots.finish(fig, name, caption or "")


# ---------------------------------------------------------------------------------------------
# the lecture's claims, computed from the results above (the notebook records and prints them)
# ---------------------------------------------------------------------------------------------
def _fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (tuple, list)):
        return "(" + ", ".join(_fmt(u) for u in v) + ")"
    return str(v)


def report_claims(section: str, claims) -> bool:
    """Show and record ``claims`` (:class:`course_lib.claims.Claim`, or older dicts) with
    :func:`course_lib.claims.show`; returns whether every counted claim held."""
    from .. import claims as C

    return not C.failed(C.show(claims, section))


SENSITIVITY_BAND = (0.7, 1.3)  # d prediction / d first marked number of a model that uses it (ideal 1)
IGNORES_BELOW = 0.2  # |d prediction / d first marked number| of a model that ignores it (ideal 0)


def claims_cell(agreement: dict) -> list[Claim]:
    """Lecture 3's first claim: the from-scratch cell is PyTorch's (float64, one seed: exact arithmetic)."""
    worst = max(agreement["max_diff_h"], agreement["max_diff_c"], agreement["max_diff_grad"])
    return [Claim.compare("reference.lstm_cell computes what nn.LSTMCell computes (outputs and weight gradients)",
                          worst, "<", 1e-12, dtype=agreement["dtype"])]


def claims_gradient_flow(flow: dict) -> list[Claim]:
    """Lecture 3's claims on :func:`gradient_flow` (at initialisation), each over every seed."""
    T = flow["T"]
    rnn = flow["rnn_dh"][:, T]
    b0, b1 = flow["lstm"][0.0]["dc"][:, T], flow["lstm"][1.0]["dc"][:, T]
    seeds, common = flow["seeds"], {"T": T, "hidden": flow["hidden"]}
    return [
        Claim.every(f"at distance {T}, the LSTM's cell path (forget bias 1) carries at least 100x the gradient "
                    f"of a tanh RNN of the same size, in every seed (ratio ||dc_T/dc_0|| / ||dh_T/dh_0||)",
                    b1 / rnn, ">", 100, seeds, lstm_dc_bias1=float(np.median(b1)), rnn_dh=float(np.median(rnn)),
                    **common),
        Claim.every(f"forget bias 1 against 0: at distance {T} the cell-path gradient is at least 100x larger, "
                    f"in every seed (ratio)", b1 / b0, ">", 100, seeds, lstm_dc_bias0=float(np.median(b0)),
                    lstm_dc_bias1=float(np.median(b1)), **common),
        Claim.between("with forget bias 0 the LSTM's cell path vanishes like the plain RNN's: at distance "
                      f"{T} the two agree within a factor 100 either way (median ratio)",
                      [float(np.median(b0) / np.median(rnn))], 0.01, 100, seeds,
                      lstm_dc_bias0=float(np.median(b0)), rnn_dh=float(np.median(rnn)), **common),
    ]


def claims_adding(result: dict) -> list[Claim]:
    """Lecture 3's claims on :func:`adding_vs_length`: every seed, with a margin to the thresholds."""
    T, T0 = result["lengths"][-1], result["lengths"][0]
    seeds, nm = result["seeds"], result["nmse"]
    common = {"steps": result["steps"], "hidden": result["hidden"]}
    out = [
        Claim.every(f"adding problem at T = {T}: the LSTM solves it (test MSE/Var < {SOLVED_NMSE}) in every seed",
                    nm["lstm"][-1], "<", SOLVED_NMSE, seeds, **common),
        Claim.every(f"adding problem at T = {T}: the tanh RNN of the same size stays at the chance baseline "
                    f"(test MSE/Var >= {CHANCE_NMSE}, worse than using the second number alone, 0.5) in every seed",
                    nm["rnn"][-1], ">=", CHANCE_NMSE, seeds, **common),
    ]
    m = result.get("matched_rnn")
    if m:
        out.append(Claim.every(
            f"parameters are not what the RNN lacks: widened to H = {m['hidden']} ({m['params']} parameters, the "
            f"LSTM has {result['params']['lstm']}) it still stays at chance at T = {T} in every seed",
            m["nmse"], ">=", CHANCE_NMSE, seeds, **common))
    out.append(Claim.compare(f"it is the length that defeats the RNN: at T = {T0} it does learn "
                             f"(median test MSE/Var over seeds < 0.6)", np.median(nm["rnn"][0]), "<", 0.6, seeds,
                             **common))
    sens = result.get("sensitivity", {})
    lo, hi = SENSITIVITY_BAND
    if "lstm" in sens:
        out.append(Claim.between(
            f"after training at T = {T}, the gradient reaches the first marked number through the LSTM: "
            f"d prediction / d first number is between {lo:g} and {hi:g} (ideal 1) in every seed",
            sens["lstm"]["trained"]["first"], lo, hi, seeds,
            at_init=float(np.median(sens["lstm"]["init"]["first"])), **common))
    if "rnn" in sens:
        out.append(Claim.between(
            f"after training at T = {T}, the tanh RNN's prediction ignores the first marked number: "
            f"|d prediction / d first number| < {IGNORES_BELOW:g} in every seed",
            sens["rnn"]["trained"]["first"], -IGNORES_BELOW, IGNORES_BELOW, seeds,
            second=float(np.median(sens["rnn"]["trained"]["second"])), **common))
    flow = result.get("trained_flow", {})
    if "lstm" in flow and "rnn" in flow:
        out.append(Claim.illustration(
            f"state-Jacobian norms across all {T} steps after training (seed {seeds[0]}): the LSTM's cell path "
            f"(||dc_T/dc_0||, and its direct path, the largest product of forget gates) and the RNN's "
            f"||dh_T/dh_0||. Not comparable like for like (different states): the sensitivities above are",
            lstm_direct=float(flow["lstm"]["direct"][T]), lstm_dc=float(flow["lstm"]["dc"][T]),
            rnn_dh=float(flow["rnn"]["dh"][T]), seeds=seeds[0]))
    return out


# ---------------------------------------------------------------------------------------------
# fair baselines (issue 12): the plain RNN given its best known chance on the adding problem
# ---------------------------------------------------------------------------------------------
BASELINE_FACTOR = 4  # the baselines train this many times the lecture's steps


def adding_baselines(result: dict, factor: int = BASELINE_FACTOR, device=None) -> dict:
    """The adding problem at the longest length of ``result`` (from :func:`adding_vs_length`), the same
    seeds, test set and hidden size, ``factor`` times the steps, for two plain RNNs: the lecture's
    tanh RNN (its learning rate) and the IRNN (ReLU, identity recurrent initialisation, Le et al.
    2015, lr ``baselines.IRNN_LR``), both clipped at 1.

    Returns ``{"T", "seeds", "steps", "base_steps", "factor", "nmse": {"rnn": (S,), "irnn": (S,)},
    "base_nmse": {"rnn": (S,), "lstm": (S,)}, "curves": {cell: (S, evals)}, "eval_steps", "lr"}``.
    Used by lecture 3. Raises ValueError for ``factor`` < 1.
    """
    factor = _positive_int("factor", factor)
    T, seeds, hidden = result["lengths"][-1], result["seeds"], result["hidden"]
    steps = factor * result["steps"]
    device = experiment_device(device)
    eval_every = max(1, steps // 20)
    test = make_adding(1000, T, seed=TEST_SEED + T)
    lrs = {"rnn": result["lr"], "irnn": baselines.IRNN_LR}
    nmse, curves = {}, {}
    for c in ("rnn", "irnn"):
        rows, scores = [], []
        for s in seeds:
            _, score, hist = _train_adding(c, T, hidden, steps, lrs[c], s, 64, None, eval_every, device, test)
            scores.append(score)
            rows.append([v for _, v in hist.evals])
        nmse[c], curves[c] = np.array(scores), np.array(rows)
    return {"T": T, "seeds": seeds, "steps": steps, "base_steps": result["steps"], "factor": factor,
            "nmse": nmse, "curves": curves, "eval_steps": np.arange(1, steps // eval_every + 1) * eval_every,
            "base_nmse": {c: result["nmse"][c][-1] for c in ("rnn", "lstm") if c in result["nmse"]}, "lr": lrs}


def plot_adding_baselines(b: dict, name="lecture03_fair_baselines", caption=None):
    """Learning curves of the two baselines at T (one line per seed; each cell its own line style and
    marker, not hue alone), the LSTM's final scores from the lecture's run as a reference."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    style = {"rnn": ("--", "s", plots.colour("rnn"), f"tanh RNN (PyTorch init, lr {b['lr']['rnn']:g})"),
             "irnn": ("-", "^", plots.PALETTE["orange"], f"IRNN (ReLU, identity init, lr {b['lr']['irnn']:g})")}
    x = b["eval_steps"]
    for c, (ls, m, col, label) in style.items():
        for si, row in enumerate(b["curves"][c]):
            ax.plot(x[: len(row)], row, color=col, ls=ls, marker=m, markevery=max(1, len(row) // 5), ms=4, lw=1.3,
                    alpha=0.85, label=label if si == 0 else None)
    lstm = b["base_nmse"].get("lstm")
    if lstm is not None:
        ax.scatter(np.full(len(lstm), b["base_steps"]), lstm, color=plots.colour("lstm"), marker="o", s=30,
                   zorder=4, edgecolor="black", lw=0.5, label=f"LSTM after {b['base_steps']} steps (the lecture's)")
    _reference_lines(ax, x[0])
    ax.axhline(SOLVED_NMSE, color="grey", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("test MSE / Var(y)")
    ax.set_title(f"Fair baselines on the adding problem, T = {b['T']} ({len(b['seeds'])} seeds)", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    if caption is None:
        caption = (f"Each line one seed, {b['factor']}x the lecture's steps. The tanh RNN (dashed, squares) stays near "
                   f"the 1.0 line (median {np.median(b['nmse']['rnn']):.2f}); the IRNN (solid, triangles) leaves it "
                   f"(median {np.median(b['nmse']['irnn']):.2f}, seeds "
                   + ", ".join(f"{v:.2f}" for v in b["nmse"]["irnn"])
                   + "); the LSTM (dots) solved it in a quarter of the steps.")
    return plots.finish(fig, name, caption)


def claims_adding_baselines(b: dict) -> list[Claim]:
    """Lecture 3's fair-baseline claims, on the median over seeds (the sentences say "typically")."""
    T, seeds = b["T"], b["seeds"]
    rnn, irnn = b["nmse"]["rnn"], b["nmse"]["irnn"]
    common = {"steps": b["steps"], "factor": b["factor"]}
    return [
        Claim.compare(f"a longer budget alone does not rescue the tanh RNN at T = {T}: with {b['factor']}x the steps "
                      f"its median test MSE/Var over seeds stays at the chance baseline (>= {CHANCE_NMSE})",
                      float(np.median(rnn)), ">=", CHANCE_NMSE, seeds, per_seed=[float(u) for u in rnn], **common),
        Claim.between(f"given its best known chance (IRNN: ReLU, identity initialisation, Le et al. 2015) and "
                      f"{b['factor']}x the steps, a plain RNN leaves chance at T = {T} without matching the LSTM: its "
                      f"median test MSE/Var is between {SOLVED_NMSE} (solved) and {CHANCE_NMSE} (chance)",
                      [float(np.median(irnn))], SOLVED_NMSE, CHANCE_NMSE, seeds,
                      per_seed=[float(u) for u in irnn], **common),
    ]


# ---------------------------------------------------------------------------------------------
# explorers (sliders, with the static panels as fallback)
# ---------------------------------------------------------------------------------------------
def forget_bias_explorer(flow: dict, static=(0.0, 1.0, 3.0)):
    """Slider over the forget-gate biases in ``flow`` (from :func:`gradient_flow`); static panels at ``static``."""
    from .. import widgets

    biases = list(flow["forget_biases"])
    step = min(np.diff(sorted(biases))) if len(biases) > 1 else 1.0
    return widgets.explorer(
        draw_forget_bias(flow), {"forget_bias": (min(biases), max(biases), float(step))},
        [{"forget_bias": b} for b in static if b in biases],
        title=f"Forget-gate bias against gradient flow (T = {flow['T']}, H = {flow['hidden']})",
        name="lecture03_forget_bias_explorer",
        caption="Raise the bias: the LSTM's lines (blue) lift off the RNN's (red). At 3 the cell path no longer "
                "decays at all at initialisation; it even grows a little: gates do not rule out growth.")


def gates_explorer(result: dict, static=((0, 0), (1, 0), (2, 0))):
    """Sliders over test examples and memory units of the trained LSTM (from :func:`adding_vs_length`)."""
    from .. import widgets

    g = result["gates"]
    return widgets.explorer(
        draw_gates(result), {"example": (0, g["x"].shape[0] - 1, 1), "unit": (0, len(g["memory_units"]) - 1, 1)},
        [{"example": e, "unit": u} for e, u in static],
        title=f"Inside the trained LSTM (adding, T = {result['lengths'][-1]})", name="lecture03_gates_explorer",
        caption="unit = rank among the memory units (final cell state most correlated with the target). The input "
                "gate opens at the marked steps (yellow) to write and stays nearly shut in between, while the "
                "forget gate stays near 1: the cell state (dashed) changes mostly at the marks.")
