"""Lecture 2, exploding gradients and clipping: every measurement the lecture shows, and its plot.

Each experiment takes explicit sizes (defaulting to :func:`course_lib.budget.pick`) and seeds,
is deterministic given them, and returns plain numbers (dicts of floats, lists, numpy arrays).
The notebook plots what they return; ``tests/test_lecture02_clipping.py`` asserts the same
numbers at the ``ci`` budget.

The cliff (after Pascanu et al. 2013) is a one-unit RNN with two parameters,

    x_t = w * sigmoid(x_{t-1}) + b,   x_0 = 0.5,   loss(w, b) = (sigmoid(x_T) - 0.7)^2,  T = 50,

whose loss surface has a wall where x_0 sits exactly on the map's unstable fixed point,
b = x_0 - w * sigmoid(x_0) (for w > 4, where the map has two stable fixed points).

- :func:`cliff_surface`         the loss and gradient norm on a grid of (w, b)
- :func:`cliff_paths`           gradient descent from one start, with and without clipping
- :func:`clipping_direction`    norm clipping keeps the gradient's direction, clamping does not
- :func:`divergence_over_seeds` a plain RNN with a large SGD step: NaN without clipping, not with
- :func:`cliff_explorer`        sliders for the threshold and the learning rate on the cliff
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from .._validate import positive_int as _positive_int, positive_number as _positive, seed_list as _seed_list
from .. import budget, plots, widgets
from ..claims import Claim
from ..models import SequenceModel
from ..reference.clipping import clip_grad_norm
from ..tasks import fresh_batches, make_adding
from ..train import train
from .vanishing import single_thread, widgets_slider

CLIFF = {"T": 50, "x0": 0.5, "target": 0.7, "w_range": (-2.0, 12.0), "b_range": (-8.0, 2.0)}
START, LR, TAU = (5.0, -2.55), 0.5, 1.0


# ---------------------------------------------------------------------------------------------
# the cliff
# ---------------------------------------------------------------------------------------------
def cliff_loss(w, b, T=CLIFF["T"], x0=CLIFF["x0"], target=CLIFF["target"]):
    """The one-unit RNN's loss (sigmoid(x_T) - target)^2, element-wise over tensors ``w`` and ``b``."""
    x = torch.full_like(w, x0)
    for _ in range(int(T)):
        x = w * torch.sigmoid(x) + b
    return (torch.sigmoid(x) - target) ** 2


def wall_b(w, x0=CLIFF["x0"]):
    """Where the wall is: b = x0 - w * sigmoid(x0), the b that makes x0 a fixed point (w > 4)."""
    return x0 - np.asarray(w, dtype=float) / (1.0 + math.exp(-x0))


def _loss_and_grad(w, b, T):
    w = w.detach().clone().requires_grad_(True)
    b = b.detach().clone().requires_grad_(True)
    loss = cliff_loss(w, b, T)
    gw, gb = torch.autograd.grad(loss.sum(), (w, b))
    return loss.detach(), gw, gb


def cliff_surface(resolution=None, w_range=CLIFF["w_range"], b_range=CLIFF["b_range"], T=CLIFF["T"]):
    """The loss and its gradient norm on a ``resolution`` x ``resolution`` grid of (w, b), float64.

    Returns ``{"w": (n,), "b": (n,), "loss": (n_b, n_w), "grad_norm": (n_b, n_w),
    "grad_ratio": max/median gradient norm, "wall_b_at_5": the measured wall at w = 5,
    "wall_b_at_5_predicted": x0 - 5 sigmoid(x0)}``.
    """
    n = _positive_int("resolution", budget.pick(ci=121, default=301, full=601) if resolution is None else resolution)
    w = torch.linspace(*w_range, n, dtype=torch.float64)
    b = torch.linspace(*b_range, n, dtype=torch.float64)
    B, W = torch.meshgrid(b, w, indexing="ij")
    loss, gw, gb = _loss_and_grad(W, B, T)
    g = torch.sqrt(gw**2 + gb**2)
    # the wall at w = 5, located on a fine line through it: the largest jump of the loss
    line = torch.linspace(-2.8, -2.4, 40_001, dtype=torch.float64)
    prof = cliff_loss(torch.full_like(line, 5.0), line, T)
    k = int(torch.argmax(prof.diff().abs()))
    return {"w": w.numpy(), "b": b.numpy(), "loss": loss.numpy(), "grad_norm": g.numpy(),
            "grad_ratio": float(g.max() / g.median()), "wall_b_at_5": float((line[k] + line[k + 1]) / 2),
            "wall_b_at_5_predicted": float(wall_b(5.0)), "T": int(T), "resolution": n}


