"""LMS exports for one assignment and for the whole course (issue 13): Canvas's gradebook-import layout and
Moodle's, keyed as each LMS matches students: from a roster (the class list an LMS gives: name, email, the
LMS's own id, SIS ids, section) when there is one, else by the grading id; a graded student the roster
cannot key stops the export with the names, nothing written. Fast: stored results written by hand, an empty
gradebook (no submission in it, so the stored scores are what is exported)."""
import csv
import json
from pathlib import Path

import pytest

from autograder import reports
from state_helpers import isolate_state

A1, A2 = "01_gradient_flow", "02_lstm_gru_cells"


def stored(state: Path, assignment: str, sid: str, score: float, max_score: float):
    runs = state / "runs" / assignment
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"{sid}.json").write_text(json.dumps({
        "student_id": sid, "score": score, "max_score": max_score, "auto_score": score, "auto_max": max_score,
        "status": "ok", "detail": "", "file": f"{sid}.ipynb", "timestamp": "", "verdicts": {}}))


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("lms")
    state = tmp_path / "state"
    mp = pytest.MonkeyPatch()
    isolate_state(mp, state, secret=None)
    stored(state, A1, "ann", 12, 12)
    stored(state, A1, "bob", 7, 12)
    stored(state, A2, "ann", 10, 14)
    stored(state, A2, "Müller", 3, 14)
    roster = tmp_path / "roster.csv"
    roster.write_text("\ufeffStudent_ID,Name,Email,LMS_ID,SIS_User_ID,SIS_Login_ID,Section,Notes\n"
                      "ann,\"Ann Lee\",ann@uni.example,1001,S-1,alee,A,x\n"
                      "bob,Bob Roe,bob@uni.example,1002,S-2,broe,B,\n"
                      "Mu\u0308ller,=HYPERLINK(\"x\"),eve@uni.example,1003,,,A,\n"
                      "cy,Cy Dropped,cy@uni.example,1004,S-4,cdrop,B,\n", encoding="utf-8")
    yield {"state": state, "roster": roster, "tmp": tmp_path}
    mp.undo()


def read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_the_course_export_covers_every_assignment_keyed_from_the_roster(course):
    out = reports.export_lms(None, "canvas", roster=course["roster"])
    rows = read(out)
    assert out.parent == course["state"] / "exports"
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", A1, A2]
    assert rows[1] == ["Points Possible", "", "", "", "", "12", "14"]
    assert rows[2:] == [["'=HYPERLINK(\"x\")", "1003", "", "", "A", "", "3"],  # keyed by Canvas's ID; no formula
                        ["Ann Lee", "1001", "S-1", "alee", "A", "12", "10"],
                        ["Bob Roe", "1002", "S-2", "broe", "B", "7", ""],
                        ["Cy Dropped", "1004", "S-4", "cdrop", "B", "", ""]]  # on the roster, nothing graded
    moodle = read(reports.export_lms([A2], "moodle", roster=course["roster"]))
    assert moodle[0] == ["ID number", "Email address", A2]
    assert {r[0]: (r[1], r[2]) for r in moodle[1:]} == {
        "1003": ("eve@uni.example", "3"), "1001": ("ann@uni.example", "10"), "1002": ("bob@uni.example", ""),
        "1004": ("cy@uni.example", "")}


def test_without_a_roster_the_grading_id_is_the_key(course):
    rows = read(reports.export_lms([A1, A2], "canvas"))
    assert {r[3]: r[5:] for r in rows[2:]} == {"Müller": ["", "3"], "ann": ["12", "10"], "bob": ["7", ""]}
    moodle = read(reports.export_lms([A1], "moodle"))
    assert moodle == [["ID number", A1], ["ann", "12"], ["bob", "7"]]


def test_a_student_the_roster_cannot_key_stops_the_export(course):
    exports = course["state"] / "exports"
    before = {p.name: p.read_bytes() for p in exports.glob("*")} if exports.is_dir() else {}
    short = course["tmp"] / "short.csv"
    short.write_text("student_id,name,email,lms_id\nann,Ann Lee,ann@uni.example,1001\n")
    with pytest.raises(SystemExit, match=r"graded but not in the roster: Müller, bob.*nothing was written"):
        reports.export_lms(None, "canvas", roster=short)
    keyless = course["tmp"] / "keyless.csv"
    keyless.write_text("student_id,name\nann,Ann Lee\nbob,Bob Roe\n")
    with pytest.raises(SystemExit, match=r"no lms_id \(Moodle's ID number\) or email for ann, bob"):
        reports.export_lms([A1], "moodle", roster=keyless)
    no_id = course["tmp"] / "no_id.csv"
    no_id.write_text("name,email\nAnn Lee,ann@uni.example\n")
    with pytest.raises(SystemExit, match="the roster needs a student_id column"):
        reports.export_lms([A1], "canvas", roster=no_id)
    assert ({p.name: p.read_bytes() for p in exports.glob("*")} if exports.is_dir() else {}) == before
