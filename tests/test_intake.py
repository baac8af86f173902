"""Intake trusts nothing in the submissions folder (issue 11, classes 4-6): no link followed, no
FIFO opened, ids unique and stable, grades.csv neutralised, nbgrader metadata rebuilt from the
release, one grading run per assignment at a time. Fast (no sandbox; nbgrader only in the test
marked slow)."""
import copy
import csv
import json
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest

from autograder import judge, pipeline, safefs

ROOT = Path(__file__).resolve().parents[1]
A = "01_gradient_flow"
RELEASE = ROOT / "assignments" / A / f"{A}.ipynb"
SOLUTION = ROOT / "solutions" / A / f"{A}.ipynb"
SAMPLES = ROOT / "autograder" / "samples"


@contextmanager
def no_blocking(seconds=10):
    """Fail (instead of hanging the test run) when the body blocks, e.g. on opening a FIFO."""
    def boom(*_):
        raise TimeoutError("blocked")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def found(folder, names=(A,)):
    return {f.student: f for f in pipeline.discover(folder, list(names))}


def nb_text(**kw):
    return json.dumps(nbformat.v4.new_notebook(**kw))


# ------------------------------------------------------------------ links, FIFOs, escaping
def test_symlinked_notebook_at_the_top_is_reported_not_read(tmp_path):
    (tmp_path / "mallory.ipynb").symlink_to(SOLUTION)
    (tmp_path / "ok.ipynb").write_text(nb_text())
    f = found(tmp_path)
    assert f["mallory"].path is None and f["mallory"].refused.startswith("not a regular file: a symbolic link")
    assert f["mallory"].rel == "mallory.ipynb"
    assert f["ok"].path == tmp_path / "ok.ipynb" and not f["ok"].refused


def test_symlinked_student_folder_is_reported_not_entered(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / f"{A}.ipynb").write_text(nb_text())
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "eve").symlink_to(elsewhere, target_is_directory=True)
    (subs / "solutions").symlink_to(ROOT / "solutions", target_is_directory=True)
    f = found(subs)
    assert f["eve"].path is None and "a symbolic link" in f["eve"].refused
    assert f["solutions"].path is None and "a symbolic link" in f["solutions"].refused


def test_symlink_inside_a_student_folder_is_never_followed(tmp_path):
    (tmp_path / "trudy").mkdir()
    (tmp_path / "trudy" / f"{A}.ipynb").symlink_to(SOLUTION)  # the only notebook: nothing to grade
    (tmp_path / "walt").mkdir()
    (tmp_path / "walt" / f"{A}.ipynb").symlink_to(SOLUTION)  # a link next to the student's own notebook
    (tmp_path / "walt" / "mine.ipynb").write_text(nb_text())
    (tmp_path / "oscar").mkdir()
    (tmp_path / "oscar" / "sub").symlink_to(SOLUTION.parent, target_is_directory=True)  # a linked subfolder
    f = found(tmp_path)
    assert f["trudy"].path is None and f["trudy"].rel == f"trudy/{A}.ipynb"
    assert f["trudy"].refused == f"not a regular file: a symbolic link (trudy/{A}.ipynb, not read)"
    assert f["walt"].path == tmp_path / "walt" / "mine.ipynb"
    assert "not a regular file: a symbolic link" in f["walt"].note
    assert f["oscar"].path is None and f["oscar"].note == "no notebook in the folder"


def test_a_fifo_in_place_of_a_notebook_never_blocks(tmp_path):
    os.mkfifo(tmp_path / "fifo.ipynb")
    (tmp_path / "pat").mkdir()
    os.mkfifo(tmp_path / "pat" / f"{A}.ipynb")
    with no_blocking():
        f = found(tmp_path)
        with pytest.raises(safefs.Refused, match="FIFO"):
            safefs.read_file(tmp_path, "fifo.ipynb")
        with pytest.raises(safefs.Refused, match="FIFO"):
            safefs.read_file(tmp_path, f"pat/{A}.ipynb")
    assert f["fifo"].path is None and "FIFO" in f["fifo"].refused
    assert f["pat"].path is None and "FIFO" in f["pat"].refused


