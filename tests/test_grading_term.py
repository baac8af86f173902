"""An instructor's term for assignment 2, end to end, on a small class (issue 13): a due date, a class
graded with submission times, the written answer hand-graded through nbgrader's Gradebook API (as
formgrader's grade form does: ``manual_score`` set, ``needs_manual_grade`` cleared), one student
regraded twice (code changed: the hand grade is kept; the written answer changed: kept and marked for
review), a late student graded from a folder of their own (the class keeps its rows; nbgrader's late
penalty applies), ``nbgrader export`` and the LMS exports parsed back, the class overview, an
assignment-4 notebook handed in without its folder, offline feedback math, and a student's self-check
that never touches the instructor's gradebook.

The walk is one module fixture (grading is the expensive part); each test reads what it recorded.
Seeded (``AUTOGRADER_SECRET``), no wall-clock assertion.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import config, pipeline, reports
from state_helpers import isolate_state

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
A2, A4 = "02_lstm_gru_cells", "04_training_with_clipping"
SAMPLES = ROOT / "autograder" / "samples" / A2
LIMITS = dict(cell_timeout=25.0, call_timeout=10.0, total_timeout=150.0)
WRITTEN = "written_lstm_or_gru"  # the 2-point written answer, graded by hand
DUE = "2025-03-07 23:59:00 UTC"
XSS = "<img src=x onerror=alert(1)>"


def table(path):
    with open(path, newline="") as f:
        return {r["student_id"]: r for r in csv.DictReader(f)}


def set_answer(path, text):
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == WRITTEN)
    cell.source = text
    nbformat.write(nb, str(path))


def gradebook():
    from nbgrader.api import Gradebook

    api = pipeline.nbgrader_api(ROOT)
    return Gradebook(api.coursedir.db_url, api.coursedir.course_id)


def grade(folder, **kw):
    return pipeline.grade(A2, folder, workers=2, cfg=config.load(**LIMITS), log=lambda *a: None, **kw)


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("term")
    state = tmp / "state"
    mp = pytest.MonkeyPatch()
    isolate_state(mp, state)
    mp.chdir(ROOT)
    rec = {"tmp": tmp, "state": state, "runs": state / "runs" / A2}
    try:
        # the assignment is in the gradebook once its release is checked; the due date is set as
        # `nbgrader db assignment add ... --duedate` or formgrader's Manage Assignments would set it
        assert pipeline.release_is_fresh(A2)[0]
        with gradebook() as gb:
            gb.update_or_create_assignment(A2, duedate=DUE)

        # 1. the class: ann (all correct, on time per nbgrader's timestamp.txt), bob (blank), and a
        #    renamed notebook whose name is markup (its detail must reach the overview escaped)
        subs = tmp / "class"
        shutil.copytree(SAMPLES / "correct", subs / "ann")
        set_answer(subs / "ann" / f"{A2}.ipynb", "An LSTM: its cell state carries the gradient over long gaps.")
        (subs / "ann" / "timestamp.txt").write_text("2025-03-07 20:00:00.000000 UTC\n")
        shutil.copytree(SAMPLES / "blank", subs / "bob")
        (subs / "eve").mkdir()
        shutil.copy(ROOT / "assignments" / A2 / f"{A2}.ipynb", subs / "eve" / f"{XSS}.ipynb")
        rec["first"] = grade(subs)
        rec["csv_first"] = table(rec["runs"] / "grades.csv")

        # 2. a person grades ann's written answer (formgrader's grade form, through the Gradebook API)
        with gradebook() as gb:
            g = gb.find_grade(WRITTEN, A2, A2, "ann")
            g.manual_score, g.needs_manual_grade = 2.0, False
            gb.db.commit()
        r = subprocess.run([sys.executable, "-m", "autograder", "report", A2], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
        rec["report_out"] = r.stdout + r.stderr
        rec["csv_handgraded"] = table(rec["runs"] / "grades.csv")
        bob_json = (rec["runs"] / "bob.json").read_bytes()

        # 3. ann fixes her code (the written answer as it was): regrade her alone
        nb = nbformat.read(str(subs / "ann" / f"{A2}.ipynb"), as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell("checked_again = True"))
        nbformat.write(nb, str(subs / "ann" / f"{A2}.ipynb"))
        rec["regrade"] = grade(subs, students=["ann"])
        rec["csv_regrade"] = table(rec["runs"] / "grades.csv")
        rec["bob_untouched"] = (rec["runs"] / "bob.json").read_bytes() == bob_json

        # 4. ann rewrites her written answer: regraded, the hand grade kept and marked for review
        set_answer(subs / "ann" / f"{A2}.ipynb", "A GRU: fewer parameters, and the gaps here are short.")
        rec["changed"] = grade(subs, students=["ann"])
        rec["csv_changed"] = table(rec["runs"] / "grades.csv")

        # 5. a late student, graded from a folder of their own; the time comes from an LMS's CSV
        late = tmp / "late"
        shutil.copytree(SAMPLES / "correct", late / "dan")
        times = tmp / "times.csv"
        times.write_text("student_id,timestamp\ndan,2025-03-09 10:00:00 UTC\n")
        rec["late"] = grade(late, timestamps=pipeline.read_timestamps(times))
        rec["csv_late"] = table(rec["runs"] / "grades.csv")

        # 6. exports: nbgrader's own (from the repository root, as an instructor runs it) and the LMS ones
        root_csv_before = (ROOT / "grades.csv").exists()
        r = subprocess.run([sys.executable, "-m", "nbgrader", "export"], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
        rec["nbgrader_export"] = (r.returncode, r.stdout + r.stderr)
        rec["root_csv_appeared"] = (ROOT / "grades.csv").exists() and not root_csv_before
        rec["canvas"] = reports.export_lms([A2], "canvas")
        rec["moodle"] = reports.export_lms([A2], "moodle", include_pending=True)

        # 7. a student's self-check, run while the instructor's state is what the environment names
        own = tmp / "student"
        shutil.copytree(SAMPLES / "correct", own)
        env = dict(os.environ, NBGRADER_DB_URL=f"sqlite:///{state / 'gradebook.db'}")
        r = subprocess.run([sys.executable, "-m", "autograder", "self-check", A2, str(own / f"{A2}.ipynb"),
                            "--state", str(tmp / "selfcheck")], cwd=ROOT, capture_output=True, text=True,
                           timeout=300, env=env)
        rec["selfcheck"] = (r.returncode, r.stdout + r.stderr)
        yield rec
    finally:
        mp.undo()


def test_hand_grading_is_a_step_of_its_own(term):
    """Before a person graded: auto and manual points apart, `needs_manual_grading`; after: counted."""
    first = term["csv_first"]
    assert list(next(iter(first.values())))[:8] == ["student_id", "score", "max_score", "auto_score", "auto_max",
                                                    "manual_score", "manual_max", "needs_manual_grading"]
    ann, bob = first["ann"], first["bob"]
    assert (ann["score"], ann["max_score"], ann["auto_score"], ann["auto_max"]) == ("12", "14", "12", "12")
    assert (ann["manual_score"], ann["manual_max"], ann["needs_manual_grading"]) == ("0", "2", "yes")
    assert "needs manual grading: written_lstm_or_gru (2 points)" in ann["detail"]
    assert ann["status"] == "ok"
    # an untouched answer is scored 0 by nbgrader itself: nothing waits for a person
    assert (bob["score"], bob["needs_manual_grading"]) == ("0", "no")
    # a person graded it: `report` merges the gradebook's hand grade without regrading anything
    hg = term["csv_handgraded"]["ann"]
    assert (hg["score"], hg["manual_score"], hg["needs_manual_grading"]) == ("14", "2", "no"), hg
    assert "0 wait for hand-grading" in term["report_out"], term["report_out"]


def test_regrade_keeps_the_hand_grade_and_touches_no_one_else(term):
    s = term["regrade"]
    assert (s.graded, s.reused) == (1, 0)
    assert [r["student_id"] for r in s.results] == ["ann"]
    ann = term["csv_regrade"]["ann"]
    assert ann["status"] == "ok", ann["detail"]  # never "gradebook score differs ... NOT graded"
    assert (ann["score"], ann["auto_score"], ann["manual_score"], ann["needs_manual_grading"]) == ("14", "12", "2", "no")
    assert term["bob_untouched"] and set(term["csv_regrade"]) == {"ann", "bob", "eve"}


def test_a_changed_written_answer_is_marked_for_review(term):
    ann = term["csv_changed"]["ann"]
    assert ann["status"] == "ok"
    assert (ann["score"], ann["manual_score"], ann["needs_manual_grading"]) == ("14", "2", "yes")
    assert "written_lstm_or_gru changed since it was hand-graded (2 of 2 kept): review it" in ann["detail"]
    with gradebook() as gb:
        g = gb.find_grade(WRITTEN, A2, A2, "ann")
        assert (g.manual_score, g.needs_manual_grade) == (2.0, True)


def test_a_late_student_from_another_folder_joins_the_class(term):
    rows = term["csv_late"]
    assert set(rows) == {"ann", "bob", "eve", "dan"}  # the class's rows are all still there
    assert [r["student_id"] for r in term["late"].results] == ["dan"]
    assert {r["student_id"] for r in term["late"].class_rows} == set(rows)
    dan = rows["dan"]
    # 1 day 10 hours late: two started days at 10% a day (nbgrader_config.py: LatePenalty) of 12 points
    assert dan["timestamp"].startswith("2025-03-09 10:00:00")
    assert (dan["raw_score"], dan["late_penalty"], dan["score"]) == ("12", "2.4", "9.6"), dan
    assert "late: 2.4 points deducted" in dan["detail"]
    assert rows["ann"]["late_penalty"] == "0" and rows["ann"]["timestamp"].startswith("2025-03-07 20:00:00")
    with gradebook() as gb:
        sub = gb.find_submission(A2, "dan")
        assert sub.total_seconds_late == pytest.approx(34 * 3600 + 60) and sub.late_submission_penalty == pytest.approx(2.4)


def test_exports_land_under_the_state_dir_and_parse_back(term):
    rc, out = term["nbgrader_export"]
    assert rc == 0, out
    assert not term["root_csv_appeared"]
    with open(term["state"] / "exports" / "nbgrader_grades.csv", newline="") as f:
        nbg = {r["student_id"]: r for r in csv.DictReader(f) if r["assignment"] == A2}
    assert set(nbg) == {"ann", "bob", "eve", "dan"}
    assert (float(nbg["dan"]["raw_score"]), float(nbg["dan"]["late_submission_penalty"]), float(nbg["dan"]["score"])) == (12, 2.4, 9.6)
    assert float(nbg["ann"]["score"]) == 14
    # Canvas: header, a Points Possible row, the pending review left empty (not a low grade)
    with open(term["canvas"], newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", A2]
    assert rows[1][0] == "Points Possible" and rows[1][-1] == "14"
    canvas = {r[3]: r[-1] for r in rows[2:]}
    assert canvas == {"ann": "", "bob": "0", "dan": "", "eve": "0"}  # ann's and dan's answers wait for a person
    with open(term["moodle"], newline="") as f:
        moodle = {r["ID number"]: r[A2] for r in csv.DictReader(f)}
    assert moodle == {"ann": "14", "bob": "0", "dan": "9.6", "eve": "0"}
    for p in (term["canvas"], term["moodle"]):
        assert p.is_relative_to(term["state"] / "exports")
    # git never takes a grade export, wherever it was written (in a git checkout)
    for path in ("grades.csv", "autograder/exports/x.csv", "autograder/runs/a/grades.csv") * (ROOT / ".git").exists():
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0, path


def test_class_overview(term):
    page = (term["runs"] / "overview.html").read_text()
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page, "html.parser")
    # the markup file name reaches the page reduced to safe characters (pipeline.shown), never as markup
    assert not soup.find_all("script") and XSS not in page and "?img src?x onerror?alert?1??.ipynb" in page
    statuses = {tr.find_all("td")[0].text: tr.find_all("td")[1].text for tr in soup.select("#statuses tr")[1:]}
    assert statuses == {"ok": "2", "not_attempted": "2"}  # bob and eve handed the release back untouched
    ex = {tr.find_all("td")[0].text: tr.find_all("td")[3].text for tr in soup.select("#exercises tr")[1:]}
    assert ex == {"lstm_cell": "50%", "gru_cell": "50%", "run_rnn": "50%", "numerical_gradient": "50%"}  # ann, dan of 4
    hints = [tr.find_all("td")[2].text for tr in soup.select("#hints tr")[1:]]
    assert hints and all(h == "2" for h in hints)  # bob and eve, blank, make the same mistakes
    assert "ann" in soup.select_one("#pending").text and "dan" in soup.select_one("#late").text
    assert soup.find("img")["src"].startswith("data:image/png;base64,")


def test_feedback_math_is_offline(term):
    from bs4 import BeautifulSoup

    html = (term["state"] / "feedback" / "ann" / A2 / f"{A2}.html").read_text()
    soup = BeautifulSoup(html, "html.parser")
    external = [t for t in soup.find_all(["script", "link", "img", "iframe", "embed", "object", "source"])
                for attr in ("src", "href", "data") if (t.get(attr) or "").split(":")[0] in ("http", "https")
                or (t.get(attr) or "").startswith("//")]
    assert not external, external
    assert "cdnjs" not in html and "mathjax@" not in html
    assert "window.MathJax" in html and "MathJax tex-svg.js" in html


def test_assignment_4_handed_in_without_its_folder(term, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_STATE_DIR", str(tmp_path / "state"))  # not the term's gradebook
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(ROOT / "assignments" / A4 / f"{A4}.ipynb", flat / "zoe.ipynb")
    (flat / "charlm.pt").write_bytes(b"not anyone's model in particular")
    s = pipeline.grade(A4, flat, workers=1, cfg=config.load(**LIMITS), log=lambda *a: None)
    zoe = s.results[0]
    assert zoe["status"] == "missing_files", zoe
    assert "one folder per student is required (zoe/04_training_with_clipping.ipynb and zoe/charlm.pt)" in zoe["detail"]
    assert "charlm.pt at its top" in zoe["detail"]


def test_self_check_never_touches_the_instructors_gradebook(term):
    rc, out = term["selfcheck"]
    assert rc == 0, out
    assert "12 of 12 autograded points" in out and "2 more points are graded by hand" in out
    with gradebook() as gb:  # the instructor's (AUTOGRADER_STATE_DIR of this module)
        assert {s.id for s in gb.students} == {"ann", "bob", "eve", "dan"}
    assert (term["tmp"] / "selfcheck" / "gradebook.db").is_file()
    assert json.loads((term["tmp"] / "selfcheck" / "runs" / A2 / "me.json").read_text())["auto_score"] == 12