def _descend(starts, lr, clip, steps, T):
    """Gradient descent on the cliff from every row of ``starts`` (N, 2) at once, float64."""
    p = torch.as_tensor(np.asarray(starts, dtype=float), dtype=torch.float64).reshape(-1, 2).clone()
    params, losses, norms = [p.clone()], [], []
    for _ in range(steps):
        loss, gw, gb = _loss_and_grad(p[:, 0], p[:, 1], T)
        g = torch.stack([gw, gb], dim=1)
        norm = g.norm(dim=1)
        scale = torch.ones_like(norm) if clip is None else torch.clamp(clip / norm.clamp_min(1e-300), max=1.0)
        losses.append(loss)
        norms.append(norm)
        p = p - lr * scale.unsqueeze(1) * g
        params.append(p.clone())
    losses.append(cliff_loss(p[:, 0], p[:, 1], T))
    return torch.stack(params).numpy(), torch.stack(losses).numpy(), torch.stack(norms).numpy()


def sgd_path(start=START, lr=LR, clip=None, steps=100, T=CLIFF["T"]):
    """Gradient descent on the cliff from ``start`` = (w, b), optionally clipping the gradient's norm
    at ``clip``: g <- g * min(1, clip / ||g||). Returns ``{"params": (steps+1, 2), "loss": (steps+1,),
    "grad_norm": (steps,) before clipping, "step_length": (steps,), "clipped": (steps,) bool}``."""
    lr = _positive("lr", lr)
    steps = _positive_int("steps", steps)
    if clip is not None:
        clip = _positive("clip", clip)
    params, loss, norm = _descend([start], lr, clip, steps, T)
    params, loss, norm = params[:, 0], loss[:, 0], norm[:, 0]
    clipped = norm > clip if clip is not None else np.zeros(steps, dtype=bool)
    return {"params": params, "loss": loss, "grad_norm": norm,
            "step_length": np.linalg.norm(np.diff(params, axis=0), axis=1), "clipped": clipped,
            "lr": lr, "clip": clip, "start": tuple(float(s) for s in start)}


def _summary(path):
    """Numbers the lecture states about one path: where it ends, and its longest step."""
    loss, g, step = path["loss"], path["grad_norm"], path["step_length"]
    big = int(np.argmax(step))
    return {
        "final_loss": float(loss[-1]), "final_grad_norm": float(g[-1]),
        "max_step": float(step.max()), "max_step_at": big, "max_step_grad_norm": float(g[big]),
        "median_grad_norm_before": float(np.median(g[:big])) if big > 0 else float("nan"),
        "max_step_loss_before": float(loss[big]), "max_step_loss_after": float(loss[big + 1]),
    }


def cliff_paths(start=START, lr=LR, tau=TAU, steps=100, T=CLIFF["T"]):
    """The same gradient descent from the same start, without and with clipping at ``tau``.

    Returns ``{"unclipped": path, "clipped": path, "summary": {"unclipped": {...}, "clipped": {...}},
    "lr", "tau", "start", "steps"}``; each summary holds the final loss and gradient norm and the
    longest step (where, the gradient norm there against its median over the steps before, the loss
    before and after it).

    One path on this surface is chaotic: near the wall a change of 1e-9 in the start changes where
    it ends. :func:`cliff_starts` measures the same thing over many starts.
    """
    tau = _positive("tau", tau)
    out = {"unclipped": sgd_path(start, lr, None, steps, T), "clipped": sgd_path(start, lr, tau, steps, T)}
    out["summary"] = {k: _summary(out[k]) for k in ("unclipped", "clipped")}
    out.update({"lr": float(lr), "tau": tau, "start": tuple(start), "steps": steps})
    return out


