"""Pieces of the grader: intake, structure checks, loading sandbox results, the sandbox itself."""
import json
import os
from pathlib import Path

import nbformat
import numpy as np
import pytest

from autograder import judge, nbgrader_plugin, pipeline, sandbox

ROOT = Path(__file__).resolve().parents[1]
A = "01_gradient_flow"
RELEASE = ROOT / "assignments" / A / f"{A}.ipynb"


def test_discover_accepts_any_file_name_and_both_layouts(tmp_path):
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "Copy of 01_gradient_flow (3).ipynb").write_text("{}")
    (tmp_path / "bo b").mkdir()
    (tmp_path / "bo b" / f"{A}.ipynb").write_text("{}")
    (tmp_path / "bo b" / "scratch.ipynb").write_text("{}")
    (tmp_path / "cy.ipynb").write_text("{}")
    (tmp_path / "empty").mkdir()
    found = {sid: (p.name if p else None, note) for sid, p, note in pipeline.discover(tmp_path, [A])}
    assert found["ann"][0] == "Copy of 01_gradient_flow (3).ipynb" and "notebook named" in found["ann"][1]
    assert found["bo_b"] == (f"{A}.ipynb", "")
    assert found["cy"] == ("cy.ipynb", "")
    assert found["empty"] == (None, "no notebook in the folder")


def test_structure_flags_missing_duplicated_and_edited_cells():
    rel = nbformat.read(str(RELEASE), as_version=4)
    nb = nbformat.read(str(RELEASE), as_version=4)
    assert pipeline.structure(nb, rel) == {"missing": [], "duplicated": [], "edited": []}
    tests = [i for i, c in enumerate(nb.cells) if judge.is_test_cell(c)]
    nb.cells[tests[0]].source = "pass"
    nb.cells.insert(tests[1], nbformat.from_dict(json.loads(json.dumps(nb.cells[tests[1]]))))
    del nb.cells[tests[-1] + 1]
    s = pipeline.structure(nb, rel)
    assert s["edited"] == ["test_rnn_step"] and s["duplicated"] == ["test_step_jacobian"]
    assert s["missing"] == ["test_clip_grad_norm"]
    assert pipeline.rebuild_nbgrader_metadata(nb, rel)["duplicated"] == ["test_step_jacobian"]  # one copy kept
    pipeline.repair(nb, rel)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells if judge.is_test_cell(c)]
    assert sorted(ids) == sorted(f"test_{n}" for n in ("rnn_step", "step_jacobian", "gradient_norms",
                                                        "spectral_bound", "clip_grad_norm"))


def test_paths_are_scrubbed():
    text = f'File "{ROOT}/course_lib/x.py", line 3 and /usr/lib/python3.11/site.py'
    out = nbgrader_plugin._scrub_paths(text)
    assert str(ROOT) not in out and "/usr/lib" not in out


@pytest.mark.skipif(os.geteuid() != 0, reason="the strongest sandbox needs root")
def test_sandbox_isolation(tmp_path):
    lib = sandbox.prepare_library(tmp_path / "lib")
    probe = """
import os, socket
print("uid", os.getuid())
print("repo visible", os.path.exists(%r))
print("solutions visible", os.path.exists(%r))
try:
    socket.create_connection(("1.1.1.1", 53), timeout=1); print("network yes")
except OSError:
    print("network no")
try:
    import course_lib.reference; print("reference yes")
except ImportError:
    print("reference no")
""" % (str(ROOT / "autograder"), str(ROOT / "solutions"))
    r = sandbox.run([{"index": 0, "source": probe}], [], {}, sandbox.Limits(cell_timeout=20), lib, tmp_path)
    out = r.cells[0]["stdout"]
    assert r.mode == "root" and "uid 0" not in out
    assert "repo visible False" in out and "solutions visible False" in out
    assert "network no" in out and "reference no" in out


