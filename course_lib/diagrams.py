"""Cell diagrams for lectures 3 and 4, drawn with matplotlib (no image files to ship or go stale).

:func:`lstm_diagram` and :func:`gru_diagram` draw one step of each cell in PyTorch's convention: the
memory line runs along the top, the gates sit below it and read ``[h_{t-1}, x_t]`` from the bus at
the bottom. Both return the figure (captioned through :func:`course_lib.plots.finish`).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyBboxPatch

from . import plots

__all__ = ["lstm_diagram", "gru_diagram"]

_GATE_FILL = "#FFF4D6"
_TANH_FILL = "#E3F1FA"


def _line(ax, pts, colour="black", lw=1.5, arrow=False, z=1):
    xs, ys = zip(*pts)
    ax.plot(xs, ys, color=colour, lw=lw, solid_capstyle="round", zorder=z)
    if arrow:
        (x0, y0), (x1, y1) = pts[-2], pts[-1]
        ax.annotate("", xy=(x1, y1), xytext=(x0 + 0.8 * (x1 - x0), y0 + 0.8 * (y1 - y0)),
                    arrowprops=dict(arrowstyle="-|>", color=colour, lw=lw, mutation_scale=12), zorder=z)


def _op(ax, x, y, symbol, r=0.22, fill="white"):
    ax.add_patch(Circle((x, y), r, facecolor=fill, edgecolor="black", lw=1.3, zorder=3))
    ax.text(x, y, symbol, ha="center", va="center", fontsize=12, zorder=4)


def _box(ax, x, y, text, fill=_GATE_FILL, w=0.8, h=0.55):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.04,rounding_size=0.08",
                                facecolor=fill, edgecolor="black", lw=1.2, zorder=3))
    ax.text(x, y, text, ha="center", va="center", fontsize=11, zorder=4)


def _frame(ax, w, h):
    ax.add_patch(FancyBboxPatch((0.9, 0.25), w - 1.9, h - 0.6, boxstyle="round,pad=0.05,rounding_size=0.3",
                                facecolor="#F7F7F7", edgecolor="#BBBBBB", lw=1, zorder=0))
    ax.set_xlim(-0.2, w + 0.2)
    ax.set_ylim(-0.45, h + 0.25)
    ax.set_aspect("equal")
    ax.axis("off")


def _canvas():
    """A framed figure for one cell step and its layout: (width, height, memory line, bus, gate row)."""
    fig, ax = plt.subplots(figsize=(9, 4.6))
    W, H = 11.0, 5.0
    _frame(ax, W, H)
    return fig, ax, (W, H, 4.1, 0.75, 1.75)


def lstm_diagram(name="lecture03_lstm_diagram", caption=None):
    """One LSTM step: the cell line on top (erase with f, write with i * g), the read-out (o * tanh c) on the right."""
    cell = plots.colour("lstm")
    fig, ax, (W, H, top, bus, gate_y) = _canvas()
    xf, xi, xg, xo, xmul, xread = 2.6, 4.1, 5.3, 7.0, 4.7, 8.2
    # the cell line: c_{t-1} -> x f -> + (i*g) -> c_t
    _line(ax, [(0.0, top), (W, top)], colour=cell, lw=3.5, arrow=True, z=2)
    ax.text(0.0, top + 0.22, r"$c_{t-1}$", fontsize=12, color=cell)
    ax.text(W - 0.35, top + 0.22, r"$c_t$", fontsize=12, color=cell)
    ax.text((xf + xmul) / 2 + 0.2, top + 0.25, "the cell path: no weight matrix, no squashing",
            fontsize=8.5, color=cell, ha="center", style="italic")
    _op(ax, xf, top, r"$\times$")
    _op(ax, xmul, top, "+")
    # the bus: h_{t-1} from the left, x_t from below, read by every gate
    _line(ax, [(0.0, bus), (xo, bus)], lw=1.8)
    ax.text(0.0, bus + 0.18, r"$h_{t-1}$", fontsize=12)
    _line(ax, [(1.6, -0.35), (1.6, bus)], lw=1.8)
    ax.text(1.7, -0.35, r"$x_t$", fontsize=12, va="bottom")
    for x, txt, fill in ((xf, r"$\sigma$", _GATE_FILL), (xi, r"$\sigma$", _GATE_FILL),
                         (xg, "tanh", _TANH_FILL), (xo, r"$\sigma$", _GATE_FILL)):
        _line(ax, [(x, bus), (x, gate_y - 0.3)], lw=1.5)
        _box(ax, x, gate_y, txt, fill=fill)
    # forget gate -> multiply the cell (erase)
    _line(ax, [(xf, gate_y + 0.3), (xf, top - 0.22)], arrow=True)
    ax.text(xf - 0.5, gate_y + 0.95, r"$f_t$" + "\nerase", fontsize=9, ha="center", color=plots.PALETTE["vermillion"])
    # input gate * candidate -> add to the cell (write)
    ymul = 3.05
    _op(ax, xmul, ymul, r"$\times$")
    _line(ax, [(xi, gate_y + 0.3), (xi, ymul), (xmul - 0.22, ymul)], arrow=True)
    _line(ax, [(xg, gate_y + 0.3), (xg, ymul), (xmul + 0.22, ymul)], arrow=True)
    _line(ax, [(xmul, ymul + 0.22), (xmul, top - 0.22)], arrow=True)
    ax.text(xi - 0.45, gate_y + 0.7, r"$i_t$", fontsize=10)
    ax.text(xg + 0.12, gate_y + 0.7, r"$g_t$", fontsize=10)
    ax.text(xmul + 0.3, ymul + 0.4, "write", fontsize=9, color=plots.PALETTE["green"])
    # read: o * tanh(c_t) -> h_t
    yt, yo = 3.05, 1.75
    _line(ax, [(xread, top), (xread, yt + 0.28)], arrow=True)
    _box(ax, xread, yt, "tanh", fill=_TANH_FILL, w=0.75, h=0.5)
    _op(ax, xread, yo, r"$\times$")
    _line(ax, [(xread, yt - 0.25), (xread, yo + 0.22)], arrow=True)
    _line(ax, [(xo + 0.4, gate_y), (xread - 0.22, yo)], arrow=True)
    ax.text(xo + 0.45, gate_y + 0.12, r"$o_t$", fontsize=10)
    ax.text(xread + 0.3, yo + 0.35, "read", fontsize=9, color=plots.PALETTE["purple"])
    _line(ax, [(xread, yo - 0.22), (xread, bus), (W, bus)], lw=1.8, arrow=True)
    _line(ax, [(9.6, bus), (9.6, H + 0.1)], lw=1.8, arrow=True)
    ax.text(W - 0.45, bus + 0.18, r"$h_t$", fontsize=12)
    ax.text(9.7, H - 0.15, r"$h_t$ (output)", fontsize=10)
    cap = caption or ("One LSTM step. The cell state c runs along the top and is only multiplied by the forget gate "
                      "and added to; the gates (sigmoids) read h_{t-1} and x_t from the bus at the bottom.")
    return plots.finish(fig, name, cap)


def gru_diagram(name="lecture04_gru_diagram", caption=None):
    """One GRU step in PyTorch's convention: h_t = (1 - z) * n + z * h_{t-1}; z = 1 keeps the state."""
    state = plots.colour("gru")
    fig, ax, (W, H, top, bus, gate_y) = _canvas()
    xr, xz, xn, xkeep, xadd = 2.8, 4.3, 7.4, 5.6, 8.6
    _line(ax, [(0.0, top), (W, top)], colour=state, lw=3.5, arrow=True, z=2)
    ax.text(0.0, top + 0.22, r"$h_{t-1}$", fontsize=12, color=state)
    ax.text(W - 0.35, top + 0.22, r"$h_t$", fontsize=12, color=state)
    _op(ax, xkeep, top, r"$\times$")
    _op(ax, xadd, top, "+")
    ax.text((xkeep + xadd) / 2, top + 0.3, r"$h_t = z_t\,h_{t-1} + (1-z_t)\,n_t$", fontsize=9.5, ha="center",
            color=state)
    # bus: h_{t-1} drops from the state line, x_t from below
    _line(ax, [(1.3, top), (1.3, bus), (xn, bus)], lw=1.8)
    _line(ax, [(2.0, -0.35), (2.0, bus)], lw=1.8)
    ax.text(2.1, -0.35, r"$x_t$", fontsize=12, va="bottom")
    for x, txt, fill in ((xr, r"$\sigma$", _GATE_FILL), (xz, r"$\sigma$", _GATE_FILL), (xn, "tanh", _TANH_FILL)):
        _line(ax, [(x, bus), (x, gate_y - 0.3)], lw=1.5)
        _box(ax, x, gate_y, txt, fill=fill)
    # reset gate -> scales the recurrent part of the candidate
    _line(ax, [(xr, gate_y + 0.3), (xr, 2.75), (xn - 0.6, 2.75), (xn - 0.2, gate_y + 0.3)], arrow=True)
    ax.text(xz + 0.15, 2.2, r"$r_t$ (reset): how much of" + "\n" + r"$h_{t-1}$ the candidate may use",
            fontsize=8.5, color=plots.PALETTE["vermillion"])
    # update gate -> keep (z) and write (1 - z)
    _line(ax, [(xz, gate_y + 0.3), (xz, 3.3), (xkeep, 3.3), (xkeep, top - 0.22)], arrow=True)
    ax.text(xz - 0.55, 3.1, r"$z_t$", fontsize=10)
    ax.text(xz + 0.35, 3.42, "keep", fontsize=9, color=plots.PALETTE["blue"])
    _op(ax, 6.5, 3.3, r"1$-$", r=0.24)
    _line(ax, [(xkeep, 3.3), (6.5 - 0.24, 3.3)])
    ymul = 3.3
    _op(ax, xadd, ymul, r"$\times$")
    _line(ax, [(6.5 + 0.24, 3.3), (xadd - 0.22, ymul)], arrow=True)
    _line(ax, [(xn + 0.4, gate_y), (xadd, gate_y), (xadd, ymul - 0.22)], arrow=True)
    ax.text(xn + 0.45, gate_y + 0.12, r"$n_t$", fontsize=10)
    _line(ax, [(xadd, ymul + 0.22), (xadd, top - 0.22)], arrow=True)
    ax.text(xadd + 0.28, ymul + 0.3, "write", fontsize=9, color=plots.PALETTE["green"])
    ax.text(W - 0.2, 1.0, "PyTorch: z = 1 keeps the state.\nLecture: u = 1 - z, so u = 0 keeps it.",
            fontsize=8.5, ha="right", va="bottom", style="italic")
    cap = caption or ("One GRU step (PyTorch's convention). There is no separate cell: the state itself runs along the "
                      "top, kept in proportion z and overwritten by the candidate n in proportion 1 - z.")
    return plots.finish(fig, name, cap)
