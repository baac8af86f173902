"""Figures shared by lectures, assignments and the main job.

One colour-blind-safe palette (Okabe and Ito), one style, and :func:`finish`, which puts the
caption under a figure and, when the main job runs (``COURSE_OUTPUT_DIR`` is set), saves it.
Plot functions take the numbers an experiment returned; they compute nothing themselves.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib

if not os.environ.get("MPLBACKEND") and "ipykernel" not in os.environ.get("JPY_PARENT_PID", "x"):
    # headless runs (CI, the main job) need no display; notebooks keep their inline backend
    try:
        import IPython  # noqa: F401

        if IPython.get_ipython() is None:
            matplotlib.use("Agg")
    except Exception:
        matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
PALETTE = {
    "black": "#000000",
    "orange": "#E69F00",
    "skyblue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}
CYCLE = [PALETTE[k] for k in ("blue", "orange", "green", "vermillion", "purple", "skyblue", "yellow", "black")]
# The same model keeps the same colour in every lecture.
MODEL_COLOURS = {
    "rnn": PALETTE["vermillion"],
    "lstm": PALETTE["blue"],
    "gru": PALETTE["green"],
    "bound": PALETTE["black"],
    "clipped": PALETTE["blue"],
    "unclipped": PALETTE["vermillion"],
    "residual": PALETTE["green"],
    "plain": PALETTE["vermillion"],
    "highway": PALETTE["purple"],
    "dense": PALETTE["orange"],
}
LINESTYLES = ["-", "--", ":", "-."]


def style() -> None:
    """Apply the course style (palette, grid, readable sizes)."""
    plt.rcParams.update(
        {
            "axes.prop_cycle": matplotlib.cycler(color=CYCLE),
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.dpi": 100,
            "savefig.dpi": 120,
            "font.size": 10,
            "legend.frameon": False,
        }
    )


style()


def colour(name: str, i: int = 0) -> str:
    """The colour of a named model or series, else the i-th palette colour."""
    return MODEL_COLOURS.get(str(name).lower(), CYCLE[i % len(CYCLE)])


def output_dir() -> Path | None:
    """Where the main job collects figures, or ``None`` in an interactive session."""
    out = os.environ.get("COURSE_OUTPUT_DIR")
    return Path(out) if out else None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "figure"


def finish(fig, name: str, caption: str):
    """Caption the figure (what to see in it) and save it when the main job runs.

    Returns the figure so a notebook cell can end with ``finish(...)`` and show it.
    """
    if caption:
        fig.text(0.01, -0.02, caption, ha="left", va="top", wrap=True, fontsize=9, style="italic")
    fig.tight_layout()
    out = output_dir()
    if out is not None:
        (out / "figures").mkdir(parents=True, exist_ok=True)
        fig.savefig(out / "figures" / f"{_slug(name)}.png", bbox_inches="tight")
    return fig
