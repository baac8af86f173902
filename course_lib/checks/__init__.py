"""Checks for the assignments: ``check_<exercise>(student_function)``.

Each returns ``None`` when the function is right and raises ``AssertionError`` with a hint that
names the likely mistake when it is not. In a notebook they run the *visible* cases in your own
kernel. At grading time the same cases, comparison and diagnosis run as a judge outside your
kernel, on inputs drawn at grading time (see ``autograder/``).

There is one ``check_<name>`` per spec of the exercise registry (``course_lib/exercises``), made from
it when first asked for (the specs themselves use this package's modules).
"""
from __future__ import annotations

import functools

from ._core import Exercise, Verdict, run_check, verdict  # noqa: F401
from .training import check_load_model  # noqa: F401 (reads the model file the notebook saved)

_GROUPS = ("GRADFLOW", "LSTM_GRU", "DEEP_BIDIR", "TRAINING")


def _checker(ex):
    def check(fn, *, hidden: bool = False, seed: int | None = None) -> None:
        run_check(ex, fn, hidden=hidden, seed=seed)

    check.__name__ = f"check_{ex.name}"
    check.__doc__ = (f"Check your ``{ex.name}``: None when right, AssertionError with a hint when "
                     f"not. ``hidden=True`` adds hidden-style cases (more shapes, float64, edge cases).")
    return check


@functools.cache
def _made() -> dict:
    """``ASSIGNMENTS`` ({folder: {name: Exercise}}), the four groups and every ``check_<name>``."""
    from ..exercises import REGISTRY

    assignments = {folder: {s.name: s.exercise for s in a.specs} for folder, a in REGISTRY.items()}
    out = {"ASSIGNMENTS": assignments, **dict(zip(_GROUPS, assignments.values()))}
    for exercises in assignments.values():
        for name, ex in exercises.items():
            if name != "load_model":  # its check reads a file: training.check_load_model
                out[f"check_{name}"] = _checker(ex)
    return out


def __getattr__(name):
    """``check_<name>``, ``ASSIGNMENTS`` and the four groups, made from the registry on first use (PEP 562)."""
    # only the registry's names: anything else (a submodule being imported) is not made here
    if name.startswith("check_") or name == "ASSIGNMENTS" or name in _GROUPS:
        try:
            made = _made()
        except AttributeError as exc:  # would read as "no attribute": say what broke instead
            raise RuntimeError(f"the exercise registry (course_lib/exercises) failed to load: {exc}") from exc
        if name in made:
            return made[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    """The module's names, the registry's checks included."""
    return sorted(set(globals()) | set(_made()))