def test_reading_never_leaves_the_folder(tmp_path):
    (tmp_path / "subs" / "ann").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("secret")
    subs = tmp_path / "subs"
    (subs / "ann" / "up").symlink_to(tmp_path, target_is_directory=True)
    (subs / "ann" / "link.txt").symlink_to(tmp_path / "secret.txt")
    for rel in ["../secret.txt", "ann/../../secret.txt", str(tmp_path / "secret.txt"), "ann/up/secret.txt",
                "ann/link.txt", "ann"]:
        with pytest.raises((safefs.Refused, IsADirectoryError)):
            safefs.read_file(subs, rel)
    (subs / "ann" / "nb.ipynb").write_text("{}")
    assert safefs.read_file(subs, "ann/nb.ipynb") == b"{}"


def test_reading_is_size_capped(tmp_path):
    (tmp_path / "big.ipynb").write_bytes(b"x" * 5000)
    with pytest.raises(safefs.Refused, match="too large"):
        safefs.read_file(tmp_path, "big.ipynb", cap=4096)
    assert len(safefs.read_file(tmp_path, "big.ipynb", cap=5000)) == 5000


def test_a_linked_or_irregular_attachment_is_no_file(tmp_path):
    from course_lib.checks import training

    a4 = "04_training_with_clipping"
    model = SAMPLES / a4 / "correct" / training.MODEL_FILE
    real, linked, fifo = (tmp_path / n for n in ("real", "linked", "fifo"))
    for d in (real, linked, fifo):
        d.mkdir()
    (real / training.MODEL_FILE).write_bytes(model.read_bytes())
    (linked / training.MODEL_FILE).symlink_to(model)
    os.mkfifo(fifo / training.MODEL_FILE)
    (tmp_path / "linked_folder").symlink_to(real, target_is_directory=True)
    got = judge.attachments(a4, real)["load_model"]
    assert bytes(got["file"]) == model.read_bytes()
    with no_blocking():
        for folder in (linked, fifo, tmp_path / "linked_folder"):
            assert judge.attachments(a4, folder)["load_model"] == {}, folder


# ------------------------------------------------------------------ student ids
def test_ids_do_not_depend_on_other_entries(tmp_path):
    for name in ("bob.ipynb", "zed.ipynb"):
        (tmp_path / name).write_text(nb_text())
    (tmp_path / "carol").mkdir()
    (tmp_path / "carol" / "x.ipynb").write_text(nb_text())
    before = {sid: f.rel for sid, f in found(tmp_path).items()}
    for name in ("aaa.ipynb", "bob_2.ipynb", "Bob.ipynb", "ca rol.txt", "=bob.ipynb.txt", "notes.md"):
        (tmp_path / name).write_text(nb_text())
    after = {sid: f.rel for sid, f in found(tmp_path).items()}
    assert {sid: after[sid] for sid in before} == before
    assert before == {"bob": "bob.ipynb", "zed": "zed.ipynb", "carol": "carol/x.ipynb"}


def test_ids_are_safe_names():
    assert pipeline.student_id("=HYPERLINK(1).ipynb") == "HYPERLINK_1"
    assert pipeline.student_id("-2+3.ipynb") == "2_3"
    assert pipeline.student_id("@SUM.ipynb") == "SUM"
    assert pipeline.student_id("../..") == "student"
    assert pipeline.student_id("bo b") == "bo_b"


@pytest.mark.parametrize("names", [("ann.ipynb", "ann/"), ("bo b/", "bo_b.ipynb"), ("+x.ipynb", "x.ipynb"),
                                   ("dup.ipynb", "dup")])
def test_colliding_ids_are_an_error_naming_both(tmp_path, names):
    for n in names:
        if n.endswith("/"):
            (tmp_path / n).mkdir()
            (tmp_path / n / "a.ipynb").write_text(nb_text())
        elif n == "dup":
            (tmp_path / n).symlink_to(tmp_path / "dup.ipynb")
        else:
            (tmp_path / n).write_text(nb_text())
    with pytest.raises(pipeline.IntakeError) as e:
        pipeline.discover(tmp_path, [A])
    for n in names:
        assert repr(n.rstrip("/")) in str(e.value)


