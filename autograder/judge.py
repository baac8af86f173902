"""The judge: cases from a secret seed, the student's functions run in the sandbox, verdicts here.

Nothing the student's process says is trusted except the arrays its functions returned: the
verdict for each exercise is computed in this (the grader's) process by ``course_lib.checks``
against ``course_lib.reference``. Hidden cases are inputs drawn at grading time from a seed
derived from a secret and the student's id, so they differ from student to student and never
appear in a notebook.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets
import time
from pathlib import Path

from course_lib.checks import ASSIGNMENTS
from course_lib.checks._core import Verdict, verdict
from course_lib.exercises import REGISTRY

from . import sandbox

ROOT = Path(__file__).resolve().parents[1]
SECRET_FILE = ROOT / "autograder" / ".secret_seed"


def secret() -> str:
    """The grading secret: ``$AUTOGRADER_SECRET``, else ``autograder/.secret_seed`` (created, 0600)."""
    env = os.environ.get("AUTOGRADER_SECRET")
    if env:
        return env
    from .config import state_dir

    path = state_dir() / SECRET_FILE.name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        except FileExistsError:  # another worker made it first
            pass
    return path.read_text().strip()


def student_seed(assignment: str, student: str) -> int:
    h = hashlib.sha256(f"{secret()}|{assignment}|{student}".encode()).digest()
    return int.from_bytes(h[:4], "little")


def is_test_cell(cell) -> bool:
    nbg = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(nbg.get("grade")) and not nbg.get("solution")


def exercise_of(cell) -> str | None:
    gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
    return gid[len("test_"):] if gid.startswith("test_") else None


def code_cells(nb) -> list:
    """The cells the sandbox runs: every code cell except the locked test cells, in order."""
    out = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code" or is_test_cell(cell):
            continue
        src = cell.get("source", "")
        out.append({"index": i, "source": "".join(src) if isinstance(src, list) else str(src)})
    return out


@dataclasses.dataclass
class Judgement:
    verdicts: dict  # exercise -> Verdict
    cells: dict  # cell source -> list of captured outputs (in order of appearance)
    events: list
    mode: str
    attempts: int
    seconds: float
    wall_trips: list = dataclasses.field(default_factory=list)  # steps stopped on the wall clock only
    cpu_seconds: float = 0.0  # the student's code, measured by the grader
    startup_seconds: float = 0.0  # the sandbox's own start-up, never charged
    judge_seconds: float = 0.0  # verdicts computed here, against the reference
    start: str = "cold"  # how its sandbox started: warm (forked from the worker's warm parent) or cold
    start_note: str = ""  # why a warm start fell back to a cold one

def attachments(assignment: str, folder: Path | None) -> dict:
    """Files handed in next to the notebook that an exercise is graded on (assignment 4: the trained
    model), as arrays of bytes: ``{exercise: {name: array}}``. ``folder`` is the student's own folder
    (``None`` for a notebook handed in without one). Read as bytes, never unpickled here.

    ``attach`` never sees the student's folder itself: it gets a private copy of the regular files
    directly in it (``safefs.copy_regular_files``: ``folder`` opened without following a link, no
    symbolic link, FIFO, device or socket inside read, each file capped), so a linked ``charlm.pt``
    counts as no file at all."""
    attachers = {name: ex.attach for name, ex in ASSIGNMENTS[assignment].items() if getattr(ex, "attach", None)}
    if not attachers:
        return {}
    if folder is None:
        return {name: attach(None) for name, attach in attachers.items()}
    import tempfile

    from . import safefs

    with tempfile.TemporaryDirectory(prefix="autograder-attach-") as view:
        safefs.copy_regular_files(folder, Path(view), keep=lambda n: not n.endswith(".ipynb"))
        return {name: attach(Path(view)) for name, attach in attachers.items()}


def warm_imports(assignment: str) -> tuple:
    """Module names the sandbox imports in its setup for ``assignment`` (its notebooks import them on first
    use: ``Assignment.warm``), beyond the runner's own list: a grading worker's warm parent imports them once."""
    return tuple(REGISTRY[assignment].warm)


def warm_up(assignment: str) -> None:
    """Set a grading worker up for ``assignment`` before its first submission (the grader's own work, charged to
    no student): import what its notebooks and reference import on first use (:func:`warm_imports`), and compute
    the reference's results on its visible cases, the same for every student (remembered by
    ``course_lib.checks._core.reference_result``; an exercise graded on a handed-in file has none, its cases hold
    that file: what it needs for every student is loaded instead, ``prepare``)."""
    import importlib

    from course_lib.checks._core import reference_result

    for name in warm_imports(assignment):
        importlib.import_module(name)
    for ex in ASSIGNMENTS[assignment].values():
        if getattr(ex, "attach", None):
            if getattr(ex, "prepare", None):  # e.g. the held-out text a handed-in model is measured on
                ex.prepare()
            continue
        ref = ex.reference()
        for case in ex.cases(0, hidden=False):
            reference_result(ex, ref, case)


def judge_notebook(nb, assignment: str, student: str, limits: sandbox.Limits, lib: Path, scratch: Path,
                   folder: Path | None = None) -> Judgement:
    exercises = ASSIGNMENTS[assignment]
    seed = student_seed(assignment, student)
    cases = {name: ex.cases(0, hidden=False) + ex.cases(seed, hidden=True) for name, ex in exercises.items()}
    for name, arrays in attachments(assignment, folder).items():
        for c in cases[name]:
            c.arrays.update(arrays)
    inputs = {f"{name}/{i}/{k}": v for name, cs in cases.items() for i, c in enumerate(cs) for k, v in c.arrays.items()}
    plan = [{"name": name, "protocol": ex.protocol, "arg_names": ex.arg_names,
             "scalar_names": ex.scalar_names, "n_cases": len(cases[name])} for name, ex in exercises.items()]
    cells = code_cells(nb)
    r = sandbox.run(cells, plan, inputs, limits, lib, scratch, imports=warm_imports(assignment))
    t0 = time.monotonic()
    verdicts = {name: verdict(ex, cases[name], r.judge[name]) for name, ex in exercises.items()}
    judge_seconds = round(time.monotonic() - t0, 3)
    by_source = {}
    for c in cells:
        by_source.setdefault(c["source"], []).append(r.cells.get(c["index"]))
    return Judgement(verdicts, by_source, r.events, r.mode, r.attempts, r.seconds, r.wall_trips, r.cpu_seconds,
                     r.startup_seconds, judge_seconds, r.start, r.start_note)


def malformed_results(verdicts: dict) -> list:
    """The exercises whose results failed their schema check (``course_lib.checks._schema``): entries missing,
    added or malformed, which no function the student could write produces, only patched result helpers in
    the sandbox. Such an exercise fails like a wrong answer; the grading command also says so in its row."""
    from course_lib.checks._schema import TAMPERED

    return [name for name, v in verdicts.items() if not v.passed and TAMPERED in (v.hint or "")]


def verdict_text(name: str, v: Verdict) -> str:
    if v.passed:
        return (f"{name}: passed all {v.n_cases} cases ({v.n_cases - v.n_hidden} visible, {v.n_hidden} hidden), "
                "checked by the grader outside your notebook.\n")
    where = "a hidden case" if v.failed_hidden else "a visible case"
    return f"{v.hint}\n(failed on {where}: {v.failed_label})"


# the judgement of the submission being autograded, set by the grading command (in the same
# process) just before it calls nbgrader: (assignment, student, notebook) -> Judgement
CACHE: dict = {}
