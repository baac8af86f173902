"""Release and collect through nbgrader's exchange, as JupyterLab's Assignment List uses it (issue 13).

Two course directories in temporary folders share one exchange folder: the instructor's is this
repository (its ``nbgrader_config.py``, with ``AUTOGRADER_STATE_DIR`` and ``NBGRADER_EXCHANGE`` pointing
into the temporary folder), the student's is a home folder of its own whose
``~/.jupyter/nbgrader_config.py`` holds only what the README gives students on a hub (the exchange and
the course id). The instructor releases with ``NbGraderAPI.release_assignment``; the student ("alice",
another ``HOME``; ``CourseDirectory.student_id`` stands in for a second OS account) lists, fetches and
submits with nbgrader's own exchange classes, the ones the Assignment List calls, after putting the
answers of the ``correct`` sample into the fetched notebook; the instructor collects with
``NbGraderAPI.collect``, then grades a copy of nbgrader's ``submitted/`` tree with
``python -m autograder grade``, as the README says: 12/12, with the submission time nbgrader recorded.
"""
import csv
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
A = "01_gradient_flow"
COURSE = "fancy-rnns"
CORRECT = ROOT / "autograder" / "samples" / A / "correct" / f"{A}.ipynb"
RELEASE = ROOT / "assignments" / A / f"{A}.ipynb"
STUDENT = "alice"
LIMITS = {"AUTOGRADER_CELL_TIMEOUT": "8", "AUTOGRADER_CALL_TIMEOUT": "4", "AUTOGRADER_TOTAL_TIMEOUT": "120"}


def _student_config(home: Path, exchange: Path):
    """The student's nbgrader config, as the README tells a hub to give it (nothing from this repository)."""
    from traitlets.config.loader import PyFileConfigLoader

    jupyter = home / ".jupyter"
    jupyter.mkdir(parents=True)
    (jupyter / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.Exchange.root = {str(exchange)!r}\n"
        f"c.CourseDirectory.course_id = {COURSE!r}\n")
    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(jupyter)).load_config()
    # JupyterLab started in the student's home: that is the course directory and where assignments land
    cfg.CourseDirectory.root = str(home)
    cfg.Exchange.assignment_dir = str(home)
    return cfg


def _student_run(kind: str, cfg, list_submitted=False, **course_dir):
    """What the Assignment List's handlers do: an exchange app from nbgrader's ExchangeFactory, started."""
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange import ExchangeFactory

    cfg = cfg.copy()
    if list_submitted:  # the Assignment List's "submitted" section: the student's own cache
        cfg.ExchangeList.cached = True
    for k, v in course_dir.items():
        setattr(cfg.CourseDirectory, k, v)
    app = getattr(ExchangeFactory(config=cfg), kind)(coursedir=CourseDirectory(config=cfg),
                                                     authenticator=Authenticator(config=cfg), config=cfg)
    return app.start()


def _answers(nb) -> dict:
    return {c.metadata.nbgrader["grade_id"]: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def test_release_fetch_submit_collect_grade(tmp_path, monkeypatch):
    from nbgrader.utils import parse_utc

    from autograder import pipeline

    exchange, state, home = tmp_path / "exchange", tmp_path / "state", tmp_path / "home" / STUDENT
    # the instructor's side: this repository's config, its state and exchange moved into tmp_path
    monkeypatch.setenv("AUTOGRADER_STATE_DIR", str(state))
    monkeypatch.setenv("AUTOGRADER_SECRET", "exchange-test-secret")
    monkeypatch.setenv("NBGRADER_EXCHANGE", str(exchange))
    monkeypatch.delenv("NBGRADER_DB_URL", raising=False)
    exchange.mkdir()  # as the README says: mkdir -p ...; chmod 777 ...
    exchange.chmod(0o777)

    api = pipeline.nbgrader_api(ROOT)
    assert api.coursedir.course_id == COURSE
    assert api.config.Exchange.root == str(exchange)

    # 1. instructor releases the committed release (assignments/) into the exchange
    r = api.release_assignment(A)
    assert r["success"], r.get("error") or r.get("log")
    outbound = exchange / COURSE / "outbound" / A
    assert (outbound / f"{A}.ipynb").read_bytes() == RELEASE.read_bytes()
    assert stat.S_IMODE(exchange.stat().st_mode) == 0o777
    assert stat.S_IMODE((exchange / COURSE / "inbound").stat().st_mode) == 0o2733  # students drop in, never list

    # 2. the student, another user with a home and course directory of their own, sees it, fetches it
    with monkeypatch.context() as student:
        for var in ("JUPYTER_DATA_DIR", "XDG_DATA_HOME", "JUPYTER_CONFIG_DIR"):
            student.delenv(var, raising=False)
        student.setenv("HOME", str(home))
        cfg = _student_config(home, exchange)
        # nbgrader names a submission after the process's OS account (root here, like the instructor):
        # the student's own id stands in for a second local user
        cfg.CourseDirectory.student_id = STUDENT

        listed = _student_run("List", cfg)
        assert [(x["course_id"], x["assignment_id"], x["status"]) for x in listed] == [(COURSE, A, "released")]

        _student_run("FetchAssignment", cfg, assignment_id=A)
        work = home / A / f"{A}.ipynb"
        assert work.read_bytes() == RELEASE.read_bytes()

        # 3. the student answers: the correct sample's solution cells go into the fetched notebook
        nb, correct = nbformat.read(str(work), as_version=4), nbformat.read(str(CORRECT), as_version=4)
        want = _answers(correct)
        assert set(_answers(nb)) == set(want) and _answers(nb) != want
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("solution"):
                cell.source = want[cell.metadata.nbgrader["grade_id"]]
        nbformat.write(nb, str(work))

        # 4. ... and submits it (inbound, plus the Assignment List's cache in the student's home)
        _student_run("Submit", cfg, assignment_id=A)
        [sub] = list((exchange / COURSE / "inbound").iterdir())
        assert sub.name.startswith(f"{STUDENT}+{A}+")
        assert list((home / ".local" / "share" / "jupyter" / "nbgrader_cache" / COURSE).iterdir())
        listed = _student_run("List", cfg, list_submitted=True)
        assert [s["timestamp"] for x in listed for s in x.get("submissions", [])] \
            == [(sub / "timestamp.txt").read_text()]

    # 5. the instructor collects: nbgrader's submitted/STUDENT/ASSIGNMENT/, with timestamp.txt
    assert not (state / "submitted").exists()
    r = api.collect(A)
    assert r["success"], r.get("error") or r.get("log")
    collected = state / "submitted" / STUDENT / A
    assert _answers(nbformat.read(str(collected / f"{A}.ipynb"), as_version=4)) == want
    stamp = (collected / "timestamp.txt").read_text()
    assert stamp == (sub / "timestamp.txt").read_text()

    # 6. ... and grades a copy of that tree with the grading command, as the README says
    copy = tmp_path / "collected-01"
    shutil.copytree(state / "submitted", copy)
    env = dict(os.environ, OMP_NUM_THREADS="1", **LIMITS)
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", A, str(copy), "--workers", "1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(state / "runs" / A / "grades.csv") as f:
        [row] = list(csv.DictReader(f))
    assert (row["student_id"], float(row["score"]), float(row["max_score"]), row["status"]) \
        == (STUDENT, 12.0, 12.0, "ok"), row
    assert parse_utc(row["timestamp"]) == parse_utc(stamp)  # the time nbgrader's submit wrote, collect kept
    assert float(row["late_penalty"] or 0) == 0  # no due date set: never late
