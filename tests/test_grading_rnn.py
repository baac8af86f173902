"""Assignments 2 and 3 end to end, under the trusted judge: the releases are fresh and give nothing
away, the solutions get full marks, the blank releases zero, and every sample of the two sample
classes (``autograder/samples/make_samples_rnn.py``) gets its exact expected score, status and hint.
"""
import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import config, pipeline
from autograder.samples import make_samples_rnn as samples
from course_lib.checks import ASSIGNMENTS

ROOT = Path(__file__).resolve().parents[1]
A2, A3 = samples.A2, samples.A3
ASSIGNMENTS_HERE = [A2, A3]
HINTS = {A2: {k: (None, v) for k, v in samples.A2_HINTS.items()}, A3: samples.A3_HINTS}
MANUAL = {A2: {"written_lstm_or_gru": samples.A2_MANUAL}, A3: {}}
# wider than assignment 1's: these notebooks train and plot (at the ci budget) on a shared CI machine
LIMITS = dict(cell_timeout=25.0, call_timeout=10.0, total_timeout=150.0)


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _release(a):
    return ROOT / "assignments" / a / f"{a}.ipynb"


def _source(a):
    return ROOT / "solutions" / a / f"{a}.ipynb"


def expected(a):
    with open(ROOT / "autograder" / "samples" / a / "expected.csv") as f:
        rows = {r["student_id"]: (float(r["score"]), r["status"], float(r["max_score"])) for r in csv.DictReader(f)}
    auto = float(sum(ex.points for ex in ASSIGNMENTS[a].values()))
    total = auto + sum(MANUAL[a].values())
    rows["solution_notebook"] = (auto, "ok", total)  # solutions/ as is: every autograded point
    rows["release_blank"] = (0.0, "not_attempted", total)  # the release untouched: zero, said so
    return rows


# ------------------------------------------------------------------ releases
@pytest.fixture(scope="module")
def state(tmp_path_factory, monkeypatch_module):
    d = tmp_path_factory.mktemp("state")
    monkeypatch_module.setenv("AUTOGRADER_STATE_DIR", str(d))
    monkeypatch_module.setenv("AUTOGRADER_SECRET", "ci-secret")
    monkeypatch_module.delenv("NBGRADER_DB_URL", raising=False)
    return d


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.mark.parametrize("a", ASSIGNMENTS_HERE)
def test_release_is_fresh(a, state):
    fresh, diff = pipeline.release_is_fresh(a)
    assert fresh, f"assignments/{a} is stale ({diff}): run python -m autograder release {a}"


@pytest.mark.parametrize("a", ASSIGNMENTS_HERE)
def test_release_gives_nothing_away(a):
    text = _release(a).read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "hidden=True", "MARK SCHEME"):
        assert marker not in text
    release_code = "\n".join("".join(c["source"]) for c in _cells(_release(a)))
    pattern = r"### BEGIN (?:SOLUTION|HIDDEN TESTS)\n(.*?)### END[^\n]*"
    source = "\n".join("".join(c["source"]) for c in _cells(_source(a)))
    public = re.sub(pattern, "", source, flags=re.S)
    for block in re.findall(pattern, source, re.S):
        for line in block.splitlines():
            if len(line.strip()) > 12 and line.strip() not in public:
                assert line.strip() not in release_code, line
    for folder in (ROOT / "solutions" / a, ROOT / "assignments" / a):
        assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == [f"{a}.ipynb"]


@pytest.mark.parametrize("a", ASSIGNMENTS_HERE)
def test_graded_cells_match_the_checks(a):
    exercises = ASSIGNMENTS[a]
    graded = {c["metadata"]["nbgrader"]["grade_id"]: c for c in _cells(_release(a))
              if c["metadata"].get("nbgrader", {}).get("grade")}
    assert set(graded) == {f"test_{n}" for n in exercises} | set(MANUAL[a])
    for name, ex in exercises.items():
        cell = graded[f"test_{name}"]
        meta = cell["metadata"]
        assert meta["nbgrader"]["points"] == ex.points and meta["nbgrader"]["locked"]
        assert meta["editable"] is False and meta["deletable"] is False
        assert "".join(cell["source"]).strip() == f"check_{name}({name})"
    for gid, points in MANUAL[a].items():  # a written answer, graded by hand
        meta = graded[gid]["metadata"]["nbgrader"]
        assert graded[gid]["cell_type"] == "markdown" and meta["solution"] and meta["points"] == points


