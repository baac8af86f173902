"""The sandbox trusts nothing from inside: paths, pipes, clocks, byte counts (autograder/sandbox.py).

Each test attacks one thing the grader used to take from the sandbox, or a way the grader's own
setup used to cost students points, and checks the grader's side holds.
"""
import csv
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from autograder import config, pipeline, sandbox

ROOT = Path(__file__).resolve().parents[1]
A = "01_gradient_flow"
SAMPLES = ROOT / "autograder" / "samples" / A

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the strongest sandbox (namespaces, own uid) needs root")


@pytest.fixture
def lib(tmp_path):
    scratch, lock = sandbox.scratch_dir()
    yield scratch, sandbox.prepare_library(scratch / "lib")
    shutil.rmtree(scratch, ignore_errors=True)
    os.close(lock)


def run_cells(lib, *sources, **limits):
    scratch, course = lib
    cells = [{"index": i, "source": s} for i, s in enumerate(sources)]
    return sandbox.run(cells, [], {}, sandbox.Limits(**{"cell_timeout": 10, **limits}), course, scratch)


def _digest(paths):
    out = {}
    for p in paths:
        p = Path(p)
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file() and "__pycache__" not in q.parts)
        for f in files:
            st = f.lstat()
            out[str(f)] = (hashlib.sha256(f.read_bytes()).hexdigest(), st.st_uid, st.st_mode)
    return out


@needs_root
def test_planted_links_and_fifos_touch_nothing_and_later_students_are_graded(tmp_path, monkeypatch):
    """The attacker is graded between two honest students on one worker: it plants symlinks (to the
    gradebook's folder, every bound host path, /etc/passwd) and FIFOs at every name the grader ever
    used; no host file changes, the run ends, and the students after it get their grades."""
    state, subs = tmp_path / "state", tmp_path / "subs"
    subs.mkdir()
    for sid in ("attack_plant_links", "correct", "partial"):
        shutil.copytree(SAMPLES / sid, subs / sid)
    (subs / "attack_plant_links").rename(subs / "b_attacker")  # graded between a_correct and c_partial
    (subs / "correct").rename(subs / "a_correct")
    (subs / "partial").rename(subs / "c_partial")
    state.mkdir()
    canary = state / "canary.txt"
    canary.write_text("host file")
    watched = [canary, "/etc/passwd", ROOT / "solutions", ROOT / "assignments", ROOT / "course_lib" / "reference"]
    before = _digest(watched)
    monkeypatch.setenv("AUTOGRADER_STATE_DIR", str(state))
    monkeypatch.setenv("AUTOGRADER_SECRET", "ci-secret")
    monkeypatch.delenv("NBGRADER_DB_URL", raising=False)
    box = {}
    worker = threading.Thread(target=lambda: box.update(s=pipeline.grade(
        A, subs, workers=1, cfg=config.load(cell_timeout=8.0, call_timeout=4.0, total_timeout=120.0),
        log=lambda *a: None)), daemon=True)
    worker.start()
    worker.join(timeout=900)  # a FIFO the grader opened would block it for ever
    assert not worker.is_alive(), "grading did not finish"
    rows = {r["student_id"]: (r["score"], r["status"]) for r in box["s"].results}
    assert rows == {"a_correct": (12.0, "ok"), "b_attacker": (12.0, "ok"), "c_partial": (4.0, "ok")}
    assert _digest(watched) == before
    with open(box["s"].csv) as f:
        assert {r["student_id"]: r["score"] for r in csv.DictReader(f)} == {"a_correct": "12", "b_attacker": "12",
                                                                          "c_partial": "4"}


@needs_root
def test_nothing_is_mounted_or_left_in_the_graders_namespace(lib):
    r = run_cells(lib, "import os\nprint(open('/proc/self/mountinfo').read().count('\\n') > 3)\nprint(os.getcwd())")
    assert r.cells[0]["stdout"].split() == ["True", "/sandbox"]
    assert "autograder-scratch" not in Path("/proc/self/mountinfo").read_text()
    scratch, _ = lib
    assert [p.name for p in scratch.iterdir() if p.name.startswith("sbx-")] == []  # every stage removed