def cliff_starts(n_starts=None, spread=0.01, lr=LR, tau=TAU, steps=100, seed=0, stranded_loss=0.05,
                 T=CLIFF["T"]):
    """Gradient descent without and with clipping from ``n_starts`` starts scattered around
    :data:`START` (normal, standard deviation ``spread``, ``seed``).

    A run is *stranded* when it ends with loss above ``stranded_loss``: thrown off the wall onto the
    flat shelf where sigmoid(x_T) is close to 1 (loss (1 - 0.7)^2 = 0.09) and the gradient is almost
    zero, so it never comes back. Returns per start the final loss, the longest step and the
    gradient norm there, for both runs, and the counts ``stranded`` and ``max_step``.
    """
    # 64 starts at ci too: the whole batch descends at once (well under a second), and 16 starts put
    # "more than half stranded" within one start of the threshold in some seeds
    n = _positive_int("n_starts", budget.pick(ci=64, default=64, full=256) if n_starts is None else n_starts)
    lr, tau = _positive("lr", lr), _positive("tau", tau)
    g = torch.Generator().manual_seed(int(seed))
    starts = torch.tensor(START, dtype=torch.float64) + spread * torch.randn(n, 2, generator=g, dtype=torch.float64)
    out = {"starts": starts.numpy(), "lr": lr, "tau": tau, "steps": steps, "spread": spread, "seed": int(seed),
           "stranded_loss": stranded_loss, "n_starts": n}
    for key, clip in (("unclipped", None), ("clipped", tau)):
        params, loss, norm = _descend(starts, lr, clip, steps, T)
        step = np.linalg.norm(np.diff(params, axis=0), axis=2)  # (steps, N)
        big = step.argmax(0)
        out[key] = {"final_loss": loss[-1], "max_step": step.max(0),
                    "max_step_grad_norm": norm[big, np.arange(n)], "final_grad_norm": norm[-1],
                    "stranded": int((loss[-1] > stranded_loss).sum())}
    return out


@functools.lru_cache(maxsize=4)
def _zoom_surface(resolution, w_range, b_range, T):
    return cliff_surface(resolution, w_range, b_range, T)


ZOOM = {"w_range": (3.6, 6.2), "b_range": (-3.3, -1.2)}


def _draw_surface(ax, surface, colorbar=True):
    im = ax.pcolormesh(surface["w"], surface["b"], surface["loss"], shading="auto", cmap="viridis",
                       vmin=0, vmax=0.5, rasterized=True)
    ws = np.linspace(4.0, surface["w"][-1], 50)
    ax.plot(ws, wall_b(ws), color="white", lw=0.8, ls=(0, (2, 2)), alpha=0.8)
    ax.set_xlim(surface["w"][0], surface["w"][-1])
    ax.set_ylim(surface["b"][0], surface["b"][-1])
    ax.set_xlabel("w (recurrent weight)")
    ax.set_ylabel("b (bias)")
    ax.grid(False)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label="loss")
    return im


def _draw_paths(ax, paths, legend=True):
    for key, marker in (("unclipped", "o"), ("clipped", "s")):
        p = paths[key]["params"]
        label = "no clipping" if key == "unclipped" else f"clipped at τ = {paths['tau']:g}"
        ax.plot(p[:, 0], p[:, 1], color=plots.colour(key), lw=1.3, marker=marker, ms=2.5,
                label=label, zorder=3 if key == "clipped" else 2)
        ax.plot(p[-1, 0], p[-1, 1], color=plots.colour(key), marker="X", ms=9, mec="white", zorder=4)
    ax.plot(*paths["start"], marker="*", color=plots.PALETTE["yellow"], ms=14, mec="black", zorder=5, label="start")
    if legend:
        ax.legend(fontsize=8, loc="upper right", frameon=True, framealpha=0.85)


