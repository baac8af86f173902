"""Lecture 4: what a trained RNN, LSTM and GRU remember, seen through their gradients.

In the spirit of Madsen's "Visualizing memorization in RNNs" (Distill, 2019): train the three cells
as character-level language models on the same text (the fortunes of lecture 7), then, for one
validation sequence, measure the **connectivity**

    C[t, j] = || d log p(x_{t+1} | x_0..x_t) / d e_j ||_2 ,   j <= t,

the size of the gradient of the prediction made at output position ``t`` with respect to the input
embedding ``e_j`` of character ``j``. A row of ``C`` says which earlier characters the prediction at
``t`` can still be moved by; lecture 1's product of Jacobians says the plain RNN's row should fall
off exponentially with the distance ``t - j``, and lecture 3's cell path says the LSTM's need not.

The claim (:func:`claims_memorisation`) compares, on every seed, the **share of a prediction's
gradient on inputs at least** ``distance`` **characters back** (each row divided by its sum, so the
models' different scales cancel; averaged over the rows that have such inputs and over a few
validation sequences): the LSTM's and the GRU's exceed the RNN's by more than ``factor``.

Functions: :func:`connectivity` (one model, one sequence), :func:`memorisation` (train and measure,
every cell and seed), :func:`plot_connectivity` (heatmaps), :func:`memorisation_explorer` (a slider
over the output position, static panels where widgets cannot run), :func:`claims_memorisation`.
Sizes follow :func:`course_lib.budget.pick`; tests: tests/test_memorisation.py.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import budget, plots, widgets
from .._validate import positive_int as _positive_int
from ..models import CarryState
from ..tasks import load_corpus
from ..train import train
from .gpu_training import make_charlm

CELLS = ("rnn", "lstm", "gru")


def connectivity(lm, ids: torch.Tensor) -> np.ndarray:
    """``C[t, j]``: the L2 norm of d log p(x_{t+1} | x_<=t) / d e_j for one sequence.

    ``lm``: a :class:`course_lib.models.CharLM` (embedding, ``rnn``, ``head``); ``ids``: int64
    ``(T + 1,)`` character ids, the inputs ``ids[:-1]`` and the targets ``ids[1:]``. Returns a float64
    ``(T, T)`` array, zero above the diagonal (a prediction never depends on later inputs). One
    forward and one backward pass: row ``t`` is computed on copy ``t`` of the sequence in a batch
    of ``T`` copies, so the rows do not mix. Raises ValueError for a sequence shorter than 2.
    """
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.numel() < 2 or ids.is_floating_point():
        raise ValueError(f"ids must be a 1-d int64 tensor of at least 2 character ids, got "
                         f"{getattr(ids, 'dtype', type(ids).__name__)} {tuple(getattr(ids, 'shape', ()))}")
    was = lm.training
    lm.eval()
    x, y = ids[:-1], ids[1:]
    T = x.numel()
    with torch.enable_grad():
        e = lm.embedding(x.unsqueeze(0).expand(T, T)).detach().requires_grad_(True)  # (T copies, T, E)
        out, _ = lm.rnn(e)
        logp = lm.head(out).log_softmax(-1)  # (T, T, V)
        rows = torch.arange(T)
        picked = logp[rows, rows, y]  # copy t keeps only the prediction at position t
        (grad,) = torch.autograd.grad(picked.sum(), e)
    lm.train(was)
    C = grad.norm(dim=-1).double().numpy()  # (T, T): row t, input j
    return np.tril(C)


def far_share(C: np.ndarray, distance: int) -> float:
    """Mean over rows ``t >= distance`` of the share of row ``t``'s connectivity on inputs ``j <= t - distance``."""
    T = C.shape[0]
    if not 1 <= distance < T:
        raise ValueError(f"distance must be in [1, {T - 1}] for a sequence of {T} predictions, got {distance!r}")
    shares = [C[t, : t - distance + 1].sum() / C[t, : t + 1].sum() for t in range(distance, T)]
    return float(np.mean(shares))


def train_cell(cell: str, corpus, steps: int, hidden: int, seed: int, lr: float = 1e-2, batch_size: int = 32,
               seq_len: int = 64, device="cpu"):
    """One character LM of ``cell`` trained ``steps`` steps with lecture 7's loop (truncated BPTT,
    clipping 0.25, Adam, the LSTM's forget bias 1). Returns the trained :class:`CharLM`."""
    lm = make_charlm(len(corpus.vocab), hidden=hidden, cell=cell, seed=seed)
    train(CarryState(lm), corpus.batch_fn(batch_size, seq_len), "cross_entropy", steps, lr=lr, clip=0.25,
          device=device, seed=seed, progress=False)
    return lm.cpu()


