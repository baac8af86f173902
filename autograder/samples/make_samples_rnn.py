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
import csv
import io
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from course_lib.exercises import REGISTRY

from .from_specs import sample_class
from .make_samples import _solution_code, drop_keys, dumps, files_of

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CORRECT, BLANK = "correct", "blank"


def _code(body: str) -> str:
    return body.strip("\n")


# ================================================================ assignment 2
A2 = "02_lstm_gru_cells"
A2_POINTS = {"lstm_cell": 4, "gru_cell": 3, "run_rnn": 3, "numerical_gradient": 2}
A2_MANUAL = 2  # the written answer, graded by hand
A2_ANSWER = ("LSTM for the logs: dependencies over thousands of steps, lots of data, and its forget gate keeps the "
             "cell state. GRU on the microcontroller: a quarter fewer parameters, short sequences. If unsure, "
             "train both and compare on validation data.")

LSTM_HEAD = "def lstm_cell(x, state, W_ih, W_hh, b_ih, b_hh):\n"
GRU_HEAD = "def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):\n"
RUN_HEAD = "def run_rnn(x, weights, cell_fn, lengths, state):\n"
NG_HEAD = "def numerical_gradient(f, x, eps=1e-6):\n"


def _lstm(i="i", f="f", g="g", o="o", order="i, f, g, o", gates="x @ W_ih.T + b_ih + h @ W_hh.T + b_hh",
          c_next="f * c + i * g", h_next="o * torch.tanh(c_next)", ret="h_next, c_next", unpack="h, c = state",
          act_i="torch.sigmoid", act_f="torch.sigmoid", act_g="torch.tanh", act_o="torch.sigmoid"):
    return LSTM_HEAD + f"""    {unpack}
    {order} = ({gates}).chunk(4, dim=1)
    i, f, g, o = {act_i}(i), {act_f}(f), {act_g}(g), {act_o}(o)
    c_next = {c_next}
    h_next = {h_next}
    return {ret}"""


def _gru(reset="xn + r * hn", update="(1 - z) * n + z * h", wrap=None):
    body = f"""xr, xz, xn = (x @ W_ih.T + b_ih).chunk(3, dim=1)
hr, hz, hn = (h @ W_hh.T + b_hh).chunk(3, dim=1)
r = torch.sigmoid(xr + hr)
z = torch.sigmoid(xz + hz)
n = torch.tanh({reset})
return {update}"""
    if wrap:
        body = wrap + "\n" + "\n".join("    " + ln for ln in body.splitlines())
    return GRU_HEAD + "\n".join("    " + ln for ln in body.splitlines())


def _run(mask_state=True, mask_out=True, use_lengths=True):
    valid = "(t < lengths).unsqueeze(1)" if use_lengths else "torch.ones(x.shape[0], 1, dtype=torch.bool)"
    keep = ("tuple(torch.where(valid, n, s) for n, s in zip(new, state))" if mask_state else "tuple(new)")
    keep_h = "torch.where(valid, new, state)" if mask_state else "new"
    out = "torch.where(valid, h, torch.zeros_like(h))" if mask_out else "h"
    return RUN_HEAD + f"""    outs = []
    for t in range(x.shape[1]):
        new = cell_fn(x[:, t], state, *weights)
        valid = {valid}
        if isinstance(state, tuple):
            state = {keep}
            h = new[0]
        else:
            state = {keep_h}
            h = new
        outs.append({out})
    return torch.stack(outs, dim=1), state"""


def _ng(kind="central"):
    if kind == "forward":
        step = """        flat[i] = old + eps
        grad[i] = (float(f(x)) - f0) / eps
        flat[i] = old"""
    elif kind == "no_restore":
        step = """        flat[i] += eps
        f_plus = float(f(x))
        flat[i] -= 2 * eps
        grad[i] = (f_plus - float(f(x))) / (2 * eps)"""
    return NG_HEAD + f"""    x = x.detach().clone()
    flat = x.reshape(-1)
    grad = torch.zeros_like(flat)
    f0 = float(f(x))
    for i in range(flat.numel()):
        old = flat[i].item()
{step}
    return grad.reshape(x.shape)"""


