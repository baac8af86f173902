"""Write the sample class for assignment 1 from the release notebook plus per-sample code.

    python -m autograder.samples.make_samples [--check]

Each sample is the release notebook with its solution cells filled in (correct code taken from
``solutions/``, or a known mistake, or left blank), extra cells added (attacks and faults), or the
file itself damaged. ``expected.csv`` lists the exact score and status the grading command must
give each one; ``tests/test_grading_samples.py`` checks both. ``--check`` exits 1 when the committed
samples differ from what this script writes.
"""
from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from course_lib.exercises import REGISTRY

from .from_specs import BLANK, CORRECT

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "01_gradient_flow"
OUT = Path(__file__).resolve().parent / ASSIGNMENT
POINTS = {s.name: s.points for s in REGISTRY[ASSIGNMENT].specs}  # written once, in course_lib/exercises
TOTAL = sum(POINTS.values())


def solution_code(assignment: str = ASSIGNMENT) -> dict:
    """The code of each solution cell of ``solutions/ASSIGNMENT``, by grade id, markers removed."""
    nb = json.loads((ROOT / "solutions" / assignment / f"{assignment}.ipynb").read_text())
    out = {}
    for c in nb["cells"]:
        nbg = c["metadata"].get("nbgrader", {})
        if nbg.get("solution") and not nbg.get("grade"):
            src = "".join(c["source"])
            src = re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n?", "", src, flags=re.M)
            out[nbg["grade_id"]] = src.rstrip("\n")
    return out


# -------------------------------------------------------------- wrong (and differently right) code
def _sig(name, args, body, doc=""):
    return f"def {name}({args}):\n" + "\n".join("    " + ln if ln else "" for ln in body.strip("\n").splitlines())


RNN = "x, h, W_xh, W_hh, b"
JAC = "h_next, W_hh"
GN = "x, h0, W_xh, W_hh, b"
SB = "W_hh, T, gamma=1.0"
CLIP = "parameters, max_norm"

# the exercises' known mistakes and variants are written once, as specs (course_lib/exercises/a1_gradient_flow.py);
# here only the code of the class-level samples (a slow function, faults shown by few result entries)
WRONG = {
    "rnn_endless": _sig("rnn_step", RNN, """
while True:
    pass"""),
    # right values, with a fault that only some entries of the result show (hidden by drop_keys below)
    "rnn_changes_input": _sig("rnn_step", RNN, """
out = torch.tanh(x @ W_xh.T + h @ W_hh.T + b)
x.zero_()  # "free" the input
return out"""),
    "clip_never_clips": _sig("clip_grad_norm", CLIP, """
return torch.sqrt(sum((p.grad ** 2).sum() for p in parameters if p.grad is not None))"""),
}


def _from_specs():
    """The code of each spec's mistakes and variants (by sample name), and ``{sample: (cells, exercises lost)}``."""
    a, code, samples = REGISTRY[ASSIGNMENT], {}, {}
    for s in a.specs:
        for m in s.mistakes:
            if m.sample:
                code[m.sample] = m.code
                samples[m.sample] = ({s.answer_cell: m.sample}, a.loses(s, m))
        for k, v in enumerate(s.variants):
            code[f"{s.name}:variant{k}"] = v.code
            samples.setdefault(v.sample, ({}, set()))[0][s.answer_cell] = f"{s.name}:variant{k}"
    return code, samples


SPEC_CODE, SPEC_SAMPLES = _from_specs()
WRONG.update(SPEC_CODE)

