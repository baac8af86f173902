"""End to end: the sample class through `autograder.pipeline.grade` (sandbox, judge, nbgrader).

Every sample gets its exact expected score and status, the gradebook holds the judge's scores,
no submission changes another's grade, feedback gives nothing away, and re-running is
idempotent and resumes. Runs at CI budget (2 workers, short time limits).
"""
import csv
import json
import os
import shutil
from html import escape
from pathlib import Path

import nbformat
import pytest

from autograder import config, pipeline

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
A = "01_gradient_flow"
SAMPLES = ROOT / "autograder" / "samples" / A
LIMITS = dict(cell_timeout=8.0, call_timeout=4.0, total_timeout=120.0)


def expected():
    with open(SAMPLES / "expected.csv") as f:
        rows = {r["student_id"]: (float(r["score"]), r["status"]) for r in csv.DictReader(f)}
    rows["solution_notebook"] = (12.0, "ok")  # solutions/ handed in as is: full marks
    rows["release_blank"] = (0.0, "not_attempted")  # the release handed in untouched: zero, said so
    return rows


def run(subs, state, monkeypatch, limits=None, **kw):
    monkeypatch.setenv("AUTOGRADER_STATE_DIR", str(state))
    monkeypatch.setenv("AUTOGRADER_SECRET", "ci-secret")
    monkeypatch.delenv("NBGRADER_DB_URL", raising=False)
    cfg = config.load(**{**LIMITS, **(limits or {})})
    return pipeline.grade(A, subs, workers=2, cfg=cfg, log=lambda *a: None, **kw)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("class")
    subs, state = tmp / "submissions", tmp / "state"
    shutil.copytree(SAMPLES, subs, symlinks=True, ignore=shutil.ignore_patterns("expected.csv"))
    for link in [p for p in subs.rglob("*") if p.is_symlink()]:  # a sample's link still points into the repository
        target = os.path.normpath((SAMPLES / link.relative_to(subs)).parent / os.readlink(link))
        link.unlink()
        link.symlink_to(target)
    (subs / "solution_notebook").mkdir()
    shutil.copy(ROOT / "solutions" / A / f"{A}.ipynb", subs / "solution_notebook")
    shutil.copy(ROOT / "assignments" / A / f"{A}.ipynb", subs / "release_blank.ipynb")
    mp = pytest.MonkeyPatch()
    summary = run(subs, state, mp)
    yield {"summary": summary, "subs": subs, "state": state, "mp": mp,
           "rows": {r["student_id"]: r for r in summary.results}}
    mp.undo()


def test_every_sample_gets_its_exact_score_and_status(graded):
    rows, want = graded["rows"], expected()
    assert set(rows) == set(want)
    got = {sid: (r["score"], r["status"]) for sid, r in rows.items()}
    wrong = {sid: (got[sid], want[sid]) for sid in want if got[sid] != want[sid]}
    assert not wrong, "\n".join(f"{s}: got {g}, expected {w}; {rows[s]['detail']}" for s, (g, w) in wrong.items())
    assert all(r["max_score"] == 12 for r in rows.values())
    assert all(r["sandbox"] == "root" for r in rows.values() if r["status"] != "malformed")


def test_grades_csv(graded):
    with open(graded["summary"].csv) as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == pipeline.CSV_COLUMNS  # auto, manual, late parts: tests/test_grading_term.py
    assert {r["student_id"]: (float(r["score"]), r["status"]) for r in table} == expected()
    by_id = {r["student_id"]: r for r in table}
    assert by_id["file_renamed"]["file"].endswith("Copy of 01_gradient_flow (2).ipynb")
    assert "notebook named" in by_id["file_renamed"]["detail"]
    for sid, (_, status) in expected().items():
        if status != "ok":  # never a silent 0: every non-ok status says why
            assert by_id[sid]["detail"], sid
    # nothing a spreadsheet would evaluate (file names starting with = + - @)
    for row in table:
        for col in ("student_id", "status", "detail", "file"):
            assert row[col][:1] not in ("=", "+", "-", "@", "\t", "\r"), (col, row[col])
    assert by_id["HYPERLINK_csv_formula"]["file"] == "'=HYPERLINK(csv_formula).ipynb"
    assert by_id["2_3_csv_minus"]["file"] == "'-2+3_csv_minus.ipynb"
    # a link is never followed: reported in its own row
    assert "not a regular file: a symbolic link" in by_id["file_symlink_to_solution"]["detail"]
    assert by_id["file_symlink_to_solution"]["file"] == "file_symlink_to_solution/01_gradient_flow.ipynb"
    # student-made nbgrader metadata: named, rebuilt from the release
    assert "rnn_step" in by_id["cells_answer_marked_graded"]["detail"]
    added = by_id["cells_added_graded"]["detail"]
    assert "my_bonus" in added and "my_essay" in added and "cells duplicated: rnn_step" in added


def test_gradebook_holds_the_judges_verdicts(graded):
    """Per grade cell, nbgrader recorded exactly the judge's verdict (the sqlite attack changed nothing)."""
    from nbgrader.api import Gradebook

    from course_lib.checks import ASSIGNMENTS

    api = pipeline.nbgrader_api(ROOT)
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        for sid, r in graded["rows"].items():
            sub = gb.find_submission(A, sid)
            assert float(sub.score) == r["score"], sid
            for name, ex in ASSIGNMENTS[A].items():
                grade = gb.find_grade(f"test_{name}", A, A, sid)
                want = ex.points if r["verdicts"][name]["passed"] else 0
                assert grade.score == want, (sid, name)