def test_grade_refuses_colliding_ids_before_writing_anything(tmp_path, monkeypatch):
    state = tmp_path / "state"
    monkeypatch.setenv("AUTOGRADER_STATE_DIR", str(state))
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "ann.ipynb").write_text(nb_text())
    (subs / "ann").mkdir()
    (subs / "ann" / f"{A}.ipynb").write_text(nb_text())
    out = tmp_path / "grades.csv"
    with pytest.raises(SystemExit) as e:
        pipeline.grade(A, subs, out_csv=out, log=lambda *a: None)
    assert "'ann.ipynb'" in str(e.value) and "'ann'" in str(e.value)
    assert not state.exists() and not out.exists()


def test_every_sample_has_its_expected_id():
    for expected in sorted(SAMPLES.glob("*/expected.csv")):
        with open(expected) as f:
            want = {r["student_id"] for r in csv.DictReader(f)}
        nb_names = [p.stem for p in (ROOT / "assignments" / expected.parent.name).glob("*.ipynb")]
        assert set(found(expected.parent, nb_names)) == want, expected.parent.name
    f = found(SAMPLES / A)
    assert f["file_symlink_to_solution"].refused.startswith("not a regular file: a symbolic link")
    assert f["HYPERLINK_csv_formula"].rel == "=HYPERLINK(csv_formula).ipynb"


# ------------------------------------------------------------------ grades.csv
def test_every_text_field_of_grades_csv_is_neutralised(tmp_path):
    rows = []
    for k, c in enumerate(["=", "+", "-", "@", "\t", "\r"]):
        rows.append({"student_id": f"{c}id{k}", "score": 3.0, "max_score": 12.0, "status": f"{c}st",
                     "detail": f"{c}cmd|' /C calc'!A0", "file": f"{c}HYPERLINK(x).ipynb"})
    rows.append({"student_id": "plain", "score": 0.0, "max_score": 12.0, "status": "ok", "detail": "a - b",
                 "file": "plain.ipynb"})
    pipeline.write_grades_csv(tmp_path / "g.csv", rows)
    with open(tmp_path / "g.csv", newline="") as f:
        table = list(csv.DictReader(f))
    escaped = {"\t": "\\t", "\r": "\\r"}  # a leading tab or CR is written as its escape (one line, no formula)
    for got, want in zip(table, rows):
        for col in ("student_id", "status", "detail", "file"):
            assert got[col][:1] not in ("=", "+", "-", "@", "\t", "\r"), (col, got[col])
            text = want[col]
            assert got[col] == (text if want["student_id"] == "plain" else
                                escaped[text[0]] + text[1:] if text[0] in escaped else "'" + text)
        assert (got["score"], got["max_score"]) == (f"{want['score']:g}", f"{want['max_score']:g}")


# ------------------------------------------------------------------ nbgrader metadata
def release():
    return nbformat.read(str(RELEASE), as_version=4)


def cell(nb, gid):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def assert_metadata_is_the_release(nb):
    rel = {c.metadata["nbgrader"]["grade_id"]: c for c in release().cells if "nbgrader" in c.metadata}
    seen = []
    for c in nb.cells:
        nbg = c.metadata.get("nbgrader")
        if nbg is None:
            assert "editable" not in c.metadata and "deletable" not in c.metadata
            continue
        rc = rel[nbg["grade_id"]]
        assert nbg == rc.metadata["nbgrader"] and c.cell_type == rc.cell_type
        assert (c.metadata.get("editable"), c.metadata.get("deletable")) == (rc.metadata.get("editable"),
                                                                              rc.metadata.get("deletable"))
        seen.append(nbg["grade_id"])
    assert len(seen) == len(set(seen))


def test_untouched_release_is_not_tampering():
    nb = release()
    assert pipeline.rebuild_nbgrader_metadata(nb, release()) == {"restored": [], "removed": [], "duplicated": []}
    assert nb == release()


def test_answer_cell_marked_graded_is_rebuilt():
    nb = release()
    cell(nb, "rnn_step").metadata.nbgrader.update(grade=True, points=100)
    cell(nb, "test_rnn_step").metadata.nbgrader["points"] = 100
    cell(nb, "test_clip_grad_norm").metadata["editable"] = True
    r = pipeline.rebuild_nbgrader_metadata(nb, release())
    assert r == {"restored": ["rnn_step", "test_rnn_step"], "removed": [], "duplicated": []}
    assert_metadata_is_the_release(nb)  # the lock on test_clip_grad_norm too (silently: it changes no grade)