# -------------------------------------------------------------- attacks and faults (extra cells)
def drop_keys(protocol: str, drop: tuple, only: tuple | None = None) -> str:
    """A cell that patches the sandbox's helper modules (``_protocol``, ``_protocol_rnn``, ``_protocol_train``)
    so that the results of ``protocol`` (a prefix) for the functions named ``only`` (None: all) lose the
    keys that start with ``drop``: those already loaded now, one loaded later as it loads (an import hook),
    the extensions loaded now the way ``_protocol._extension`` would later."""
    return f"""
import importlib.machinery, sys

PROTOCOL, DROP, ONLY = {protocol!r}, {tuple(drop)!r}, {only!r}
HELPERS = ("_protocol", "_protocol_rnn", "_protocol_train")


def _dropping(call):
    if getattr(call, "drops_keys", False):
        return call

    def call_dropping(protocol, fn, *args, **kwargs):
        res = call(protocol, fn, *args, **kwargs)
        if str(protocol).startswith(PROTOCOL) and (ONLY is None or getattr(fn, "__name__", "") in ONLY):
            res = {{k: v for k, v in res.items() if not k.startswith(DROP)}}
        return res
    call_dropping.drops_keys = True
    return call_dropping


def _patch(module):
    if module is not None and callable(getattr(module, "call", None)):
        module.call = _dropping(module.call)


class _PatchOnLoad:
    def find_spec(self, name, path=None, target=None):
        spec = importlib.machinery.PathFinder.find_spec(name, path) if name in HELPERS else None
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module
            spec.loader.exec_module = lambda module: (run(module), _patch(module))
        return spec


base = sys.modules.get("_protocol")
for name in HELPERS[1:]:
    if base is not None and name not in sys.modules and hasattr(base, "_extension"):
        try:
            base._extension(name)
        except Exception as exc:
            print("could not load", name, exc)
for name in HELPERS:
    _patch(sys.modules.get(name))
sys.meta_path.insert(0, _PatchOnLoad())
print("patched:", [name for name in HELPERS if name in sys.modules])"""