HINT_WORDS = {  # sample: words its hints must contain
    "mistake_clip_per_parameter": "global norm", "mistake_clip_elementwise": "element-wise",
    "mistake_clip_norm_after": "after clipping", "mistake_clip_not_in_place": "in place",
    "mistake_clip_always_rescale": "already under the limit", "mistake_clip_no_zero_guard": "guard the division",
    "mistake_rnn_sigmoid": "sigmoid", "mistake_rnn_no_transpose": "transposed",
    "mistake_jacobian_no_derivative": "derivative of tanh is missing", "mistake_norms_frobenius": "Frobenius",
    "mistake_bound_eigenvalue": "eigenvalue", "blank": "not implemented yet", "slow_function": "time limit",
}


def test_hints_name_the_mistake(graded):
    hints = {sid: " ".join(v["hint"] or "" for v in r["verdicts"].values()) for sid, r in graded["rows"].items()}
    for sid, words in HINT_WORDS.items():
        assert words in hints[sid], (sid, hints[sid])


def test_feedback_gives_nothing_away(graded):
    feedback = graded["state"] / "feedback"
    # (the students' own code may mention anything; these can only come from the grader)
    forbidden = ["BEGIN HIDDEN", "hidden=True", str(ROOT), "/root/", "site-packages", "checks/_core.py",
                 "_runner.py", "Traceback (most recent call last)", "/tmp/"]
    for sid in graded["rows"]:
        html = (feedback / sid / A / f"{A}.html").read_text()
        for word in forbidden:
            assert word not in html, (sid, word)
    assert "checked by the grader outside your notebook" in (feedback / "correct" / A / f"{A}.html").read_text()
    # the linked solution notebook was never read: none of its code reaches that student's feedback
    from autograder.samples.make_samples import solution_code

    linked = (feedback / "file_symlink_to_solution" / A / f"{A}.html").read_text()
    assert "not a regular file: a symbolic link" in linked
    release = "\n".join(c.source for c in nbformat.read(str(ROOT / "assignments" / A / f"{A}.ipynb"), as_version=4).cells)
    secret = [ln.strip() for code in solution_code().values() for ln in code.splitlines()
              if len(ln.strip()) > 20 and ln.strip() not in release]  # solution lines the release lacks
    assert len(secret) > 5
    for line in secret:
        assert line not in linked and escape(line) not in linked, line
    assert "global norm" in (feedback / "mistake_clip_per_parameter" / A / f"{A}.html").read_text()


def test_feedback_names_the_figures_grading_did_not_draw_and_draws_them_when_asked(graded, tmp_path, monkeypatch):
    """By default the feedback shows each figure's caption where the figure would be (no image); with
    ``draw_figures`` (``grade --figures``) the figures themselves, each with its caption as alt text, and the
    same score. A student's own figure title never reaches the page as markup."""
    placeholder = "[Figure, not drawn at grading: run the notebook to see it."
    html = (graded["state"] / "feedback" / "correct" / A / f"{A}.html").read_text()
    assert html.count(placeholder) == 4 and "<img" not in html
    assert f"{placeholder} Your rnn_step, run 60 steps:" in html
    subs = tmp_path / "drawn"
    shutil.copytree(SAMPLES / "correct", subs / "correct")
    row = run(subs, tmp_path / "state", monkeypatch, limits={"draw_figures": True}).results[0]
    html = (tmp_path / "state" / "feedback" / "correct" / A / f"{A}.html").read_text()
    assert placeholder not in html and html.count('src="data:image/png;base64,') == 4
    assert 'alt="Your rnn_step, run 60 steps:' in html
    assert (row["score"], row["status"]) == (graded["rows"]["correct"]["score"], graded["rows"]["correct"]["status"])


def test_other_students_are_unaffected(graded, tmp_path, monkeypatch):
    """A control class graded on its own gets the same grades as inside the class of attackers."""
    subs = tmp_path / "control"
    subs.mkdir()
    for sid in ("correct", "partial", "mistake_clip_per_parameter"):
        shutil.copytree(SAMPLES / sid, subs / sid)
    alone = {r["student_id"]: r for r in run(subs, tmp_path / "state", monkeypatch).results}
    for sid, r in alone.items():
        together = graded["rows"][sid]
        assert (r["score"], r["status"], r["verdicts"]) == (together["score"], together["status"], together["verdicts"])


def test_rerun_is_idempotent_and_resumes(graded):
    csv_before = graded["summary"].csv.read_bytes()
    again = run(graded["subs"], graded["state"], graded["mp"])
    assert (again.graded, again.reused) == (0, len(graded["rows"]))
    assert again.csv.read_bytes() == csv_before
    runs = graded["state"] / "runs" / A
    for sid in ("correct", "fault_os_exit"):  # as if the run had been killed before these two
        (runs / f"{sid}.json").unlink()
    resumed = run(graded["subs"], graded["state"], graded["mp"])
    assert (resumed.graded, resumed.reused) == (2, len(graded["rows"]) - 2)
    assert resumed.csv.read_bytes() == csv_before
    assert json.loads((runs / "correct.json").read_text())["score"] == 12


def test_limits_are_measured_by_the_grader(graded):
    """Timeouts say which clock stopped them; a wall-clock stop was graded again alone first."""
    rows = graded["rows"]
    assert "s of CPU) and was stopped" in rows["attack_disable_timers"]["detail"]
    sleep = rows["fault_sleep"]["detail"]
    assert "on the wall clock" in sleep and "graded again alone" in sleep
    assert "could not be read" in rows["attack_forge_replies"]["detail"]
    assert "printed more than" in rows["attack_raw_output"]["detail"]
    assert all(r.get("startup_seconds", 0) > 0 for r in rows.values() if r["status"] not in ("malformed",))
