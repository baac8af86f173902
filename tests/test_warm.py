"""Warm grading workers (autograder/warm.py, _zygote.py): one warm parent per worker, a fresh child
per submission, and nothing of one student reaches the next.

Each test grades on one worker process (this one) so that every submission is a fork of the same
warm parent; scores are the judge's, exactly as the grading command computes them.
"""
import csv
import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

import nbformat
import pytest

from autograder import judge, sandbox, warm
from course_lib.checks import ASSIGNMENTS

ROOT = Path(__file__).resolve().parents[1]
A = "01_gradient_flow"
SAMPLES = ROOT / "autograder" / "samples" / A
LIMITS = sandbox.Limits(cell_timeout=8.0, call_timeout=4.0, total_timeout=60.0)

# patches torch and numpy in memory, sets globals and builtins, leaves a thread that keeps patching,
# a forked process, files in every writable place and an environment variable
ATTACK = r'''
import builtins, os, sys, threading, time
import numpy as np
import torch
torch.tanh = lambda x: x * 0
torch.Tensor.__matmul__ = lambda a, b: a
torch.linalg.matrix_norm = lambda *a, **k: torch.tensor(0.0)
np.allclose = lambda *a, **k: True
np.linalg.norm = lambda *a, **k: 0.0
builtins.LEFTOVER = "attacker"
sys.modules["course_lib"].LEFTOVER = "attacker"
os.environ["LEFTOVER"] = "attacker"
for d in ("/sandbox", "/tmp", "/dev/shm", "/var/tmp", os.getcwd()):
    try:
        open(os.path.join(d, "leftover"), "w").write("attacker")
    except OSError:
        pass
def keep_patching():
    while True:
        torch.tanh = lambda x: x * 0
        time.sleep(0.005)
threading.Thread(target=keep_patching, daemon=True).start()
# what the warm parent imported and froze (issue 15): the protocol helpers, IPython, plots' caption wrapper,
# torch._dynamo; the frozen heap unfrozen and written in place; start-up files of IPython, matplotlib, inductor
import ctypes, gc, math
import IPython, torch._dynamo
import course_lib.plots
for m in (sys.modules["_protocol"], IPython, torch._dynamo, course_lib.plots):
    m.LEFTOVER = "attacker"
sys.modules["_protocol"].call = lambda *a, **k: {}
course_lib.plots._wrap_once = lambda *a: None
gc.unfreeze()
gc.collect()
ctypes.c_double.from_address(id(math.pi) + 16).value = 3.0
for f in ("~/.ipython/profile_default/startup/00.py", "~/.mpl/matplotlibrc", "/tmp/torchinductor_root/x",
          "/opt/course/_grader/mpl/matplotlibrc", "@ROOT@/build/jinja2/__jinja2_attacker.cache"):
    try:
        os.makedirs(os.path.dirname(os.path.expanduser(f)), exist_ok=True)
        open(os.path.expanduser(f), "w").write("import builtins; builtins.LEFTOVER = 1")
    except OSError:
        pass
if os.fork() == 0:
    os.setsid()
    while True:
        time.sleep(1)
'''

# what the next student's sandbox sees: every leftover the attacker tried to leave
PROBE = r'''
import builtins, json, os, sys, threading
import numpy as np
import torch
found = {
    "torch.tanh": abs(float(torch.tanh(torch.tensor(0.5))) - 0.46211715726000974) > 1e-6,
    "matmul": bool((torch.ones(1, 2) @ torch.ones(2, 1)).item() != 2.0),
    "matrix_norm": float(torch.linalg.matrix_norm(torch.eye(2))) == 0.0,
    "np.allclose": bool(np.allclose(0.0, 1.0)),
    "np.linalg.norm": float(np.linalg.norm(np.ones(4))) != 2.0,
    "builtins": hasattr(builtins, "LEFTOVER"),
    "course_lib": hasattr(sys.modules.get("course_lib"), "LEFTOVER"),
    "environ": "LEFTOVER" in os.environ,
    "files": [d for d in ("/sandbox", "/tmp", "/dev/shm", "/var/tmp", os.getcwd())
              if os.path.exists(os.path.join(d, "leftover"))],
    "threads": threading.active_count() - 1,
    "processes": [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()],
}
import gc, math
import IPython
import course_lib.plots
found["frozen"] = [m for m, o in (("_protocol", sys.modules["_protocol"]), ("IPython", IPython),
                   ("dynamo", sys.modules.get("torch._dynamo")), ("plots", course_lib.plots))
                   if hasattr(o, "LEFTOVER")] + ["gc"] * (gc.get_freeze_count() == 0) + ["pi"] * (math.pi != 3.141592653589793)
found["files"] += [f for f in ("~/.ipython", "~/.mpl/matplotlibrc", "/tmp/torchinductor_root",
                              "/opt/course/_grader/mpl/matplotlibrc")
                   if os.path.exists(os.path.expanduser(f))]

print("LEFTOVERS", json.dumps(found))
'''