def _draw_path_losses(ax, paths):
    """The loss at every step of both paths, the unclipped path's largest jump marked."""
    for key in ("unclipped", "clipped"):
        loss = paths[key]["loss"]
        ax.semilogy(np.arange(len(loss)), loss, color=plots.colour(key), lw=1.5, ls=plots.line_style(key)["ls"],
                    label="no clipping" if key == "unclipped" else f"clipped at τ = {paths['tau']:g}")
    s = paths["summary"]["unclipped"]
    ax.annotate(f"jump of {s['max_step']:.1f}\n(‖g‖ = {s['max_step_grad_norm']:.1f})",
                xy=(s["max_step_at"] + 1, s["max_step_loss_after"]), xytext=(max(s["max_step_at"] - 40, 2), 1e-5),
                arrowprops={"arrowstyle": "->", "color": "0.3"}, fontsize=8)
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel("loss (log scale)")
    ax.set_title(f"loss along the paths (lr = {paths['lr']:g})")
    ax.legend(fontsize=8, loc="lower left")


def plot_cliff(surface, paths, name="lecture02_cliff", caption=None):
    """Three panels: the whole surface with both paths; a zoom on the wall; the loss at each step."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), gridspec_kw={"width_ratios": [1.15, 1.15, 1]})
    _draw_surface(axes[0], surface)
    _draw_paths(axes[0], paths)
    axes[0].set_title(f"loss surface, T = {surface['T']} (dashed: the wall)")
    zoom = _zoom_surface(surface["resolution"], ZOOM["w_range"], ZOOM["b_range"], surface["T"])
    _draw_surface(axes[1], zoom)
    _draw_paths(axes[1], paths, legend=False)
    axes[1].set_title("zoom on the wall")
    _draw_path_losses(axes[2], paths)
    return plots.finish(fig, name, caption, default=(
        "Left and middle: the loss of the one-unit RNN over its two parameters (yellow high, dark "
        "low) and gradient descent from the star. Both paths zig-zag along the wall with small "
        "steps. The unclipped one meets the wall's face, where the gradient is steep, and is thrown "
        "onto a flat shelf (loss about 0.09) that it never leaves (X marks the end); the clipped one "
        "takes a step of the same direction but at most lr·τ long and settles in the valley. "
        "Right: the loss at every step."))


def plot_cliff_starts(result, name="lecture02_cliff_starts", caption=None):
    """Where gradient descent ends from each of the scattered starts, without and with clipping."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
    n = result["n_starts"]
    for i, key in enumerate(("unclipped", "clipped")):
        r = result[key]
        x = i + np.linspace(-0.25, 0.25, n)
        what = "no clipping" if key == "unclipped" else f"clipped at τ = {result['tau']:g}"
        a1.scatter(x, r["final_loss"], color=plots.colour(key), s=14, alpha=0.8,
                   label=f"{what}: {r['stranded']}/{n} stranded")
        a2.scatter(x, r["max_step"], color=plots.colour(key), s=14, alpha=0.8)
    a1.axhline(result["stranded_loss"], color="0.3", ls="--", lw=1,
               label=f"stranded: loss > {result['stranded_loss']:g}")
    a1.set_yscale("log")
    a1.set_ylabel("loss after the last step")
    a1.set_title(f"{n} starts around {START}, {result['steps']} steps of lr {result['lr']:g}")
    a1.legend(fontsize=8, loc="lower left")
    a2.axhline(result["lr"] * result["tau"], color="0.3", ls="--", lw=1, label="lr·τ")
    a2.set_yscale("log")
    a2.set_ylabel("longest single step (parameter distance)")
    a2.set_title("the longest step of each run")
    a2.legend(fontsize=8, loc="upper right")
    for ax in (a1, a2):
        ax.set_xticks([0, 1], ["no clipping", "clipped"])
        ax.set_xlim(-0.5, 1.5)
    return plots.finish(fig, name, caption, default=(
        "One dot per start. Left: without clipping most runs end stranded on the shelf at loss about "
        "0.09; with clipping none do. Right: unclipped runs take single steps many times lr·τ long "
        "(the catapult off the wall); clipped steps never exceed lr·τ."))


