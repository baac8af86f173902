"""Write the sample classes of assignments 2 (LSTM and GRU cells) and 3 (deep and bidirectional RNNs).

    python -m autograder.samples.make_samples_rnn [--check]

Each sample is the release notebook with its solution cells filled in: the correct code from
``solutions/``, correct code written differently, one common mistake written the way a student would
write it, or nothing. ``expected.csv`` lists the exact score and status the grading command must give
each one (``max_score`` includes the hand-graded written answer of assignment 2, which the autograder
leaves at 0); ``tests/test_grading_rnn.py`` checks both. The attacks, faults and damaged files of the
grading pipeline itself are covered once, by assignment 1's sample class (``make_samples.py``).
``--check`` exits 1 when the committed samples differ from what this script writes.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from course_lib.exercises import REGISTRY

from course_lib.exercises.a2_lstm_gru_cells import lstm_code, run_code

from .from_specs import BLANK, sample_class
from .make_samples import drop_keys, extra_cell, files_of, fill_solution_cell, solution_code, write_notebooks

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


# ================================================================ assignment 2
A2 = "02_lstm_gru_cells"
A2_MANUAL = 2  # the written answer, graded by hand
A2_ANSWER = ("LSTM for the logs: dependencies over thousands of steps, lots of data, and its forget gate keeps the "
             "cell state. GRU on the microcontroller: a quarter fewer parameters, short sequences. If unsure, "
             "train both and compare on validation data.")
# written once, in its specs (course_lib/exercises/a2_lstm_gru_cells.py): the exercises' samples; here only the
# attack on the sandbox's helpers (right values, an input changed in place: only ``inputs_changed`` shows it)
A2_CLASS = sample_class(REGISTRY[A2], answer=A2_ANSWER)
A2_POINTS = A2_CLASS.points
A2_CODE = {**A2_CLASS.code,
           "lstm_bias_in_place": lstm_code(gates="x @ W_ih.T + h @ W_hh.T + b",
                                           unpack="h, c = state\n    b = b_ih\n    b += b_hh  # one bias for both products")}


def _a2_score(*failed):
    return sum(p for k, p in A2_POINTS.items() if k not in failed)


def _with(spec, **chosen):
    return {**spec, "functions": {**spec["functions"], **chosen}}


A2_SAMPLES = {
    **A2_CLASS.samples,
    # the in-place change hidden: an extra cell drops `inputs_changed` from lstm_cell's results in the sandbox
    "attack_drop_keys_rnn": ({**_with(A2_CLASS.samples["correct"][0], lstm_cell="lstm_bias_in_place"),
                              "extra": [drop_keys("rnn.", ("inputs_changed",), ("lstm_cell",))]},
                             _a2_score("lstm_cell"), "tampering_detected"),
}

# the words each sample's hint must contain (tests/test_grading_rnn.py)
A2_HINTS = {**{k: words for k, (_, words) in A2_CLASS.hints.items()},
            "attack_drop_keys_rnn": "incomplete result for `lstm_cell` (missing `inputs_changed`)"}


# ================================================================ assignment 3
# written once, in its specs (course_lib/exercises/a3_deep_bidirectional.py): the exercises' samples; here only
# the samples of the cell pasted from assignment 2 (no exercise of its own)
A3 = "03_deep_bidirectional"
A3_CLASS = sample_class(REGISTRY[A3], others=("your_lstm",))
A3_POINTS = A3_CLASS.points
A3_MANUAL = 0
A3_CODE = {**A3_CLASS.code, "pasted_gate_order": None,  # filled below: the your_lstm cell with a wrong lstm_cell
           "pasted_run_ignores_lengths": None}


def _a3_score(*failed):
    return sum(p for k, p in A3_POINTS.items() if k not in failed)


def _pasted(key):
    return _with(A3_CLASS.samples["correct"][0], your_lstm=key)


A3_SAMPLES = {
    **A3_CLASS.samples,
    # the pasted building blocks from assignment 2 are wrong: everything built on them fails, and says why
    "mistake_pasted_lstm_gate_order": (_pasted("pasted_gate_order"), _a3_score("bidirectional_rnn", "stacked_rnn"),
                                       "ok"),
    "mistake_pasted_run_ignores_lengths": (_pasted("pasted_run_ignores_lengths"),
                                           _a3_score("bidirectional_rnn", "stacked_rnn"), "ok"),
}

A3_HINTS = {
    **A3_CLASS.hints,
    "mistake_pasted_lstm_gate_order": ("bidirectional_rnn", "your `lstm_cell`"),
    "mistake_pasted_run_ignores_lengths": ("bidirectional_rnn", "your `run_rnn`"),
}


# ================================================================ building
def _replace_def(src: str, name: str, code: str) -> str:
    """``src`` with the top-level function ``name`` replaced by ``code``."""
    m = re.search(rf"^def {name}\(.*?(?=^\S|\Z)", src, flags=re.S | re.M)
    return src[: m.start()] + code.rstrip("\n") + "\n\n\n" + src[m.end():].lstrip("\n") if m else src


def _a3_pasted(sol):
    base = sol["your_lstm"]
    wrong_cell = _replace_def(base, "lstm_cell", lstm_code(order="i, f, o, g"))
    wrong_run = _replace_def(base, "run_rnn", run_code(use_lengths=False))
    return {"pasted_gate_order": wrong_cell.rstrip("\n"), "pasted_run_ignores_lengths": wrong_run.rstrip("\n")}


CLASSES = {
    A2: {"points": A2_POINTS, "manual": A2_MANUAL, "samples": A2_SAMPLES, "code": A2_CODE},
    A3: {"points": A3_POINTS, "manual": A3_MANUAL, "samples": A3_SAMPLES, "code": A3_CODE},
}


def build(assignment, spec) -> dict:
    release = json.loads((ROOT / "assignments" / assignment / f"{assignment}.ipynb").read_text())
    sol = solution_code(assignment)
    code = dict(CLASSES[assignment]["code"])
    if assignment == A3:
        code.update(_a3_pasted(sol))
    nb = copy.deepcopy(release)
    for c in nb["cells"]:
        nbg = c["metadata"].get("nbgrader", {})
        gid = nbg.get("grade_id")
        if not nbg.get("solution"):
            continue
        if c["cell_type"] == "markdown":
            if spec.get("answer"):
                c["source"] = spec["answer"]
            continue
        fill_solution_cell(c, spec["functions"].get(gid, BLANK), sol, gid, code)
    for k, src in enumerate(spec.get("extra", ())):  # extra cells at the end (attacks)
        nb["cells"].append(extra_cell(k, src))
    return nb


def write_all(assignment, out: Path) -> None:
    cls = CLASSES[assignment]
    total = sum(cls["points"].values()) + cls["manual"]
    write_notebooks(out, cls["samples"], f"{assignment}.ipynb", lambda spec: build(assignment, spec), total)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when the committed samples are stale")
    args = ap.parse_args(argv)
    status = 0
    for assignment in CLASSES:
        target = HERE / assignment
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                write_all(assignment, Path(tmp))
                new, old = files_of(Path(tmp)), files_of(target) if target.exists() else {}
            stale = sorted(k for k in set(new) | set(old) if new.get(k) != old.get(k))
            if stale:
                print(f"{assignment}: stale samples (run python -m autograder.samples.make_samples_rnn):",
                      *stale, sep="\n  ")
                status = 1
            continue
        if target.exists():
            shutil.rmtree(target)
        write_all(assignment, target)
        print(f"wrote {len(CLASSES[assignment]['samples'])} samples to {target.relative_to(ROOT)}")
    if args.check and not status:
        print("samples are up to date")
    return status


if __name__ == "__main__":
    sys.exit(main())
