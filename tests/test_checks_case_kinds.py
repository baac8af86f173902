"""'All checks passed' means something (issue 17): the visible cases of every exercise hold every kind of case
its hidden ones test (a dtype, parameters given as a generator, padding, a batch of one, ...), so that a student
whose function passes the visible checks in the notebook is not surprised by a kind of input at grading."""
import pytest

from course_lib.checks import ASSIGNMENTS
from course_lib.checks._core import case_kinds

EXERCISES = [(a, name) for a, exs in ASSIGNMENTS.items() for name in exs]


@pytest.mark.parametrize("assignment,name", EXERCISES, ids=[n for _, n in EXERCISES])
def test_visible_cases_hold_every_kind_the_hidden_ones_test(assignment, name):
    ex = ASSIGNMENTS[assignment][name]
    visible = set().union(*(case_kinds(c) for c in ex.cases(0, hidden=False)))
    for seed in (0, 1, 2):
        hidden = set().union(*(case_kinds(c) for c in ex.cases(seed, hidden=True)))
        assert hidden <= visible, f"{name}: hidden kinds {sorted(hidden - visible)} never visible"


@pytest.mark.parametrize("name,kinds", [
    ("clip_grad_norm", {"parameters as a generator", "a .grad that is None", "float64"}),
    ("gradient_norms", {"T = 0", "non-normal W_hh", "float32"}),
    ("run_rnn", {"padding", "unsorted lengths", "every sequence full length", "gru cell", "float32"}),
    ("stacked_rnn", {"bidirectional", "residual", "a skip at layer 0 (I = D*H)", "float32"}),
    ("train_loop", {"gru", "resume", "nan", "a NaN before the first periodic checkpoint"}),
])
def test_the_hidden_cases_test_the_kinds_a_student_meets(name, kinds):
    ex = next(exs[name] for exs in ASSIGNMENTS.values() if name in exs)
    hidden = set().union(*(case_kinds(c) for c in ex.cases(0, hidden=True)))
    assert kinds <= hidden, sorted(kinds - hidden)
