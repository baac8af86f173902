"""The judge checks that each case's result is complete and well formed before comparing it
(``course_lib/checks/_schema.py``): for every exercise of every assignment, on its visible cases, the
reference's own result passes, and the same result with one key dropped, an extra key, a wrong dtype
kind or a NaN where the reference is finite fails (the first three with the schema's own hint)."""
import numpy as np
import pytest
import torch

from course_lib.checks import ASSIGNMENTS, GRADFLOW, _schema
from course_lib.checks._core import check_case
from course_lib.checks.training import MODEL_FILE, FileExercise, model_file_arrays

EXERCISES = [pytest.param(a, name, id=f"{a}:{name}") for a, exs in ASSIGNMENTS.items() for name in exs]
# exercises judged against a reference run (a handed-in file is judged by a threshold on its score)
REFERENCE_JUDGED = [p for p in EXERCISES if not isinstance(ASSIGNMENTS[p.values[0]][p.values[1]], FileExercise)]
_RESULTS = {}


def _tiny_model(path):  # a load_model for the file-graded exercise (it has no reference run)
    from course_lib.models import CharLM

    lm = CharLM(7, hidden=4, embed_dim=3)
    lm.load_state_dict(torch.load(path, weights_only=True))
    return lm


def results(assignment, name, tmp_path_factory):
    """``[(case, got, want)]`` on the visible cases, ``got`` a copy of the reference's own result."""
    if (assignment, name) not in _RESULTS:
        ex = ASSIGNMENTS[assignment][name]
        out = []
        for case in ex.cases(0, hidden=False):
            want = ex.call(ex.reference(), case)
            if isinstance(ex, FileExercise):
                folder = tmp_path_factory.mktemp("model")
                from course_lib.models import CharLM

                torch.save(CharLM(7, hidden=4, embed_dim=3).state_dict(), folder / MODEL_FILE)
                case.arrays.update(model_file_arrays(folder))
                got = ex.call(_tiny_model, case)
            else:
                got = {k: v.copy() for k, v in want.items()}
            assert "error_type" not in got, (name, got)
            out.append((case, got, want))
        _RESULTS[assignment, name] = out
    return ASSIGNMENTS[assignment][name], _RESULTS[assignment, name]


def judged(ex, case, got, want):
    if isinstance(ex, FileExercise):  # its verdict is a threshold on the model's bits per character
        return _schema.problem(ex, got, want) or check_case(ex, case, got, want)
    return check_case(ex, case, got, want)


@pytest.mark.parametrize("assignment,name", EXERCISES)
def test_the_references_own_result_passes(assignment, name, tmp_path_factory):
    ex, rs = results(assignment, name, tmp_path_factory)
    for case, got, want in rs:
        assert _schema.problem(ex, got, want) is None
        if not isinstance(ex, FileExercise):
            assert check_case(ex, case, got, want) is None, case.label


@pytest.mark.parametrize("assignment,name", EXERCISES)
def test_a_dropped_key_fails_with_the_schema_hint(assignment, name, tmp_path_factory):
    ex, rs = results(assignment, name, tmp_path_factory)
    for case, got, want in rs:
        for key in got:
            hint = judged(ex, case, {k: v for k, v in got.items() if k != key}, want)
            assert hint and hint.startswith(f"the grader received an incomplete result for `{name}` (missing `"), \
                (key, hint)
            assert _schema.TAMPERED in hint


@pytest.mark.parametrize("assignment,name", EXERCISES)
def test_an_extra_key_fails(assignment, name, tmp_path_factory):
    ex, rs = results(assignment, name, tmp_path_factory)
    for case, got, want in rs:
        for extra in ("evil", "out.9", "grad_9", "probe.x.out", "sd.evil"):
            if extra in got:
                continue
            hint = judged(ex, case, {**got, extra: np.zeros(1)}, want)
            assert hint and f"unexpected entry `{extra}`" in hint, (extra, hint)


@pytest.mark.parametrize("assignment,name", EXERCISES)
def test_a_wrong_dtype_kind_fails(assignment, name, tmp_path_factory):
    ex, rs = results(assignment, name, tmp_path_factory)
    for case, got, want in rs:
        for key, v in got.items():
            bad = np.full(v.shape, 1.5) if v.dtype.kind == "U" else np.full(v.shape, "x")
            hint = judged(ex, case, {**got, key: bad}, want)
            assert hint and f"a malformed result for `{name}` (`{key}` has dtype" in hint, (key, hint)


@pytest.mark.parametrize("assignment,name", REFERENCE_JUDGED)
def test_a_nan_where_the_reference_is_finite_fails(assignment, name, tmp_path_factory):
    ex, rs = results(assignment, name, tmp_path_factory)
    tried = 0
    for case, got, want in rs:
        for key, v in got.items():
            if v.dtype.kind != "f" or not v.size or key.startswith("probe.") or not np.all(np.isfinite(want[key])):
                continue
            tried += 1
            assert check_case(ex, case, {**got, key: np.full_like(v, np.nan)}, want), key
    assert tried


def test_the_issues_example_a_clip_that_never_clips_and_hides_its_gradients():
    """The right norm, no clipping, and the clipped gradients dropped from the result: no marks."""
    def no_clip(parameters, max_norm):
        return torch.sqrt(sum((p.grad ** 2).sum() for p in parameters if p.grad is not None))

    ex = GRADFLOW["clip_grad_norm"]
    case = ex.cases(0, hidden=False)[0]  # its norm is above max_norm
    got = ex.call(no_clip, case)
    got = {k: v for k, v in got.items() if not k.startswith(("grad_", "orig_"))}
    hint = check_case(ex, case, got, ex.call(ex.reference(), case))
    assert hint.startswith("the grader received an incomplete result for `clip_grad_norm` (missing `grad_0`)"), hint


def test_an_error_result_needs_its_message_and_nothing_unknown():
    ex = GRADFLOW["rnn_step"]
    case = ex.cases(0, hidden=False)[0]
    want = ex.call(ex.reference(), case)
    assert "missing `error`" in check_case(ex, case, {"error_type": np.array("ValueError")}, want)
    err = {"error_type": np.array("ValueError"), "error": np.array("boom")}
    assert check_case(ex, case, err, want).startswith("`rnn_step` raised ValueError")
    assert "unexpected entry `evil`" in check_case(ex, case, {**err, "evil": np.array(1)}, want)