def memorisation(cells=CELLS, seeds=None, steps=None, hidden=None, seq_len=None, n_sequences=None, distance=None,
                 batch_size=None, device="cpu") -> dict:
    """Train each cell on the fortunes for every seed and measure its connectivity.

    Sizes (by budget, ci / default / full): ``steps`` 50 / 400 / 1500 training steps of
    ``batch_size`` 16 / 32 / 32 rows of 64 characters, ``hidden`` 64 / 128 / 256, ``seq_len`` 80 / 100 / 150 characters per measured
    sequence, ``n_sequences`` 2 / 4 / 8 validation sequences, ``distance`` 30 (the far inputs),
    ``seeds`` (0, 1, 2). Returns ``cells``, ``seeds``, ``far_share`` (cell -> one value per seed),
    ``example`` (cell -> ``C`` of the first sequence for the first seed), ``text`` (that sequence's
    input characters), ``targets`` (its next characters) and the settings. Raises ValueError for a
    bad size or an unknown cell.
    """
    bad = [c for c in cells if c not in CELLS]
    if bad or not cells:
        raise ValueError(f"cells must be some of {CELLS}, got {cells!r}")
    seeds = tuple(budget.pick(ci=(0, 1, 2), default=(0, 1, 2)) if seeds is None else seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    steps = _positive_int("steps", budget.pick(ci=50, default=400, full=1500) if steps is None else steps)
    batch_size = _positive_int("batch_size", budget.pick(ci=16, default=32) if batch_size is None else batch_size)
    hidden = _positive_int("hidden", budget.pick(ci=64, default=128, full=256) if hidden is None else hidden)
    seq_len = _positive_int("seq_len", budget.pick(ci=80, default=100, full=150) if seq_len is None else seq_len)
    n_seq = _positive_int("n_sequences", budget.pick(ci=2, default=4, full=8) if n_sequences is None else n_sequences)
    distance = _positive_int("distance", 30 if distance is None else distance)
    if distance >= seq_len:
        raise ValueError(f"distance ({distance}) must be shorter than seq_len ({seq_len})")
    corpus = load_corpus("fortunes", max_chars=budget.pick(ci=300_000, default=None))
    val = corpus.val_ids
    starts = np.linspace(0, val.numel() - seq_len - 2, n_seq).astype(int)
    sequences = [val[s: s + seq_len + 1] for s in starts]
    far, example = {c: [] for c in cells}, {}
    for seed in tqdm(seeds, desc="memorisation: seeds", unit="seed"):
        for cell in cells:
            lm = train_cell(cell, corpus, steps, hidden, seed, batch_size=batch_size, device=device)
            Cs = [connectivity(lm, ids) for ids in sequences]
            far[cell].append(float(np.mean([far_share(C, distance) for C in Cs])))
            if seed == seeds[0]:
                example[cell] = Cs[0]
    return {"cells": tuple(cells), "seeds": seeds, "far_share": far, "example": example,
            "text": corpus.decode(sequences[0][:-1]), "targets": corpus.decode(sequences[0][1:]),
            "steps": steps, "batch_size": batch_size, "hidden": hidden, "seq_len": seq_len, "n_sequences": n_seq, "distance": distance}


def _row_normalised(C: np.ndarray) -> np.ndarray:
    """Each row divided by its largest entry, in log10 (-inf where a gradient underflowed to 0); NaN above the diagonal."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.log10(C / C.max(axis=1, keepdims=True))
    return np.where(np.tri(*C.shape) > 0, rel, np.nan)


def plot_connectivity(result: dict, floor: float = -12.0, name: str = "lecture04_connectivity"):
    """One heatmap per cell: output position (rows) against input position (columns), colour the
    log10 of the connectivity relative to the row's largest (cividis, colour-blind safe; white above
    the diagonal, where a prediction cannot depend on the input). Returns the figure."""
    import matplotlib.pyplot as plt

    cells = result["cells"]
    fig, axes = plt.subplots(1, len(cells) + 1, figsize=(4.0 * len(cells) + 0.6, 4.0),
                             gridspec_kw={"width_ratios": [1] * len(cells) + [0.06]})
    cmap = plt.get_cmap("cividis").with_extremes(bad="white")
    for ax, cell in zip(axes, cells):
        rel = _row_normalised(result["example"][cell])
        shown = np.ma.masked_invalid(np.where(np.isneginf(rel) & (np.tri(*rel.shape) > 0), floor, rel))
        img = ax.imshow(np.ma.maximum(shown, floor), cmap=cmap, vmin=floor, vmax=0, aspect="auto",
                        interpolation="nearest")
        ax.set_title(f"{cell.upper()} (seed {result['seeds'][0]})")
        ax.set_xlabel("input position j")
        ax.grid(False)
    axes[0].set_ylabel("output position t (predicts character t + 1)")
    fig.colorbar(img, cax=axes[-1], label="log10 |d log p / d e_j|, relative to the row's largest")
    return plots.finish(fig, name, caption=(
        f"Row t: how strongly the prediction at position t depends on each earlier character j (white above the "
        f"diagonal: later characters cannot matter). The plain RNN's rows fade by orders of magnitude with the "
        f"distance and reach the floor of the colour scale (1e{floor:.0f} of the row's largest) a few dozen "
        f"characters back; the LSTM's and the GRU's rows stay far brighter to the left: their predictions can still "
        f"be moved by characters {result['distance']} and more back."))


def draw_connectivity(result: dict, floor: float = -12.0):
    """``draw(ax, position)`` for the explorer: each cell's connectivity of the prediction at
    ``position`` over the input positions, relative to its largest (log axis)."""
    def draw(ax, position):
        position = int(position)
        x = np.arange(position + 1)
        for i, cell in enumerate(result["cells"]):
            row = result["example"][cell][position, : position + 1]
            ax.semilogy(x, np.maximum(row / row.max(), 10 ** floor), label=cell.upper(),
                        **plots.line_style(cell, i, n_points=12))
        ax.axvspan(-0.5, position - result["distance"] + 0.5, color="0.9", zorder=0)
        ax.set_ylim(10 ** floor, 2)
        ax.set_xlabel("input position j (grey: at least %d back)" % result["distance"])
        ax.set_ylabel("relative connectivity")
        text = result["text"][max(0, position - 24): position + 1].replace("\n", " ")
        ax.set_title(f"predicting {result['targets'][position]!r} after ...{text!r}", fontsize=8)
        ax.legend(fontsize=8)
    return draw


def memorisation_explorer(result: dict, static=None, name: str = "lecture04_connectivity_explorer"):
    """A slider over the output position (ipywidgets); static panels at ``static`` positions
    (default: three spread over the sequence) for CI, the site and front ends without widgets."""
    T = result["example"][result["cells"][0]].shape[0]
    static = static or (result["distance"], (result["distance"] + T - 1) // 2, T - 1)
    return widgets.explorer(
        draw_connectivity(result), {"position": (0, T - 1, 1)}, [{"position": int(p)} for p in static],
        title="What the prediction at one position still depends on", name=name,
        caption="Each curve: the size of the gradient of one prediction with respect to each earlier character, "
                "relative to its largest. The RNN's falls by orders of magnitude with the distance; the "
                "LSTM's and the GRU's stay far above it in the grey region of distant characters.")


def claims_memorisation(result: dict, factor: float = 100.0) -> list:
    """Lecture 4: on every seed, the LSTM's and the GRU's share of a prediction's gradient on inputs at
    least ``distance`` back exceeds the plain RNN's by more than ``factor`` (a wide margin: the
    measured ratios are orders of magnitude beyond it). ``value``: the worst seed's ratio."""
    from ..claims import Claim

    rnn = np.asarray(result["far_share"]["rnn"], dtype=float)
    # a share that underflowed to 0 counts as float32's smallest normal number, so the ratio stays finite
    floor = float(np.finfo(np.float32).tiny)
    out = []
    for cell in ("lstm", "gru"):
        if cell not in result["far_share"]:
            continue
        ratio = np.asarray(result["far_share"][cell], dtype=float) / np.maximum(rnn, floor)
        out.append(Claim.every(
            f"a trained {cell.upper()}'s predictions keep more than {factor:g}x the plain RNN's share of gradient "
            f"on characters at least {result['distance']} back, every seed", ratio, ">", factor, result["seeds"],
            **{f"{cell}_share": result["far_share"][cell], "rnn_share": list(rnn)}))
    return out
