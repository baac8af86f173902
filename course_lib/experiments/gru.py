"""Lecture 4, the GRU and choosing between the LSTM and the GRU.

Every function runs one measurement and returns plain numbers; the ``plot_*`` / ``draw_*``
functions next to them draw what they returned. Sizes default to :func:`course_lib.budget.pick`.

- :func:`cell_agreement`   the from-scratch ``reference.gru_cell`` against ``nn.GRUCell``
- :func:`gate_conventions` PyTorch's update gate z = 1 keeps the state (the lecture's u = 1 - z = 0)
- :func:`leaky_memory`     one GRU unit with a fixed update gate: how long it remembers a pulse
- :func:`compare_cells`    the tanh RNN, the LSTM and the GRU trained on the same tasks, same seeds
- :func:`parameter_counts` parameters and multiply-adds per step of each cell, exactly
- :func:`time_per_step`    forward + backward time per time step, fused PyTorch layers and the
  from-scratch loops, on this machine (speed, not a claim: it depends on the machine and its load)
"""
from __future__ import annotations

import math
import statistics
import time

import numpy as np
import torch

from ..claims import Claim
from .. import budget, plots
from .. import reference as ref
from ..models import count_parameters
from ..tasks import fresh_batches, make_adding, make_agreement, normalized_mse
from ..train import evaluate, experiment_device, timings, train
from .._validate import positive_int as _positive_int
from ..seeding import budget_seeds
from .lstm import TEST_SEED, build_model

__all__ = [
    "cell_agreement", "gate_conventions", "leaky_memory", "parameter_counts", "compare_cells",
    "time_per_step", "draw_leaky_memory", "plot_compare", "plot_compare_curves", "plot_time_per_step",
]

CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


# ---------------------------------------------------------------------------------------------
# the from-scratch cell is the PyTorch cell; which value of the update gate keeps the state
# ---------------------------------------------------------------------------------------------
def _gru_cell_module(input_size, hidden, seed, dtype):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return torch.nn.GRUCell(input_size, hidden).to(dtype)


def cell_agreement(seed: int = 0, batch: int = 4, input_size: int = 3, hidden: int = 5,
                   dtype=torch.float64) -> dict:
    """``reference.gru_cell`` against ``nn.GRUCell`` on the same weights: the largest absolute
    differences of the output (``max_diff_h``) and of the weight gradients (``max_diff_grad``)."""
    cell = _gru_cell_module(input_size, hidden, seed, dtype)
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn(batch, input_size, generator=g, dtype=dtype)
    h = torch.randn(batch, hidden, generator=g, dtype=dtype)
    params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    h_t = cell(x, h)
    grads_t = torch.autograd.grad(h_t.sum(), params)
    h_r = ref.gru_cell(x, h, *params)
    grads_r = torch.autograd.grad(h_r.sum(), params)
    return {
        "max_diff_h": float((h_t - h_r).detach().abs().max()),
        "max_diff_grad": max(float((a - b).abs().max()) for a, b in zip(grads_t, grads_r)),
        "dtype": str(dtype).replace("torch.", ""),
    }