def test_limits_are_the_graders_not_the_sandboxs(lib):
    """The runner patched to claim timeouts, a silenced timer, raw writes past every cap and fake
    figures: each limit is decided from what the grader measured and counted."""
    fake_claims = """
import sys, numpy as np
runner = sys.modules["__main__"]
real = runner.run_cell
def run_cell(*args):
    r = real(*args)
    r["error_type"] = "CellTimeout"  # claim a timeout that never happened
    return r
runner.run_cell = run_cell
runner.figures = lambda *a: [(b"not a png" * 1000, "")] * 20 + [(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(3_000_000), "")]
"""
    r = run_cells(lib, fake_claims, "print('after')", "import os\nfor _ in range(40):\n    os.write(1, b'z' * 1_000_000)",
                  "print('last')", max_output_bytes=8 * 2**20, draw_figures=True)
    assert not [e for e in r.events if e[0] == "timeout"], r.events  # claimed, not measured
    assert r.cells[1]["stdout"] == "after\n" and r.cells[1]["error_type"] == "Error"
    assert r.cells[1]["figures"] == []  # neither the fake PNGs nor the oversized one
    assert ("output_limit", "cell 2: printed more than 8 MB and was stopped") in r.events
    assert r.cells[2]["error_type"] == "Skipped" and r.cells[3]["stdout"] == "last\n"


def test_cpu_limit_holds_with_the_timers_disabled(lib):
    silenced = """
import signal, sys
runner = sys.modules["__main__"]
runner.start_timers = runner.stop_timers = lambda *a: None
for s in (signal.SIGALRM, signal.SIGPROF, signal.SIGINT, signal.SIGTERM):
    signal.signal(s, signal.SIG_IGN)
while True:
    pass
"""
    r = run_cells(lib, silenced, "print('graded')", cell_timeout=2.0)
    assert ("timeout", "cell 0: ran past its time limit (2 s of CPU) and was stopped") in r.events
    assert r.cells[1]["stdout"] == "graded\n" and r.wall_trips == []


def test_a_sleeping_cell_is_a_wall_clock_trip(lib):
    r = run_cells(lib, "import time\ntime.sleep(600)", "print('graded')", cell_timeout=1.0, wall_factor=3.0)
    assert r.wall_trips == ["cell 0"] and r.cells[1]["stdout"] == "graded\n"
    assert r.cpu_seconds < 1.5  # charged: what the student's code used, not the start-up


def test_startup_is_never_charged(lib):
    """Importing torch is the grader's setup: a cell limit far below it still lets every cell run."""
    r = run_cells(lib, "import torch, numpy\nprint(torch.ones(2).sum().item())", cell_timeout=0.5)
    assert r.startup_seconds > r.cpu_seconds
    assert r.cells[0]["stdout"] == "2.0\n" and r.events == []