CLEAN = {"torch.tanh": False, "matmul": False, "matrix_norm": False, "np.allclose": False,
         "np.linalg.norm": False, "builtins": False, "course_lib": False, "environ": False, "files": [],
         "threads": 0, "processes": [], "frozen": []}


@pytest.fixture
def lib(monkeypatch):
    monkeypatch.setenv("AUTOGRADER_SECRET", "ci-secret")
    monkeypatch.delenv("AUTOGRADER_START", raising=False)
    scratch, lock = sandbox.scratch_dir()
    yield scratch, sandbox.prepare_library(scratch / "lib")
    warm.shutdown()
    shutil.rmtree(scratch, ignore_errors=True)
    os.close(lock)


def expected(sid):
    with open(SAMPLES / "expected.csv") as f:
        return next(float(r["score"]) for r in csv.DictReader(f) if r["student_id"] == sid)


def notebook(sid, first_cell=None):
    nb = nbformat.read(str(SAMPLES / sid / f"{A}.ipynb"), as_version=4)
    if first_cell:
        at = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code") + 1  # after the imports
        nb.cells.insert(at, nbformat.v4.new_code_cell(first_cell))
    return nb


def graded(nb, sid, lib):
    scratch, course = lib
    j = judge.judge_notebook(nb, A, sid, LIMITS, course, scratch)
    points = sum(ex.points for name, ex in ASSIGNMENTS[A].items() if j.verdicts[name].passed)
    return j, points


def leftovers(j) -> dict:
    text = "".join(c["stdout"] for outs in j.cells.values() for c in outs if c)
    line = next(ln for ln in text.splitlines() if ln.startswith("LEFTOVERS "))
    return json.loads(line[len("LEFTOVERS "):])


@pytest.mark.skipif(os.geteuid() != 0, reason="the strongest sandbox (namespaces, own uid) needs root")
def test_an_attacker_graded_first_leaves_nothing_for_the_next_students(lib):
    """The attacker patches torch and numpy, sets globals, leaves a thread, a process, files and an
    environment variable; then an honest and a wrong student on the same warm parent get exactly
    their marks, and a probe in the honest student's notebook finds nothing left."""
    attacker, _ = graded(notebook("correct", ATTACK.replace("@ROOT@", str(ROOT))), "attacker", lib)
    assert attacker.start == "warm" and attacker.mode == "root"
    assert not (ROOT / "build" / "jinja2" / "__jinja2_attacker.cache").exists()  # the grader's compiled templates
    parent = warm.server(lib[1].parent, LIMITS).proc.pid
    honest, points = graded(notebook("correct", PROBE), "honest", lib)
    assert honest.start == "warm" and points == expected("correct") == 12
    assert leftovers(honest) == CLEAN
    wrong, points = graded(notebook("mistake_rnn_sigmoid"), "wrong", lib)
    assert wrong.start == "warm" and points == expected("mistake_rnn_sigmoid") < 12
    assert warm.server(lib[1].parent, LIMITS).proc.pid == parent and warm.server(lib[1].parent, LIMITS).starts == 1


def run_cells(lib, *sources):
    scratch, course = lib
    cells = [{"index": i, "source": s} for i, s in enumerate(sources)]
    return sandbox.run(cells, [], {}, LIMITS, course, scratch)