def draw_cliff(ax, lr=LR, tau=TAU, steps=100, resolution=161):
    """The explorer's panel: the zoomed surface with both paths for one (lr, tau)."""
    zoom = _zoom_surface(resolution, ZOOM["w_range"], ZOOM["b_range"], CLIFF["T"])
    _draw_surface(ax, zoom, colorbar=False)
    paths = cliff_paths(START, lr, tau, steps)
    _draw_paths(ax, paths, legend=False)
    s = paths["summary"]
    ax.text(0.02, 0.03, f"final loss: {s['unclipped']['final_loss']:.2g} (no clip), "
                        f"{s['clipped']['final_loss']:.2g} (clip)", transform=ax.transAxes, fontsize=8,
            color="white")


def cliff_explorer(static_settings=None):
    """Sliders for the learning rate and the clipping threshold that redraw the paths on the cliff;
    without a widget front end the static panels of ``static_settings`` are what shows."""
    if static_settings is None:
        static_settings = [{"lr": 0.1, "tau": 1.0}, {"lr": 0.5, "tau": 1.0}, {"lr": 2.0, "tau": 1.0},
                           {"lr": 0.5, "tau": 0.1}, {"lr": 0.5, "tau": 0.25}, {"lr": 2.0, "tau": 0.25}]
    return widgets.explorer(
        draw_cliff,
        sliders={"lr": widgets_slider(0.05, 2.0, 0.05, LR, "lr"), "tau": widgets_slider(0.05, 5.0, 0.05, TAU, "τ")},
        static_settings=static_settings,
        title="Gradient descent on the cliff: vermillion without clipping, blue clipped",
        name="lecture02_explorer",
        caption=("Each panel starts at the star. Whenever the unclipped run meets the wall's face it is catapulted "
                 "out of the frame onto the shelf (final loss about 0.09). Clipped runs move at most lr·τ per "
                 "step; a tiny τ makes them slow (lr 0.5, τ 0.1 has not arrived after 100 steps). With lr 2 "
                 "both runs stride over the wall and reach the broad valley at w < 4."),
    )


# ---------------------------------------------------------------------------------------------
# the direction of the step: clipping by norm against clamping each element
# ---------------------------------------------------------------------------------------------
def _cos(a, b):
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def clipping_direction(seeds=None, tau=TAU, T=50, hidden=32, batch_size=64):
    """Clip real gradients two ways and measure the angle each makes with the original.

    For each seed: a fresh plain tanh RNN (float64) and a batch of the adding problem of length
    ``T``; its gradient ``g`` (all parameters together) is clipped by norm, g * min(1, tau/||g||),
    with :func:`course_lib.reference.clip_grad_norm`, and, separately, clamped element-wise to
    [-c, c] with c = tau / sqrt(P) (P parameters, so both allow the same size). Returns per seed
    the norm of ``g``, the cosine of each clipped gradient with ``g``, and the share of elements the
    clamp changed.
    """
    seeds = _seed_list("seeds", budget.pick(ci=3, default=5, full=10) if seeds is None else seeds)
    tau = _positive("tau", tau)
    out = {"seeds": seeds, "tau": tau, "grad_norm": [], "cos_norm": [], "cos_value": [], "clamped_share": [],
           "norm_after_norm_clip": [], "norm_after_value_clip": []}
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = SequenceModel("rnn", 2, hidden, 1).double()
        x, y = make_adding(batch_size, T, seed=40_000 + seed).as_batch()
        params = list(model.parameters())

        def grads():
            model.zero_grad()
            torch.nn.functional.mse_loss(model(x.double()), y.double()).backward()
            return torch.cat([p.grad.flatten() for p in params]).clone()

        g = grads()
        clip_grad_norm(params, tau)
        g_norm = torch.cat([p.grad.flatten() for p in params])
        grads()
        c = tau / math.sqrt(g.numel())
        torch.nn.utils.clip_grad_value_(params, c)
        g_value = torch.cat([p.grad.flatten() for p in params])
        out["grad_norm"].append(float(g.norm()))
        out["cos_norm"].append(_cos(g, g_norm))
        out["cos_value"].append(_cos(g, g_value))
        out["clamped_share"].append(float((g.abs() > c).double().mean()))
        out["norm_after_norm_clip"].append(float(g_norm.norm()))
        out["norm_after_value_clip"].append(float(g_value.norm()))
    return out


