"""Run one submission's code in a sandbox and bring back plain arrays.

Isolation, strongest available first (``probe()`` picks; a weaker one is reported, never silent):

- ``root``: as root, new mount, network, PID, IPC and UTS namespaces (``unshare``); a fresh root
  filesystem, built inside the sandbox's own mount namespace, holding only the system directories,
  the Python installation and a copy of ``course_lib`` without ``reference/`` (no repository, no
  ``solutions/``, no gradebook, no other student); an unprivileged uid of its own (``chroot
  --userspec``) with ``no_new_privs``; limits on address space, processes, CPU time, file size and
  open files (``prlimit``), per-sandbox cgroups; no network.
- ``userns``: the same inside an unprivileged user namespace, without the uid change.
- ``limits``: only the resource limits, a stripped environment and an empty working directory.

The grader trusts nothing from inside (:mod:`autograder._runner` runs next to the student's code
and can be patched by it):

- **No path the sandbox can write is ever touched by the grader.** The only writable folder is a
  tmpfs mounted inside the sandbox's own mount namespace; inputs go in and results come back over
  inherited pipes; what is printed comes back over pipes too. Nothing is mounted in the grader's
  namespace, so a run killed with SIGKILL leaves no mount behind (:func:`cleanup_stale` removes
  the cgroups and scratch folders a dead run left).
- **Every limit is the grader's.** The grader drives the run one step at a time (a cell, or one
  call of one exercise on one case) and times each step itself: CPU time of all the sandbox's
  processes (its cgroup, or its process tree from ``/proc``) against the CPU limit, and its own
  monotonic clock against a wall limit ``wall_factor`` times longer (a sleeping or blocked step).
  The interpreter's start and its imports of numpy, torch and matplotlib are the grader's own
  setup: timed separately, never charged to the student. Output bytes, figure count and size,
  and reply sizes are counted here.
- **A wall-clock trip is not a verdict yet.** A step stopped on the wall clock while it used
  little CPU may have been starved by a busy machine; :attr:`SandboxResult.wall_trips` tells the
  grading command, which grades that submission again alone before the timeout counts.

When the sandbox dies or is stopped, the step it was on is skipped and the rest runs again, so one
bad cell costs that cell, not the submission.
"""
from __future__ import annotations

import ctypes
import dataclasses
import fcntl
import functools
import json
import os
import select
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import boundary
from ._runner import pack as _pack  # the one encoding for both ends of the pipes
from ._runner import unpack as _unpack

HERE = Path(__file__).resolve().parent
MAX_BODY_BYTES = 64 * 2**20  # one reply's body
MAX_HEADER_BYTES = 1 << 16
ALLOWED_KINDS = "biufU"
COURSE_DIR, HOME = "/opt/course", "/sandbox"  # where the sandbox sees the library, its own folder
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_FIGURE_NAME = 500  # characters of a figure's caption kept when figures are not drawn
# characters kept of each text in a function's result (an error message, a type name: the protocols send at
# most 403, course_lib.checks._protocol*.MAX_TEXT); the rest of a longer one (a patched runner's) is dropped
MAX_RESULT_TEXT = 1000
SCRATCH_PARENT = Path(tempfile.gettempdir()) / "autograder-scratch"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PREFIX = "autograder-"


@dataclasses.dataclass
class Limits:
    cell_timeout: float = 30.0  # CPU seconds per notebook cell
    call_timeout: float = 20.0  # CPU seconds per exercise case
    total_timeout: float = 240.0  # CPU seconds of the student's code in all, all attempts together
    wall_factor: float = 4.0  # a step may take this many times its CPU limit on the wall clock
    startup_timeout: float = 180.0  # wall seconds to start Python and import torch (never charged)
    grace: float = 2.0  # seconds past a limit before the grader stops the step
    memory_bytes: int = 2 * 2**30  # address space (torch itself maps about 0.7 GiB)
    processes: int = 64  # processes and threads of the sandbox uid
    cpu_seconds: int = 600  # RLIMIT_CPU per process: a backstop far past total_timeout
    file_bytes: int = 64 * 2**20
    max_output_chars: int = 20_000  # kept per cell and stream
    max_output_bytes: int = 32 * 2**20  # printed by one step: past it the step is stopped
    max_figures: int = 6  # per cell
    draw_figures: bool = False  # PNGs of the student's figures in the feedback (about 70 ms each); else their captions
    max_figure_bytes: int = 2_000_000  # per figure
    max_figure_pixels: int = 8_000_000  # per figure (width x height: a browser decodes every pixel)
    max_kept_bytes: int = 16 * 2**20  # figures and output kept for the whole notebook
    max_cells: int = 400  # code cells run; the release has a few dozen
    max_result_bytes: int = 256 * 2**20  # the exercises' results, all cases together
    attempts: int = 4
    disk_bytes: int = 256 * 2**20  # the sandbox's working directory (a tmpfs in root mode)


@dataclasses.dataclass
class SandboxResult:
    cells: dict  # index -> dict(stdout, stderr, error_type, error, result, truncated, figures, figure_names)
    judge: dict  # exercise -> list of per-case dicts of arrays
    events: list  # (kind, detail): timeout / crash / memory / process_limit / output_limit / grader_error
    mode: str
    attempts: int
    seconds: float
    wall_trips: list = dataclasses.field(default_factory=list)  # steps stopped on the wall clock only
    cpu_seconds: float = 0.0  # charged to the student
    startup_seconds: float = 0.0  # the grader's own setup, all attempts
    start: str = "cold"  # warm: forked from the worker's warm parent; cold: a fresh interpreter
    start_note: str = ""  # why a warm start fell back to a cold one


_MODE = None
_SERIAL = [0]


def start_kind() -> str:
    """'warm' (default: a fork of the worker's warm parent, autograder/warm.py) or 'cold' (a fresh
    interpreter per sandbox: ``AUTOGRADER_START=cold`` or ``grade --cold``, e.g. for debugging)."""
    return "cold" if os.environ.get("AUTOGRADER_START", "warm").strip().lower() == "cold" else "warm"