@needs_root
def test_a_venv_that_is_a_symbolic_link_works(tmp_path):
    """A checkout whose .venv links to an environment elsewhere: real paths are bound."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(os.path.realpath(sys.prefix))
    code = ("import sys; from autograder import sandbox\n"
            "scratch, lock = sandbox.scratch_dir(); lib = sandbox.prepare_library(scratch / 'lib')\n"
            "r = sandbox.run([{'index': 0, 'source': 'print(6 * 7)'}], [], {}, sandbox.Limits(), lib, scratch)\n"
            "print(sys.prefix, r.mode, r.cells[0]['stdout'].strip(), r.events)")
    out = subprocess.run([str(checkout / ".venv" / "bin" / "python"), "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(checkout / ".venv"), "root", "42", "[]"]


@needs_root
def test_a_killed_run_leaves_nothing_the_next_run_does_not_clean(tmp_path):
    """SIGKILL the grader mid-cell: its sandbox dies with it (no namespace, no mount), and the next
    run's cleanup removes the cgroups and scratch folder it left."""
    code = ("from autograder import sandbox\n"
            "scratch, lock = sandbox.scratch_dir(); lib = sandbox.prepare_library(scratch / 'lib')\n"
            "print(scratch, flush=True)\n"
            "sandbox.run([{'index': 0, 'source': 'import time\\nprint(\"started\", flush=True)\\ntime.sleep(600)'}],"
            " [], {}, sandbox.Limits(), lib, scratch)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    scratch = Path(proc.stdout.readline().strip())
    groups = []
    for _ in range(600):
        groups = [d for c in ("memory", "pids", "cpuacct") for d in (sandbox.CGROUP_ROOT / c).glob(
            f"{sandbox.CGROUP_PREFIX}{proc.pid}-*")]
        inside = [p for d in groups for p in (d / "cgroup.procs").read_text().split()]
        if inside and list(scratch.glob("sbx-*")):
            break
        time.sleep(0.1)
    assert scratch.is_dir()
    pids = [int(p) for d in groups if d.parent.name == "pids" for p in (d / "cgroup.procs").read_text().split()]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for _ in range(100):  # the sandbox dies with its grader (parent-death signal, PID namespace)
        if not any(sandbox._alive(p) for p in pids):
            break
        time.sleep(0.1)
    assert not any(sandbox._alive(p) for p in pids)
    assert str(scratch) not in Path("/proc/self/mountinfo").read_text()
    sandbox.cleanup_stale()  # (another test's grading run may have cleaned them already)
    assert not scratch.exists()
    assert not [g for g in groups if g.exists()]


def test_cleanup_keeps_what_a_live_run_holds(lib):
    scratch, _ = lib
    assert str(scratch) not in sandbox.cleanup_stale() and scratch.is_dir()


def _body(table, data=b""):
    head = json.dumps(table).encode()
    return struct.pack(">I", len(head)) + head + data


def test_replies_are_loaded_as_plain_arrays_only():
    """A reply body is read without trusting it: plain arrays come back as own writable copies; an array of
    another kind, too many elements or too long a name is left out; anything that is not a well-formed body
    (an object or record dtype, a bad table, sizes past the end, bytes left over) gives nothing at all."""
    from autograder import _runner

    got = sandbox.safe_load_bytes(_runner.pack({"good": np.arange(6.0).reshape(2, 3), "text": np.array("hi"),
                                                "flag": np.array([True]), "z": np.array([1j]), "n" * 201: [1]}))
    assert set(got) == {"good", "text", "flag"} and got["good"].shape == (2, 3) and got["text"].shape == ()
    assert str(got["text"]) == "hi" and np.array_equal(got["good"], np.arange(6.0).reshape(2, 3))
    t = sandbox.safe_load_bytes(_runner.pack({"t": np.arange(6).reshape(2, 3).T}))["t"]  # not C-contiguous
    assert np.array_equal(t, np.arange(6).reshape(2, 3).T)
    assert got["good"].flags.writeable and got["good"].flags.owndata
    with pytest.raises(ValueError):
        _runner.pack({"evil": np.array([object()], dtype=object)})
    eight = np.arange(1.0).tobytes()
    for bad in (b"not a body", _body({"a": 1}), _body([["x", "|O", [1]]], eight), _body([["x", "f8,i4", [1]]], eight),
                _body([["x", "(2,)f8", [1]]], eight), _body([["x", "<f8", [2]]], eight), _body([["x", "<f8", [1]]], eight * 2),
                _body([["x", "<f8", [-1]]]), _body([["x", "<f8", [True]]], eight), _body([["x", "<f8", [1]]] * 10_001),
                struct.pack(">I", 2**21) + b"[]"):
        assert sandbox.safe_load_bytes(bad) == {}, bad[:60]
    huge = sandbox.safe_load_bytes(_body([["big", "|b1", [10_000_001]], ["ok", "<i8", [1]]], bytes(10_000_001) + eight))
    assert set(huge) == {"ok"}
    # a name UTF-8 cannot encode (a result's hint would name it): left out
    assert set(sandbox.safe_load_bytes(_runner.pack({"ok": [1], "x\ud800": [2]}))) == {"ok"}


@pytest.mark.slow
def test_honest_students_keep_full_marks_on_a_busy_machine(tmp_path, monkeypatch):
    """Three busy processes per core beside the grader, and a sandbox start-up slowed past every cell's
    wall-clock limit: the honest samples keep exactly their marks, and nothing is called a timeout."""
    slow = 12.0  # seconds of extra start-up: more than a cell's wall limit below (2 s CPU x 4)
    real = sandbox.prepare_library

    def slowed(dest):
        out = real(dest)
        runner = dest / "_grader" / "_runner.py"
        text = runner.read_text()
        start = 'once for all."""\n'
        assert start in text  # every sandbox's own start, cold (after the imports) or warm (after the fork)
        runner.write_text(text.replace(start, f"{start}    import time\n    time.sleep({slow})\n"))
        return out

    monkeypatch.setattr(sandbox, "prepare_library", slowed)
    honest = ["correct", "correct_loops_float64", "partial", "mistake_clip_per_parameter", "file_flat_layout"]
    with open(SAMPLES / "expected.csv") as f:
        want = {r["student_id"]: (float(r["score"]), r["status"]) for r in csv.DictReader(f) if r["student_id"] in honest}
    subs = tmp_path / "subs"
    subs.mkdir()
    for sid in honest:
        src = SAMPLES / sid if (SAMPLES / sid).is_dir() else SAMPLES / f"{sid}.ipynb"
        (shutil.copytree if src.is_dir() else shutil.copy)(src, subs / src.name)
    monkeypatch.setenv("AUTOGRADER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AUTOGRADER_SECRET", "ci-secret")
    monkeypatch.delenv("NBGRADER_DB_URL", raising=False)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3 * (os.cpu_count() or 1))]
    try:
        s = pipeline.grade(A, subs, workers=2, cfg=config.load(cell_timeout=2.0, call_timeout=2.0, total_timeout=60.0),
                           log=lambda *a: None)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    got = {r["student_id"]: (r["score"], r["status"]) for r in s.results}
    assert got == want, {r["student_id"]: r["detail"] for r in s.results}
    assert all(r["startup_seconds"] > slow for r in s.results), [(r["student_id"], r["startup_seconds"], r.get("sandbox_start")) for r in s.results]


