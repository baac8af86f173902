"""Interactive explorers with a static fallback.

:func:`explorer` shows a static figure of a few chosen settings (what CI, the static site and a
front end without widget support display) and, when ipywidgets and an IPython kernel are
present, sliders that redraw the same plot. The plot function is the same for both, so the
static figure is exactly what the sliders would draw at those settings.
"""
from __future__ import annotations

import matplotlib.pyplot as plt

from . import plots


def widgets_available() -> bool:
    """True when ipywidgets imports and we run inside an IPython kernel."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython

        ip = get_ipython()
        return ip is not None and getattr(ip, "kernel", None) is not None
    except Exception:
        return False


def static_grid(draw, settings, title=None, ncols=None, name=None, caption=""):
    """One small panel per setting: ``draw(ax, **setting)`` on each. Returns the figure."""
    if not settings:
        raise ValueError("settings must list at least one setting to draw")
    n = len(settings)
    ncols = ncols or min(n, 3)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax, s in zip(axes.flat, settings):
        draw(ax, **s)
        ax.set_title(", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in s.items()),
                     fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return plots.finish(fig, name or (title or "explorer"), caption)


def explorer(draw, sliders: dict, static_settings: list[dict], title=None, name=None, caption=""):
    """Static panels for ``static_settings``, then live sliders if a widget front end can run them.

    ``draw(ax, **values)`` draws one setting on an axis. ``sliders`` maps each argument to an
    ipywidgets abbreviation (``(lo, hi, step)`` or a list of options). Returns the static figure.
    """
    fig = static_grid(draw, static_settings, title=title, name=name, caption=caption)
    if widgets_available():
        import ipywidgets as w
        from IPython.display import display

        def _redraw(**values):
            f, ax = plt.subplots(figsize=(6, 4))
            draw(ax, **values)
            plt.show()

        display(w.interactive(_redraw, **sliders))
    return fig