def fresh_uid() -> int:
    """A uid of its own for each submission graded by this process (root mode): never one an earlier
    submission's processes had, nor another worker's (their pids differ)."""
    _SERIAL[0] += 1
    return 1_000_000 + (os.getpid() % 30_000) * 4096 + _SERIAL[0] % 4096


def probe() -> tuple[str, str]:
    """Which isolation works here: ('root'|'userns'|'limits', why)."""
    global _MODE
    if _MODE is not None:
        return _MODE
    forced = os.environ.get("AUTOGRADER_SANDBOX")
    if forced in ("root", "userns", "limits"):
        _MODE = (forced, "forced by AUTOGRADER_SANDBOX")
        return _MODE
    unshare = shutil.which("unshare")
    why = "unshare not found"
    if unshare and os.geteuid() == 0 and shutil.which("chroot"):
        r = subprocess.run([unshare, "--mount", "--net", "--pid", "--ipc", "--fork", "true"],
                           capture_output=True, timeout=30)
        if r.returncode == 0:
            _MODE = ("root", "namespaces and an unprivileged uid")
            return _MODE
        why = r.stderr.decode(errors="replace").strip()
    if unshare:
        r = subprocess.run([unshare, "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork", "true"],
                           capture_output=True, timeout=30)
        if r.returncode == 0:
            _MODE = ("userns", "user namespaces (no uid change: not root)")
            return _MODE
        why = r.stderr.decode(errors="replace").strip() or why
    _MODE = ("limits", f"DEGRADED: no namespaces ({why}); resource limits only")
    return _MODE


# ------------------------------------------------------------------ what the sandbox sees
def python_path() -> str:
    """The interpreter to start, by its real path: a ``.venv`` that is a symbolic link to an
    environment elsewhere is resolved here, since only real paths are bound into the sandbox.
    The venv's own ``bin/python`` is kept (not resolved further) so that Python finds the venv."""
    exe = os.path.abspath(sys.executable)
    if sys.prefix != sys.base_prefix:
        return os.path.join(os.path.realpath(sys.prefix), "bin", os.path.basename(exe))
    return os.path.realpath(exe)


def _bind_targets() -> list:
    """Host paths the sandboxed interpreter needs, read-only, at their own (real) paths."""
    exe = os.path.realpath(sys.executable)
    paths = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix), os.path.dirname(exe),
             os.path.dirname(os.path.dirname(exe))}
    out = []
    for p in sorted(paths, key=len):
        if any(p == q or p.startswith(q + "/") for q in out) or p.startswith(("/usr", "/lib", "/bin")):
            continue
        out.append(p)
    return out