@pytest.mark.skipif(os.geteuid() != 0, reason="the strongest sandbox needs root")
def test_nbgrader_autograde_run_directly_rebuilds_student_metadata(tmp_path, monkeypatch):
    """`nbgrader autograde` itself (CLI, formgrader), not only the grading command: an answer cell a
    student marked graded (100 points) neither stops the bookkeeping nor earns those points."""
    import shutil

    from nbgrader.api import Gradebook

    monkeypatch.setenv("AUTOGRADER_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("AUTOGRADER_SECRET", "ci-secret")
    monkeypatch.delenv("NBGRADER_DB_URL", raising=False)
    pipeline.release_is_fresh(A, ROOT)  # puts the assignment into this gradebook
    sub = tmp_path / "submitted" / "eve" / A
    sub.mkdir(parents=True)
    shutil.copy(ROOT / "autograder" / "samples" / A / "cells_answer_marked_graded" / f"{A}.ipynb", sub / f"{A}.ipynb")
    api = pipeline.nbgrader_api(ROOT)
    r = api.autograde(A, "eve", force=True, create=True)
    assert r["success"], (r.get("log") or "")[-2000:]
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        s = gb.find_submission(A, "eve")
        assert (float(s.score), float(s.max_score)) == (12.0, 12.0)


def test_a_new_gradebook_is_stamped_with_the_migration_head_alembic_prints(tmp_path):
    """nbgrader stamps a new gradebook with ``alembic heads``' first revision; ``gradebook_db.alembic_head`` (installed
    in place of nbgrader's subprocess by ``nbgrader_plugin``) reads the same scripts in-process: same revision."""
    import subprocess
    import sys

    import nbgrader.api
    import sqlalchemy
    from nbgrader.dbutil import _temp_alembic_ini

    from autograder import gradebook_db

    assert nbgrader.api.get_alembic_version is gradebook_db.alembic_head
    alembic = Path(sys.executable).parent / "alembic"
    with _temp_alembic_ini(f"sqlite:///{tmp_path / 'x.db'}") as ini:
        printed = subprocess.run([str(alembic), "-c", ini, "heads"], capture_output=True, text=True, check=True).stdout
    head = printed.split("\n")[0].split(" ")[0]
    assert len(head) == 12 and gradebook_db.alembic_head() == head
    with nbgrader.api.Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}"):
        pass
    with sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'gradebook.db'}").connect() as conn:
        assert conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar_one() == head


def test_the_commands_iri_checker_is_imported_on_first_use_and_answers_the_same():
    """``python -m autograder`` puts a stand-in for ``rfc3987_syntax`` (a lark parser built at import, 0.65 s of
    every command) that imports it when jsonschema's IRI checker first runs: nbformat imports without it, and the
    checker's answers are the real module's."""
    import subprocess
    import sys

    probe = ("import sys\n{setup}\nimport nbformat\nloaded = 'rfc3987_syntax.syntax_helpers' in sys.modules\n"
             "from jsonschema import FormatChecker\nfc = FormatChecker()\n"
             "print(loaded, [fc.conforms(v, f) for v in ('http://a.b/c?d#e', 'http://[bad', 'ä b', 'x:y') "
             "for f in ('iri', 'iri-reference')])")
    runs = [subprocess.run([sys.executable, "-c", probe.format(setup=setup)], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split(" ", 1)
            for setup in ("from autograder.__main__ import _lazy_iri_syntax\n_lazy_iri_syntax()", "")]
    assert runs[0][0] == "False" and runs[1][0] == "True"
    assert runs[0][1] == runs[1][1] and "False" in runs[0][1] and "True" in runs[0][1]


def test_compiled_templates_are_kept_on_disk_and_an_edited_one_is_compiled_again(tmp_path, monkeypatch):
    import jinja2

    compiled = []
    real = jinja2.Environment.compile
    monkeypatch.setattr(jinja2.Environment, "compile", lambda self, *a, **k: compiled.append(1) or real(self, *a, **k))
    (tmp_path / "t").mkdir()

    def render(text):
        (tmp_path / "t" / "page.j2").write_text(text)
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(tmp_path / "t")),
                                 bytecode_cache=nbgrader_plugin._template_cache(tmp_path / "cache"))  # a new process's
        return env.get_template("page.j2").render(x=2)

    assert render("{{ x * 3 }}") == "6" and len(compiled) == 1
    assert render("{{ x * 3 }}") == "6" and len(compiled) == 1  # read from the disk, not compiled
    assert render("{{ x * 5 }}") == "10" and len(compiled) == 2  # edited: compiled again
    assert list((tmp_path / "cache").iterdir())


def test_a_worker_that_dies_setting_itself_up_costs_grader_errors_not_the_command(tmp_path, monkeypatch):
    """The workers are forked before the release check; one that dies in its set-up breaks the pool before any
    submission is sent: every submission is that run's ``grader_error`` (re-run next time), the command ends."""
    import shutil

    from state_helpers import isolate_state

    isolate_state(monkeypatch, tmp_path / "state")
    for sid in ("ann", "bob"):
        (tmp_path / "subs" / sid).mkdir(parents=True)
        shutil.copy(RELEASE, tmp_path / "subs" / sid / f"{A}.ipynb")
    monkeypatch.setattr(pipeline, "init_worker", lambda cfg_dict: os._exit(3))
    s = pipeline.grade(A, tmp_path / "subs", workers=2, force=True, log=lambda *a: None)
    assert sorted((r["student_id"], r["status"]) for r in s.results) == [("ann", "grader_error"), ("bob", "grader_error")]
    assert all("worker failed" in r["detail"] for r in s.results)


