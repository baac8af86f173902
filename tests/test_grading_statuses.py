"""Statuses an instructor can act on (issue 13): the release handed back untouched is ``not_attempted``
(not ``ok`` with 0 points); a student folder holding several candidate notebooks, none named as
released, is ``ambiguous`` and none of them is graded (modification times are never used to choose);
every status but ``ok`` says why; results made malformed by patched sandbox helpers are
``tampering_detected`` with a detail that says so (never mistaken for a wrong answer); a notebook without
cell ids is graded without nbformat's warning; a newline in a file name stays out of grades.csv's lines.
The unit tests are fast; one small class is graded end to end."""
import csv
import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from autograder import config, pipeline

ROOT = Path(__file__).resolve().parents[1]
A = "01_gradient_flow"
RELEASE = ROOT / "assignments" / A / f"{A}.ipynb"
SOLUTION = ROOT / "solutions" / A / f"{A}.ipynb"
MARKUP = "<img src=x onerror=alert(1)>"


def release():
    return nbformat.read(str(RELEASE), as_version=4)


def answer_cells(nb):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]


def rebuilt(nb):
    pipeline.rebuild_nbgrader_metadata(nb, release())
    return nb


# ------------------------------------------------------------------ what "untouched" means
def test_the_release_is_untouched_and_the_solution_is_not():
    assert pipeline.untouched(rebuilt(release()), release())
    assert not pipeline.untouched(rebuilt(nbformat.read(str(SOLUTION), as_version=4)), release())


def test_whitespace_and_outputs_do_not_count_as_work():
    nb = release()
    for c in answer_cells(nb):
        c.source = "\n\n  " + c.source.replace("\n", "\n\n").replace("    ", "\t") + "  \n"
    nb.cells.append(nbformat.v4.new_code_cell("   \n"))  # an empty cell added
    nb.cells.append(nbformat.v4.new_markdown_cell("I ran out of time."))  # prose is no code
    assert pipeline.untouched(rebuilt(nb), release())


def test_one_changed_answer_or_one_added_code_cell_is_an_attempt():
    nb = release()
    cell = answer_cells(nb)[0]
    cell.source = cell.source.replace("raise NotImplementedError()", "return None")
    assert cell.source != answer_cells(release())[0].source
    assert not pipeline.untouched(rebuilt(nb), release())
    nb = release()
    nb.cells.append(nbformat.v4.new_code_cell("import os; print(os.listdir('/'))"))  # work, or an attack
    assert not pipeline.untouched(rebuilt(nb), release())


def test_untouched_ranks_below_every_problem():
    order = pipeline.STATUS_ORDER
    assert order[-2:] == ["not_attempted", "ok"]
    assert order.index("ambiguous") < order.index("tampering_detected")
    assert min(["not_attempted", "crash"], key=order.index) == "crash"



def test_the_readme_names_every_status_a_row_can_have():
    """README.md's list of statuses is checked against the grader's own (a new status is documented)."""
    text = (ROOT / "README.md").read_text()
    assert [s for s in pipeline.STATUS_ORDER if s != "ok" and f"`{s}`" not in text] == []

# ------------------------------------------------------------------ several candidate notebooks
def test_several_candidates_are_ambiguous_whatever_their_times(tmp_path):
    d = tmp_path / "zoe"
    (d / "old").mkdir(parents=True)
    shutil.copy(SOLUTION, d / "final.ipynb")
    shutil.copy(RELEASE, d / "old" / f"{MARKUP}.ipynb")
    os.utime(d / "final.ipynb", (1, 1))  # as an unzipped LMS download may leave them: times mean nothing
    [f] = pipeline.discover(tmp_path, [A])
    assert f.path is None and f.ambiguous and not f.refused
    assert "final.ipynb" in f.ambiguous and "old/" in f.ambiguous and f"{A}.ipynb" in f.ambiguous
    assert "<" not in f.ambiguous and "--student zoe" in f.ambiguous
    # one candidate only, or the release's name among several: graded without asking
    (d / "old" / f"{MARKUP}.ipynb").unlink()
    [f] = pipeline.discover(tmp_path, [A])
    assert f.path == d / "final.ipynb" and not f.ambiguous and "final.ipynb" in f.note
    shutil.copy(RELEASE, d / "old" / f"{A}.ipynb")
    [f] = pipeline.discover(tmp_path, [A])
    assert f.path == d / "old" / f"{A}.ipynb" and not f.ambiguous


def test_error_messages_are_never_empty():
    assert pipeline.why(OSError()) == "OSError"
    assert pipeline.why(ValueError("  ")) == "ValueError"
    assert pipeline.why(ValueError("bad cell")) == "bad cell"


