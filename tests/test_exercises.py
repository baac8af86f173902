"""The exercise registry (course_lib/exercises): every spec's known mistakes get their hint, its correct
variants pass, its declared result schema accepts the reference's own results, and the notebooks, the README
and the sample classes say what the specs say (``check-release`` fails when a notebook disagrees)."""
import copy
import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autograder.samples.make_samples import solution_code
from course_lib import checks
from course_lib.checks import _schema
from course_lib.exercises import REGISTRY, Mistake, Spec, answer_source, compile_function, readme, specs, sync

ROOT = Path(__file__).resolve().parents[1]
WRITTEN = [(a, s) for a, s in specs() if s.exercise_object is None]  # specs with their own cases and mistakes
MISTAKES = [(a, s, m) for a, s in WRITTEN for m in s.mistakes]
VARIANTS = [(a, s, v) for a, s in WRITTEN for v in s.variants]


def _ids(rows):
    return [f"{r[1].name}-{k}" for k, r in enumerate(rows)]


def notebook_function(a, spec, code):
    """``code`` defined in the solution notebook's namespace: the notebook's other answers (the building blocks
    it may call) are correct, as in a sample notebook with this one cell changed."""
    ns = {"torch": torch, "nn": torch.nn, "math": math}
    exec(compile(_imports_cell(a), "<imports>", "exec"), ns)
    for gid, src in solution_code(a.folder).items():
        if gid != spec.answer_cell:
            exec(compile(src, f"<{gid}>", "exec"), ns)
    return compile_function(code, spec.name, ns)


def _imports_cell(a) -> str:
    """The notebook's code before its first answer cell (imports, constants), as the student's kernel runs it."""
    cells = json.loads(sync.notebook_path(a).read_text())["cells"]
    first = next(k for k, c in enumerate(cells) if c["metadata"].get("nbgrader", {}).get("solution"))
    return "\n".join(sync._src(c) for c in cells[:first] if c["cell_type"] == "code")


def hint_of(spec, fn, seed=5):
    with pytest.raises(AssertionError) as info:
        getattr(checks, f"check_{spec.name}")(fn, hidden=True, seed=seed)
    return str(info.value)


@pytest.mark.parametrize("a,spec,mistake", MISTAKES, ids=_ids(MISTAKES))
def test_every_known_mistake_gets_its_hint(a, spec, mistake):
    hint = hint_of(spec, notebook_function(a, spec, mistake.code))
    assert mistake.hint in hint, hint


@pytest.mark.parametrize("a,spec,variant", VARIANTS, ids=_ids(VARIANTS))
def test_correct_code_written_differently_passes(a, spec, variant):
    assert getattr(checks, f"check_{spec.name}")(notebook_function(a, spec, variant.code), hidden=True, seed=6) is None


@pytest.mark.parametrize("a,spec", WRITTEN, ids=[s.name for _, s in WRITTEN])
def test_the_declared_result_schema_accepts_the_references_own_results(a, spec):
    """The Call's schema is complete: the reference's result on every case passes it (and a result with one
    entry dropped does not)."""
    ex = spec.exercise
    assert spec.call.schema() == _schema.schema(ex)
    for case in ex.cases(0, False) + ex.cases(1, True):
        want = ex.call(ex.reference(), case)
        assert "error_type" not in want and _schema.problem(ex, want, want) is None, case.label
        dropped = dict(list(want.items())[1:])
        assert _schema.problem(ex, dropped, want) is not None


def test_every_mistake_that_is_a_sample_is_in_its_sample_class_with_its_score():
    from autograder.samples import make_samples_rnn as rnn

    a = REGISTRY[rnn.A3]
    total = sum(s.points for s in a.specs)
    for s in a.specs:
        for m in s.mistakes:
            if m.sample:
                lost = sum(x.points for x in a.specs if x.name in a.dependents(s.name))
                assert rnn.A3_SAMPLES[m.sample][1] == total - lost
                assert rnn.A3_HINTS[m.sample] == (s.name, m.hint)
    assert {"mistake_highway_carry_is_transform", "mistake_highway_no_sigmoid"} <= set(rnn.A3_SAMPLES)


@pytest.mark.parametrize("folder", list(REGISTRY))
def test_notebooks_agree_with_their_specs(folder):
    assert sync.problems(REGISTRY[folder]) == []