def test_the_solution_notebook_is_not_tampering():
    nb = nbformat.read(str(SOLUTION), as_version=4)
    assert pipeline.rebuild_nbgrader_metadata(nb, release()) == {"restored": [], "removed": [], "duplicated": []}
    assert_metadata_is_the_release(nb)


def test_added_graded_cells_lose_their_metadata():
    nb = release()
    graded = {"grade": True, "points": 100, "solution": False, "locked": True, "schema_version": 3}
    nb.cells.insert(3, nbformat.v4.new_code_cell("print(1)", metadata={"nbgrader": {**graded, "grade_id": "bonus"},
                                                                      "editable": False}))
    nb.cells.insert(4, nbformat.v4.new_markdown_cell("essay", metadata={"nbgrader": {**graded, "task": True,
                                                                                   "grade_id": "essay"}}))
    nb.cells.insert(5, nbformat.v4.new_markdown_cell("also", metadata={"nbgrader": {"grade": True, "points": 5}}))
    nb.cells.append(nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {"grade_id": "rnn_step", **graded}}))
    nb.cells.append(nbformat.v4.new_code_cell("y = 1", metadata={"nbgrader": {"schema_version": 3}}))  # harmless
    r = pipeline.rebuild_nbgrader_metadata(nb, release())
    assert r == {"restored": [], "removed": ["bonus (code)", "essay (markdown)", "cell 6 (markdown)"],
                 "duplicated": ["rnn_step"]}
    assert_metadata_is_the_release(nb)
    assert cell(nb, "rnn_step").source == release().cells[[c.metadata.get("nbgrader", {}).get("grade_id")
                                                            for c in release().cells].index("rnn_step")].source


def test_duplicate_id_keeps_the_cell_of_the_release_type():
    nb = release()
    i = nb.cells.index(cell(nb, "rnn_step"))
    fake = nbformat.v4.new_markdown_cell("not code", metadata={"nbgrader": copy.deepcopy(cell(nb, "rnn_step").metadata.nbgrader)})
    nb.cells.insert(i, fake)  # first in the notebook, but markdown
    pipeline.rebuild_nbgrader_metadata(nb, release())
    assert nb.cells[i].metadata == {} and cell(nb, "rnn_step") is nb.cells[i + 1]
    assert_metadata_is_the_release(nb)


def test_a_converted_cell_gets_the_release_type_back():
    nb = release()
    c = cell(nb, "clip_grad_norm")
    i = nb.cells.index(c)
    nb.cells[i] = nbformat.v4.new_markdown_cell(c.source, metadata=c.metadata)
    r = pipeline.rebuild_nbgrader_metadata(nb, release())
    assert r["restored"] == ["clip_grad_norm"]
    assert nb.cells[i].cell_type == "code" and nb.cells[i].outputs == [] and nb.cells[i].execution_count is None
    nbformat.validate(nb)