# ------------------------------------------------------------------ a small class, end to end
@pytest.mark.slow
def test_a_class_gets_statuses_an_instructor_can_act_on(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("AUTOGRADER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AUTOGRADER_SECRET", "ci-secret")
    monkeypatch.delenv("NBGRADER_DB_URL", raising=False)
    subs = tmp_path / "class"
    subs.mkdir()
    shutil.copy(RELEASE, subs / "ann.ipynb")  # the release, untouched
    nb = release()
    for c in answer_cells(nb):
        c.source = c.source + "\n\n"
    nbformat.write(nb, str(subs / "bob.ipynb"))  # opened, saved, nothing written: still untouched
    nb = release()
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    nbformat.write(nb, str(subs / "cat.ipynb"))  # code added: an attempt, graded 0, ok
    (subs / "dan" / "v1").mkdir(parents=True)  # two candidates, neither named as released
    shutil.copy(SOLUTION, subs / "dan" / "final.ipynb")
    shutil.copy(RELEASE, subs / "dan" / "v1" / f"{MARKUP}.ipynb")
    # the solution saved without cell ids (a script wrote it): graded quietly, no MissingIDFieldWarning
    data = json.loads(SOLUTION.read_text())
    for c in data["cells"]:
        c.pop("id", None)
    (subs / "eve.ipynb").write_text(json.dumps(data))
    shutil.copy(RELEASE, subs / "fay\nnew line.ipynb")  # a newline in the file name
    # the sandbox's result helpers patched to drop the entries that show a fault: tampering, not a wrong answer
    shutil.copytree(ROOT / "autograder" / "samples" / A / "attack_drop_keys_clip", subs / "gus")
    s = pipeline.grade(A, subs, workers=2, cfg=config.load(cell_timeout=8.0, call_timeout=4.0, total_timeout=120.0),
                       log=lambda *a: None)
    rows = {r["student_id"]: r for r in s.results}
    assert {k: (r["score"], r["status"]) for k, r in rows.items()} == {
        "ann": (0.0, "not_attempted"), "bob": (0.0, "not_attempted"), "cat": (0.0, "ok"), "dan": (0.0, "ambiguous"),
        "eve": (12.0, "ok"), "fay_new_line": (0.0, "not_attempted"), "gus": (9.0, "tampering_detected")}
    assert "MissingIDFieldWarning" not in capfd.readouterr().err
    assert rows["eve"]["detail"] == ""  # no "repaired" note either: a notebook without ids is normal input
    assert rows["gus"]["detail"].startswith("malformed results for clip_grad_norm (the sandbox's result helpers "
                                            "patched"), rows["gus"]["detail"]
    assert "not attempted" in rows["ann"]["detail"] and "not attempted" in rows["bob"]["detail"]
    dan = rows["dan"]["detail"]
    assert "2 notebooks" in dan and "final.ipynb" in dan and "none was graded" in dan and "<" not in dan
    assert all(r["detail"] for r in rows.values() if r["status"] != "ok")
    with open(s.csv, newline="") as f:
        table = {r["student_id"]: r for r in csv.DictReader(f)}
    assert {k: r["status"] for k, r in table.items()} == {k: r["status"] for k, r in rows.items()}
    assert table["fay_new_line"]["file"] == "fay\\nnew line.ipynb"  # one line, the name still recognisable
    with open(s.csv, newline="") as f:
        assert len(f.read().splitlines()) == 1 + len(rows)
    # the gradebook holds dan's 0 (nothing of either notebook was run), and his feedback says why
    from nbgrader.api import Gradebook

    api = pipeline.nbgrader_api(ROOT)
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        assert float(gb.find_submission(A, "dan").score) == 0.0
    page = (tmp_path / "state" / "feedback" / "dan" / A / f"{A}.html").read_text()
    assert "ambiguous" in page
    assert MARKUP not in page
    overview = (s.overview or (tmp_path / "state" / "runs" / A / "overview.html")).read_text()
    assert MARKUP not in overview and "not_attempted" in overview and "ambiguous" in overview
    assert "tampering_detected" in overview and "malformed results for clip_grad_norm" in overview
    # a second run reuses every result (the ambiguity is part of the submission's key)
    again = pipeline.grade(A, subs, workers=2, cfg=config.load(cell_timeout=8.0, call_timeout=4.0,
                                                                  total_timeout=120.0), log=lambda *a: None)
    assert (again.graded, again.reused) == (0, len(rows))


def test_a_notebook_a_preprocessor_broke_fails_before_the_gradebook_is_written(tmp_path, monkeypatch):
    """nbconvert checks the schema only after the last preprocessor (``optimistic_validation``): a notebook
    broken before ``SaveAutoGrades`` must still fail the run (grader_error) without writing the failed run's
    scores into the gradebook, which keeps the last good grading's (it used to take the new ones)."""
    import sqlite3

    from nbgrader.preprocessors import LimitOutput

    monkeypatch.setenv("AUTOGRADER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AUTOGRADER_SECRET", "ci-secret")
    monkeypatch.delenv("NBGRADER_DB_URL", raising=False)
    samples, subs = ROOT / "autograder" / "samples" / A, tmp_path / "subs"
    cfg = config.load(cell_timeout=8.0, call_timeout=4.0, total_timeout=120.0)

    def scores():
        with sqlite3.connect(tmp_path / "state" / "gradebook.db") as db:
            return db.execute("select b.name, g.auto_score from grade g join base_cell b on g.cell_id = b.id "
                              "order by b.name").fetchall()

    shutil.copytree(samples / "partial", subs / "stu")
    assert [r["score"] for r in pipeline.grade(A, subs, workers=1, cfg=cfg, log=lambda *a: None).results] == [4.0]
    before = scores()
    real = LimitOutput.preprocess

    def broken(self, nb, resources):  # a preprocessor after the sanitiser leaves an output the schema refuses
        nb, resources = real(self, nb, resources)
        next(c for c in nb.cells if c.cell_type == "code").outputs = [{"output_type": "stream", "name": "stdout"}]
        return nb, resources

    monkeypatch.setattr(LimitOutput, "preprocess", broken)
    shutil.rmtree(subs / "stu")
    shutil.copytree(samples / "correct", subs / "stu")
    rows = pipeline.grade(A, subs, workers=1, cfg=cfg, log=lambda *a: None).results
    assert [(r["status"], "nbgrader autograde failed" in r["detail"]) for r in rows] == [("grader_error", True)]
    assert scores() == before and sum(s for _, s in before) == 4.0