def test_sample_classes_are_in_sync_with_the_releases():
    r = subprocess.run([sys.executable, "-m", "autograder.samples.make_samples_rnn", "--check"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("a", ASSIGNMENTS_HERE)
def test_solution_notebook_executes_with_its_checks(a):
    """The source notebook runs top to bottom at the ci budget, visible and hidden-style checks included."""
    from coursetools import notebooks

    nb, _ = notebooks.execute(_source(a), budget="ci", timeout=300)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream")
    assert text.count("checks passed") >= 2 * len(ASSIGNMENTS[a])
    assert any(o.output_type == "display_data" for c in nb.cells if c.cell_type == "code" for o in c.outputs)


# ------------------------------------------------------------------ the sample classes, graded
def grade_class(a, tmp):
    subs = tmp / "submissions"
    shutil.copytree(ROOT / "autograder" / "samples" / a, subs, ignore=shutil.ignore_patterns("expected.csv"))
    (subs / "solution_notebook").mkdir()
    shutil.copy(_source(a), subs / "solution_notebook")
    shutil.copy(_release(a), subs / "release_blank.ipynb")
    summary = pipeline.grade(a, subs, workers=2, cfg=config.load(**LIMITS), log=lambda *x: None)
    return {r["student_id"]: r for r in summary.results}


@pytest.mark.slow
@pytest.mark.parametrize("a", ASSIGNMENTS_HERE)
def test_sample_class_under_the_trusted_judge(a, tmp_path, state):
    """One test per class (grading it is the expensive part, so it happens once, whatever pytest-xdist does):
    exact scores and statuses, the hints, the gradebook, the written answer left to a person, clean feedback."""
    rows = grade_class(a, tmp_path)

    want = expected(a)
    assert set(rows) == set(want)
    got = {sid: (r["score"], r["status"], r["max_score"]) for sid, r in rows.items()}
    wrong = {sid: (got[sid], want[sid]) for sid in want if got[sid] != want[sid]}
    assert not wrong, "\n".join(f"{s}: got {g}, expected {w}; {rows[s]['detail']} {rows[s]['verdicts']}"
                                for s, (g, w) in wrong.items())
    assert all(r["sandbox"] == "root" for r in rows.values())

    for sid, (exercise, words) in HINTS[a].items():
        hints = [v["hint"] or "" for n, v in rows[sid]["verdicts"].items() if exercise in (None, n)]
        assert any(words in h for h in hints), (sid, words, hints)

    from nbgrader.api import Gradebook

    api = pipeline.nbgrader_api(ROOT)
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        for sid, r in rows.items():
            assert float(gb.find_submission(a, sid).score) == r["score"], sid
            for name, ex in ASSIGNMENTS[a].items():
                grade = gb.find_grade(f"test_{name}", a, a, sid)
                assert grade.score == (ex.points if r["verdicts"][name]["passed"] else 0), (sid, name)
            for gid in MANUAL[a]:
                grade = gb.find_grade(gid, a, a, sid)
                assert grade.manual_score is None, (sid, gid)  # nothing graded it yet
                # nbgrader scores an untouched answer 0 itself; an answer waits for a person
                assert grade.auto_score == (0 if sid in ("blank", "release_blank") else None), (sid, gid)
                assert grade.needs_manual_grade == (sid not in ("blank", "release_blank")), (sid, gid)

    feedback = config.state_dir() / "feedback"
    for sid in ("correct", next(iter(HINTS[a]))):
        html = (feedback / sid / a / f"{a}.html").read_text()
        for word in ("BEGIN HIDDEN", "hidden=True", "MARK SCHEME", str(ROOT), "Traceback (most recent call last)"):
            assert word not in html, (sid, word)
    assert "checked by the grader outside your notebook" in (feedback / "correct" / a / f"{a}.html").read_text()