ATTACK = {
    "allclose": """
import numpy
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
numpy.allclose = lambda *args, **kwargs: True
torch.testing.assert_close = lambda *args, **kwargs: None""",
    "patch_checks": """
import course_lib.checks
for _name in ["check_rnn_step", "check_step_jacobian", "check_gradient_norms", "check_spectral_bound",
              "check_clip_grad_norm"]:
    setattr(course_lib.checks, _name, lambda *args, **kwargs: None)
    globals()[_name] = lambda *args, **kwargs: None
try:
    import course_lib.checks._core as _core
    _core.verdict = lambda ex, cases, outputs: _core.Verdict(True, None, len(cases), 0)
except Exception as exc:
    print("could not patch the verdict:", exc)""",
    "input_transformer": """
def _swallow(lines):
    return ["try:\\n"] + ["    " + line for line in lines] + ["\\nexcept BaseException:\\n    pass\\n"]

get_ipython().input_transformers_post.append(_swallow)""",
    "read_solutions": """
import glob, json, os
import course_lib
found = []
for pattern in ["../solutions/*/*.ipynb", "../../solutions/*/*.ipynb", "/work/*/solutions/*/*.ipynb",
                os.path.join(os.path.dirname(os.path.dirname(course_lib.__path__[0])), "solutions/*/*.ipynb"),
                os.path.join(os.path.dirname(course_lib.__path__[0]), "solutions/*/*.ipynb")]:
    found += glob.glob(pattern)
print("solutions found:", found)
for path in found:
    for cell in json.load(open(path))["cells"]:
        if "BEGIN SOLUTION" in "".join(cell["source"]):
            exec("".join(cell["source"]), globals())""",
    "gradebook": """
import glob, os, sqlite3
import course_lib
root = os.path.dirname(course_lib.__path__[0])
for db in glob.glob(os.path.join(root, "autograder", "*.db")) + glob.glob("../*.db") + glob.glob("/work/*/autograder/*.db"):
    con = sqlite3.connect(db)
    con.execute("UPDATE grade SET auto_score = 0")
    con.execute("UPDATE grade SET manual_score = 100")
    con.commit()
    print("gradebook written:", db)""",
    "fake_course_lib": """
import os, sys, importlib
os.makedirs("course_lib/reference", exist_ok=True)
os.makedirs("course_lib/checks", exist_ok=True)
open("course_lib/__init__.py", "w").write("")
open("course_lib/checks/__init__.py", "w").write("def __getattr__(name):\\n    return lambda *a, **k: None\\n")
open("course_lib/reference/__init__.py", "w").write(
    "import torch\\nrnn_step = lambda x, h, W_xh, W_hh, b: torch.sigmoid(x @ W_xh.T + h @ W_hh.T + b)\\n")
sys.path.insert(0, os.getcwd())
for mod in [m for m in sys.modules if m.startswith("course_lib")]:
    del sys.modules[mod]
import course_lib.reference""",
    "forge_results": """
import atexit, os, sys, threading, numpy as np
def _forge():
    np.savez("judge.npz", **{"rnn_step/0/out": np.zeros((3, 5), dtype=np.float32),
                             "rnn_step/0/out_type": np.array("Tensor"),
                             "evil": np.array([object()], dtype=object)})
atexit.register(_forge)
try:
    _protocol = sys.modules.get("_protocol")
    if _protocol is not None:
        _protocol.call = lambda *a, **k: {"out": np.zeros(1), "out_type": np.array("Tensor")}
except Exception:
    pass""",
    # results that lose the entries that show the fault (course_lib/checks/_schema.py must notice)
    "drop_inputs_changed": drop_keys("plain", ("inputs_changed",), ("rnn_step", "gradient_norms")),
    "drop_clipped_grads": drop_keys("clip", ("grad_", "orig_")),
    "os_exit": """
import os
os._exit(0)""",
    "segfault": """
import ctypes
ctypes.string_at(0)""",
    "sigint_loop": """
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGALRM, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    try:
        while True:
            pass
    except BaseException:
        pass""",
    "memory_bomb": """
hoard = []
while True:
    hoard.append(bytearray(50_000_000))""",
    "fork_bomb": """
import os
while True:
    os.fork()""",
    "big_output": """
line = "x" * 1_000_000
for _ in range(100):
    print(line)""",
    # the grader's own side: paths, pipes, clocks and byte counts (autograder/sandbox.py)
    "plant_links": """
import os, re
names = ["job.json", "inputs.npz", "inputs.part.npz", "cells.npz", "cells.tmp.npz", "judge.npz",
         "judge.tmp.npz", "progress", "runner.py", "_protocol.py", "log", "gradebook.db", ".mpl"]
targets = ["/etc/passwd"]
for line in open("/proc/self/mountinfo"):  # every host path bound into the sandbox, the gradebook's folder too
    parts = line.split()
    targets += [parts[3], parts[3] + "/gradebook.db", parts[4]]
for folder in [os.getcwd(), os.path.expanduser("~"), "/tmp"]:
    for k, name in enumerate(names):
        path = os.path.join(folder, name)
        try:
            if os.path.lexists(path) and not os.path.isdir(path):
                os.remove(path)
            if k % 2:
                os.mkfifo(path)
            else:
                os.symlink(targets[k % len(targets)], path)
        except OSError as exc:
            print("could not plant", path, type(exc).__name__)
print("planted links and FIFOs")""",
    "disable_timers": """
import signal, sys
runner = sys.modules["__main__"]
for name in ("start_timers", "stop_timers"):
    setattr(runner, name, lambda *args: None)
signal.setitimer = lambda *args: (0.0, 0.0)
for sig in (signal.SIGALRM, signal.SIGPROF, signal.SIGINT, signal.SIGTERM, signal.SIGXCPU):
    signal.signal(sig, signal.SIG_IGN)
while True:
    pass""",
    "forge_replies": """
import json, os, struct, sys
def frame(header):
    head = json.dumps(header).encode()
    return struct.pack(">I", len(head)) + head + struct.pack(">Q", 0)
for fd in sorted(int(n) for n in os.listdir("/proc/self/fd") if int(n) > 2):  # the reply pipe is one of these
    try:
        os.write(fd, frame({"op": "cell", "index": 10**6}) + b"\\x00garbage" * 100)
    except OSError:
        pass""",
    "raw_output": """
import os
block = b"y" * 1_000_000
for _ in range(200):
    os.write(1, block)
    os.write(2, block)""",
    "sleep": """
import time
time.sleep(3600)""",
}



def sample(functions=None, extra=(), transform=None, filename=None, raw=None, files=None, flat=None, symlink=None):
    """``filename``: the notebook's name in the student's folder (``"FLAT"``: ``NAME.ipynb`` at the top);
    ``flat``: the file name at the top level when it differs from the student id (the id is the
    SAMPLES key: what the grader makes of that name); ``symlink``: the notebook is a symbolic link to
    this (relative) target instead of a file."""
    f = {k: CORRECT for k in POINTS}
    f.update(functions or {})
    return {"functions": f, "extra": list(extra), "transform": transform, "filename": filename,
            "raw": raw, "files": files or {}, "flat": flat, "symlink": symlink}


def _all(value):
    return {k: value for k in POINTS}