A2_CODE = {
    # correct, written differently: per-gate slices and F.linear, float64 inside, multiplicative masks,
    # a fresh perturbed copy per entry
    "lstm_per_gate_slices": LSTM_HEAD + """    h, c = state
    H = h.shape[1]

    def pre(k):  # the pre-activation of gate block k, from its own rows of the stacked weights
        rows = slice(k * H, (k + 1) * H)
        return (torch.nn.functional.linear(x, W_ih[rows], b_ih[rows])
                + torch.nn.functional.linear(h, W_hh[rows], b_hh[rows]))

    i, f, g, o = torch.sigmoid(pre(0)), torch.sigmoid(pre(1)), torch.tanh(pre(2)), torch.sigmoid(pre(3))
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c_new""",
    "gru_float64_inside": GRU_HEAD + """    d = x.dtype
    x, h, W_ih, W_hh, b_ih, b_hh = (t.double() for t in (x, h, W_ih, W_hh, b_ih, b_hh))
    H = h.shape[1]
    gi, gh = x @ W_ih.T + b_ih, h @ W_hh.T + b_hh
    r = 1 / (1 + torch.exp(-(gi[:, :H] + gh[:, :H])))
    z = 1 / (1 + torch.exp(-(gi[:, H:2 * H] + gh[:, H:2 * H])))
    n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    return (n + z * (h - n)).to(d)""",
    "run_multiplicative_mask": RUN_HEAD + """    steps = []
    for t in range(x.shape[1]):
        new = cell_fn(x[:, t], state, *weights)
        m = (t < lengths).to(x.dtype).unsqueeze(1)
        if isinstance(state, (tuple, list)):
            state = tuple(m * a + (1 - m) * b for a, b in zip(new, state))
            steps.append(m * new[0])
        else:
            state = m * new + (1 - m) * state
            steps.append(m * new)
    return torch.stack(steps, dim=1), state""",
    "ng_copy_per_entry": NG_HEAD + """    grad = torch.empty_like(x)
    for idx in range(x.numel()):
        e = torch.zeros_like(x)
        e.view(-1)[idx] = eps
        grad.view(-1)[idx] = (f(x + e) - f(x - e)) / (2 * eps)
    return grad.detach()""",
    # one common mistake each
    "lstm_gate_order": _lstm(order="i, f, o, g"),
    "lstm_sigmoid_candidate": _lstm(act_g="torch.sigmoid"),
    "lstm_tanh_forget_gate": _lstm(act_f="torch.tanh"),
    "lstm_no_output_tanh": _lstm(h_next="o * c_next"),
    "lstm_no_forget_gate": _lstm(c_next="c + i * g"),
    "lstm_forget_as_input": _lstm(c_next="f * c + f * g"),  # published: the forget gate where i belongs
    "lstm_no_bias": _lstm(gates="x @ W_ih.T + b_ih + h @ W_hh.T"),
    "lstm_swapped_return": _lstm(ret="c_next, h_next"),
    "lstm_detach": _lstm(unpack="h, c = state[0].detach(), state[1].detach()"),
    "lstm_in_place": LSTM_HEAD + """    h, c = state
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
    c *= torch.sigmoid(f)
    c += torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c""",
    # right values, but b_ih changed in place (``b = b_ih`` is the same tensor): only ``inputs_changed`` shows it
    "lstm_bias_in_place": _lstm(unpack="h, c = state\n    b = b_ih\n    b += b_hh  # one bias for both products",
                                gates="x @ W_ih.T + h @ W_hh.T + b"),
    "gru_reset_before": _gru(reset="xn + (r * h) @ W_hh[2 * h.shape[1]:].T + b_hh[2 * h.shape[1]:]"),
    "gru_swapped_z": _gru(update="z * n + (1 - z) * h"),
    "gru_no_grad": _gru(wrap="with torch.no_grad():"),
    "run_ignores_lengths": _run(use_lengths=False),
    "run_state_not_masked": _run(mask_state=False),
    "ng_forward": _ng("forward"),
    "ng_no_restore": _ng("no_restore"),
}


def _a2(**functions):
    return {"functions": {**{k: CORRECT for k in A2_POINTS}, **functions}, "answer": A2_ANSWER}


def _a2_score(*failed):
    return sum(p for k, p in A2_POINTS.items() if k not in failed)


A2_SAMPLES = {
    "correct": (_a2(), _a2_score(), "ok"),
    "blank": ({"functions": {k: BLANK for k in A2_POINTS}, "answer": None}, 0, "not_attempted"),
    "correct_written_differently": (_a2(lstm_cell="lstm_per_gate_slices", gru_cell="gru_float64_inside",
                                        run_rnn="run_multiplicative_mask", numerical_gradient="ng_copy_per_entry"),
                                    _a2_score(), "ok"),
    "mistake_lstm_gate_order": (_a2(lstm_cell="lstm_gate_order"), _a2_score("lstm_cell"), "ok"),
    "mistake_lstm_sigmoid_candidate": (_a2(lstm_cell="lstm_sigmoid_candidate"), _a2_score("lstm_cell"), "ok"),
    "mistake_lstm_tanh_forget_gate": (_a2(lstm_cell="lstm_tanh_forget_gate"), _a2_score("lstm_cell"), "ok"),
    "mistake_lstm_no_output_tanh": (_a2(lstm_cell="lstm_no_output_tanh"), _a2_score("lstm_cell"), "ok"),
    "mistake_lstm_no_forget_gate": (_a2(lstm_cell="lstm_no_forget_gate"), _a2_score("lstm_cell"), "ok"),
    "mistake_lstm_forget_as_input": (_a2(lstm_cell="lstm_forget_as_input"), _a2_score("lstm_cell"), "ok"),
    "mistake_lstm_no_bias": (_a2(lstm_cell="lstm_no_bias"), _a2_score("lstm_cell"), "ok"),
    "mistake_lstm_swapped_return": (_a2(lstm_cell="lstm_swapped_return"), _a2_score("lstm_cell"), "ok"),
    "mistake_lstm_detach": (_a2(lstm_cell="lstm_detach"), _a2_score("lstm_cell"), "ok"),
    "mistake_lstm_in_place": (_a2(lstm_cell="lstm_in_place"), _a2_score("lstm_cell"), "ok"),
    "mistake_gru_reset_before": (_a2(gru_cell="gru_reset_before"), _a2_score("gru_cell"), "ok"),
    "mistake_gru_swapped_z": (_a2(gru_cell="gru_swapped_z"), _a2_score("gru_cell"), "ok"),
    "mistake_gru_no_grad": (_a2(gru_cell="gru_no_grad"), _a2_score("gru_cell"), "ok"),
    "mistake_run_ignores_lengths": (_a2(run_rnn="run_ignores_lengths"), _a2_score("run_rnn"), "ok"),
    "mistake_run_state_not_masked": (_a2(run_rnn="run_state_not_masked"), _a2_score("run_rnn"), "ok"),
    "mistake_numgrad_forward": (_a2(numerical_gradient="ng_forward"), _a2_score("numerical_gradient"), "ok"),
    "mistake_numgrad_no_restore": (_a2(numerical_gradient="ng_no_restore"), _a2_score("numerical_gradient"), "ok"),
    # the in-place change hidden: an extra cell drops `inputs_changed` from lstm_cell's results in the sandbox
    "attack_drop_keys_rnn": ({**_a2(lstm_cell="lstm_bias_in_place"),
                              "extra": [drop_keys("rnn.", ("inputs_changed",), ("lstm_cell",))]},
                             _a2_score("lstm_cell"), "ok"),
}