def test_a_crash_or_a_memory_blowup_in_a_child_leaves_the_warm_parent_alive(lib):
    server = warm.server(lib[1].parent, LIMITS)
    parent = server.proc.pid
    crashed = run_cells(lib, "import os\nos.abort()", "print('after')")
    assert crashed.start == "warm" and [k for k, _ in crashed.events] == ["crash"]
    assert "cell 0: killed by signal" in crashed.events[0][1]  # SIGABRT, or SIGSEGV as PID 1 of its namespace
    assert crashed.cells[1]["stdout"] == "after\n"
    hoard = "hoard = []\nwhile True:\n    hoard.append(bytearray(50_000_000))"
    blown = run_cells(lib, hoard, "print('after')")
    assert [k for k, _ in blown.events] == ["memory"] and blown.cells[1]["stdout"] == "after\n"
    assert server.alive() and server.proc.pid == parent and server.starts == 1
    assert run_cells(lib, "print(6 * 7)").cells[0]["stdout"] == "42\n"


def test_a_killed_warm_parent_is_replaced(lib):
    server = warm.server(lib[1].parent, LIMITS)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    r = run_cells(lib, "print(6 * 7)")
    assert r.start == "warm" and r.cells[0]["stdout"] == "42\n" and r.events == []
    assert server.starts == 2 and server.alive()
    # killed while a child runs a cell: that child dies with it, the step is graded again
    killer = threading.Timer(2.0, os.kill, (server.proc.pid, signal.SIGKILL))
    killer.start()
    r = run_cells(lib, "import time\ntime.sleep(4)\nprint('slept')", "print('after')")
    killer.join()
    assert r.cells[1]["stdout"] == "after\n" and server.starts == 3


@pytest.mark.parametrize("mode", ["root", "userns", "limits"])
@pytest.mark.parametrize("start", ["warm", "cold"])
def test_every_mode_works_warm_or_cold_and_says_which(lib, monkeypatch, mode, start):
    if mode == "root" and os.geteuid() != 0:
        pytest.skip("root mode needs root")
    monkeypatch.setenv("AUTOGRADER_SANDBOX", mode)
    monkeypatch.setenv("AUTOGRADER_START", start)
    monkeypatch.setattr(sandbox, "_MODE", None)
    r = run_cells(lib, "import torch, os\nprint(torch.ones(3).sum().item(), os.environ['HOME'])")
    home = sandbox.HOME if mode != "limits" else None
    assert (r.mode, r.start, r.start_note) == (mode, start, "")
    assert r.events == [] and r.cells[0]["stdout"].split()[0] == "3.0"
    if home:
        assert r.cells[0]["stdout"].split()[1] == home


# walks out of a chroot (needs CAP_SYS_CHROOT), or makes a user namespace of its own to get it again,
# or unmounts the read-only library: what uid 0 of a user namespace could do with its capabilities;
# or writes a host sysctl (core_pattern), which the host's root may (uid 0 is the host's under a root grader)
ESCAPE = r'''
import ctypes, os
home = os.path.expanduser("~")
os.makedirs(home + "/jail", exist_ok=True)
tried = {}
try:
    fd = os.open("/", os.O_RDONLY)
    os.chroot(home + "/jail")
    os.fchdir(fd)
    for _ in range(64):
        os.chdir("..")
    os.chroot(".")
    tried["chroot"] = sorted(os.listdir("/"))
except OSError as e:
    tried["chroot"] = e.errno
libc = ctypes.CDLL(None, use_errno=True)
tried["unshare"] = libc.unshare(0x10000000 | 0x00020000) == 0  # CLONE_NEWUSER | CLONE_NEWNS
tried["umount"] = libc.umount2(b"/opt/course", 2) == 0  # MNT_DETACH
try:  # opened, never written: a grader running as root is the host's root in userns mode
    open("/proc/sys/kernel/core_pattern", "a").close()
    tried["sysctl"] = "writable"
except OSError:
    tried["sysctl"] = "read-only"
status = dict(ln.split(":", 1) for ln in open("/proc/self/status"))
tried["caps"] = [int(status[k], 16) for k in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb")]
print("ESCAPE", json.dumps(tried))
'''