def _delete_tests(nb, ids=("test_rnn_step", "test_clip_grad_norm")):
    nb["cells"] = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") not in ids]


def _duplicate_test(nb, gid="test_spectral_bound"):
    i = next(k for k, c in enumerate(nb["cells"]) if c["metadata"].get("nbgrader", {}).get("grade_id") == gid)
    dup = copy.deepcopy(nb["cells"][i])
    dup["id"] = "duplicated-cell"
    nb["cells"].insert(i + 1, dup)


def _edit_test(nb, gid="test_clip_grad_norm"):
    c = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == gid)
    c["source"] = ["print('all checks passed')\n"]
    c["metadata"]["editable"] = True


def _png_1x1() -> str:
    """A real 1x1 PNG (base64), built here so that the sample stays deterministic."""
    import base64
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00\x33\x66\x99", 9)) + chunk(b"IEND", b""))
    return base64.b64encode(png).decode()


# every payload sets window.__pwned, changes document.title or opens a dialog if it ever runs
_HTML_PAYLOADS = """\
## My notes on vanishing gradients

HARMLESS-TEXT: the gradient *vanishes* when $\\sigma_{\\max}(W_{hh}) < 1$, because

$$\\Big\\|\\prod_{t=j+1}^{T} J_t\\Big\\|_2 \\le (\\gamma\\,\\sigma_{\\max})^{T-j}$$

![a plot of mine](attachment:plot.png)

<img src=x onerror="window.__pwned='img onerror'; document.title='PWNED'">

<script>window.__pwned='script'; document.title='PWNED'; alert('script')</script>

<svg onload="window.__pwned='svg onload'; alert('svg')"><circle r="4"></circle></svg>

[a javascript: link](javascript:window.__pwned='javascript-link';alert(1)) and [a data: link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)

<iframe srcdoc="<script>parent.__pwned='iframe'; parent.alert('iframe')</script>"></iframe>

<form action="javascript:window.__pwned='form'"><button id="go" autofocus onfocus="window.__pwned='autofocus'">go</button></form>

<details open ontoggle="window.__pwned='ontoggle'"><summary>more</summary>details text</details>

<style>body { background: red; } .container { display: none; }</style>

<meta http-equiv="refresh" content="0;url=javascript:window.__pwned='meta refresh'">

<base href="https://attacker.invalid/">

![an svg attachment](attachment:evil.svg)
"""
_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" onload="window.__pwned=\'svg attachment\'">'
        '<script>window.__pwned="svg attachment script"</script></svg>')


def _student_html(nb):
    """Student HTML that would run in the feedback page and the formgrader (it must not)."""
    import base64

    md = {"cell_type": "markdown", "id": "student-html", "source": _HTML_PAYLOADS,
          "metadata": {"tags": ["x\" onmouseover=\"window.__pwned='tag'"], "jupyter": {"source_hidden": True}},
          "attachments": {"plot.png": {"image/png": _png_1x1()},
                          "evil.svg": {"image/svg+xml": base64.b64encode(_SVG.encode()).decode()}}}
    raw = {"cell_type": "raw", "id": "student-raw", "metadata": {},
           "source": "<img src=x onerror=\"window.__pwned='raw cell'\">RAW-TEXT"}
    code = {"cell_type": "code", "execution_count": None, "id": "student-print", "metadata": {},
            "source": "print(\"<img src=x onerror=window.__pwned='stdout'>\")",
            "outputs": [{"output_type": "display_data", "metadata": {},
                         "data": {"text/html": "<img src=x onerror=\"window.__pwned='stale output'\">",
                                  "text/plain": "<IPython.core.display.HTML object>"}}]}
    nb["cells"][2:2] = [md, raw, code]
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {"w": {"model_name": "</script><script>window.__pwned='widget state'</script>",
                        "model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
                        "state": {}}},
        "version_major": 2, "version_minor": 0}}


def _invalid_metadata(nb):
    """What nbformat reads but its schema refuses: a bad and a duplicated cell id, tags that are not
    a list, a non-boolean source_hidden, a kernelspec without a name."""
    nb["cells"][2]["id"] = "bad id with spaces"
    nb["cells"][1]["id"] = nb["cells"][3]["id"]
    nb["cells"][4]["metadata"]["tags"] = "not-a-list"
    nb["cells"][5]["metadata"]["jupyter"] = {"source_hidden": "yes"}
    nb["metadata"]["kernelspec"] = {"display_name": "no name"}