def test_readme_contract_section_is_generated_from_the_specs():
    text = (ROOT / "README.md").read_text()
    assert readme.rewritten(text, REGISTRY) == text, "run python -m course_lib.exercises readme"
    flat = " ".join(text.split())  # the section is wrapped at 110 columns
    for _, s in specs():
        assert f"`{s.signature}` ({s.points} points)" in flat


def _copy_of(folder, tmp_path):
    a = REGISTRY[folder]
    dest = tmp_path / "solutions" / folder
    dest.mkdir(parents=True)
    (dest / f"{folder}.ipynb").write_text(sync.notebook_path(a).read_text())
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "normalize_notebooks.py").write_text((ROOT / "scripts" / "normalize_notebooks.py").read_text())
    return a, dest / f"{folder}.ipynb"


def test_a_notebook_that_disagrees_is_named_and_the_sync_repairs_it(tmp_path):
    a, path = _copy_of("03_deep_bidirectional", tmp_path)
    nb = json.loads(path.read_text())
    test = next(c for c in nb["cells"] if sync._gid(c) == "test_highway")
    test["metadata"]["nbgrader"]["points"] = 5
    test["source"] = "check_highway(highway)\n"
    path.write_text(json.dumps(nb))
    found = sync.problems(a, tmp_path)
    assert any("test_highway" in p for p in found), found
    assert sync.write(a, tmp_path) and sync.problems(a, tmp_path) == []


def test_a_new_spec_gets_its_cells_after_its_explanation_and_none_without_one(tmp_path):
    a, path = _copy_of("03_deep_bidirectional", tmp_path)
    extra = Spec("peephole", 2, "peephole(x, state) -> (h, c)", "A peephole LSTM step.", "...")
    bigger = dataclasses.replace(a, specs=[*a.specs, extra])
    assert "no markdown cell explains `peephole(...)`" in sync.problems(bigger, tmp_path)[0]
    nb = json.loads(path.read_text())
    nb["cells"].insert(3, {"cell_type": "markdown", "id": "pe", "metadata": {}, "source": "Write `peephole(x, state)`."})
    path.write_text(json.dumps(nb))
    sync.write(bigger, tmp_path)
    cells = json.loads(path.read_text())["cells"]
    gids = [sync._gid(c) for c in cells[3:6]]
    assert gids == [None, "peephole", "test_peephole"]
    assert "".join(cells[4]["source"]).startswith("def peephole(x, state):")
    assert "| 7 | `peephole(x, state) -> (h, c)` | 2 |" in "".join(cells[0]["source"])


def test_check_release_fails_when_a_notebook_disagrees_with_its_spec(tmp_path, monkeypatch):
    from course_lib.exercises import a3_deep_bidirectional as A3

    changed = copy.copy(A3.HIGHWAY)
    changed.points = 4
    monkeypatch.setitem(REGISTRY, "03_deep_bidirectional",
                        dataclasses.replace(A3.ASSIGNMENT, specs=[*A3.ASSIGNMENT.specs[:3], changed]))
    from autograder import __main__ as cli

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr("autograder.pipeline.release_is_fresh", lambda a: (True, []))
    assert cli.main(["check-release", "03_deep_bidirectional"]) == 1


def test_the_sync_command_finds_everything_in_agreement():
    r = subprocess.run([sys.executable, "-m", "course_lib.exercises", "check"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_mistake_can_be_tried_by_the_diagnosis_only_as_a_whole_hint():
    highway = REGISTRY["03_deep_bidirectional"].by_name["highway"]
    tried = highway.exercise.mutants()
    assert [m.hint for m in tried] == [m.hint for m in highway.mistakes if m.mutant]
    assert all(isinstance(m, Mistake) for m in highway.mistakes)


def test_a_reference_as_the_students_answer_is_its_code_without_the_docstring():
    import inspect

    from course_lib.reference import training

    code = answer_source(training.train_loop)
    source = inspect.getsource(training.train_loop).splitlines()
    doc_lines = len(training.train_loop.__doc__.splitlines())  # the docstring as written, closing quotes' line too
    assert code.splitlines() == source[:1] + source[1 + doc_lines:]
    assert code.startswith("def train_loop(") and '"""' not in code
    assert callable(compile_function(code, "train_loop"))
    with pytest.raises(ValueError, match="no docstring"):
        answer_source(_no_docstring)


def _no_docstring(x):
    return x