def test_a_flooded_reply_pipe_is_a_crash_not_a_hang(lib):
    """A thread that floods the grader's reply pipe from inside: that step is a crash (bounded: the
    grader keeps no more than one reply's worth), the run ends, and nothing else is lost."""
    flood = """
import os, sys, threading
import stat
fd = int(sys.orig_argv[-2])  # the reply pipe, as the runner was started
assert stat.S_ISFIFO(os.fstat(fd).st_mode)
def flood():
    while True:
        os.write(fd, b"\\xff" * 65536)
threading.Thread(target=flood, daemon=True).start()
"""
    r = run_cells(lib, "print('first')", flood, "print('last')")
    assert any(k == "crash" and "could not be read" in d for k, d in r.events), r.events
    assert r.cells[0]["stdout"] == "first\n" and r.attempts <= sandbox.Limits().attempts


def _children(pid: int) -> list:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


@needs_root
@pytest.mark.slow
def test_a_grading_command_killed_with_sigkill_leaves_nothing_that_blocks_the_next(tmp_path):
    """kill -9 the grading command mid-run: its workers and their sandboxes die with it (they held
    its locks), and the next run of the same assignment grades everyone."""
    subs = tmp_path / "subs"
    subs.mkdir()
    for k in range(3):
        shutil.copytree(SAMPLES / "correct", subs / f"s{k}")
    env = dict(os.environ, AUTOGRADER_STATE_DIR=str(tmp_path / "state"), AUTOGRADER_SECRET="ci-secret",
               AUTOGRADER_LOCK_WAIT="60")
    env.pop("NBGRADER_DB_URL", None)
    cmd = [sys.executable, "-m", "autograder", "grade", A, str(subs), "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    for _ in range(1200):  # until a worker has a sandbox running
        workers = [p for p in _children(proc.pid) if sandbox._alive(p)]
        if any(list((sandbox.CGROUP_ROOT / "pids").glob(f"{sandbox.CGROUP_PREFIX}{w}-*")) for w in workers):
            break
        time.sleep(0.1)
    assert workers, "no grading worker started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for _ in range(100):
        if not any(sandbox._alive(w) for w in workers):
            break
        time.sleep(0.1)
    assert not any(sandbox._alive(w) for w in workers), "a worker outlived its grading command"
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    with open(tmp_path / "state" / "runs" / A / "grades.csv") as f:
        assert {r["student_id"]: r["score"] for r in csv.DictReader(f)} == {"s0": "12", "s1": "12", "s2": "12"}


def test_what_a_notebook_may_keep_is_capped_in_all(lib):
    """Fake figures from a patched runner in every cell, and more cells than any notebook needs: the
    grader keeps at most max_kept_bytes of output and figures (real PNG headers only) and runs at
    most max_cells cells; the rest is dropped with an output_limit, not the grader's memory."""
    flood = """
import __main__, os, struct, zlib
png = b"\\x89PNG\\r\\n\\x1a\\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 100, 100) + os.urandom(900_000)
huge = b"\\x89PNG\\r\\n\\x1a\\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 100_000, 100_000)
__main__.figures = lambda *a: [(png, "")] * 5 + [(huge, "")]
"""
    r = run_cells(lib, flood, *["print('x' * 10)"] * 30, max_kept_bytes=4 * 2**20, max_cells=20, draw_figures=True)
    kept = sum(len(f) for c in r.cells.values() for f in c["figures"])
    assert 0 < kept <= 4 * 2**20
    assert all(len(f) < 1_000_000 for c in r.cells.values() for f in c["figures"])  # never the 10^10-pixel one
    assert ("output_limit", "notebook: only the first 20 code cells were run") in r.events
    assert any(k == "output_limit" and "more output and figures" in d for k, d in r.events)
    assert max(r.cells) == 19


FIGURE_CELL = """
import matplotlib.pyplot as plt
from course_lib import plots
fig, ax = plt.subplots()
ax.plot([0, 1, 4])
plots.finish(fig, "t", "Squares grow.")
own, ax = plt.subplots()
ax.plot([1, 0])
"""


def test_figures_are_named_by_default_and_drawn_when_asked(lib):
    """By default grading draws no figure (matplotlib's template backend in the sandbox) and keeps each
    one's caption (a student's own figure: an empty one); ``draw_figures`` keeps PNGs instead."""
    named = run_cells(lib, FIGURE_CELL, "import matplotlib\nprint(matplotlib.get_backend())")
    assert named.cells[0]["figures"] == [] and named.cells[0]["figure_names"] == ["Squares grow.", ""]
    assert named.cells[1]["stdout"] == "template\n"
    drawn = run_cells(lib, FIGURE_CELL, "import matplotlib\nprint(matplotlib.get_backend())", draw_figures=True)
    assert len(drawn.cells[0]["figures"]) == 2 and drawn.cells[0]["figure_names"] == ["Squares grow.", ""]
    assert all(f.startswith(sandbox.PNG_MAGIC) for f in drawn.cells[0]["figures"])
    assert drawn.cells[1]["stdout"].lower() == "agg\n"


def test_figures_not_asked_for_are_never_kept(lib):
    """A patched runner that sends PNGs when none were asked for, floods captions or sends a caption
    that is not text: no PNG is kept, at most max_figures captions of at most MAX_FIGURE_NAME characters
    (one that is not text: a figure without a caption)."""
    forged = """
import __main__, numpy as np
png = np.frombuffer(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(100), np.uint8)
real_send = __main__.send
def send(fd, header, arrays=None):
    if arrays is not None and header.get("op") == "cell":
        arrays = dict(arrays, **{f"fig/{j}": png for j in range(3)})
    real_send(fd, header, arrays)
__main__.send = send
__main__.figures = lambda *a: [(None, "x" * 100_000)] * 50
"""
    bad_name = """
import __main__, numpy as np
real_text = __main__._text
__main__._text = lambda s: np.arange(5) if isinstance(s, list) else real_text(s)
__main__.figures = lambda *a: [(None, [1, 2])]
"""
    r = run_cells(lib, forged, "print(1)", max_figures=3)
    assert all(c["figures"] == [] for c in r.cells.values())
    assert r.cells[1]["figure_names"] == ["x" * sandbox.MAX_FIGURE_NAME] * 3
    r = run_cells(lib, bad_name, "print(1)")
    assert r.cells[1]["figure_names"] == [""] and r.cells[1]["stdout"] == "1\n"


def test_text_from_the_sandbox_is_text_a_notebook_file_can_hold(lib):
    """A lone surrogate in an exception's message or a figure's caption, and code points past U+10FFFF forged
    into a reply (numpy turns them into a corrupt ``str``), reach the grader as U+FFFD: the graded notebook
    can be written (a surrogate used to fail nbgrader's write: the submission a grader_error, for ever)."""
    surrogates = 'import matplotlib.pyplot as plt\nplt.figure().course_alt = "cap \\ud800"\nraise ValueError("bad \\udfff")'
    forged = """
import __main__, numpy as np
bad = np.frombuffer(np.array([0x110000, 0x41, 0xFFFFFFFF], "<u4").tobytes(), "<U3").reshape(())
real_send = __main__.send
def send(fd, header, arrays=None):
    if arrays is not None and header.get("op") == "cell":
        arrays = dict(arrays, **{"figname/0": bad, "result": bad.byteswap().view(">U3")})
    real_send(fd, header, arrays)
__main__.send = send
"""
    r = run_cells(lib, surrogates, forged, "1")
    assert r.cells[0]["figure_names"] == ["cap \ufffd"] and r.cells[0]["error"].endswith("ValueError: bad \ufffd\n")
    assert r.cells[2]["figure_names"] == ["\ufffdA\ufffd"] and r.cells[2]["result"] == "\ufffdA\ufffd"
    from autograder import nbgrader_plugin

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("", outputs=nbgrader_plugin._cell_outputs(c))
                                         for c in r.cells.values()])
    assert "cap \ufffd" in nbformat.writes(nb).encode("utf-8").decode("utf-8")