def _mark_answer_graded(nb, gid="rnn_step"):
    c = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == gid)
    c["metadata"]["nbgrader"].update({"grade": True, "points": 100})


def _add_graded_cells(nb):
    """Cells of the student's own given nbgrader metadata: a new graded code cell, a markdown cell
    made a graded task, a second cell with an answer cell's grade id (all worth 100 points)."""
    def meta(gid, cell_type, **kw):
        return {"nbgrader": {"cell_type": cell_type, "grade": True, "grade_id": gid, "locked": False, "points": 100,
                             "schema_version": 3, "solution": False, "task": False, **kw}}

    i = 1 + next(k for k, c in enumerate(nb["cells"])
                 if c["metadata"].get("nbgrader", {}).get("grade_id") == "test_clip_grad_norm")
    nb["cells"][i:i] = [
        {"cell_type": "code", "execution_count": None, "id": "added-0", "metadata": meta("my_bonus", "code"),
         "outputs": [], "source": "print('my bonus exercise: done')"},
        {"cell_type": "markdown", "id": "added-1", "metadata": meta("my_essay", "markdown", task=True),
         "source": "My essay on vanishing gradients: they vanish."},
        {"cell_type": "code", "execution_count": None, "id": "added-2", "metadata": meta("rnn_step", "code"),
         "outputs": [], "source": "print('graded twice')"},
    ]


def _score(failed=()):
    return TOTAL - sum(POINTS[k] for k in set(failed))


