"""The budget knob, the figure helpers and the widget fallback."""

import matplotlib
import pytest

from course_lib import budget, plots, report, widgets


def test_pick_follows_the_level():
    assert budget.pick(ci=1, default=2, full=3, level="ci") == 1
    assert budget.pick(ci=1, default=2, full=3, level="full") == 3
    assert budget.pick(ci=1, default=2, level="full") == 2
    with budget.use_budget("default"):
        assert budget.current() == "default" and budget.pick(1, 2) == 2
    assert budget.current() == "ci"  # the test fixture's level comes back


def test_environment_variable_and_bad_level(monkeypatch):
    budget.set_budget(None)
    try:
        monkeypatch.setenv("COURSE_BUDGET", "full")
        assert budget.current() == "full"
        monkeypatch.setenv("COURSE_BUDGET", "huge")
        with pytest.raises(ValueError, match="budget must be one of"):
            budget.current()
    finally:
        budget.set_budget("ci")


def test_palette_is_okabe_ito_and_models_keep_colours():
    assert plots.colour("lstm") == plots.PALETTE["blue"]
    assert plots.colour("unknown", 1) == plots.CYCLE[1]
    assert len(set(plots.CYCLE)) == 8


def test_finish_saves_when_main_job_runs(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path))
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    plots.finish(fig, "my figure/1", "what to see")
    assert (tmp_path / "figures" / "my_figure_1.png").stat().st_size > 1000
    monkeypatch.setenv("COURSE_NOTEBOOK", "01_x")
    assert report.read_claims(tmp_path) == [] and report.record("L", "a claim", True, value=1.5)
    assert report.read_claims(tmp_path) == [{"notebook": "01_x", "section": "L", "claim": "a claim", "holds": True,
                                             "kind": "claim", "value": 1.5}]


def test_explorer_falls_back_to_a_static_figure_without_a_kernel():
    calls = []

    def draw(ax, sigma, nl):
        calls.append((sigma, nl))
        ax.plot([0, 1], [0, sigma])

    assert not widgets.widgets_available()
    fig = widgets.explorer(draw, {"sigma": (0.1, 2.0, 0.1), "nl": ["tanh", "sigmoid"]},
                           [{"sigma": 0.5, "nl": "tanh"}, {"sigma": 1.5, "nl": "sigmoid"}])
    assert isinstance(fig, matplotlib.figure.Figure)
    assert calls == [(0.5, "tanh"), (1.5, "sigmoid")]
    assert sum(ax.get_visible() for ax in fig.axes) == 2
    with pytest.raises(ValueError, match="at least one setting"):
        widgets.static_grid(draw, [])
