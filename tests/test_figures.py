"""Every figure carries its caption as text: alt text on the figure, in the notebook output and on the site."""
import matplotlib.pyplot as plt

from course_lib import plots
from coursetools import site


def test_finish_sets_alt_text_from_the_caption_or_the_titles():
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    assert plots.finish(fig, "t", "A line that  rises.\n").course_alt == "A line that rises."
    fig2, ax2 = plt.subplots()
    ax2.set_title("loss per step")
    assert plots.finish(fig2, "t2", "").course_alt == "loss per step"
    plt.close("all")


def test_alt_formatter_adds_metadata_to_the_png():
    fmt = plots._png_with_alt(lambda fig: b"PNG")
    fig = plt.figure()
    fig.course_alt = "what to see"
    assert fmt(fig) == (b"PNG", {"alt": "what to see"})
    assert plots._png_with_alt(lambda fig: (b"PNG", {"width": 3}))(fig) == (b"PNG", {"width": 3, "alt": "what to see"})
    plt.close(fig)


def test_static_notebook_puts_alt_text_on_every_figure_cell():
    png = {"output_type": "display_data", "data": {"image/png": "AAAA"}, "metadata": {}}
    nb = {"metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {}, "source": "", "outputs": [
            {"output_type": "stream", "name": "stdout", "text": "x\nFigure: The RNN stays at chance.\n"}, png]},
        {"cell_type": "code", "metadata": {}, "source": "", "outputs": [
            {**png, "metadata": {"image/png": {"alt": "From the metadata."}}}]},
        {"cell_type": "code", "metadata": {}, "source": "", "outputs": [png]},
        {"cell_type": "code", "metadata": {}, "source": "", "outputs": []},
    ]}
    out = site.static_notebook(nb, title="03_lstm")
    alts = [c["metadata"].get("mystnb", {}).get("image", {}).get("alt") for c in out["cells"]]
    assert alts[0] == "The RNN stays at chance."
    assert alts[1] == "From the metadata."
    assert "03_lstm" in alts[2] and alts[3] is None


def test_lecture_plots_tell_models_apart_without_colour():
    styles = {plots.line_style(m)["ls"] + plots.line_style(m)["marker"] for m in ("rnn", "lstm", "gru", "irnn")}
    assert len(styles) == 4


def test_finish_wraps_the_caption_once_as_matplotlib_would():
    """plots.finish breaks its caption into lines once (matplotlib wraps a ``wrap=True`` text again at every
    layout and draw): the same lines as matplotlib's own rule, for any figure width."""
    words = "Your gradient norms (dots) never exceed the bound; for sigma < 1 both decay exponentially: a bb  ccc".split(" ")
    for k, width in enumerate((1.5, 3.0, 4.8, 6.5, 9.0)):
        caption = " ".join(words[k:] + words[:k] * 2)
        fig = plt.figure(figsize=(width, 3))
        text = fig.text(0.01, -0.02, caption, ha="left", va="top", wrap=True, fontsize=9, style="italic")
        fig.canvas.draw()
        theirs = text._get_wrapped_text()  # what matplotlib draws
        assert theirs.count("\n") >= (1 if width < 9 else 0)
        plots._wrap_once(fig, text)
        assert (text.get_text(), text.get_wrap()) == (theirs, False)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(3, 2))
    plots.finish(fig, "t", " ".join(words))
    caption = next(t for t in fig.texts if t.get_text().startswith("Your"))
    assert "\n" in caption.get_text() and not caption.get_wrap()
    plt.close(fig)


def test_a_long_caption_is_wrapped_in_about_linear_measurements():
    """Red team: a caption of thousands of words (built from a list of numbers, say) was measured whole at every
    line (its whole rest, then bisection of it): quadratic, 114 s of CPU for 20,000 words in the student's cell.
    The characters measured stay within a small multiple of the caption's length, and the lines are matplotlib's."""
    caption = " ".join(("a", "bb", "cccc", "0.125", "x")[k % 5] for k in range(4000))
    fig = plt.figure(figsize=(6.4, 3))
    text = fig.text(0.01, -0.02, caption, ha="left", va="top", wrap=True, fontsize=9)
    fig.canvas.draw()
    theirs = text._get_wrapped_text()
    renderer, measured = fig.canvas.get_renderer(), []
    real = renderer.get_text_width_height_descent
    renderer.get_text_width_height_descent = lambda s, *a, **k: measured.append(len(s)) or real(s, *a, **k)
    plots._wrap_once(fig, text)
    assert text.get_text() == theirs and theirs.count("\n") > 20
    assert sum(measured) < 40 * len(caption), (sum(measured), len(caption))
    plt.close(fig)


def _png_size(png: bytes) -> tuple[int, int]:
    import struct

    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def test_finish_puts_the_caption_inside_the_figure_below_the_panels():
    """The caption lies in a strip the figure grew by, under every panel's labels (no tight bounding box is needed
    to show it, none to keep it off the axes), for one and for several lines, with and without a suptitle."""
    words = "Your gradient norms (dots) never exceed your spectral bound (lines); for sigma < 1 both decay".split()
    for width, n_words, title in ((6.0, 4, None), (4.8, len(words), None), (6.5, len(words) * 2, "two panels")):
        fig, axes = plt.subplots(1, 2 if title else 1, figsize=(width, 3), squeeze=False)
        for ax in axes.ravel():
            ax.semilogy([1, 2, 3], [1e-3, 1e-1, 1e1], label="a")
            ax.set_xlabel("distance T - j (steps back)")
            ax.legend()
        plots.finish(fig, "t", " ".join((words * 2)[:n_words]), title=title)
        fig.canvas.draw()  # the panels are laid out when the figure is drawn (its layout engine)
        caption = next(t for t in fig.texts if t.get_text().startswith("Your"))
        renderer = fig.canvas.get_renderer()
        box, panels = caption.get_window_extent(renderer), [ax.get_tightbbox(renderer) for ax in fig.axes]
        assert fig.get_size_inches()[1] > 3 + box.height / fig.dpi
        assert 0 < box.x0 and box.x1 <= fig.bbox.x1 and 0 < box.y0 and box.y1 < min(p.y0 for p in panels)
        assert all(fig.bbox.contains(p.x0, p.y0) and fig.bbox.contains(p.x1 - 1, p.y1 - 1) for p in panels)
        plt.close(fig)


def test_the_sandbox_saves_a_finished_figure_as_it_is_and_a_students_own_with_a_tight_box():
    """At grading time (autograder/_runner.figures) a figure laid out by plots.finish is drawn once at its own
    size; a student's own figure (here with a note outside it) is cropped to what it shows, as a notebook shows it."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "autograder"))
    try:
        import _runner
    finally:
        sys.path.pop(0)
    plt.close("all")
    finished, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1])
    plots.finish(finished, "t", "A line that rises, and a caption long enough to take two lines at this width.")
    own, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1])
    own.text(0.01, -0.3, "a note below the figure")
    size = [(round(w * 72), round(h * 72)) for w, h in (finished.get_size_inches(), own.get_size_inches())]
    pngs, captions = zip(*_runner.figures())
    assert len(pngs) == 2 and not plt.get_fignums() and captions[0].startswith("A line that rises") and captions[1] == ""
    assert _png_size(pngs[0]) == size[0]
    assert _png_size(pngs[1])[1] > size[1][1] + 10