def prepare_library(dest: Path) -> Path:
    """What the sandbox may read, in ``dest`` (bound read-only at ``/opt/course``): the modules of
    ``course_lib`` that :mod:`autograder.boundary` lists, stand-ins for ``reference`` and ``checks``
    (the checks only say they run at grading time), and ``_grader/`` (the runner, the protocol
    helpers, matplotlib's font cache). Returns the ``course_lib`` copy."""
    target = dest / "course_lib"
    if target.exists():
        shutil.rmtree(target)
    # exactly the modules autograder/boundary.py declares (tests/test_boundary.py checks them)
    runtime = dest / "_grader"
    files = {**{target / rel: f for rel, f in boundary.library_files().items()},
             **{runtime / name: f for name, f in boundary.RUNTIME.items()}}
    for path, f in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, path)
    for rel, text in boundary.STUBS.items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_text(text)
    (runtime / "mpl").mkdir(exist_ok=True)
    for f in (Path.home() / ".cache" / "matplotlib").glob("fontlist*.json"):
        shutil.copy(f, runtime / "mpl" / f.name)
    for p in [dest, *dest.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return target


def sandbox_env(home: str) -> list:
    """The whole environment a sandboxed runner (or a warm parent) starts with."""
    return ["PATH=/usr/bin:/bin", f"HOME={home}", "LANG=C.UTF-8", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1",
            "MPLBACKEND=Agg", f"MPLCONFIGDIR={home}/.mpl", "COURSE_BUDGET=ci", "NBGRADER_EXECUTION=autograde",
            "PYTHONHASHSEED=0"]


def _rlimits(limits: Limits) -> dict:
    return {"as": limits.memory_bytes, "nproc": limits.processes, "cpu": limits.cpu_seconds,
            "fsize": limits.file_bytes, "nofile": 256, "core": 0}


def root_layout(mode: str, stage: Path, lib_dir: Path, uid: int, limits: Limits, warm: bool = False) -> list:
    """The sandbox's root filesystem, as steps (op, *args) carried out inside its own mount namespace:
    by a shell script for a cold start (:func:`_layout_shell`), by system calls in a warm child
    (``_zygote.build_root``). One layout, two executors. A warm child also sees the library at its
    host path, where its warm parent imported it from."""
    R = str(stage / "root")
    steps = [("tmpfs", R, "mode=755,size=16m")]
    for d in ("usr", "etc", "bin", "lib", "lib32", "lib64", "sbin"):
        host = Path("/") / d
        if host.is_symlink():
            steps.append(("symlink", os.readlink(host), f"{R}/{d}"))
        elif host.is_dir():
            steps.append(("bind_ro", f"/{d}", f"{R}/{d}"))
    # /tmp first: a venv that lives under /tmp is bound on top of it, not hidden by it
    steps.append(("tmpfs", f"{R}/tmp", "mode=1777,size=64m"))
    steps += [("bind_ro", p, f"{R}{p}") for p in _bind_targets()]
    steps.append(("bind_ro", str(lib_dir), f"{R}{COURSE_DIR}"))
    if warm:
        steps.append(("bind_ro", str(lib_dir), f"{R}{lib_dir}"))
    # the one writable folder: a fresh tmpfs in this namespace only; nothing of it exists outside
    owner = f",uid={uid},gid={uid}" if mode == "root" else ""
    steps.append(("tmpfs", f"{R}{HOME}", f"size={limits.disk_bytes},mode=0700{owner}"))
    steps.append(("copy", f"{R}{COURSE_DIR}/_grader/mpl", f"{R}{HOME}/.mpl", uid if mode == "root" else None))
    steps += [("bind_dev", f"/dev/{d}", f"{R}/dev/{d}") for d in ("null", "zero", "urandom", "random")]
    steps.append(("proc", f"{R}/proc"))
    # read-only sysctls: in userns mode under a root grader the student's uid is the host's root,
    # which may write /proc/sys (kernel.core_pattern runs a program as root on the host)
    steps.append(("bind_ro", f"{R}/proc/sys", f"{R}/proc/sys"))
    return steps


def _layout_shell(steps: list) -> list:
    """The same steps as shell lines (the cold start's ``unshare ... sh -c``)."""
    q, lines = shlex.quote, ["set -e"]
    for op, *a in steps:
        if op == "tmpfs":
            lines.append(f"mkdir -p {q(a[0])} && mount -t tmpfs -o {a[1]} tmpfs {q(a[0])}")
        elif op == "symlink":
            lines.append(f"ln -s {q(a[0])} {q(a[1])}")
        elif op == "bind_ro":
            lines.append(f"mkdir -p {q(a[1])} && mount -o bind,ro {q(a[0])} {q(a[1])}")
        elif op == "bind_dev":
            lines.append(f"mkdir -p {q(os.path.dirname(a[1]))} && touch {q(a[1])} && mount --bind {q(a[0])} {q(a[1])}")
        elif op == "copy":
            lines.append(f"mkdir -p {q(a[1])} && cp -r {q(a[0])}/. {q(a[1])}/")
            if a[2] is not None:
                lines.append(f"chown -R {a[2]}:{a[2]} {q(a[1])}")
        elif op == "proc":
            lines.append(f"mkdir -p {q(a[0])} && mount -t proc proc {q(a[0])}")
    return lines


def _launch_command(mode, stage: Path, lib_dir: Path, uid: int, limits: Limits, fds: tuple, imports: tuple = ()) -> list:
    """The command line that starts a cold runner in the sandbox, talking over ``fds`` (request, reply),
    that imports ``imports`` in its setup (as a warm parent does)."""
    rl = ["prlimit", *(f"--{k}={v}" for k, v in _rlimits(limits).items()), "--"]
    python = python_path()
    if mode == "limits":
        work = stage / "work"
        runner = lib_dir / "_grader" / "_runner.py"
        return [*rl, "env", "-i", *sandbox_env(str(work)), python, "-I", "-B", str(runner), *map(str, fds), str(lib_dir),
                *imports]
    q = shlex.quote
    lines = _layout_shell(root_layout(mode, stage, lib_dir, uid, limits))
    user = [f"--userspec={uid}:{uid}", f"--groups={uid}"] if mode == "root" else []
    # userns: uid 0 of its namespace keeps no capability (CAP_SYS_CHROOT alone leaves a chroot)
    caps = ["--bounding-set=-all", "--inh-caps=-all"] if mode == "userns" else []
    # --pdeathsig: chroot's uid change cleared unshare's; PID 1 must die with unshare (no cgroup may hold it)
    inner = ["chroot", *user, str(stage / "root"), "/usr/bin/setpriv", "--no-new-privs", "--pdeathsig=SIGKILL",
             *caps, *rl,
             "/usr/bin/env", "-i", *sandbox_env(HOME), python, "-I", "-B", f"{COURSE_DIR}/_grader/_runner.py",
             *map(str, fds), COURSE_DIR, *imports]
    lines.append("exec " + " ".join(q(a) for a in inner))
    ns = ["unshare", "--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child=SIGKILL",
          "--propagation", "private"]
    if mode == "userns":
        ns[1:1] = ["--user", "--map-root-user"]
    return [*ns, "/bin/sh", "-c", "\n".join(lines)]


def warm_plan(mode, stage: Path, lib_dir: Path, uid: int, limits: Limits, cgroups: dict) -> dict:
    """What a warm child does before it serves the grader (``_zygote``): the same namespaces, root
    filesystem, uid, limits and environment as a cold start."""
    if mode == "limits":
        return {"namespaces": [], "layout": [], "root": None, "home": str(stage / "work"), "uid": None,
                "rlimits": _rlimits(limits), "env": sandbox_env(str(stage / "work")), "cgroups": [],
                "course_dir": str(lib_dir), "outer_ids": [os.getuid(), os.getgid()]}
    ns = ["mount", "net", "pid", "ipc", "uts"] + (["user"] if mode == "userns" else [])
    return {"namespaces": ns, "layout": root_layout(mode, stage, lib_dir, uid, limits, warm=True),
            "root": str(stage / "root"), "home": HOME, "uid": uid if mode == "root" else None,
            "rlimits": _rlimits(limits), "env": sandbox_env(HOME), "course_dir": COURSE_DIR,
            "cgroups": [str(d / "cgroup.procs") for d in cgroups.values()],
            "outer_ids": [os.getuid(), os.getgid()]}


# ------------------------------------------------------------------ cgroups and leftovers
def _cgroups(name: str, limits: Limits) -> dict:
    """Per-sandbox v1 cgroups where writable: memory and pids limits for all the sandbox's processes
    together, and cpuacct to time them. {controller: dir}; {} where unavailable."""
    wanted = {"memory": {"memory.limit_in_bytes": limits.memory_bytes + limits.disk_bytes + 2**28},
              "pids": {"pids.max": limits.processes}, "cpuacct": {}}
    made = {}
    for ctrl, files in wanted.items():
        base = CGROUP_ROOT / ctrl
        if not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
            continue
        d = base / name
        try:
            d.mkdir()
            for f, v in files.items():
                (d / f).write_text(str(v))
            made[ctrl] = d
        except OSError:
            _rmdir_cgroup(d)
    return made


def _rmdir_cgroup(d: Path) -> None:
    for _ in range(100):
        try:
            for pid in (d / "cgroup.procs").read_text().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def cleanup_stale() -> list:
    """Remove what grading runs that died (SIGKILL, power loss) left behind: their cgroups and their
    scratch folders. A leftover is recognised by the pid in its name no longer running (a scratch
    folder also by its lock no longer held). Returns what was removed."""
    removed = []
    for ctrl in ("memory", "pids", "cpuacct"):
        base = CGROUP_ROOT / ctrl
        if not base.is_dir():
            continue
        for d in base.glob(CGROUP_PREFIX + "*"):
            try:
                pid = int(d.name[len(CGROUP_PREFIX):].split("-")[0])
            except ValueError:
                continue
            if not _alive(pid):
                _rmdir_cgroup(d)
                removed.append(str(d))
    if SCRATCH_PARENT.is_dir():
        for d in SCRATCH_PARENT.iterdir():
            try:  # named "<pid>-...": a live run's folder is never touched, even before it is locked
                if _alive(int(d.name.split("-")[0])):
                    continue
            except ValueError:
                continue
            lock = d / ".lock"
            try:
                fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)  # its run is alive
                continue
            shutil.rmtree(d, ignore_errors=True)
            os.close(fd)
            removed.append(str(d))
    return removed