@needs_root
def test_a_grader_failure_after_the_cells_still_tears_the_sandbox_down(tmp_path, monkeypatch):
    """The grader fails on a submission after its sandbox ran (a bug in what follows the judge): the row is
    a grader_error, and the sandbox is still reaped and its cgroups removed before the command ends (a forked
    worker never runs atexit: nothing may be left to it)."""
    made, real = tmp_path / "cgroups.txt", sandbox._cgroups

    def recording(name, limits):  # in the forked worker: what it made goes to a file
        groups = real(name, limits)
        with open(made, "a") as f:
            f.write("".join(f"{d}\n" for d in groups.values()))
        return groups

    def bug(nb, rel):
        raise RuntimeError("a grader bug after the sandbox ran")

    monkeypatch.setattr(sandbox, "_cgroups", recording)
    monkeypatch.setattr(pipeline, "repair", bug)
    monkeypatch.setenv("AUTOGRADER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AUTOGRADER_SECRET", "ci-secret")
    monkeypatch.delenv("NBGRADER_DB_URL", raising=False)
    shutil.copytree(SAMPLES / "correct", tmp_path / "subs" / "correct")
    s = pipeline.grade(A, tmp_path / "subs", workers=1, cfg=config.load(cell_timeout=8.0, call_timeout=4.0),
                       log=lambda *a: None)
    assert [(r["status"], "a grader bug" in r["detail"]) for r in s.results] == [("grader_error", True)]
    groups = made.read_text().split()
    assert groups and [d for d in groups if Path(d).exists()] == []