@torch.no_grad()
def gate_conventions(seed: int = 0, batch: int = 8, input_size: int = 3, hidden: int = 6,
                     saturate: float = 40.0) -> dict:
    """Force PyTorch's update gate z to 1, then to 0, through its bias, and run ``reference.gru_cell``.

    With z = 1 (the lecture's u = 1 - z = 0) the new state equals the old one: ``keep_max_diff`` =
    max |h' - h|. With z = 0 (u = 1) the state is replaced by the candidate n: ``write_max_diff`` =
    max |h' - n|, and ``write_moved`` = max |h' - h| shows it did change. ``z_keep`` / ``z_write``
    are the gate values reached (float64).
    """
    cell = _gru_cell_module(input_size, hidden, seed, torch.float64)
    g = torch.Generator().manual_seed(int(seed) + 1)
    x = torch.randn(batch, input_size, generator=g, dtype=torch.float64)
    h = torch.randn(batch, hidden, generator=g, dtype=torch.float64)
    W_ih, W_hh, b_ih, b_hh = (p.detach().clone() for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh))
    H = hidden
    out = {}
    for name, bias in (("keep", saturate), ("write", -saturate)):
        b = b_ih.clone()
        b[H:2 * H] = bias  # PyTorch's order r, z, n: rows H..2H hold the update gate z
        z = torch.sigmoid(x @ W_ih[H:2 * H].t() + b[H:2 * H] + h @ W_hh[H:2 * H].t() + b_hh[H:2 * H])
        r = torch.sigmoid(x @ W_ih[:H].t() + b[:H] + h @ W_hh[:H].t() + b_hh[:H])
        n = torch.tanh(x @ W_ih[2 * H:].t() + b[2 * H:] + r * (h @ W_hh[2 * H:].t() + b_hh[2 * H:]))
        h_next = ref.gru_cell(x, h, W_ih, W_hh, b, b_hh)
        out[f"z_{name}"] = float(z.mean())
        if name == "keep":
            out["keep_max_diff"] = float((h_next - h).abs().max())
        else:
            out["write_max_diff"] = float((h_next - n).abs().max())
            out["write_moved"] = float((h_next - h).abs().max())
    return out


@torch.no_grad()
def leaky_memory(z: float, T: int = 40, pulse_at: int = 5, noise: float = 0.3, seed: int = 0) -> dict:
    """One GRU unit whose update gate is held at ``z`` (PyTorch's convention), reading a pulse.

    The unit's weights make the candidate n_t = tanh(x_t) and z constant (its weights 0, its bias
    logit(z)); ``reference.gru_cell`` then computes h_t = (1 - z) n_t + z h_{t-1}. The input is a
    pulse of 2 at ``pulse_at`` on top of Gaussian noise. Returns ``t``, ``x``, ``n``, ``h``,
    ``z``, the lecture's ``u = 1 - z``, and ``memory``: z^k, the share of the pulse still in the
    state k steps later (``half_life``: steps until it halves).
    """
    z = float(z)
    if not 0.0 <= z < 1.0:
        raise ValueError(f"z must be in [0, 1), got {z!r}")
    T = _positive_int("T", T)
    g = torch.Generator().manual_seed(int(seed))
    x = noise * torch.randn(T, generator=g, dtype=torch.float64)
    if 0 <= pulse_at < T:
        x[pulse_at] += 2.0
    logit = math.log(z / (1 - z)) if z > 0 else -50.0
    W_ih = torch.tensor([[0.0], [0.0], [1.0]], dtype=torch.float64)  # r, z, n
    W_hh = torch.zeros(3, 1, dtype=torch.float64)
    b_ih = torch.tensor([0.0, logit, 0.0], dtype=torch.float64)
    b_hh = torch.zeros(3, dtype=torch.float64)
    h = torch.zeros(1, 1, dtype=torch.float64)
    hs = []
    for t in range(T):
        h = ref.gru_cell(x[t].view(1, 1), h, W_ih, W_hh, b_ih, b_hh)
        hs.append(float(h))
    k = np.arange(T)
    return {"t": np.arange(T), "x": x.numpy(), "n": np.tanh(x.numpy()), "h": np.array(hs), "z": z, "u": 1 - z,
            "memory": z ** k, "half_life": (math.log(0.5) / math.log(z)) if 0 < z < 1 else 0.0,
            "pulse_at": pulse_at}


