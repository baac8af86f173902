"""One knob for experiment size.

Every experiment asks this module how big to be, so CI, a laptop and a GPU run the same code
at different sizes:

- ``ci``       seconds per experiment; what the test suite runs (claims still asserted)
- ``default``  a few minutes per lecture on a 2-core CPU; what readers and the main job run
- ``full``     larger runs for a GPU or a patient reader

The level comes from the ``COURSE_BUDGET`` environment variable (``default`` when unset), or is
set in code with :func:`set_budget` / the :func:`use_budget` context manager.
"""
from __future__ import annotations

import contextlib
import os

LEVELS = ("ci", "default", "full")
_override: str | None = None


def _check(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"budget must be one of {LEVELS}, got {level!r}")
    return level


def current() -> str:
    """The budget level in force: the override, else ``$COURSE_BUDGET``, else ``default``."""
    if _override is not None:
        return _override
    return _check(os.environ.get("COURSE_BUDGET", "default").strip().lower() or "default")


def set_budget(level: str | None) -> None:
    """Set the level for this process (``None`` goes back to the environment variable)."""
    global _override
    _override = None if level is None else _check(level)


@contextlib.contextmanager
def use_budget(level: str):
    """Temporarily run at ``level``: ``with use_budget("ci"): ...``."""
    global _override
    old = _override
    _override = _check(level)
    try:
        yield level
    finally:
        _override = old


def pick(ci, default, full=None, level: str | None = None):
    """Choose a size by budget: ``steps = pick(ci=150, default=1500, full=6000)``.

    ``full`` falls back to ``default`` when not given.
    """
    level = _check(level) if level is not None else current()
    if level == "ci":
        return ci
    if level == "full" and full is not None:
        return full
    return default