@pytest.mark.parametrize("mode", ["userns", "root"])
@pytest.mark.parametrize("start", ["warm", "cold"])
def test_the_student_holds_no_capability_and_stays_in_its_root(lib, monkeypatch, mode, start):
    """In a user namespace the student is uid 0 there: with that namespace's capabilities it could
    leave the chroot for the host's files (the solutions, the gradebook) as the grader's own user."""
    if mode == "root" and os.geteuid() != 0:
        pytest.skip("root mode needs root")
    monkeypatch.setenv("AUTOGRADER_SANDBOX", mode)
    monkeypatch.setenv("AUTOGRADER_START", start)
    monkeypatch.setattr(sandbox, "_MODE", None)
    r = run_cells(lib, "import json\n" + ESCAPE)
    assert (r.mode, r.start) == (mode, start) and r.events == []
    line = next(ln for ln in r.cells[0]["stdout"].splitlines() if ln.startswith("ESCAPE "))
    tried = json.loads(line[len("ESCAPE "):])
    if mode == "root":  # another uid with no_new_privs: a bounding set gives nothing back on exec
        tried["caps"][3] = 0
    assert tried == {"chroot": 1, "unshare": False, "umount": False, "sysctl": "read-only",
                     "caps": [0, 0, 0, 0, 0]}  # chroot 1: EPERM


def _processes_of(uid: int) -> list:
    found = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/status") as f:
                if any(ln.startswith("Uid:") and int(ln.split()[1]) == uid for ln in f):
                    found.append(int(p))
        except (OSError, ValueError):
            pass
    return found


# PID 1 leaves its supervisor's process group (the grader kills that group) and never exits on its own
LINGER = "import os, time\nos.setsid()\nos._exit = lambda *a: time.sleep(3600)\nprint('UID', os.getuid())"


@pytest.mark.skipif(os.geteuid() != 0, reason="root mode needs root")
@pytest.mark.parametrize("start", ["warm", "cold"])
def test_pid_1_that_left_its_process_group_dies_with_the_sandbox_without_cgroups(lib, monkeypatch, start):
    """Where no cgroup holds the sandbox (a cgroup v2 only host), its PID 1 still dies with it: the
    uid change had cleared its parent-death signal, so it outlived every submission."""
    monkeypatch.setenv("AUTOGRADER_SANDBOX", "root")
    monkeypatch.setenv("AUTOGRADER_START", start)
    monkeypatch.setattr(sandbox, "_MODE", None)
    monkeypatch.setattr(sandbox, "_cgroups", lambda name, limits: {})
    r = run_cells(lib, LINGER)
    assert (r.mode, r.start) == ("root", start)
    uid = int(r.cells[0]["stdout"].split()[1])
    left = _processes_of(uid)
    for _ in range(100):  # the signal is sent as its supervisor dies; give the kernel a moment
        if not left:
            break
        threading.Event().wait(0.05)
        left = _processes_of(uid)
    for pid in left:  # never leave one behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert left == []


# PID 1 also clears its own parent-death signal (any process may): only a kill aimed at it ends it
UNBOUND = ("import ctypes, os, time\nctypes.CDLL(None).prctl(1, 0, 0, 0, 0)\nos.setsid()\n"
           "os._exit = lambda *a: time.sleep(3600)\nprint('NS', os.readlink('/proc/self/ns/pid'))")


def _processes_in(pid_ns: str) -> list:
    found = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{p}/ns/pid") == pid_ns:
                found.append(int(p))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("mode", ["root", "userns"])
@pytest.mark.parametrize("start", ["warm", "cold"])
def test_pid_1_that_cleared_its_parent_death_signal_dies_with_the_sandbox(lib, monkeypatch, mode, start):
    """PID 1 leaves the process group, clears its parent-death signal and never exits, where no cgroup holds
    it (userns mode; root mode on a host without cgroup v1): the grader kills it by its pid, and its PID
    namespace ends with it (it used to outlive the submission and the grading command)."""
    if mode == "root" and os.geteuid() != 0:
        pytest.skip("root mode needs root")
    monkeypatch.setenv("AUTOGRADER_SANDBOX", mode)
    monkeypatch.setenv("AUTOGRADER_START", start)
    monkeypatch.setattr(sandbox, "_MODE", None)
    monkeypatch.setattr(sandbox, "_cgroups", lambda name, limits: {})
    r = run_cells(lib, UNBOUND)
    assert (r.mode, r.start) == (mode, start)
    left = _processes_in(r.cells[0]["stdout"].split()[1])
    for _ in range(100):  # killed as the sandbox closes; give the kernel a moment
        if not left:
            break
        threading.Event().wait(0.05)
        left = _processes_in(r.cells[0]["stdout"].split()[1])
    for pid in left:  # never leave one behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert left == []