def draw_leaky_memory(T: int = 40, seed: int = 0):
    """A ``draw(ax, z)`` for :func:`course_lib.widgets.explorer`: :func:`leaky_memory` at ``z``."""

    def draw(ax, z=0.9):
        r = leaky_memory(z, T=T, seed=seed)
        ax.plot(r["t"], r["n"], color="grey", lw=1, marker=".", ms=3, label=r"candidate $n_t$")
        ax.plot(r["t"], r["h"], color=plots.colour("gru"), lw=2, label=r"state $h_t$")
        tail = r["t"][r["pulse_at"]:]
        ax.plot(tail, r["h"][r["pulse_at"]] * r["memory"][: len(tail)], color=plots.PALETTE["black"], ls="--",
                lw=1, label=r"pulse share $z^k$")
        ax.set_ylim(-1.0, 1.1)
        ax.set_xlabel("step t")
        ax.set_ylabel("value")
        ax.legend(fontsize=7, loc="upper left")
        ax.text(0.02, 0.03, f"PyTorch z = {r['z']:.2f}  |  lecture u = 1 - z = {r['u']:.2f}  |  "
                f"half-life {r['half_life']:.1f} steps", transform=ax.transAxes, fontsize=7)
        # the retained pulse is tiny on the value axis when z is near 1 (it enters scaled by 1 - z):
        # the inset shows the share of it still in the state, z^k, on a log axis where it is visible
        ins = ax.inset_axes([0.62, 0.56, 0.36, 0.40])
        k = np.arange(len(tail))
        share = np.where(k == 0, 1.0, r["memory"][: len(tail)])
        ins.semilogy(tail, np.clip(share, 1e-6, None), color=plots.PALETTE["black"], ls="--", marker=".", ms=2,
                     lw=1)
        ins.set_ylim(1e-6, 2)
        ins.set_yticks([1e-6, 1e-3, 1])
        ins.tick_params(labelsize=6)
        ins.set_title("pulse kept, $z^k$ (log)", fontsize=6.5, pad=2)
        ins.patch.set_alpha(0.9)

    return draw


# ---------------------------------------------------------------------------------------------
# parameters and multiply-adds
# ---------------------------------------------------------------------------------------------
def parameter_counts(input_size: int = 2, hidden: int = 32, output_size: int = 1) -> dict:
    """Parameters of each cell's recurrent layer (``recurrent``) and of the whole model with its
    read-out (``total``), counted on the real modules, and the formula G * (H*I + H*H + 2H) with
    G = 1, 4, 3 gates (``formula``). ``macs_per_step``: multiply-adds of one step's matmuls,
    G * H * (I + H), per sequence."""
    input_size = _positive_int("input_size", input_size)
    hidden = _positive_int("hidden", hidden)
    out = {"recurrent": {}, "total": {}, "formula": {}, "macs_per_step": {}, "input_size": input_size,
           "hidden": hidden}
    for c in CELLS:
        m = build_model(c, hidden, 0, forget_bias=None, input_size=input_size, output_size=output_size)
        out["recurrent"][c] = count_parameters(m.rnn)
        out["total"][c] = count_parameters(m)
        G = GATES[c]
        out["formula"][c] = G * (hidden * input_size + hidden * hidden + 2 * hidden)
        out["macs_per_step"][c] = G * hidden * (input_size + hidden)
    out["gru_over_lstm"] = out["recurrent"]["gru"] / out["recurrent"]["lstm"]
    return out


# ---------------------------------------------------------------------------------------------
# the same tasks, the same seeds
# ---------------------------------------------------------------------------------------------
TASKS = ("adding", "agreement")


def _make(name, n, size, seed):
    if name == "adding":
        return make_adding(n, size, seed=seed)
    if name == "agreement":
        return make_agreement(n, seed=seed, n_attractors=size)
    raise ValueError(f"tasks must name 'adding' or 'agreement', got {name!r}")


def _score(name, model, data):
    if name == "adding":
        dev = next(model.parameters()).device
        with torch.no_grad():
            return normalized_mse(model(data.x.to(dev)).cpu(), data.y)
    return evaluate(model, data.as_batch(), "accuracy")