def scratch_dir() -> tuple[Path, int]:
    """A private scratch folder for one grading run, locked for as long as the run lives (the lock
    is how :func:`cleanup_stale` tells a dead run's folder). Returns (folder, lock fd)."""
    SCRATCH_PARENT.mkdir(mode=0o711, exist_ok=True)
    os.chmod(SCRATCH_PARENT, 0o711)
    d = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=SCRATCH_PARENT))
    os.chmod(d, 0o711)
    fd = os.open(d / ".lock", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return d, fd


# ------------------------------------------------------------------ CPU time, from the grader's side
_CLK = os.sysconf("SC_CLK_TCK")


def _tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and every live descendant (and children they reaped), from /proc."""
    total, stack, seen = 0.0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                stat = f.read().decode()
            fields = stat[stat.rindex(")") + 2:].split()
            total += sum(int(x) for x in fields[11:15]) / _CLK
        except (OSError, ValueError):
            continue
        stack.extend(_children(p))
    return total


def _children(pid: int) -> list:
    """The pids of ``pid``'s children, from /proc ([] when it is gone)."""
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", "rb") as f:
                out.extend(int(c) for c in f.read().split())
    except (OSError, ValueError):
        pass
    return out


def die_with_parent():
    """Die (SIGKILL) when the parent dies: called in a sandbox's launcher before exec and in each
    grading worker, so that a grading command killed with SIGKILL leaves no process behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# ------------------------------------------------------------------ one running sandbox
@dataclasses.dataclass
class Step:
    """What one step gave back, as measured here."""

    outcome: str  # ok | cpu | wall | output | died | malformed | budget
    header: dict | None = None
    arrays: dict = dataclasses.field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    out_bytes: int = 0
    cpu: float = 0.0
    wall: float = 0.0
    alive: bool = True  # the process still ran when the step ended


class _Stream:
    """One output pipe of the current step: the first ``keep`` characters, and a byte count."""

    def __init__(self, keep: int):
        self.keep, self.data, self.total = keep, bytearray(), 0

    def add(self, chunk: bytes):
        self.total += len(chunk)
        room = self.keep * 4 - len(self.data)  # bytes: up to 4 per character
        if room > 0:
            self.data += chunk[:room]

    def text(self) -> str:
        s = self.data.decode("utf-8", "replace")
        return s[: self.keep]


class Sandbox:
    """One sandboxed runner process and the grader's ends of its pipes."""

    def __init__(self, mode: str, limits: Limits, lib_dir: Path, uid: int, scratch: Path, serial: int,
                 server=None, imports: tuple = ()):
        self.mode, self.limits = mode, limits
        self.t_open = time.monotonic()  # its start-up runs from here (a warm child starts at the fork)
        self.stage = Path(tempfile.mkdtemp(prefix="sbx-", dir=scratch))
        os.chmod(self.stage, 0o700)
        (self.stage / "root").mkdir()
        if mode == "limits":
            (self.stage / "work").mkdir()
            (self.stage / "work" / ".mpl").mkdir()
        self.groups = _cgroups(f"{CGROUP_PREFIX}{os.getpid()}-{serial}-{self.stage.name}", limits) \
            if mode == "root" else {}
        req_r, self.req_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        self.log = _Stream(4000)  # what was printed outside any step (start-up errors)
        self.start = "warm" if server is not None else "cold"
        try:
            if server is not None:  # a fork of the worker's warm parent (autograder/warm.py)
                plan = warm_plan(mode, self.stage, lib_dir, uid, limits, self.groups)
                self.proc = server.spawn(plan, (req_r, rep_w, out_w, err_w))
            else:
                self.proc = self._start_cold(lib_dir, uid, (req_r, rep_w), out_w, err_w, imports)
        except BaseException:
            for fd in (self.req_w, self.rep_r, self.out_r, self.err_r):
                os.close(fd)
            for d in self.groups.values():
                _rmdir_cgroup(d)
            shutil.rmtree(self.stage, ignore_errors=True)
            raise
        finally:
            for fd in (req_r, rep_w, out_w, err_w):
                os.close(fd)
        for fd in (self.req_w, self.rep_r, self.out_r, self.err_r):
            os.set_blocking(fd, False)
        self.open = {self.rep_r, self.out_r, self.err_r}
        self.pending = bytearray()  # reply bytes not yet consumed
        self.closed, self.mem_hit = False, False

    def _start_cold(self, lib_dir: Path, uid: int, fds: tuple, out_w: int, err_w: int, imports: tuple) -> subprocess.Popen:
        """A fresh interpreter in fresh namespaces (``unshare``), joined to the cgroups first."""
        cmd = _launch_command(self.mode, self.stage, lib_dir, uid, self.limits, fds, imports)
        if self.groups:  # join the cgroups before anything else runs
            join = "; ".join(f"echo $$ > {shlex.quote(str(d / 'cgroup.procs'))}" for d in self.groups.values())
            cmd = ["/bin/sh", "-c", join + '; exec "$@"', "sh", *cmd]
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w, pass_fds=fds,
                                start_new_session=True, preexec_fn=die_with_parent,
                                cwd=str(self.stage / "work") if self.mode == "limits" else "/")

    # -- measurements
    def cpu(self) -> float:
        acct = self.groups.get("cpuacct")
        if acct is not None:
            try:
                return int((acct / "cpuacct.usage").read_text()) / 1e9
            except (OSError, ValueError):
                pass
        return _tree_cpu(self.proc.pid)

    def memory_limit_hit(self) -> bool:
        mem = self.groups.get("memory")
        try:
            return mem is not None and int((mem / "memory.failcnt").read_text().strip() or 0) > 0
        except (OSError, ValueError):
            return False

    # -- the channel
    def _frame(self):
        """(header, body) once a whole frame is pending, None before; raises ValueError when the
        bytes cannot be a frame (too long, not JSON, not an object)."""
        b = self.pending
        if len(b) < 4:
            return None
        (hlen,) = struct.unpack(">I", b[:4])
        if hlen > MAX_HEADER_BYTES:
            raise ValueError("header too long")
        if len(b) < 12 + hlen:
            return None
        (blen,) = struct.unpack(">Q", b[4 + hlen:12 + hlen])
        if blen > MAX_BODY_BYTES:
            raise ValueError("reply too long")
        if len(b) < 12 + hlen + blen:
            return None
        header = json.loads(bytes(b[4:4 + hlen]).decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
        body = bytes(b[12 + hlen:12 + hlen + blen])
        del b[:12 + hlen + blen]
        return header, body

    def exchange(self, request: dict | None, body: bytes, cpu_limit: float, wall_limit: float,
                 out: _Stream | None = None, err: _Stream | None = None, charge: bool = True) -> Step:
        """Send ``request`` (None: only wait for a message) and wait for one reply, enforcing the
        limits on the grader's clock. Output printed meanwhile goes to ``out`` / ``err``. Each turn:
        move bytes (:meth:`_pump`), measure, then stop at a reply (:meth:`_replied`), a dead sandbox
        (:meth:`_died`) or a limit (:meth:`_over`)."""
        out, err = out or self.log, err or self.log
        send = bytearray()
        if request is not None:
            head = json.dumps(request).encode()
            send = bytearray(struct.pack(">I", len(head)) + head + struct.pack(">Q", len(body)) + body)
        t0, c0 = time.monotonic(), self.cpu()
        step = Step("ok")
        while True:
            self._pump(send, out, err)
            step.cpu, step.wall = self.cpu() - c0, time.monotonic() - t0
            step.out_bytes = out.total + err.total if charge else 0
            if self._replied(step, send, out, err) or self._died(step, out, err) \
                    or self._over(step, cpu_limit, wall_limit, charge):
                return step

    def _pump(self, send: bytearray, out: _Stream, err: _Stream) -> None:
        """Write what is left of the request, read what the sandbox sent (a reply, or output)."""
        r, w = self._wait(bool(send))
        if w:
            try:
                n = os.write(self.req_w, send[:1 << 16])
                del send[:n]
            except BlockingIOError:
                pass
            except OSError:
                send.clear()
        for fd in r:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.open.discard(fd)
            elif fd == self.rep_r:
                self.pending += chunk
            else:
                (out if fd == self.out_r else err).add(chunk)

    def _replied(self, step: Step, send: bytearray, out: _Stream, err: _Stream) -> bool:
        """A whole reply came (``step`` gets it), or bytes that cannot be one (``malformed``)."""
        try:  # a reply before the whole request went in is no reply; nor is a flood
            if len(self.pending) > 12 + MAX_HEADER_BYTES + MAX_BODY_BYTES or (send and self.pending):
                raise ValueError("unasked or oversized reply")
            got = self._frame()
        except (ValueError, UnicodeDecodeError):
            step.outcome = "malformed"
            return True
        if got is None:
            return False
        self._drain(out, err)  # what the step printed before replying is in the pipes now
        step.header, body = got
        step.arrays = safe_load_bytes(body) if body else {}
        return True

    def _died(self, step: Step, out: _Stream, err: _Stream) -> bool:
        if self.rep_r in self.open and self.proc.poll() is None:
            return False
        try:  # a process that exits closes its pipes a moment before it can be reaped
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        self._drain(out, err)
        step.outcome, step.alive = "died", self.proc.poll() is None
        return True

    def _over(self, step: Step, cpu_limit: float, wall_limit: float, charge: bool) -> bool:
        """A limit passed, on the grader's own measurements (start-up is not charged: ``charge``)."""
        lim = self.limits
        if charge and step.cpu > cpu_limit + lim.grace:
            step.outcome = "cpu"
        elif step.wall > wall_limit + lim.grace:
            step.outcome = "wall"
        elif charge and step.out_bytes > lim.max_output_bytes:
            step.outcome = "output"
        return step.outcome != "ok"

    def _wait(self, sending: bool, timeout: float = 0.02) -> tuple[list, list]:
        """Descriptors ready to read, and to write (poll: no limit on descriptor numbers)."""
        p = select.poll()
        for fd in self.open:
            p.register(fd, select.POLLIN)
        if sending:
            p.register(self.req_w, select.POLLOUT)
        r, w = [], []
        for fd, ev in p.poll(timeout * 1000):
            if fd == self.req_w:
                if ev & (select.POLLOUT | select.POLLERR | select.POLLHUP):
                    w.append(fd)
            elif ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                r.append(fd)
        return r, w

    def _drain(self, out: _Stream, err: _Stream) -> None:
        for fd, s in ((self.out_r, out), (self.err_r, err)):
            for _ in range(64):
                try:
                    chunk = os.read(fd, 1 << 16)
                except (BlockingIOError, OSError):
                    break
                if not chunk:
                    break
                s.add(chunk)

    def close(self) -> int | None:
        """Stop the sandbox (its whole PID namespace), close the pipes, reap it, remove its cgroups and
        stage. (Reaping later instead saved the one-worker case 0.02 s a submission, but only by moving the
        kernel's teardown onto the other core: two workers then scaled 1.77x instead of 1.90x.)"""
        if self.closed:
            return self.proc.returncode
        self.closed = True
        # its PID 1 first (a child of the process started: killed, it takes its PID namespace with it): it may
        # have left the process group and cleared its own parent-death signal, and no cgroup holds it in userns
        # mode (nor on a host without cgroup v1)
        kills = [functools.partial(os.kill, c, signal.SIGKILL) for c in _children(self.proc.pid)]
        for sig_target in (*kills, lambda: os.killpg(self.proc.pid, signal.SIGKILL), self.proc.kill):
            try:
                sig_target()
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if hasattr(self.proc, "release"):  # a warm child: its pidfd
            self.proc.release()
        for fd in (self.req_w, self.rep_r, self.out_r, self.err_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.mem_hit = self.memory_limit_hit()
        for d in self.groups.values():
            _rmdir_cgroup(d)
        shutil.rmtree(self.stage, ignore_errors=True)  # fd-based: follows no link the sandbox made
        return self.proc.returncode


def safe_load_bytes(data: bytes) -> dict:
    """Arrays from a body the sandbox sent (``_runner.pack``), read by ``_runner.unpack`` without trusting it:
    only numbers, bools and strings (no pickles: no object can be in it), size-capped; {} when it is not
    such a body. Text is text a notebook file can hold: an array whose name UTF-8 cannot encode (a lone
    surrogate, which a result's hint would name) is left out, a text array is mended (:func:`_valid_text`)."""
    if len(data) > MAX_BODY_BYTES:
        return {}
    try:
        arrays = _unpack(data, kinds=ALLOWED_KINDS)
    except Exception:  # noqa: BLE001 - a malformed body is no reply
        return {}
    return {k: _valid_text(a) if a.dtype.kind == "U" else a for k, a in arrays.items() if _encodable(k)}


def _encodable(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _valid_text(a: np.ndarray) -> np.ndarray:
    """A text array whose every character is one UTF-8 can encode: a code point past U+10FFFF (numpy makes
    a corrupt ``str`` of it) or a lone surrogate (a file the notebook is written to cannot hold it) becomes
    U+FFFD. Same shape, native byte order."""
    a = np.asarray(a, dtype=a.dtype.newbyteorder("="), order="C")
    if a.dtype.itemsize == 0:
        return a
    codes = a.reshape(-1).view(np.uint32)
    bad = (codes > 0x10FFFF) | ((codes >= 0xD800) & (codes <= 0xDFFF))
    if not bad.any():
        return a
    codes = codes.copy()
    codes[bad] = 0xFFFD
    return codes.view(a.dtype).reshape(a.shape)


def _short_text(a: np.ndarray) -> np.ndarray:
    """``a``, each of its texts cut to :data:`MAX_RESULT_TEXT` characters (same shape; not text: as it is)."""
    return a.astype(f"<U{MAX_RESULT_TEXT}") if a.dtype.kind == "U" and a.dtype.itemsize > 4 * MAX_RESULT_TEXT else a


def _png_ok(data: bytes, lim: Limits) -> bool:
    """A PNG signature, then an IHDR chunk whose width and height are within the caps."""
    if len(data) < 24 or not data.startswith(PNG_MAGIC) or data[12:16] != b"IHDR":
        return False
    w, h = struct.unpack(">II", data[16:24])
    return 0 < w and 0 < h and w * h <= lim.max_figure_pixels


def _text(arrays: dict, key: str) -> str:
    a = arrays.get(key)
    return str(a) if isinstance(a, np.ndarray) and a.dtype.kind == "U" and a.ndim == 0 else ""


# ------------------------------------------------------------------ a whole submission
class _Run:
    """The state of grading one submission across attempts: what to skip, what came back, what
    it cost, what happened."""

    def __init__(self, cells, exercises, inputs, limits, lib, scratch, imports=()):
        self.cells, self.exercises, self.inputs, self.imports = cells, exercises, inputs, tuple(imports)
        self.limits, self.lib_dir, self.scratch = limits, Path(lib).parent, scratch
        self.mode = probe()[0]
        self.uid = fresh_uid()
        self.start, self.start_note = "cold", ""
        self.skip_cells, self.events, self.wall_trips = set(), [], []
        self.cell_results, self.judge = {}, {e["name"]: {} for e in exercises}
        self.cpu_used, self.wall_used, self.startup = 0.0, 0.0, 0.0
        self.attempts, self.serial, self.stop = 0, 0, False
        self.kept, self.result_bytes = 0, 0  # bytes of output and figures kept, of results received

    # budgets: what is left of the student's total, on both clocks
    def budget(self, cpu: float) -> tuple[float, float]:
        lim = self.limits
        cpu_left = max(0.0, lim.total_timeout - self.cpu_used)
        wall_left = max(0.0, lim.total_timeout * lim.wall_factor - self.wall_used)
        return min(cpu, cpu_left), min(cpu * lim.wall_factor, wall_left)

    def charge(self, step: Step) -> None:
        self.cpu_used += step.cpu
        self.wall_used += step.wall

    def judged(self, name: str) -> bool:
        n = next(e["n_cases"] for e in self.exercises if e["name"] == name)
        return len(self.judge[name]) >= n

    def attempt(self) -> bool:
        """One sandbox, from start-up to the last step it gets through. True when everything ran."""
        self.attempts += 1
        self.serial += 1
        self.kept = 0  # every cell runs again: what is kept is this attempt's
        sb = self.open_sandbox()
        try:
            hello = sb.exchange(None, b"", 0, self.limits.startup_timeout, charge=False)
            self.startup += time.monotonic() - sb.t_open  # not hello.wall: the child began before it
            if hello.outcome != "ok" or (hello.header or {}).get("op") != "hello":
                self.start_failed(sb, hello)
                return False
            for n, cell in enumerate(self.cells):
                if n >= self.limits.max_cells:
                    self.too_many_cells()
                    break
                if cell["index"] in self.skip_cells:
                    continue
                if not self.run_cell(sb, cell):
                    return False
            for ex in self.exercises:
                if self.judged(ex["name"]):
                    continue
                if not self.run_exercise(sb, ex):
                    return False
            return True
        finally:
            sb.close()

    def open_sandbox(self) -> Sandbox:
        """A warm child of this worker's warm parent, or a cold start when asked for (``start_kind``)
        or when no warm parent can be had (then the result says why)."""
        if start_kind() == "warm":
            from . import warm

            try:
                server = warm.server(self.lib_dir, self.limits, self.imports)
                self.startup += server.take_startup()  # the parent's own start-up, once per worker
                sb = Sandbox(self.mode, self.limits, self.lib_dir, self.uid, self.scratch, self.serial, server)
                self.start = "warm"
                return sb
            except Exception as exc:  # noqa: BLE001 - graded cold instead, and said so
                self.start_note = f"warm start failed ({type(exc).__name__}: {exc}); started cold"
        self.start = "cold"
        return Sandbox(self.mode, self.limits, self.lib_dir, self.uid, self.scratch, self.serial, imports=self.imports)

    def too_many_cells(self) -> None:
        msg = f"notebook: only the first {self.limits.max_cells} code cells were run"
        if ("output_limit", msg) not in self.events:
            self.events.append(("output_limit", msg))

    def start_failed(self, sb: Sandbox, hello: Step) -> None:
        sb.close()  # so that the log holds everything it printed
        if self.attempts >= 2:
            why = "did not answer in time" if hello.outcome == "wall" else "could not start"
            self.events.append(("grader_error", f"the sandbox {why}: " + sb.log.text()[-300:]))
            self.stop = True

    def run_cell(self, sb: Sandbox, cell: dict) -> bool:
        """One cell; False when the sandbox had to be stopped (the cell is then skipped next time)."""
        idx, lim = cell["index"], self.limits
        cpu, wall = self.budget(lim.cell_timeout)
        out, err = _Stream(lim.max_output_chars), _Stream(lim.max_output_chars)
        step = sb.exchange({"op": "cell", "index": idx, "source": cell["source"], "cpu": cpu, "wall": wall,
                            "figures": "draw" if lim.draw_figures else "name"}, b"", cpu, wall, out, err)
        self.charge(step)
        outcome, replied = self.classify(step, cpu, wall, {"op": "cell", "index": idx})
        pngs, names = self.figures(step.arrays)
        res = {"stdout": out.text(), "stderr": err.text(), "figures": pngs, "figure_names": names,
               "truncated": out.total > out.keep or err.total > err.keep}
        for k in ("error_type", "error", "result"):
            res[k] = _text(step.arrays, k)[: lim.max_output_chars]
        text = sum(len(res[k]) for k in ("stdout", "stderr", "error", "result"))
        if self.kept + text > lim.max_kept_bytes:  # keep the verdicts, drop the excess text
            self.note_kept_limit()
            res.update(stdout="", stderr="", result="", error=res["error"][:200])
        self.kept += min(text, lim.max_kept_bytes)
        if outcome != "ok":
            self.failed(f"cell {idx}", outcome, step, cpu, wall, sb)
        if replied and outcome != "budget":  # the cell ended (or was stopped from inside): carry on
            if outcome in ("cpu", "wall"):
                res["error_type"], res["error"] = "TimeLimit", self.events[-1][1]
            elif res["error_type"] == "CellTimeout":  # the sandbox says so, the grader's clocks do not
                res["error_type"], res["error"] = "Error", "the cell raised CellTimeout"
            self.cell_results[idx] = res
            return True
        self.skip_cells.add(idx)
        return False

    def run_exercise(self, sb: Sandbox, ex: dict) -> bool:
        """Every remaining case of one exercise; False when the sandbox had to be stopped."""
        name, lim = ex["name"], self.limits
        for i in range(len(self.judge[name]), ex["n_cases"]):
            key = f"{name}/{i}/"
            case = {k[len(key):]: v for k, v in self.inputs.items() if k.startswith(key)}
            cpu, wall = self.budget(lim.call_timeout)
            req = {"op": "call", "exercise": name, "case": i, "protocol": ex["protocol"],
                   "arg_names": ex["arg_names"], "scalar_names": ex["scalar_names"], "cpu": cpu, "wall": wall}
            step = sb.exchange(req, _pack(case), cpu, wall, _Stream(0), _Stream(0))
            self.charge(step)
            outcome, replied = self.classify(step, cpu, wall, {"op": "call", "exercise": name, "case": i})
            if outcome == "ok":
                step.arrays = {k: _short_text(a) for k, a in step.arrays.items()}
                if _text(step.arrays, "error_type") == "TimeLimit":  # said by the sandbox, not measured
                    step.arrays = {"error_type": np.array("Error"), "error": np.array("raised TimeLimit")}
                self.result_bytes += sum(a.nbytes for a in step.arrays.values())
                if self.result_bytes > lim.max_result_bytes:
                    step.arrays = {"error_type": np.array("Error"),
                                   "error": np.array("its results were larger than the grader keeps")}
                self.judge[name][i] = step.arrays
                continue
            kind = self.failed(f"exercise {name}", outcome, step, cpu, wall, sb)
            for j in range(i, ex["n_cases"]):  # this case and the rest: one stop is enough
                self.judge[name][j] = {"error_type": np.array("TimeLimit" if kind == "timeout" else "Crash"),
                                       "error": np.array(self.events[-1][1])}
            return replied and outcome != "budget"
        return True

    def classify(self, step: Step, cpu: float, wall: float, expect: dict) -> tuple[str, bool]:
        """(outcome, replied): ok | cpu | wall | output | died | malformed | budget, from the grader's
        own measurements, and whether the sandbox answered (and so is still usable). A reply counts
        only when it answers this very request; a timeout the sandbox reports counts only when the
        grader's clocks agree."""
        replied = step.outcome == "ok"
        if replied:
            h = step.header or {}
            if any(h.get(k) != v for k, v in expect.items()):
                return "malformed", False
            if _text(step.arrays, "error_type") in ("CellTimeout", "TimeLimit"):
                if step.cpu >= 0.9 * cpu:
                    step.outcome = "cpu"
                elif step.wall >= 0.9 * wall:
                    step.outcome = "wall"
            if step.out_bytes > self.limits.max_output_bytes:
                step.outcome = "output"
        lim = self.limits
        if step.outcome in ("cpu", "wall") and (self.cpu_used >= lim.total_timeout
                                                or self.wall_used >= lim.total_timeout * lim.wall_factor):
            return "budget", replied
        return step.outcome, replied

    def failed(self, where: str, outcome: str, step: Step, cpu: float, wall: float, sb: Sandbox) -> str:
        """Record why a step stopped; returns the event kind."""
        if outcome == "cpu":
            kind, why = "timeout", f"ran past its time limit ({cpu:g} s of CPU) and was stopped"
        elif outcome == "wall":
            kind = "timeout"
            why = (f"took longer than {wall:g} s on the wall clock while using {step.cpu:.1f} s of CPU "
                   "(sleeping, waiting, or a busy machine) and was stopped")
            self.wall_trips.append(where)
        elif outcome == "budget":
            kind, why = "timeout", "reached the submission's total time limit; nothing after it was run"
            self.stop = True
            if self.cpu_used < 0.9 * self.limits.total_timeout:  # the wall-clock total: maybe a busy machine
                self.wall_trips.append(where)
        elif outcome == "output":
            kind, why = "output_limit", f"printed more than {self.limits.max_output_bytes // 2**20} MB and was stopped"
        elif outcome == "malformed":
            kind, why = "crash", "its reply to the grader could not be read (the grader's channel was tampered with)"
        else:
            kind, why = self.death(sb, step)
        self.events.append((kind, f"{where}: {why}"))
        return kind

    @staticmethod
    def death(sb: Sandbox, step: Step) -> tuple[str, str]:
        if step.alive:
            sb.close()
            return "crash", "closed its channel to the grader"
        rc = sb.close()
        if sb.mem_hit:
            return "memory", "killed at the memory limit"
        if rc is not None and rc < 0:
            sig = -rc
            name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
            return ("timeout" if sig == signal.SIGXCPU else "crash"), f"killed by signal {name}"
        return "crash", f"the process exited with status {rc}"

    def figures(self, arrays: dict) -> tuple[list, list]:
        """(PNGs, captions) the sandbox sent for a cell's figures, at most ``max_figures``, within what the
        notebook may keep in all. Drawn (``draw_figures``): each PNG (signature and header checked, under the
        size and pixel caps) with its caption, aligned; not drawn: no PNG (any sent is ignored), the captions.
        A caption is text of at most ``MAX_FIGURE_NAME`` characters ("" when it is not text)."""
        pngs, names, lim = [], [], self.limits
        for j in range(lim.max_figures):
            name = _text(arrays, f"figname/{j}")[:MAX_FIGURE_NAME]
            png = arrays.get(f"fig/{j}") if lim.draw_figures else None
            if (png is None if lim.draw_figures else f"figname/{j}" not in arrays):
                break
            if png is not None and (png.dtype != np.uint8 or png.ndim != 1 or png.size > lim.max_figure_bytes
                                    or not _png_ok(png.tobytes(), lim)):
                continue
            size = len(name) + (png.size if png is not None else 0)
            if self.kept + size > lim.max_kept_bytes:
                self.note_kept_limit()
                break
            self.kept += size
            pngs += [png.tobytes()] if png is not None else []
            names.append(name)
        return pngs, names

    def note_kept_limit(self) -> None:
        msg = (f"notebook: more output and figures than the grader keeps ({self.limits.max_kept_bytes // 2**20} MB);"
               " the rest was dropped")
        if ("output_limit", msg) not in self.events:
            self.events.append(("output_limit", msg))

    def result(self, seconds: float) -> SandboxResult:
        cells = dict(self.cell_results)
        events = list(self.events)
        for idx, c in cells.items():
            et, err = c.get("error_type", ""), c.get("error", "")
            if et == "MemoryError" or "can't allocate memory" in err or "out of memory" in err.lower():
                events.append(("memory", f"cell {idx}: out of memory"))
            elif et == "BlockingIOError" or "Resource temporarily unavailable" in err:
                events.append(("process_limit", f"cell {idx}: hit the process limit"))
            elif "File too large" in err:
                events.append(("output_limit", f"cell {idx}: hit the file size limit"))
            if c.get("truncated"):
                events.append(("output_limit", f"cell {idx}: output truncated"))
        for idx in self.skip_cells:
            reason = next((d for k, d in self.events if d.startswith(f"cell {idx}:")), "")
            cells[idx] = {"figures": [], "figure_names": [], "stdout": "", "stderr": "", "result": "", "truncated": False,
                          "error_type": "Skipped",
                          "error": f"This cell was stopped by the grader ({reason.split(': ', 1)[-1]}); "
                                   "the rest of the notebook was graded without it."}
        per_ex = {}
        for e in self.exercises:
            got = self.judge[e["name"]]
            per_ex[e["name"]] = [got.get(i) or {"error_type": np.array("Crash"),
                                                "error": np.array("no result came back from the sandbox")}
                                 for i in range(e["n_cases"])]
        return SandboxResult(cells, per_ex, events, self.mode, self.attempts, seconds, list(self.wall_trips),
                             round(self.cpu_used, 3), round(self.startup, 3), self.start, self.start_note)


def run(cells: list, exercises: list, inputs: dict, limits: Limits, lib: Path, scratch: Path,
        imports: tuple = ()) -> SandboxResult:
    """Run ``cells`` (dicts with index and source) then call the exercise functions on ``inputs``.

    ``exercises``: dicts name, protocol, arg_names, scalar_names, n_cases. ``inputs``: arrays keyed
    ``"<exercise>/<case>/<arg>"``; each case is sent only when its call is made. ``lib``: the
    ``course_lib`` copy from :func:`prepare_library`. ``imports``: modules the sandbox imports in its
    setup, before the first cell (never charged: e.g. what the assignment's notebooks import on first
    use). Returns per-case output arrays.
    """
    t0 = time.monotonic()
    state = _Run(cells, exercises, inputs, limits, lib, scratch, imports)
    while state.attempts < limits.attempts and not state.stop:
        if state.attempt():
            break
    return state.result(time.monotonic() - t0)
