"""Assignment 4 (training with clipping): the checks know each common mistake, the release is fresh and gives
nothing away, the solution notebook trains and passes its checks at the ci budget, and the sample class gets
its exact scores, statuses and hints under the trusted judge (the trained model measured from its file).
"""
import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autograder import config, pipeline
from autograder.samples import make_samples_train as samples
from course_lib.checks import ASSIGNMENTS, check_load_checkpoint, check_train_loop, check_train_step
from course_lib.checks import training as T
from course_lib.reference import training as R
from test_grading_rnn import monkeypatch_module, state  # noqa: F401 (fixtures: a private gradebook)

ROOT = Path(__file__).resolve().parents[1]
A = samples.A4
SOURCE = ROOT / "solutions" / A / f"{A}.ipynb"
RELEASE = ROOT / "assignments" / A / f"{A}.ipynb"
LIMITS = dict(cell_timeout=25.0, call_timeout=10.0, total_timeout=150.0)


def _cells(path):
    return json.loads(path.read_text())["cells"]


# ------------------------------------------------------------------ the checks
def test_reference_passes_every_case():
    check_train_step(R.train_step, hidden=True, seed=5)
    check_load_checkpoint(R.load_checkpoint, hidden=True, seed=5)
    check_train_loop(R.train_loop, hidden=True, seed=5)


@pytest.mark.parametrize("check,mutants", [(check_train_step, T._step_mutants), (check_train_loop, T._loop_mutants)],
                         ids=["train_step", "train_loop"])
def test_each_known_mistake_gets_its_own_hint(check, mutants):
    for m in mutants():
        with pytest.raises(AssertionError) as e:
            check(m.fn, hidden=True, seed=2)
        assert m.hint in str(e.value), (m.hint, str(e.value))


def test_the_notebook_states_the_graded_numbers():
    text = "".join("".join(c["source"]) for c in _cells(RELEASE))
    assert f'MODEL_FILE = "{T.MODEL_FILE}"' in text
    assert f"BPC_TARGET = {T.BPC_TARGET}" in text
    assert f"EVAL_CHARS = {T.EVAL_CHARS:_}" in text
    assert f"STEP_BUDGET = {T.STEP_BUDGET}" in text and "TIME_BUDGET" not in text  # steps, never seconds
    assert f'Path("{T.CHECKPOINT_FILE}")' in text and "unlink" not in text  # the checkpoint a hint names is kept
    assert "ci=3.3" in text and T.CI_BPC_TARGET == 3.3


def test_model_file_is_read_as_bytes_only(tmp_path):
    assert T.model_file_arrays(tmp_path) == {} and T.model_file_arrays(None) == {}
    (tmp_path / "elsewhere.pt").write_bytes(b"x")
    (tmp_path / T.MODEL_FILE).symlink_to(tmp_path / "elsewhere.pt")
    assert T.model_file_arrays(tmp_path) == {}  # a link could point at another student's file


# ------------------------------------------------------------------ release and samples
def test_release_is_fresh(state):  # noqa: F811
    fresh, diff = pipeline.release_is_fresh(A)
    assert fresh, f"assignments/{A} is stale ({diff}): run python -m autograder release {A}"


def test_release_gives_nothing_away():
    text = "\n".join("".join(c["source"]) for c in _cells(RELEASE))
    source = "\n".join("".join(c["source"]) for c in _cells(SOURCE))
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "hidden=True"):
        assert marker not in text
    for line in ("optimizer.zero_grad()", "clip_grad_norm_(model.parameters(), max_norm)",
                 'optimizer.load_state_dict(ckpt["optimizer"])', "new_lr = optimizer.param_groups[0]"):
        assert line in source and line not in text
    graded = {c["metadata"]["nbgrader"]["grade_id"]: c for c in _cells(RELEASE)
              if c["metadata"].get("nbgrader", {}).get("grade")}
    assert set(graded) == {f"test_{n}" for n in ASSIGNMENTS[A]}
    for name, ex in ASSIGNMENTS[A].items():
        assert graded[f"test_{name}"]["metadata"]["nbgrader"]["points"] == ex.points
        assert "".join(graded[f"test_{name}"]["source"]).strip() == f"check_{name}({name})"
    for folder in (SOURCE.parent, RELEASE.parent):
        assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == [f"{A}.ipynb"]