# ---------------------------------------------------------------------------------------------
# divergence over seeds
# ---------------------------------------------------------------------------------------------
def divergence_over_seeds(seeds=None, lr=0.5, tau=TAU, steps=None, T=20, hidden=32, batch_size=64,
                          blowup=10.0, device=None):
    """Train a plain tanh RNN on the adding problem with plain SGD at a large learning rate, once
    without clipping and once clipping at ``tau``, from the same initialisation and batches.

    A run *diverges* when its loss or gradient norm becomes NaN or infinite (training stops there,
    :func:`course_lib.train.train` with ``nan_policy="stop"``) or its final loss exceeds ``blowup``
    times its first loss.

    Returns ``{"seeds", "unclipped": {...}, "clipped": {...}, "lr", "tau", ...}``; each of the two
    holds per seed ``diverged``, ``nonfinite``, ``stopped_at``, ``final_loss``, ``max_grad_norm``,
    ``sigma_hh_end`` (sigma_max of the recurrent weights after the last step taken; about 1 at
    initialisation) and the per-step ``loss`` and ``grad_norm`` curves (NaN after a stop).
    """
    seeds = _seed_list("seeds", budget.pick(ci=3, default=5, full=10) if seeds is None else seeds)
    steps = _positive_int("steps", budget.pick(ci=60, default=200, full=500) if steps is None else steps)
    lr, tau = _positive("lr", lr), _positive("tau", tau)

    def run(seed, clip):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = SequenceModel("rnn", 2, hidden, 1)
        h = train(model, fresh_batches(make_adding, batch_size, T=T), "mse", steps, lr=lr, optimizer="sgd",
                  clip=clip, nan_policy="stop", seed=seed, device=device, progress=False)
        W_hh = model.rnn.weight_hh_l0.detach().double().cpu()
        return h, float(torch.linalg.matrix_norm(W_hh, ord=2))

    out = {"seeds": seeds, "lr": lr, "tau": tau, "steps": steps, "T": T, "hidden": hidden, "blowup": blowup}
    with single_thread():
        for key, clip in (("unclipped", None), ("clipped", tau)):
            out[key] = _divergence_runs(run, seeds, clip, steps, blowup)
    return out


def _divergence_runs(run, seeds, clip, steps, blowup):
    """Train one run per seed with ``clip`` and collect what :func:`divergence_over_seeds` returns."""
    rec = {"diverged": [], "nonfinite": [], "stopped_at": [], "final_loss": [], "max_grad_norm": [],
           "sigma_hh_end": [], "loss": [], "grad_norm": []}
    for seed in seeds:
        h, sigma_hh = run(seed, clip)
        loss, norm = np.full(steps, np.nan), np.full(steps, np.nan)
        loss[: len(h)], norm[: len(h)] = h.loss, h.grad_norm
        finite_norms = [n for n in h.grad_norm if math.isfinite(n)]
        final, nonfinite = h.final_loss, bool(h.stopped)
        rec["sigma_hh_end"].append(sigma_hh)
        rec["nonfinite"].append(nonfinite)
        rec["diverged"].append(nonfinite or not math.isfinite(final) or final > blowup * h.loss[0])
        rec["stopped_at"].append(len(h) - 1 if nonfinite else None)
        rec["final_loss"].append(float(final) if not nonfinite else float("nan"))
        rec["max_grad_norm"].append(max(finite_norms) if finite_norms else float("nan"))
        rec["loss"].append(loss)
        rec["grad_norm"].append(norm)
    rec["loss"], rec["grad_norm"] = np.stack(rec["loss"]), np.stack(rec["grad_norm"])
    rec["diverged_count"] = int(sum(rec["diverged"]))
    return rec