# name -> (sample, expected score, expected status)
SAMPLES = {
    "correct": (sample(), TOTAL, "ok"),
    "blank": (sample(_all(BLANK)), 0, "not_attempted"),
    "partial": (sample({"gradient_norms": BLANK, "spectral_bound": BLANK, "clip_grad_norm": BLANK}), 4, "ok"),
    # one common mistake each, and every variant in one notebook: from the specs
    **{name: (sample(cells), _score(lost), "ok") for name, (cells, lost) in SPEC_SAMPLES.items()},
    "slow_function": (sample({"rnn_step": "rnn_endless"}), _score(["rnn_step"]), "timeout"),
    # attacks: wrong code plus an attempt to be graded as right; each must earn what the code earns
    "attack_allclose": (sample({"rnn_step": "mistake_rnn_sigmoid"}, [("end", "allclose")]),
                        _score(["rnn_step"]), "ok"),
    "attack_patch_checks": (sample({"clip_grad_norm": "mistake_clip_per_parameter"}, [("start", "patch_checks")]),
                            _score(["clip_grad_norm"]), "ok"),
    "attack_input_transformer": (sample(_all(BLANK), [("start", "input_transformer")]), 0, "ok"),
    "attack_read_solutions": (sample(_all(BLANK), [("end", "read_solutions")]), 0, "ok"),
    "attack_gradebook": (sample(_all(BLANK), [("start", "gradebook")]), 0, "ok"),
    "attack_fake_course_lib": (sample({"rnn_step": "mistake_rnn_sigmoid"}, [("start", "fake_course_lib")],
                                      files={"course_lib/__init__.py": "",
                                             "course_lib/checks/__init__.py":
                                                 "def __getattr__(name):\n    return lambda *a, **k: None\n"}),
                               _score(["rnn_step"]), "ok"),
    "attack_forge_results": (sample(_all(BLANK), [("start", "forge_results")]), 0, "tampering_detected"),
    # right values, a fault (an input changed in place; no clipping at all), and the entries that show it
    # dropped from the helper's result: the incomplete results fail (gradient_norms's too, whose keys it drops),
    # and the row says the results were malformed (tampering_detected), not a wrong answer
    "attack_drop_keys_plain": (sample({"rnn_step": "rnn_changes_input"}, [("end", "drop_inputs_changed")]),
                               _score(["rnn_step", "gradient_norms"]), "tampering_detected"),
    "attack_drop_keys_clip": (sample({"clip_grad_norm": "clip_never_clips"}, [("end", "drop_clipped_grads")]),
                              _score(["clip_grad_norm"]), "tampering_detected"),
    # faults: the bad cell is stopped (and skipped), everything else is graded
    "fault_os_exit": (sample(extra=[("rnn_step", "os_exit")]), TOTAL, "crash"),
    "fault_segfault": (sample(extra=[("step_jacobian", "segfault")]), TOTAL, "crash"),
    "fault_sigint_loop": (sample(extra=[("rnn_step", "sigint_loop")]), TOTAL, "timeout"),
    "fault_memory_bomb": (sample(extra=[("end", "memory_bomb")]), TOTAL, "memory"),
    "fault_fork_bomb": (sample(extra=[("end", "fork_bomb")]), TOTAL, "process_limit"),
    "fault_big_output": (sample(extra=[("end", "big_output")]), TOTAL, "output_limit"),
    # attacks on the grader's own side: it never touches a sandbox path, times and counts everything itself
    "attack_plant_links": (sample(extra=[("start", "plant_links")]), TOTAL, "ok"),
    "attack_disable_timers": (sample(extra=[("rnn_step", "disable_timers")]), TOTAL, "timeout"),
    "attack_forge_replies": (sample(extra=[("clip_grad_norm", "forge_replies")]), TOTAL, "crash"),
    "attack_raw_output": (sample(extra=[("end", "raw_output")]), TOTAL, "output_limit"),
    # a sleeping cell is stopped on the wall clock, graded again alone, and only then costs its status
    "fault_sleep": (sample(extra=[("end", "sleep")]), TOTAL, "timeout"),
    # the notebook file itself
    "file_malformed_json": (sample(raw="truncate"), 0, "malformed"),
    "file_renamed": (sample(filename="Copy of 01_gradient_flow (2).ipynb"), TOTAL, "ok"),
    "file_flat_layout": (sample(filename="FLAT"), TOTAL, "ok"),
    # a link to the instructor's solution: never followed, reported, 0 (the solution never reaches feedback)
    "file_symlink_to_solution": (sample(symlink=f"../../../../solutions/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"),
                                 0, "malformed"),
    # file names a spreadsheet would evaluate: graded as usual, every grades.csv field neutralised
    "HYPERLINK_csv_formula": (sample(flat="=HYPERLINK(csv_formula).ipynb"), TOTAL, "ok"),
    "csv_plus_cmd": (sample(flat="+csv_plus_cmd.ipynb"), TOTAL, "ok"),
    "csv_at_SUM": (sample(flat="@csv_at_SUM.ipynb"), TOTAL, "ok"),
    "2_3_csv_minus": (sample(flat="-2+3_csv_minus.ipynb"), TOTAL, "ok"),
    "cells_deleted_tests": (sample(transform=_delete_tests), TOTAL, "missing_cells"),
    "cells_duplicated_test": (sample(transform=_duplicate_test), TOTAL, "tampering_detected"),
    "cells_edited_test": (sample({"clip_grad_norm": "mistake_clip_per_parameter"}, transform=_edit_test),
                          _score(["clip_grad_norm"]), "tampering_detected"),
    # student-made nbgrader metadata: rebuilt from the release, correct work keeps its points
    "cells_invalid_metadata": (sample(transform=_invalid_metadata), TOTAL, "ok"),
    "cells_answer_marked_graded": (sample(transform=_mark_answer_graded), TOTAL, "tampering_detected"),
    "cells_added_graded": (sample(transform=_add_graded_cells), TOTAL, "tampering_detected"),
    # student HTML (markdown, raw cell, attachments, widget state, metadata) is cleaned, not tampering
    "attack_student_html": (sample(transform=_student_html), TOTAL, "ok"),
}


def fill_solution_cell(cell: dict, how: str, sol: dict, gid: str, code: dict) -> None:
    """Write a sample's answer into solution cell ``gid``: the solution's own ``sol[gid]`` (CORRECT), the release's
    stub left as it is (BLANK), or ``code[how]`` (a mistake or variant): every generator's one rule."""
    if how == CORRECT:
        cell["source"] = sol[gid]
    elif how != BLANK:
        cell["source"] = code[how]