# ------------------------------------------------------------------ one run per assignment
def test_a_second_run_waits_then_refuses(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_STATE_DIR", str(tmp_path))
    said = []
    with pipeline.grading_lock(A, log=said.append) as path:
        assert path.parent == tmp_path and f"pid {os.getpid()}" in path.read_text()
        t0 = time.monotonic()
        with pytest.raises(SystemExit, match="another grading run of 01_gradient_flow .* still in progress"):
            with pipeline.grading_lock(A, wait=0.6, log=said.append, poll=0.05):
                pass
        assert time.monotonic() - t0 >= 0.6
        with pipeline.grading_lock("02_lstm_gru_cells", wait=0):  # another assignment: no wait
            pass
    assert any("waiting for it to finish" in s for s in said)


def test_a_second_run_proceeds_when_the_first_finishes(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_STATE_DIR", str(tmp_path))
    held, said = threading.Event(), []

    def first():
        with pipeline.grading_lock(A, log=said.append):
            held.set()
            time.sleep(0.5)

    t = threading.Thread(target=first)
    t.start()
    held.wait(5)
    with pipeline.grading_lock(A, wait=10, log=said.append, poll=0.05):
        assert not t.is_alive()
    t.join()
    assert said[0].startswith("another grading run of 01_gradient_flow is in progress (pid")
    assert "has finished" in said[-1]


def test_grade_refuses_while_another_run_holds_the_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_STATE_DIR", str(tmp_path / "state"))
    subs = tmp_path / "subs"
    subs.mkdir()
    with pipeline.grading_lock(A):
        with pytest.raises(SystemExit, match="still in progress"):
            pipeline.grade(A, subs, log=lambda *a: None, lock_wait=0.2)
    assert not (tmp_path / "state" / "runs").exists()


def test_make_samples_compares_links_not_what_they_point_to(tmp_path):
    from autograder.samples.make_samples import files_of

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.ipynb").symlink_to("../../../../solutions/x.ipynb")  # dangling here: still listed
    (tmp_path / "b").symlink_to(tmp_path / "a", target_is_directory=True)  # a linked folder: listed, not entered
    (tmp_path / "c.ipynb").write_text("{}")
    assert files_of(tmp_path) == {"a/x.ipynb": b"symbolic link -> ../../../../solutions/x.ipynb",
                                  "b": b"symbolic link -> " + str(tmp_path / "a").encode(), "c.ipynb": b"{}"}


@pytest.mark.slow  # two nbgrader runs
def test_two_processes_create_the_gradebook_together(tmp_path):
    """The gradebook's schema and the assignment are created under a lock: two commands started at
    the same moment on a fresh state dir both succeed (no 'table already exists' / 'database is locked')."""
    import subprocess
    import sys

    env = dict(os.environ, AUTOGRADER_STATE_DIR=str(tmp_path / "state"))
    env.pop("NBGRADER_DB_URL", None)
    code = "import sys; from pathlib import Path; from autograder import pipeline; pipeline.generate_release(%r, Path(sys.argv[1]))" % A
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"out{k}")], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for k in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outs)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{tmp_path / 'state' / 'gradebook.db'}", "fancy-rnns") as gb:
        assert gb.find_assignment(A).name == A


def test_a_hard_link_is_refused_like_a_symbolic_link(tmp_path):
    """A hard link names the very file it links (the instructor's solution notebook, on the same
    disk): it is never read, and the student's row says why."""
    from autograder import safefs

    outside = tmp_path / "solutions.ipynb"
    outside.write_text('{"cells": []}')
    subs = tmp_path / "subs"
    subs.mkdir()
    os.link(outside, subs / "mallory.ipynb")
    (subs / "honest.ipynb").write_text('{"cells": []}')
    with pytest.raises(safefs.Refused, match="hard link"):
        safefs.read_file(subs, "mallory.ipynb")
    assert safefs.read_file(subs, "honest.ipynb") == b'{"cells": []}'


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the strongest sandbox needs root")
def test_a_hard_link_in_a_class_costs_only_its_own_row(tmp_path, monkeypatch):
    """The grading command, not just intake: a hard-linked notebook gets its malformed row, saying
    why, and the rest of the class is graded (it once stopped the whole command)."""
    import shutil

    from autograder import config, pipeline

    root = Path(__file__).resolve().parents[1]
    subs = tmp_path / "subs"
    shutil.copytree(root / "autograder" / "samples" / "01_gradient_flow" / "correct", subs / "ann")
    shutil.copytree(root / "autograder" / "samples" / "01_gradient_flow" / "correct", subs / "bob")
    (subs / "eve").mkdir()
    os.link(subs / "ann" / "01_gradient_flow.ipynb", subs / "eve" / "01_gradient_flow.ipynb")
    monkeypatch.setenv("AUTOGRADER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AUTOGRADER_SECRET", "ci-secret")
    monkeypatch.delenv("NBGRADER_DB_URL", raising=False)
    s = pipeline.grade("01_gradient_flow", subs, workers=1, log=lambda *a: None,
                       cfg=config.load(cell_timeout=8.0, call_timeout=4.0, total_timeout=120.0))
    rows = {r["student_id"]: r for r in s.results}
    assert (rows["eve"]["score"], rows["eve"]["status"]) == (0.0, "malformed") and "hard link" in rows["eve"]["detail"]
    # ann's own file has two names too (eve's link): refused as well, never read as someone else's work
    assert rows["ann"]["status"] == "malformed" and "hard link" in rows["ann"]["detail"]
    assert (rows["bob"]["score"], rows["bob"]["status"]) == (12.0, "ok")