def plot_divergence(result, name="lecture02_divergence", caption=None):
    """Loss (left) and gradient norm (right) per step for every seed; without clipping (top row) and
    with it (bottom row), each row on its own log axis, so the clipped runs are not flattened by the
    unclipped ones' 1e30s. A cross marks the step where a run's loss or gradient became NaN or inf."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 6.4), sharex=True)
    n = len(result["seeds"])
    for row, key in enumerate(("unclipped", "clipped")):
        rec = result[key]
        kw = plots.line_style(key)
        kw.pop("marker"), kw.pop("markevery"), kw.pop("ms")
        for ax, field, label in ((axes[row, 0], "loss", "training loss (MSE, log)"),
                                 (axes[row, 1], "grad_norm", "gradient norm ‖g‖ before clipping (log)")):
            for j, curve in enumerate(rec[field]):
                steps = np.arange(len(curve))
                ok = np.isfinite(curve)
                ax.semilogy(steps[ok], curve[ok], lw=1.2, alpha=0.8, **kw,
                            label=(f"no clipping ({rec['diverged_count']}/{n} diverged)" if key == "unclipped" else
                                   f"clipped at τ = {result['tau']:g} ({rec['diverged_count']}/{n} diverged)")
                            if j == 0 else None)
                if rec["nonfinite"][j]:
                    last = steps[ok][-1] if ok.any() else 0
                    ax.plot(last, curve[ok][-1] if ok.any() else 1.0, marker="X", ms=10,
                            color=plots.colour(key), mec="black", zorder=4)
            ax.set_ylabel(label, fontsize=9)
            if field == "grad_norm" and key == "clipped":
                ax.axhline(result["tau"], color="grey", ls=":", lw=1)
                ax.text(0, result["tau"], f" τ = {result['tau']:g}: longer gradients are scaled down to it",
                        fontsize=8, color="0.3", va="bottom")
        if key == "unclipped":
            axes[row, 0].plot([], [], ls="none", marker="X", ms=9, color=plots.colour(key), mec="black",
                              label="next step: NaN or inf")
        axes[row, 0].legend(fontsize=8, loc="upper right")
    for ax in axes[1]:
        ax.set_xlabel("SGD step")
    axes[0, 0].set_title(f"plain RNN, adding T = {result['T']}, SGD lr = {result['lr']:g}: loss")
    axes[0, 1].set_title("gradient norm at each step")
    return plots.finish(fig, name, caption, default=(
        "Same initialisation and batches in each pair; top row without clipping, bottom row clipped, each "
        "on its own log axis. Without clipping the gradient norm climbs by many orders of magnitude within "
        "a few steps, and soon a step overflows (X marks the last finite one); clipped runs take steps no "
        "longer than lr·τ, and their loss stays finite and falls."))


# ---------------------------------------------------------------------------------------------
# the lecture's claims (the notebook shows them, the tests and the main job assert the same objects)
# ---------------------------------------------------------------------------------------------
UNSTABLE_W = 1 / (1 / (1 + math.exp(-0.5)) * (1 - 1 / (1 + math.exp(-0.5))))  # w sigma'(0.5) > 1: w above ~4.26


def claims_wall(surface: dict) -> list[Claim]:
    """Lecture 2: the wall found on the grid at w = 5 sits where x0 = 0.5 is the (unstable) fixed point,
    b = 0.5 - 5 sigmoid(0.5), within 1e-4 either way; the gradient ratio is shown as an illustration."""
    return [
        Claim.compare(f"the wall at w = 5 is where x0 = 0.5 is a fixed point, b = 0.5 - 5*sigmoid(0.5) (unstable "
                      f"there since w > {UNSTABLE_W:.2f}): |measured - predicted|",
                      abs(surface["wall_b_at_5"] - surface["wall_b_at_5_predicted"]), "<", 1e-4,
                      measured=surface["wall_b_at_5"], predicted=surface["wall_b_at_5_predicted"]),
        Claim.illustration(f"largest gradient norm / median on the {surface['resolution']}x{surface['resolution']} grid",
                           grad_ratio=surface["grad_ratio"]),
    ]


CLIFF_SEEDS = 5  # draws of the starts (each ``n_starts`` points around START) the claims rest on


def cliff_starts_seeds(seeds=None, **kwargs) -> dict:
    """:func:`cliff_starts` for several draws of the starts (``seeds``, default ``range(CLIFF_SEEDS)``; the
    same ``kwargs`` for each). Returns ``{"seeds", "n_starts", "runs": [result per seed],
    "stranded_fraction": {"unclipped": (S,), "clipped": (S,)}}``. Used by lecture 2's claims."""
    seeds = tuple(range(CLIFF_SEEDS)) if seeds is None else tuple(int(v) for v in seeds)
    if not seeds:
        raise ValueError("seeds must list at least one seed")
    runs = [cliff_starts(seed=s, **kwargs) for s in seeds]
    n = runs[0]["n_starts"]
    return {"seeds": seeds, "n_starts": n, "runs": runs,
            "stranded_fraction": {k: np.array([r[k]["stranded"] / n for r in runs]) for k in ("unclipped", "clipped")}}