def compare_cells(tasks=None, cells=None, steps=None, hidden: int | None = None, lr: float = 1e-2,
                  seeds=None, batch_size: int = 64, forget_bias: float = 1.0, test_size: int = 1000,
                  n_evals: int = 20, device=None) -> dict:
    """Train every cell on every task with the same seeds, data stream, steps and learning rate.

    ``tasks`` maps a task to its difficulty: ``"adding"`` to its length T (score: test MSE /
    Var(y), lower is better, chance 1), ``"agreement"`` to the number of attractors in every
    test sentence (training sentences have 0 to 4 phrases, attractors rare; score: accuracy of
    the verb's number, higher is better, chance 0.5). ``steps`` is an int or a dict per task, and so
    is ``cells`` (a tuple, or a dict task -> tuple; by default the plain RNN, already shown at chance
    on adding in lecture 3, runs on agreement only, to save time).
    Adam at ``lr``, clipping at 1, LSTM forget bias ``forget_bias``. ``device=None`` trains on the
    CPU, or on the best device at the ``full`` budget.

    Returns ``tasks``, ``cells``, ``seeds``, ``score[task][cell]`` (one value per seed),
    ``curves[task][cell]`` (seeds, evals) of the test score at ``eval_steps[task]``,
    ``chance[task]``, ``better[task]`` (``"lower"`` or ``"higher"``), ``params[task][cell]``,
    ``seconds[task][cell]`` (median training wall-clock, for information only) and the sizes used.
    """
    if tasks is None:
        tasks = budget.pick(ci={"adding": 30, "agreement": 3}, default={"adding": 50, "agreement": 4},
                            full={"adding": 100, "agreement": 4})
    tasks = dict(tasks)
    for k, v in tasks.items():
        if k not in TASKS:
            raise ValueError(f"tasks must name {TASKS}, got {k!r}")
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"tasks[{k!r}] must be an integer >= 0, got {v!r}")
    if cells is None:
        cells = {"adding": ("lstm", "gru"), "agreement": CELLS}
    cells = {k: tuple(cells[k] if isinstance(cells, dict) else cells) for k in tasks}
    for k, cs in cells.items():
        if not cs or any(c not in CELLS for c in cs):
            raise ValueError(f"cells must be among {CELLS}, got {cs!r} for task {k!r}")
    if steps is None:
        steps = {"adding": budget.pick(ci=400, default=800, full=2000),
                 "agreement": budget.pick(ci=200, default=300, full=1000)}
    steps = {k: _positive_int("steps", steps[k] if isinstance(steps, dict) else steps) for k in tasks}
    hidden = _positive_int("hidden", hidden if hidden is not None else budget.pick(ci=32, default=32, full=64))
    seeds = budget_seeds(seeds)
    device = experiment_device(device)
    n_evals = _positive_int("n_evals", n_evals)
    out = {"tasks": tasks, "cells": cells, "seeds": seeds, "steps": steps, "hidden": hidden, "lr": lr,
           "score": {}, "curves": {}, "chance": {}, "better": {}, "params": {}, "seconds": {}, "eval_steps": {}}
    for name, size in tasks.items():
        test = _make(name, test_size, size, TEST_SEED + size)
        small = test.subset(slice(0, 256))
        stream = (fresh_batches(make_adding, batch_size, T=size) if name == "adding"
                  else fresh_batches(make_agreement, batch_size))
        loss = "mse" if name == "adding" else "cross_entropy"
        every = max(1, steps[name] // n_evals)
        out["eval_steps"][name] = np.arange(1, steps[name] // every + 1) * every
        out["chance"][name] = 1.0 if name == "adding" else float(test.chance)
        out["better"][name] = "lower" if name == "adding" else "higher"
        for key in ("score", "curves", "params", "seconds"):
            out[key][name] = {}
        for c in cells[name]:
            scores, rows, secs = [], [], []
            for s in seeds:
                model = build_model(c, hidden, s, forget_bias=forget_bias if c == "lstm" else None,
                                    input_size=test.input_size,
                                    output_size=1 if name == "adding" else test.num_classes)
                t0 = time.perf_counter()
                hist = train(model, stream, loss, steps[name], lr=lr, clip=1.0, device=device, seed=s,
                             progress=False, eval_fn=lambda m: _score(name, m, small), eval_every=every)
                secs.append(time.perf_counter() - t0)
                model.eval()
                scores.append(_score(name, model, test))
                rows.append([v for _, v in hist.evals])
            out["score"][name][c] = np.array(scores)
            out["curves"][name][c] = np.array(rows)
            out["params"][name][c] = count_parameters(model)
            out["seconds"][name][c] = float(np.median(secs))
    return out


def plot_compare(result: dict, name="lecture04_compare", caption=None):
    """One panel per task: each seed's final test score per cell, the chance level dashed."""
    import matplotlib.pyplot as plt

    tasks = list(result["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for j, c in enumerate(result["cells"][task]):
            v = result["score"][task][c]
            xs = j + np.linspace(-0.12, 0.12, len(v))
            ax.scatter(xs, v, color=plots.colour(c), s=30, zorder=3)
            ax.hlines(np.median(v), j - 0.25, j + 0.25, color=plots.colour(c), lw=2.5)
        ax.axhline(result["chance"][task], color="grey", ls="--", lw=1)
        ax.set_xticks(range(len(result["cells"][task])))
        ax.set_xticklabels([c.upper() for c in result["cells"][task]])
        if task == "adding":
            ax.set_yscale("log")
            ax.set_ylabel("test MSE / Var(y)  (lower is better)")
            ax.set_title(f"adding, T = {result['tasks'][task]}", fontsize=10)
        else:
            ax.set_ylim(0, 1.05)
            ax.set_ylabel("test accuracy  (higher is better)")
            ax.set_title(f"agreement, {result['tasks'][task]} attractors", fontsize=10)
        ax.text(0.02, result["chance"][task], " chance", color="grey", fontsize=8, va="bottom",
                transform=ax.get_yaxis_transform())
    title = f"Same tasks, same seeds, same steps; H = {result['hidden']}, lr = {result['lr']:g}"
    return plots.finish(fig, name, caption, title=title, default=(
        "A dot per seed, a bar at the median. On adding both gated cells leave the chance line (where "
        "lecture 3's plain RNN stayed); on agreement the LSTM and the GRU tie at the ceiling, and the "
        "plain RNN is less reliable."))


def plot_compare_curves(result: dict, name="lecture04_learning_curves", caption=None):
    """The test score during training, per task, one thin line per seed and cell."""
    import matplotlib.pyplot as plt

    tasks = list(result["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        steps = result["eval_steps"][task]
        for c in result["cells"][task]:
            for si, row in enumerate(result["curves"][task][c]):
                ax.plot(steps[: len(row)], row, lw=1.2, alpha=0.8, label=c.upper() if si == 0 else None,
                        **plots.line_style(c, n_points=len(row)))
        ax.axhline(result["chance"][task], color="grey", ls="--", lw=1)
        if task == "adding":
            ax.set_yscale("log")
            ax.set_ylabel("test MSE / Var(y)")
        else:
            ax.set_ylabel("test accuracy")
            ax.set_ylim(0, 1.05)
        ax.set_xlabel("training step")
        ax.set_title(task, fontsize=10)
    by_label = {}
    for ax in axes[0]:
        for h, l in zip(*ax.get_legend_handles_labels()):
            by_label.setdefault(l, h)
    handles, labels = list(by_label.values()), list(by_label)
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=9, bbox_to_anchor=(0.5, 1.06))
    return plots.finish(fig, name, caption, default=(
        "Each line one seed, scored on 256 test sequences (RNN dashed with squares, LSTM solid with "
        "circles, GRU dotted with triangles). On adding the GRU leaves the chance line "
        "first; on agreement the two gated cells are indistinguishable, while the plain RNN's accuracy "
        "swings from one evaluation to the next."))


# ---------------------------------------------------------------------------------------------
# time per step
# ---------------------------------------------------------------------------------------------
def time_per_step(cells=CELLS, hidden=None, batch: int | None = None, T: int | None = None,
                  input_size: int | None = None, repeats: int | None = None, device="cpu",
                  implementations=("fused", "loop"), seed: int = 0) -> dict:
    """Forward + backward time of one batch divided by T: milliseconds per time step, per hidden size.

    ``"fused"`` is PyTorch's own layer (``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``: oneDNN on a CPU,
    cuDNN on a GPU); ``"loop"`` is the from-scratch ``reference.run_rnn`` loop over the same
    weights, whose cost follows the arithmetic (G gate matmuls per step). Median of ``repeats``
    runs after one warm-up. ``hidden`` is a size or a list of sizes. Returns ``hidden`` (list),
    ``ms_per_step[impl][cell]`` (one value per hidden size), ``spread[impl][cell]`` (max/min over
    the repeats), the other sizes, ``device``, ``device_name``, ``threads`` and the torch version.
    Wall-clock on a possibly shared machine: read it as what this machine did, now.
    """
    if hidden is None:
        hidden = budget.pick(ci=(16, 32), default=(32, 128, 512), full=(64, 128, 256, 512, 1024))
    hidden = [_positive_int("hidden", h) for h in ([hidden] if isinstance(hidden, (int, np.integer)) else hidden)]
    if not hidden:
        raise ValueError("hidden must list at least one size")
    batch = _positive_int("batch", batch if batch is not None else budget.pick(ci=8, default=32, full=64))
    T = _positive_int("T", T if T is not None else budget.pick(ci=10, default=50, full=100))
    input_size = _positive_int("input_size", input_size if input_size is not None else budget.pick(ci=8, default=64, full=128))
    repeats = _positive_int("repeats", repeats if repeats is not None else budget.pick(ci=2, default=5, full=10))
    device = torch.device(device)
    for impl in implementations:
        if impl not in ("fused", "loop"):
            raise ValueError(f"implementations must be among 'fused', 'loop', got {impl!r}")
    for c in cells:
        if c not in CELLS:
            raise ValueError(f"cells must be among {CELLS}, got {c!r}")
    ms = {i: {c: [] for c in cells} for i in implementations}
    spread = {i: {c: [] for c in cells} for i in implementations}
    for H in hidden:
        for c in cells:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                mod = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[c](
                    input_size, H, batch_first=True).to(device)
                x = torch.randn(batch, T, input_size, device=device)
            w = ref.weights_from_module(mod)[0]
            for impl in implementations:
                if impl == "fused":
                    def step():
                        mod(x)[0].sum().backward()
                else:
                    def step():
                        ref.run_rnn(x, w, c)[0].sum().backward()
                times = timings(step, repeats, device)
                mod.zero_grad(set_to_none=True)
                ms[impl][c].append(1e3 * statistics.median(times) / T)
                spread[impl][c].append(max(times) / min(times))
    return {"hidden": hidden, "ms_per_step": ms, "spread": spread, "batch": batch, "T": T,
            "input_size": input_size, "repeats": repeats, "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def plot_time_per_step(results, name="lecture04_time_per_step", caption=None):
    """ms per time step against hidden size, one panel per implementation (and device), a line per cell.

    ``results`` is one :func:`time_per_step` result or a list of them (e.g. CPU and GPU)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    results = [results] if isinstance(results, dict) else list(results)
    groups = [(r, impl) for r in results for impl in r["ms_per_step"]]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.8), squeeze=False)
    for ax, (r, impl) in zip(axes[0], groups):
        for c, vals in r["ms_per_step"][impl].items():
            ax.plot(r["hidden"], vals, color=plots.colour(c), marker="o", lw=2, label=c.upper())
        ratio = ""
        if "lstm" in r["ms_per_step"][impl] and "gru" in r["ms_per_step"][impl]:
            vals = np.array(r["ms_per_step"][impl]["gru"]) / np.array(r["ms_per_step"][impl]["lstm"])
            ratio = "\nGRU / LSTM: " + ", ".join(f"{v:.2f}" for v in vals)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(r["hidden"])
        ax.set_xticklabels([str(h) for h in r["hidden"]])
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if str(f"{v:g}")[0] in "25" else ""))
        label = "nn.RNN / nn.LSTM / nn.GRU" if impl == "fused" else "from-scratch loop (reference)"
        ax.set_title(f"{label}\n{r['device_name']}, {r['threads']} thread(s){ratio}", fontsize=9)
        ax.set_xlabel("hidden size H")
        ax.set_ylabel("ms per time step (fwd + bwd)")
        ax.legend(fontsize=8, loc="lower right")
    r0 = results[0]
    title = f"batch {r0['batch']}, T = {r0['T']}, input {r0['input_size']}; median of {r0['repeats']} runs"
    return plots.finish(fig, name, caption, title=title, default=(
        "Per step the GRU does 3/4 of the LSTM's matrix arithmetic. The loops show it where the matmuls "
        "dominate (large H); at small H overheads do. The fused layers follow their kernels, which need "
        "not keep that order on every machine and size. Measured on a shared machine: expect noise."))


# ---------------------------------------------------------------------------------------------
# the lecture's claims (the notebook records and prints them with lstm.report_claims)
# ---------------------------------------------------------------------------------------------
def steps_to_reach(result: dict, task: str, level: float | None = None) -> dict:
    """Per cell, per seed: the first evaluation step at which the test score reached ``level``
    (nMSE below 0.1 for adding, accuracy 0.95 for agreement); ``nan`` when it never did."""
    level = (0.1 if task == "adding" else 0.95) if level is None else float(level)
    lower = result["better"][task] == "lower"
    out = {}
    for c in result["cells"][task]:
        row = []
        for curve in result["curves"][task][c]:
            hit = np.flatnonzero(curve < level if lower else curve >= level)
            row.append(float(result["eval_steps"][task][hit[0]]) if len(hit) else float("nan"))
        out[c] = np.array(row)
    return out


AGREEMENT_NO_WINNER = 0.05  # |median LSTM - median GRU| accuracy below this: no winner


def claims_cells_and_gates(agreement: dict, conventions: dict, counts: dict) -> list[Claim]:
    """Lecture 4's exact checks (float64, one seed: exact arithmetic, no seed to vary) as claims."""
    worst = max(agreement["max_diff_h"], agreement["max_diff_grad"])
    return [
        Claim.compare("reference.gru_cell computes what nn.GRUCell computes (outputs and weight gradients)",
                      worst, "<", 1e-12, dtype=agreement.get("dtype", "float64")),
        Claim.compare("PyTorch's update gate z = 1 (the lecture's u = 0) keeps the state exactly (max |h' - h|)",
                      conventions["keep_max_diff"], "<", 1e-12),
        Claim.compare("PyTorch's update gate z = 0 (the lecture's u = 1) replaces the state with the candidate "
                      "(max |h' - n|; the state did move: max |h' - h| = "
                      f"{conventions['write_moved']:.2g})", conventions["write_max_diff"], "<", 1e-12,
                      write_moved=conventions["write_moved"]),
        Claim.fact("the GRU's recurrent layer has exactly 3/4 of the LSTM's parameters and multiply-adds per step "
                   "(counted on the modules, equal to the formula G*(H*I + H*H + 2H))",
                   counts["recurrent"]["gru"] * 4 == counts["recurrent"]["lstm"] * 3
                   and counts["formula"] == counts["recurrent"]
                   and counts["macs_per_step"]["gru"] * 4 == counts["macs_per_step"]["lstm"] * 3,
                   lstm_params=counts["recurrent"]["lstm"], gru_params=counts["recurrent"]["gru"],
                   hidden=counts["hidden"], input_size=counts["input_size"]),
    ]


def _task_numbers(result: dict, task: str) -> dict:
    """What a claim on ``task`` records besides its values: the hidden size and the task's training steps."""
    return {"hidden": result["hidden"], "steps": result["steps"][task]}


def _every_gated_cell(result: dict, task: str, sentence: str, op: str, threshold: float) -> list[Claim]:
    """One every-seed claim on ``task``'s scores for the LSTM and one for the GRU: ``sentence`` with ``{cell}``
    filled in."""
    return [Claim.every(sentence.format(cell=c.upper()), result["score"][task][c], op, threshold,
                        tuple(result["seeds"]), **_task_numbers(result, task)) for c in ("lstm", "gru")]


def claims_compare(result: dict) -> list[Claim]:
    """Lecture 4's claims on :func:`compare_cells`: every seed for each cell's score, the medians two-sided
    where the sentence says "no winner"."""
    seeds = tuple(result["seeds"])
    out = []
    if "adding" in result["tasks"]:
        s, T = result["score"]["adding"], result["tasks"]["adding"]
        out += _every_gated_cell(result, "adding", f"adding at T = {T}: the {{cell}} solves it (test MSE/Var < 0.1) "
                                 "in every seed", "<", 0.1)
        if "rnn" in s:
            out.append(Claim.every(f"adding at T = {T}: the tanh RNN stays at chance (test MSE/Var >= 0.8) in every "
                                   f"seed", s["rnn"], ">=", 0.8, seeds, **_task_numbers(result, "adding")))
        reach = steps_to_reach(result, "adding")
        out.append(Claim.every(
            f"adding at T = {T}: with the same seed, the GRU got below 0.1 in fewer training steps than the LSTM, "
            f"in every seed (LSTM's steps minus the GRU's; a seed that never got there fails)",
            reach["lstm"] - reach["gru"], ">", 0, seeds, gru_steps=reach["gru"].tolist(),
            lstm_steps=reach["lstm"].tolist(), hidden=result["hidden"]))
    if "agreement" in result["tasks"]:
        s, a = result["score"]["agreement"], result["tasks"]["agreement"]
        out += _every_gated_cell(result, "agreement", f"agreement with {a} attractors: the {{cell}} reaches 95% "
                                 "accuracy in every seed", ">=", 0.95)
        out.append(Claim.between(
            f"agreement with {a} attractors: no winner between the gated cells (median accuracy of the LSTM minus "
            f"the GRU's within +-{AGREEMENT_NO_WINNER})", [float(np.median(s["lstm"]) - np.median(s["gru"]))],
            -AGREEMENT_NO_WINNER, AGREEMENT_NO_WINNER, seeds, lstm_median=float(np.median(s["lstm"])),
            gru_median=float(np.median(s["gru"])),
            **({"rnn_median": float(np.median(s["rnn"])), "rnn_min": float(s["rnn"].min())} if "rnn" in s else {}),
            **_task_numbers(result, "agreement")))
    return out


def timing_summary(result: dict) -> str:
    """A sentence per implementation: GRU / LSTM time per step at each hidden size (not a claim)."""
    lines = []
    for impl, d in result["ms_per_step"].items():
        if "gru" in d and "lstm" in d:
            ratios = ", ".join(f"H={h}: {g / l:.2f}" for h, g, l in zip(result["hidden"], d["gru"], d["lstm"]))
            label = "nn.GRU / nn.LSTM" if impl == "fused" else "loop GRU / loop LSTM"
            lines.append(f"{label} time per step on {result['device_name']} ({result['threads']} thread(s)): {ratios}")
    return "\n".join(lines)


def leaky_memory_explorer(static=(0.0, 0.8, 0.97), T: int = 40, seed: int = 0):
    """A slider over PyTorch's update gate z for :func:`leaky_memory`; static panels at ``static``."""
    from .. import widgets

    return widgets.explorer(
        draw_leaky_memory(T=T, seed=seed), {"z": (0.0, 0.99, 0.01)}, [{"z": float(z)} for z in static],
        title="One GRU unit with its update gate held at z (PyTorch's convention)",
        name="lecture04_leaky_memory_explorer",
        caption="z = 0 (the lecture's u = 1): the state is the candidate, no memory. z near 1 (u near 0): the state "
                "hardly moves, and the pulse at step 5 stays in it for many steps (dashed: z^k). The pulse enters "
                "the state scaled by 1 - z, so on the value axis it is small; the inset (log axis) shows the share "
                "still kept: at z = 0 it is gone after one step, at z = 0.97 more than a third remains after 35.")