def test_a_warm_childs_start_up_is_counted_from_its_fork(lib, monkeypatch):
    """The child starts at the fork, before the grader first waits on it: a grader slowed there (a
    busy machine) must still count that time as start-up (never charged), not lose it."""
    opened = sandbox.Sandbox.__init__

    def slow_grader(self, *a, **kw):
        opened(self, *a, **kw)
        threading.Event().wait(1.0)  # the child is already starting

    monkeypatch.setattr(sandbox.Sandbox, "__init__", slow_grader)
    warm.server(lib[1].parent, LIMITS).take_startup()  # the parent's own start is counted apart
    r = run_cells(lib, "print(6 * 7)")
    assert r.start == "warm" and r.cells[0]["stdout"] == "42\n"
    assert r.startup_seconds >= 1.0


# what the first cell finds already imported, and whether the setup's objects are out of the collector's reach
PRELOADED = ("import gc, json, sys\nprint('PRELOADED', json.dumps({'modules': [m for m in ('torch._dynamo', 'IPython', "
             "'course_lib.train', '_protocol_train') if m in sys.modules], 'frozen': gc.get_freeze_count() > 0}))")


@pytest.mark.parametrize("start", ["warm", "cold"])
def test_the_sandbox_imports_what_the_assignment_names_before_the_first_cell(lib, monkeypatch, start):
    """What a notebook imports on first use (the library, IPython; torch._dynamo, which the first torch.optim
    optimizer imports, for an assignment that names it) is imported in the sandbox's setup, never charged:
    once per worker when warm. The setup's objects are frozen out of the garbage collector."""
    monkeypatch.setenv("AUTOGRADER_START", start)
    scratch, course = lib
    cells = [{"index": 0, "source": PRELOADED}]
    seen = {}
    for imports in ((), ("torch._dynamo",)):
        r = sandbox.run(cells, [], {}, LIMITS, course, scratch, imports=imports)
        assert r.start == start and r.events == []
        seen[imports] = json.loads(r.cells[0]["stdout"].split("PRELOADED ", 1)[1])
    assert seen[()] == {"modules": ["IPython", "course_lib.train", "_protocol_train"], "frozen": True}
    assert seen[("torch._dynamo",)] == {"modules": ["torch._dynamo", "IPython", "course_lib.train", "_protocol_train"],
                                         "frozen": True}
    assert judge.REGISTRY["04_training_with_clipping"].warm == ("torch._dynamo",)


def test_a_workers_warm_parent_is_the_one_its_submissions_use(lib, monkeypatch):
    """A grading worker starts its warm parent as it starts (``pipeline.init_worker``), with the assignment's
    own imports (assignment 4: torch._dynamo): its submissions fork that parent; none starts another. The
    worker imports them too, and computes the reference on the visible cases (judge.warm_up)."""
    from autograder import pipeline

    from course_lib.checks import _core, training

    monkeypatch.setattr(pipeline, "_W", {})
    monkeypatch.setattr(training, "_EVAL", {})  # nothing loaded before the worker's set-up
    monkeypatch.setattr(sandbox, "die_with_parent", lambda: None)  # (this test process is no worker)
    scratch, course = lib
    a4 = "04_training_with_clipping"
    pipeline.init_worker({"root": str(ROOT), "limits": LIMITS.__dict__, "lib": str(course), "scratch": str(scratch),
                          "scheduler": None, "parent": os.getppid(), "assignment": a4})
    assert [k[2] for k in warm._SERVERS] == [("torch._dynamo",)] and pipeline._W["worker_start"] > 0
    assert "torch._dynamo" in sys.modules  # the worker's own reference trains with torch.optim too
    nb = nbformat.read(str(ROOT / "autograder" / "samples" / a4 / "blank" / f"{a4}.ipynb"), as_version=4)
    assert "ids" in training._EVAL  # the held-out text a handed-in model is measured on (FileExercise.prepare)
    visible = {k for k in _core._VISIBLE if k[0] in {id(ex) for ex in ASSIGNMENTS[a4].values()}}
    assert len(visible) == sum(len(ex.cases(0, hidden=False)) for ex in ASSIGNMENTS[a4].values()
                               if not getattr(ex, "attach", None))
    j = judge.judge_notebook(nb, a4, "blank", LIMITS, course, scratch)
    assert j.start == "warm" and len(warm._SERVERS) == 1 and next(iter(warm._SERVERS.values())).starts == 1