def test_the_reference_runs_once_per_visible_case_and_every_time_on_a_hidden_one(monkeypatch):
    """The judge's reference result on a visible case (the same for every student) is computed once per
    process; a hidden case (drawn per student) is computed each time; a changed input is another case."""
    from course_lib.checks import ASSIGNMENTS
    from course_lib.checks import _core

    ex = ASSIGNMENTS[A]["rnn_step"]
    real, calls = ex.reference(), []

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(_core, "_VISIBLE", {})
    monkeypatch.setattr(ex, "reference", lambda: counted)
    visible, hidden = ex.cases(0, hidden=False), ex.cases(123, hidden=True)
    cases = visible + hidden
    right = [_core.reference_result(ex, counted, c) for c in cases]
    for _ in range(2):
        v = _core.verdict(ex, cases, [dict(r) for r in right])
        assert v.passed and v.n_cases == len(cases)
    assert len(calls) == len(visible) + 3 * len(hidden)  # visible: the first time only
    changed = ex.cases(0, hidden=False)[0]
    changed.arrays = {k: a + 1 if a.dtype.kind == "f" else a for k, a in changed.arrays.items()}
    _core.reference_result(ex, counted, changed)
    assert len(calls) == len(visible) + 3 * len(hidden) + 1


def test_a_remembered_reference_result_is_never_changed_by_its_user_nor_keyed_on_a_students_file(monkeypatch):
    """Red team: a comparison that changes the reference's result in place (or a student's outputs written
    into it) must not reach the next student's verdict; and a visible case that carries a student's file
    (assignment 4's `charlm.pt`) is not remembered at all (each student's bytes would be a key)."""
    from course_lib.checks import ASSIGNMENTS
    from course_lib.checks import _core

    monkeypatch.setattr(_core, "_VISIBLE", {})
    ex = ASSIGNMENTS[A]["rnn_step"]
    ref = ex.reference()
    first = _core.reference_result(ex, ref, ex.cases(0, hidden=False)[0])
    for v in first.values():
        if v.dtype.kind == "f":
            v[...] = 1e9
    fresh = ex.call(ref, ex.cases(0, hidden=False)[0])
    again = _core.reference_result(ex, ref, ex.cases(0, hidden=False)[0])
    assert len(_core._VISIBLE) == 1 and set(again) == set(fresh)
    assert all(np.array_equal(again[k], fresh[k]) for k in fresh)
    model = ASSIGNMENTS["04_training_with_clipping"]["load_model"]
    case = model.cases(0, hidden=False)[0]
    case.arrays.update({"file": np.frombuffer(b"PK\x03\x04 not a model", dtype=np.uint8).copy(),
                        "file_name": np.array("charlm.pt")})
    assert "out_type" in _core.reference_result(model, model.reference(), case)
    assert len(_core._VISIBLE) == 1


def test_every_visible_reference_result_is_computed_once_per_process(monkeypatch):
    """A reference factory that builds a new closure per call (spectral_bound, run_rnn, numerical_gradient,
    bidirectional_rnn, stacked_rnn) still hits: the second round of visible cases computes nothing."""
    from course_lib.checks import ASSIGNMENTS
    from course_lib.checks import _core

    monkeypatch.setattr(_core, "_VISIBLE", {})
    calls = []
    real_call = _core.Exercise.call

    def counted(self, ref, case):
        calls.append(self.name)
        return real_call(self, ref, case)

    monkeypatch.setattr(_core.Exercise, "call", counted)
    exercises = [ex for a in ASSIGNMENTS.values() for ex in a.values()
                 if not getattr(ex, "attach", None)]
    for _ in range(2):
        for ex in exercises:
            for case in ex.cases(0, hidden=False):
                _core.reference_result(ex, ex.reference(), case)
    assert len(calls) == sum(len(ex.cases(0, hidden=False)) for ex in exercises)
    assert {"spectral_bound", "run_rnn", "numerical_gradient", "bidirectional_rnn", "stacked_rnn"} <= set(calls)