def test_texts_in_a_functions_result_are_capped_by_the_grader(lib):
    """A patched runner that answers a call with a 2-million-character error message (the protocols send at
    most 403): the grader keeps MAX_RESULT_TEXT characters of it, so the hint, the graded notebook and the
    feedback stay small (it used to put the whole text into all three)."""
    from course_lib.checks import ASSIGNMENTS

    forged = """
import __main__, numpy as np
real_send = __main__.send
def send(fd, header, arrays=None):
    if arrays is not None and header.get("op") == "call":
        arrays = {"error_type": np.array("ValueError"), "error": np.array("x" * 2_000_000), "names": np.array(["y" * 5000] * 3)}
    real_send(fd, header, arrays)
__main__.send = send
"""
    ex = ASSIGNMENTS[A]["rnn_step"]
    case = ex.cases(0, hidden=False)[0]
    plan = [{"name": ex.name, "protocol": ex.protocol, "arg_names": ex.arg_names, "scalar_names": ex.scalar_names,
             "n_cases": 1}]
    scratch, course = lib
    r = sandbox.run([{"index": 0, "source": forged}], plan, {f"{ex.name}/0/{k}": v for k, v in case.arrays.items()},
                    sandbox.Limits(cell_timeout=10), course, scratch)
    got = r.judge[ex.name][0]
    assert str(got["error_type"]) == "ValueError" and str(got["error"]) == "x" * sandbox.MAX_RESULT_TEXT
    assert got["names"].tolist() == ["y" * sandbox.MAX_RESULT_TEXT] * 3