def test_sample_class_is_in_sync_with_the_release():
    r = subprocess.run([sys.executable, "-m", "autograder.samples.make_samples_train", "--check"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    sizes = [p.stat().st_size for p in (ROOT / "autograder" / "samples" / A).rglob("*.pt")]
    assert sizes and max(sizes) < 400_000  # the repository stays lean


# ------------------------------------------------------------------ the solution notebook
@pytest.mark.slow
def test_solution_notebook_trains_and_passes_its_checks(tmp_path):
    """At the ci budget: 200 steps, then check_load_model against the ci threshold (3.3 bits)."""
    from coursetools import notebooks

    shutil.copy(SOURCE, tmp_path)
    nb, _ = notebooks.execute(tmp_path / SOURCE.name, budget="ci", timeout=300)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream")
    assert text.count("checks passed") >= 6 and "load_model: your model reaches" in text
    assert (tmp_path / T.MODEL_FILE).is_file()
    # the checkpoint is kept, at the last step trained, so that running the cell again resumes from it
    done = int(re.search(r"saved charlm\.pt: .* after (\d+) steps", text)[1])
    assert 0 < done <= 200 and torch.load(tmp_path / T.CHECKPOINT_FILE, weights_only=True)["step"] == done
    assert any(o.output_type == "display_data" for c in nb.cells if c.cell_type == "code" for o in c.outputs)


# ------------------------------------------------------------------ the sample class, graded
def expected():
    with open(ROOT / "autograder" / "samples" / A / "expected.csv") as f:
        rows = {r["student_id"]: (float(r["score"]), r["status"], float(r["max_score"])) for r in csv.DictReader(f)}
    rows["solution_notebook"] = (float(samples.TOTAL), "ok", float(samples.TOTAL))
    # the release handed in flat: a charlm.pt cannot sit beside it, which outranks not_attempted
    rows["release_blank"] = (0.0, "missing_files", float(samples.TOTAL))
    return rows


@pytest.mark.slow
def test_sample_class_under_the_trusted_judge(tmp_path, state):  # noqa: F811
    subs = tmp_path / "submissions"
    shutil.copytree(ROOT / "autograder" / "samples" / A, subs, ignore=shutil.ignore_patterns("expected.csv"))
    (subs / "solution_notebook").mkdir()
    shutil.copy(SOURCE, subs / "solution_notebook")
    shutil.copy(subs / "correct" / T.MODEL_FILE, subs / "solution_notebook")
    shutil.copy(RELEASE, subs / "release_blank.ipynb")
    summary = pipeline.grade(A, subs, workers=2, cfg=config.load(**LIMITS), log=lambda *x: None)
    rows = {r["student_id"]: r for r in summary.results}

    want = expected()
    assert set(rows) == set(want)
    got = {sid: (r["score"], r["status"], r["max_score"]) for sid, r in rows.items()}
    wrong = {sid: (got[sid], want[sid]) for sid in want if got[sid] != want[sid]}
    assert not wrong, "\n".join(f"{s}: got {g}, expected {w}; {rows[s]['detail']} {rows[s]['verdicts']}"
                                for s, (g, w) in wrong.items())
    for sid, (exercise, words) in samples.HINTS.items():
        hint = rows[sid]["verdicts"][exercise]["hint"] or ""
        assert words in hint, (sid, words, hint)

    # a new model file next to an unchanged notebook is a new submission: graded again, not reused
    (subs / "correct" / T.MODEL_FILE).write_bytes((subs / "model_too_weak" / T.MODEL_FILE).read_bytes())
    (subs / "correct" / f"{A}.ipynb").write_text((subs / "model_too_weak" / f"{A}.ipynb").read_text())
    again = pipeline.grade(A, subs, workers=1, cfg=config.load(**LIMITS), log=lambda *x: None)
    assert again.graded == 1 and {r["student_id"]: r["score"] for r in again.results}["correct"] == want["model_too_weak"][0]

    html = (config.state_dir() / "feedback" / "model_too_weak" / A / f"{A}.html").read_text()
    for word in ("BEGIN HIDDEN", "hidden=True", str(ROOT), "Traceback (most recent call last)"):
        assert word not in html
