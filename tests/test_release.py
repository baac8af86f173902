"""The committed release is what nbgrader makes from solutions/ today, and gives nothing away."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.checks import ASSIGNMENTS

ROOT = Path(__file__).resolve().parents[1]
A = "01_gradient_flow"
RELEASE = ROOT / "assignments" / A / f"{A}.ipynb"
SOURCE = ROOT / "solutions" / A / f"{A}.ipynb"


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    """Grading state (gradebook included) in a temporary folder, never the instructor's."""
    d = tmp_path_factory.mktemp("state")
    mp = pytest.MonkeyPatch()
    mp.setenv("AUTOGRADER_STATE_DIR", str(d))
    mp.delenv("NBGRADER_DB_URL", raising=False)
    yield d
    mp.undo()


def test_release_is_fresh(state):
    """As the instructor checks it: `check-release` says the release is up to date (exit 0), never nothing."""
    r = subprocess.run([sys.executable, "-m", "autograder", "check-release", A], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "release is up to date", \
        f"assignments/{A} is stale ({r.stdout}{r.stderr[-2000:]}): run python -m autograder release {A}"
    assert (state / "gradebook.db").exists()


def _cells(path):
    return json.loads(path.read_text())["cells"]


def test_release_has_no_solution_or_hidden_test():
    text = RELEASE.read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "hidden=True"):
        assert marker not in text
    release_code = "\n".join("".join(c["source"]) for c in _cells(RELEASE))
    pattern = r"### BEGIN (?:SOLUTION|HIDDEN TESTS)\n(.*?)### END[^\n]*"
    source = "\n".join("".join(c["source"]) for c in _cells(SOURCE))
    public = re.sub(pattern, "", source, flags=re.S)  # what the source shows outside the answers
    for block in re.findall(pattern, source, re.S):
        for line in block.splitlines():
            if len(line.strip()) > 12 and line.strip() not in public:
                assert line.strip() not in release_code, line  # every answer line is gone


def test_no_source_twins_or_stray_files():
    for folder in (ROOT / "solutions" / A, ROOT / "assignments" / A):
        files = sorted(p.name for p in folder.rglob("*") if p.is_file())
        assert files == [f"{A}.ipynb"], f"{folder}: {files} (a .py/.md twin would be released)"


def test_graded_cells_match_the_checks():
    exercises = ASSIGNMENTS[A]
    tests = {c["metadata"]["nbgrader"]["grade_id"]: c for c in _cells(RELEASE)
             if c["metadata"].get("nbgrader", {}).get("grade")}
    assert set(tests) == {f"test_{n}" for n in exercises}
    for name, ex in exercises.items():
        meta = tests[f"test_{name}"]["metadata"]
        assert meta["nbgrader"]["points"] == ex.points and meta["nbgrader"]["locked"]
        assert meta["editable"] is False and meta["deletable"] is False
        assert "".join(tests[f"test_{name}"]["source"]).strip() == f"check_{name}({name})"
    solutions = [c for c in _cells(RELEASE) if c["metadata"].get("nbgrader", {}).get("solution")]
    assert len(solutions) == len(exercises)
    assert all("raise NotImplementedError()" in "".join(c["source"]) for c in solutions)


def test_sample_class_is_in_sync_with_the_release():
    r = subprocess.run([sys.executable, "-m", "autograder.samples.make_samples", "--check"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_solution_notebook_passes_its_own_checks_in_a_kernel():
    """The source notebook executes top to bottom, visible and hidden-style checks included."""
    from coursetools import notebooks

    nb, _ = notebooks.execute(SOURCE, budget="ci", timeout=300)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream")
    assert text.count("checks passed") == 2 * len(ASSIGNMENTS[A])
    figures = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs
                  if o.output_type == "display_data" and "image/png" in o.get("data", {}))
    assert figures == 4
