"""The sandbox boundary, declared once: every module that runs beside student code.

:func:`autograder.sandbox.prepare_library` copies exactly these files into the folder the sandbox
sees (``/opt/course``), and ``tests/test_boundary.py`` reads the same lists to check the rule that
keeps the judge out of reach: no module here imports ``course_lib.reference`` (the answers) or
``course_lib.checks`` (the verdicts). A module that is not listed is not in the sandbox: adding one
is a decision written here, not a side effect of a file name.

- :data:`RUNTIME`   the grader's helpers, copied flat into ``_grader/`` and run as top-level modules
  (the runner, and the protocol modules that call the student's functions on plain arrays);
- :data:`LIBRARY`   the part of ``course_lib`` a graded notebook may import (``from course_lib
  import budget, plots``, the tasks, the models, the training loop), copied as ``course_lib/``;
- :data:`STUBS`     ``course_lib.reference`` and ``course_lib.checks`` replaced by stand-ins.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COURSE_LIB = ROOT / "course_lib"

# name in _grader/ -> source file (the protocol modules stay next to the checks, which also use them
# in the grader's own process to call the reference the same way)
RUNTIME = {
    "_runner.py": ROOT / "autograder" / "_runner.py",
    "_zygote.py": ROOT / "autograder" / "_zygote.py",  # a grading worker's warm parent (autograder/warm.py)
    "_protocol.py": COURSE_LIB / "checks" / "_protocol.py",
    "_protocol_rnn.py": COURSE_LIB / "checks" / "_protocol_rnn.py",
    "_protocol_train.py": COURSE_LIB / "checks" / "_protocol_train.py",
}

# files and packages of course_lib (relative paths) that the sandbox's course_lib copy holds
LIBRARY = ("__init__.py", "_validate.py", "budget.py", "plots.py", "models.py", "train.py", "tasks")

STUBS = {
    "reference/__init__.py":
        'raise ImportError("course_lib.reference is not available while grading: your own code is graded")\n',
    "checks/__init__.py":
        '"""Stand-in while grading: your functions are checked by the grader, outside this process."""\n\n\n'
        'def _deferred(*args, **kwargs):\n'
        '    print("(this check runs in the grader at grading time)")\n\n\n'
        'def __getattr__(name):\n'
        '    if name.startswith("check_"):\n'
        '        return _deferred\n'
        '    raise AttributeError(name)\n',
}

JUDGE = ("course_lib.reference", "course_lib.checks")  # what no module in the sandbox may import


def library_files() -> dict[str, Path]:
    """Every Python file of :data:`LIBRARY`: {path relative to ``course_lib/``: source file}."""
    out = {}
    for entry in LIBRARY:
        src = COURSE_LIB / entry
        files = sorted(src.rglob("*.py")) if src.is_dir() else [src]
        for f in files:
            out[f.relative_to(COURSE_LIB).as_posix()] = f
    return out