# the words each sample's hint must contain (tests/test_grading_rnn.py)
A2_HINTS = {
    "mistake_lstm_gate_order": "order i, f, o, g",
    "mistake_lstm_sigmoid_candidate": "cell candidate g goes through a sigmoid",
    "mistake_lstm_tanh_forget_gate": "forget gate f goes through tanh",
    "mistake_lstm_no_output_tanh": "tanh on the cell output is missing",
    "mistake_lstm_no_forget_gate": "forget gate f is missing",
    "mistake_lstm_forget_as_input": "c' = f * c + f * g",
    "mistake_lstm_no_bias": "b_hh is missing",
    "mistake_lstm_swapped_return": "returns (c_next, h_next)",
    "mistake_lstm_detach": "no gradient reaches the state `h`",
    "mistake_lstm_in_place": "in place",
    "mistake_gru_reset_before": "before the matmul",
    "mistake_gru_swapped_z": "z and 1 - z are swapped",
    "mistake_gru_no_grad": "cut from the autograd graph",
    "mistake_run_ignores_lengths": "ignores `lengths`",
    "mistake_run_state_not_masked": "keeps changing on padded steps",
    "mistake_numgrad_forward": "one-sided",
    "mistake_numgrad_no_restore": "put each entry back",
    "attack_drop_keys_rnn": "incomplete result for `lstm_cell` (missing `inputs_changed`)",
    "blank": "not implemented yet",
}


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
    spec = A3_CLASS.samples["correct"][0]
    return {**spec, "functions": {**spec["functions"], "your_lstm": key}}


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
    wrong_cell = _replace_def(base, "lstm_cell", _lstm(order="i, f, o, g"))
    wrong_run = _replace_def(base, "run_rnn", _run(use_lengths=False))
    return {"pasted_gate_order": wrong_cell.rstrip("\n"), "pasted_run_ignores_lengths": wrong_run.rstrip("\n")}


CLASSES = {
    A2: {"points": A2_POINTS, "manual": A2_MANUAL, "samples": A2_SAMPLES, "code": A2_CODE},
    A3: {"points": A3_POINTS, "manual": A3_MANUAL, "samples": A3_SAMPLES, "code": A3_CODE},
}


def build(assignment, spec) -> dict:
    release = json.loads((ROOT / "assignments" / assignment / f"{assignment}.ipynb").read_text())
    sol = _solution_code(assignment)
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
        how = spec["functions"].get(gid, BLANK)
        if how == CORRECT:
            c["source"] = sol[gid]
        elif how != BLANK:
            c["source"] = code[how]
    for k, src in enumerate(spec.get("extra", ())):  # extra cells at the end (attacks)
        nb["cells"].append({"cell_type": "code", "execution_count": None, "id": f"extra-{k}", "metadata": {},
                            "outputs": [], "source": src.strip("\n")})
    return nb


def write_all(assignment, out: Path) -> None:
    cls = CLASSES[assignment]
    total = sum(cls["points"].values()) + cls["manual"]
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (spec, score, status) in cls["samples"].items():
        folder = out / name
        folder.mkdir(exist_ok=True)
        (folder / f"{assignment}.ipynb").write_text(dumps(build(assignment, spec)), encoding="utf-8")
        rows.append((name, score, status))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["student_id", "score", "max_score", "status"])
    for name, score, status in sorted(rows):
        w.writerow([name, score, total, status])
    (out / "expected.csv").write_text(buf.getvalue(), encoding="utf-8")


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
