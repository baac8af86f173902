"""Figures shared by lectures, assignments and the main job.

One colour-blind-safe palette (Okabe and Ito), one style, and :func:`finish`, which puts the
caption inside a figure (under its panels) and, when the main job runs (``COURSE_OUTPUT_DIR`` is
set), saves it.
Plot functions take the numbers an experiment returned; they compute nothing themselves.
"""
from __future__ import annotations

import math
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
# Never by hue alone: each model also keeps one line style and one marker in every lecture.
MODEL_STYLES = {
    "rnn": ("--", "s"),
    "irnn": ("-.", "v"),
    "lstm": ("-", "o"),
    "gru": (":", "^"),
    "clipped": ("-", "o"),
    "unclipped": ("--", "s"),
    "residual": ("-", "o"),
    "plain": ("--", "s"),
    "highway": ("-.", "D"),
    "dense": (":", "^"),
}


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


def line_style(name: str, i: int = 0, n_points: int = 20) -> dict:
    """Keyword arguments for ``ax.plot`` that tell a named model apart without colour: its colour,
    line style and marker (a few markers per line, ``markevery`` from ``n_points``)."""
    ls, marker = MODEL_STYLES.get(str(name).lower(), (LINESTYLES[i % len(LINESTYLES)], "osv^D"[i % 5]))
    return {"color": colour(name, i), "ls": ls, "marker": marker, "markevery": max(1, n_points // 6), "ms": 4}


def output_dir() -> Path | None:
    """Where the main job collects figures, or ``None`` in an interactive session."""
    out = os.environ.get("COURSE_OUTPUT_DIR")
    return Path(out) if out else None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "figure"


def alt_text(fig, caption: str = "") -> str:
    """The figure's alternative text: its caption, else its titles (never empty)."""
    if caption and caption.strip():
        return " ".join(caption.split())
    titles = [fig._suptitle.get_text()] if getattr(fig, "_suptitle", None) is not None else []
    titles += [ax.get_title() for ax in fig.axes if ax.get_title()]
    return "; ".join(t for t in titles if t) or "a plot (no caption)"


def _png_with_alt(png):
    """Wrap IPython's PNG formatter for figures so each image output carries ``{"alt": ...}`` metadata."""

    def fmt(fig):
        data = png(fig)
        alt = getattr(fig, "course_alt", None)
        if data is None or not alt:
            return data
        if isinstance(data, tuple):
            data, md = data
            return data, {**(md or {}), "alt": alt}
        return data, {"alt": alt}

    fmt._course_alt = True
    return fmt


def _register_alt_formatter() -> bool:
    """Inside IPython: make the PNG of every figure carry its alt text in the output's metadata."""
    try:
        from IPython import get_ipython
        from matplotlib.figure import Figure

        ip = get_ipython()
        if ip is None:
            return False
        f = ip.display_formatter.formatters["image/png"]
        current = f.lookup_by_type(Figure)
        if not getattr(current, "_course_alt", False):
            f.for_type(Figure, _png_with_alt(current))
        return True
    except Exception:  # noqa: BLE001 - no formatter for figures yet: the printed caption still says it
        return False


def finish(fig, name: str, caption: str | None, default: str | None = None, title: str | None = None):
    """Caption the figure (what to see in it) and save it when the main job runs.

    ``caption`` None takes ``default``: a plot function's own caption, which a lecture may replace.
    ``title``: the figure's own title, above all its panels (``fig.suptitle``), when it has one.

    The caption is also the figure's alt text (``fig.course_alt``, see :func:`alt_text`): in a
    notebook it is printed as text next to the figure (``Figure: ...``) and stored in the image
    output's metadata (``{"image/png": {"alt": ...}}``), and the static site (coursetools/site.py)
    puts it in the ``<img alt>``. Returns the figure so a notebook cell can end with ``finish(...)``.
    """
    caption = default if caption is None else caption
    if title:
        fig.suptitle(title, fontsize=10)
    fig.course_alt = alt_text(fig, caption)
    if caption:
        _caption_inside(fig, caption)
    else:
        fig.set_layout_engine("tight")
    out = output_dir()
    if out is not None:
        (out / "figures").mkdir(parents=True, exist_ok=True)
        fig.savefig(out / "figures" / f"{_slug(name)}.png", bbox_inches="tight",
                    metadata={"Title": name, "Description": fig.course_alt})
    if _register_alt_formatter():
        print(f"{FIGURE_PREFIX}{fig.course_alt}")
    return fig


FIGURE_PREFIX = "Figure: "
CAPTION_PAD = 0.06  # inches between the caption and the figure's bottom and right edges, and above it


def _caption_inside(fig, caption: str) -> None:
    """Put ``caption`` in a strip along the figure's bottom edge, inside the figure: the caption is
    wrapped once (:func:`_wrap_once`) to the figure's width less ``CAPTION_PAD``, the figure grows
    taller by the caption's height (its lines at 9 pt, measured by the canvas renderer, plus
    ``CAPTION_PAD`` above and below, inches), and the panels are laid out above the strip when the
    figure is drawn (a tight layout engine with ``rect``: a figure never drawn, as at grading, is never
    laid out). Nothing lies outside the figure, so saving it needs no tight bounding box (a second
    layout pass) to show the caption. The caption's offset from the bottom is in inches, so it stays
    put at any dpi."""
    from matplotlib.transforms import blended_transform_factory

    at = blended_transform_factory(fig.transFigure, fig.dpi_scale_trans)
    text = fig.text(0.01, CAPTION_PAD, caption, ha="left", va="bottom", wrap=True, fontsize=9, style="italic",
                    transform=at)
    _wrap_once(fig, text, margin=CAPTION_PAD * fig.dpi)
    renderer = getattr(fig.canvas, "get_renderer", None)
    lines = 1 + text.get_text().count("\n")
    tall = (text.get_window_extent(renderer()).height / fig.dpi if renderer else lines * 9 * 1.2 / 72)
    strip = tall + 2 * CAPTION_PAD
    width, height = fig.get_size_inches()
    fig.set_size_inches(width, height + strip)
    fig.set_layout_engine("tight", rect=(0, strip / (height + strip), 1, 1))


def _wrap_once(fig, text, margin: float = 0.0) -> None:
    """Break ``text`` (a left-aligned, unrotated ``wrap=True`` text of ``fig``) into its lines now, once.

    The rule is matplotlib's own: each line takes as many words as stay narrower than the room from
    the text's left edge to the figure's right edge less ``margin`` (pixels, at the figure's dpi), at least one.
    Matplotlib applies it again at every layout and every draw, measuring each longer prefix of each
    line; for a caption that was about a third of the time a figure takes to draw and save. Here each
    line is found by doubling, then bisection (a longer prefix is never narrower): the characters measured
    stay within a small multiple of the caption's length times the log of a line's words. Left to
    matplotlib (unchanged) when the canvas has no renderer to measure with, or the text holds mathtext
    or line breaks."""
    get_renderer, raw = getattr(fig.canvas, "get_renderer", None), text.get_text()
    if get_renderer is None or "$" in raw or "\n" in raw:
        return
    renderer, prop, words = get_renderer(), text.get_fontproperties(), raw.split(" ")
    room = fig.bbox.x1 - margin - text.get_transform().transform(text.get_position())[0]

    def fits(first: int, n: int) -> bool:
        wide = renderer.get_text_width_height_descent(" ".join(words[first:first + n]), prop, ismath=False)[0]
        return math.ceil(wide) <= room

    lines, first = [], 0
    while first < len(words):
        rest, lo, hi = len(words) - first, 1, 2  # at least one word goes on the line
        while hi <= rest and fits(first, hi):  # doubling: nothing measured is over twice the line (a
            lo, hi = hi, 2 * hi  # long caption's whole rest, measured for each line, made it quadratic)
        hi = min(hi - 1, rest)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(first, mid):
                lo = mid
            else:
                hi = mid - 1
        lines.append(" ".join(words[first:first + lo]))
        first += lo
    text.set_text("\n".join(lines))
    text.set_wrap(False)


def accuracy_by_depth_axes(ax, depths, xlabel: str) -> None:
    """Axes for test accuracy against depth: a log x axis ticked at exactly ``depths`` (no minor
    ticks), labelled ``xlabel``, and accuracy from 0 to 1.05 on y (lecture 5's depth plots)."""
    ax.set_xscale("log")
    ax.set_xticks(depths)
    ax.set_xticklabels([str(int(v)) for v in depths])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.05)