def claims_cliff_starts(starts: dict) -> list[Claim]:
    """Lecture 2: from many starts near the wall, most unclipped runs end stranded, no clipped run does, in
    every draw of the starts. ``starts``: :func:`cliff_starts_seeds` (or one :func:`cliff_starts` result,
    then one seed)."""
    if "runs" not in starts:
        starts = {"seeds": (starts["seed"],), "n_starts": starts["n_starts"], "runs": [starts],
                  "stranded_fraction": {k: np.array([starts[k]["stranded"] / starts["n_starts"]])
                                        for k in ("unclipped", "clipped")}}
    n, seeds, f = starts["n_starts"], starts["seeds"], starts["stranded_fraction"]
    first = starts["runs"][0]
    return [
        Claim.every(f"cliff, {n} starts per draw: more than half of the unclipped runs end stranded, in every draw "
                    f"(fraction stranded)", f["unclipped"], ">", 0.5, seeds, starts=n),
        Claim.every(f"cliff, {n} starts per draw: no clipped run ends stranded, in every draw (fraction stranded)",
                    f["clipped"], "<=", 0, seeds, starts=n),
        Claim.illustration("every clipped step is at most lr * tau long (true by construction of norm clipping)",
                           max_clipped_step=float(max(np.max(r["clipped"]["max_step"]) for r in starts["runs"])),
                           lr_times_tau=first["lr"] * first["tau"]),
    ]


def claims_direction(direction: dict) -> list[Claim]:
    """Lecture 2: element-wise clamping turns the gradient (cosine below 0.95 in every seed); norm clipping's
    cosine of 1 is true by construction and shown as an illustration."""
    cos_n, cos_v = np.asarray(direction["cos_norm"]), np.asarray(direction["cos_value"])
    return [
        Claim.every("element-wise clamping changes the gradient's direction: cos(clamped, g) < 0.95 in every seed",
                    cos_v, "<", 0.95, direction["seeds"]),
        Claim.illustration("norm clipping keeps the direction: cos(clipped, g) = 1 (a rescaled vector; this "
                           "checks the arithmetic)", cos_norm_min=float(cos_n.min()), seeds=list(direction["seeds"])),
    ]


def claims_divergence(div: dict) -> list[Claim]:
    """Lecture 2: the large-lr plain RNN diverges in most seeds without clipping and in none with it."""
    n, du, dc = len(div["seeds"]), div["unclipped"], div["clipped"]
    common = {"lr": div["lr"], "steps": div["steps"]}
    return [
        Claim.compare(f"large-lr plain RNN without clipping: more than half of {n} seeds diverge (count)",
                      du["diverged_count"], ">", n / 2, div["seeds"], **common),
        Claim.compare("the same runs clipped at tau = 1: no seed diverges (count)", dc["diverged_count"], "<=", 0,
                      div["seeds"], **common),
    ]
