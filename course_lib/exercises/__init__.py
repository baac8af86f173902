"""The exercise registry: one spec per exercise (``course_lib/exercises/a<N>_<assignment>.py``), written once.

From the specs come the ``check_<name>`` functions (``course_lib.checks``), the notebook's stub and locked
test cell (``python -m course_lib.exercises sync``; ``python -m autograder check-release`` fails when a
notebook and its specs disagree), the sample classes with their ``expected.csv``
(``autograder/samples``), the mistake and variant tests (``tests/test_exercises.py``) and the README's
contract section (``python -m course_lib.exercises readme``). CONTRIBUTING.md walks through adding one.
"""
from __future__ import annotations

from ._spec import Assignment, Call, Mistake, Spec, Variant, answer_source, compile_function, def_line  # noqa: F401
from .a1_gradient_flow import ASSIGNMENT as A1
from .a2_lstm_gru_cells import ASSIGNMENT as A2
from .a3_deep_bidirectional import ASSIGNMENT as A3
from .a4_training_with_clipping import ASSIGNMENT as A4

REGISTRY = {a.folder: a for a in (A1, A2, A3, A4)}


def specs():
    """Every spec, in course order, as ``(assignment, spec)`` pairs."""
    return [(a, s) for a in REGISTRY.values() for s in a.specs]