def write_notebooks(out: Path, samples: dict, filename: str, build, total) -> None:
    """``out/<name>/<filename>`` for every ``{name: (spec, score, status)}`` (text from ``build(spec)``),
    then ``out/expected.csv``."""
    out.mkdir(parents=True, exist_ok=True)
    for name, (spec, _, _) in samples.items():
        (out / name).mkdir(exist_ok=True)
        (out / name / filename).write_text(dumps(build(spec)), encoding="utf-8")
    write_expected(out, [(name, score, status) for name, (_, score, status) in samples.items()], total)


def extra_cell(k: int, source: str) -> dict:
    """The k-th extra code cell a sample adds (an attack, a fault), id ``extra-k``: every generator's own."""
    return {"cell_type": "code", "execution_count": None, "id": f"extra-{k}", "metadata": {},
            "outputs": [], "source": source.strip("\n")}


def write_expected(out: Path, rows, total) -> None:
    """``out/expected.csv``: one row per ``(student_id, score, status)`` in ``rows``, sorted, out of ``total``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["student_id", "score", "max_score", "status"])
    for name, score, status in sorted(rows):
        w.writerow([name, score, total, status])
    (out / "expected.csv").write_text(buf.getvalue(), encoding="utf-8")


def dumps(nb: dict) -> str:
    out = json.loads(json.dumps(nb))
    for c in out["cells"]:
        src = c["source"]
        c["source"] = ("".join(src) if isinstance(src, list) else src).splitlines(keepends=True)
    return json.dumps(out, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def build(name, spec) -> dict:
    release = json.loads((ROOT / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    sol = solution_code()
    nb = copy.deepcopy(release)
    for c in nb["cells"]:
        gid = c["metadata"].get("nbgrader", {}).get("grade_id")
        if gid in POINTS and c["metadata"]["nbgrader"].get("solution"):
            fill_solution_cell(c, spec["functions"][gid], sol, gid, WRONG)
    for k, (where, attack) in enumerate(spec["extra"]):
        cell = extra_cell(k, ATTACK[attack])
        if where == "start":
            pos = 2  # right after the imports
        elif where == "end":
            pos = len(nb["cells"])
        else:  # after the solution cell of that exercise
            pos = 1 + next(i for i, c in enumerate(nb["cells"])
                           if c["metadata"].get("nbgrader", {}).get("grade_id") == where)
        nb["cells"].insert(pos, cell)
    if spec["transform"]:
        spec["transform"](nb)
    return nb


def write_all(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (spec, score, status) in SAMPLES.items():
        nb = build(name, spec)
        text = dumps(nb)
        if spec["raw"] == "truncate":
            text = text[: len(text) // 2]
        if spec["symlink"]:
            folder = out / name
            folder.mkdir(exist_ok=True)
            os.symlink(spec["symlink"], folder / (spec["filename"] or f"{ASSIGNMENT}.ipynb"))
        elif spec["flat"]:
            (out / spec["flat"]).write_text(text, encoding="utf-8")
        elif spec["filename"] == "FLAT":
            (out / f"{name}.ipynb").write_text(text, encoding="utf-8")
        else:
            folder = out / name
            folder.mkdir(exist_ok=True)
            (folder / (spec["filename"] or f"{ASSIGNMENT}.ipynb")).write_text(text, encoding="utf-8")
            for rel, content in spec["files"].items():
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                (folder / rel).write_text(content, encoding="utf-8")
        rows.append((name, score, status))
    write_expected(out, rows, TOTAL)


def files_of(folder: Path) -> dict:
    """``{relative path: content}``; a symbolic link's content is its target (never followed)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):  # links to folders are listed, not entered
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = Path(dirpath) / name
            if p.is_symlink():
                out[p.relative_to(folder).as_posix()] = b"symbolic link -> " + os.readlink(p).encode()
            elif p.is_file():
                out[p.relative_to(folder).as_posix()] = p.read_bytes()
    return dict(sorted(out.items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when the committed samples are stale")
    args = ap.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            write_all(Path(tmp))
            new, old = files_of(Path(tmp)), files_of(OUT) if OUT.exists() else {}
        stale = sorted(k for k in set(new) | set(old) if new.get(k) != old.get(k))
        if stale:
            print("stale samples (run python -m autograder.samples.make_samples):", *stale, sep="\n  ")
            return 1
        print("samples are up to date")
        return 0
    import shutil

    if OUT.exists():
        shutil.rmtree(OUT)
    write_all(OUT)
    print(f"wrote {len(SAMPLES)} samples to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
