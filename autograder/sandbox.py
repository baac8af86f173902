"""Run one submission's code in a sandbox and bring back plain arrays.

Isolation, strongest available first (``probe()`` picks; a weaker one is reported, never silent):

- ``root``: as root, new mount, network, PID and IPC namespaces (``unshare``); a fresh root
  filesystem holding only the system directories, the Python installation and a copy of
  ``course_lib`` without ``reference/`` (no repository, no ``solutions/``, no gradebook, no other
  student); an unprivileged uid of its own (``chroot --userspec``) with ``no_new_privs``; limits on
  address space, processes, CPU time, file size and open files (``prlimit``); no network.
- ``userns``: the same inside an unprivileged user namespace, without the uid change.
- ``limits``: only the resource limits, a stripped environment and an empty working directory.

Every submission also has a wall-clock limit per cell, per exercise call and in total, enforced
from outside by a watchdog that kills the whole sandbox (its PID namespace). When the sandbox
dies or is killed, the step it was on is skipped and the rest is run again, so one bad cell
costs that cell, not the submission.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LIB_SOURCE = HERE.parent / "course_lib"  # the editable install maps `course_lib` here
MAX_NPZ_BYTES = 64 * 2**20
ALLOWED_KINDS = "biufU"


@dataclasses.dataclass
class Limits:
    cell_timeout: float = 30.0  # seconds per notebook cell
    call_timeout: float = 20.0  # seconds per exercise case
    total_timeout: float = 240.0  # seconds for the whole submission, all attempts
    grace: float = 3.0  # seconds past a limit before the watchdog kills
    memory_bytes: int = 2 * 2**30  # address space (torch itself maps about 0.7 GiB)
    processes: int = 64  # processes and threads of the sandbox uid
    cpu_seconds: int = 300
    file_bytes: int = 64 * 2**20
    max_output_chars: int = 20_000  # kept per cell and stream
    attempts: int = 4
    disk_bytes: int = 256 * 2**20  # the sandbox's working directory (a tmpfs in root mode)


@dataclasses.dataclass
class SandboxResult:
    cells: dict  # index -> dict(stdout, stderr, error_type, error, result, truncated, figures)
    judge: dict  # exercise -> list of per-case dicts of arrays
    events: list  # (kind, detail): timeout / crash / memory / process_limit / output_limit
    mode: str
    attempts: int
    seconds: float


_MODE = None


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


def _bind_targets():
    """Host paths the sandboxed interpreter needs, read-only, at their own paths."""
    paths = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix),
             os.path.realpath(os.path.dirname(os.path.realpath(sys.executable)))}
    # the interpreter the venv's python links to
    paths.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    out = []
    for p in sorted(paths, key=len):
        if any(p == q or p.startswith(q + "/") for q in out):
            continue
        if p.startswith(("/usr", "/lib", "/bin")):
            continue
        out.append(p)
    return out


def prepare_library(dest: Path) -> Path:
    """A copy of ``course_lib`` for the sandbox: no ``reference/``, and checks that only say
    they run at grading time. Returns the directory that stands in for the package."""
    src = LIB_SOURCE
    target = dest / "course_lib"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "reference", "checks"))
    (target / "reference").mkdir()
    (target / "reference" / "__init__.py").write_text(
        'raise ImportError("course_lib.reference is not available while grading: your own code is graded")\n')
    (target / "checks").mkdir()
    for proto in (src / "checks").glob("_protocol*.py"):  # _protocol.py and its extensions
        shutil.copy(proto, target / "checks" / proto.name)
    (target / "checks" / "__init__.py").write_text(
        '"""Stand-in while grading: your functions are checked by the grader, outside this process."""\n\n\n'
        'def _deferred(*args, **kwargs):\n'
        '    print("(this check runs in the grader at grading time)")\n\n\n'
        'def __getattr__(name):\n'
        '    if name.startswith("check_"):\n'
        '        return _deferred\n'
        '    raise AttributeError(name)\n')
    for p in [target, *target.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return target


def _launch_command(mode, root_dir: Path, work: Path, lib: Path, uid: int, limits: Limits):
    python = os.path.abspath(sys.executable)
    env = ["PATH=/usr/bin:/bin", "HOME=/sandbox", "LANG=C.UTF-8", "OMP_NUM_THREADS=1",
           "MKL_NUM_THREADS=1", "MPLBACKEND=Agg", "MPLCONFIGDIR=/sandbox/.mpl", "COURSE_BUDGET=ci",
           "NBGRADER_EXECUTION=autograde", "PYTHONHASHSEED=0"]
    rl = ["prlimit", f"--as={limits.memory_bytes}", f"--nproc={limits.processes}",
          f"--cpu={limits.cpu_seconds}", f"--fsize={limits.file_bytes}", "--nofile=256", "--core=0", "--"]
    if mode == "limits":
        cmd = [*rl, "env", "-i", *[e.replace("/sandbox", str(work)) for e in env],
               python, "-I", "-B", str(work / "runner.py")]
        return cmd
    lib_target = str(LIB_SOURCE)
    q = shlex.quote
    R = q(str(root_dir))
    lines = ["set -e", f"mount -t tmpfs -o mode=755,size=16m tmpfs {R}"]
    for d in ("usr", "etc", "bin", "lib", "lib32", "lib64", "sbin"):
        host = Path("/") / d
        if host.is_symlink():
            lines.append(f"ln -s {q(os.readlink(host))} {R}/{d}")
        elif host.is_dir():
            lines.append(f"mkdir -p {R}/{d} && mount -o bind,ro /{d} {R}/{d}")
    # /tmp first: a checkout or venv that lives under /tmp is bound on top of it, not hidden by it
    lines.append(f"mkdir -p {R}/tmp && mount -t tmpfs -o mode=1777,size=64m tmpfs {R}/tmp")
    for p in _bind_targets():
        lines.append(f"mkdir -p {R}{q(p)} && mount -o bind,ro {q(p)} {R}{q(p)}")
    lines.append(f"mkdir -p {R}{q(lib_target)} && mount -o bind,ro {q(str(lib))} {R}{q(lib_target)}")
    lines.append(f"mkdir -p {R}/sandbox && mount --bind {q(str(work))} {R}/sandbox")
    lines.append(f"mkdir -p {R}/dev && for d in null zero urandom random; do "
                 f"touch {R}/dev/$d && mount --bind /dev/$d {R}/dev/$d; done")
    lines.append(f"mkdir -p {R}/proc && mount -t proc proc {R}/proc")
    user = [f"--userspec={uid}:{uid}", f"--groups={uid}"] if mode == "root" else []
    inner = ["chroot", *user, str(root_dir), "/usr/bin/setpriv", "--no-new-privs", *rl,
             "/usr/bin/env", "-i", *env, python, "-I", "-B", "/sandbox/runner.py"]
    lines.append("exec " + " ".join(q(a) for a in inner))
    ns = ["unshare", "--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child=SIGKILL",
          "--propagation", "private"]
    if mode == "userns":
        ns[1:1] = ["--user", "--map-root-user"]
    return [*ns, "/bin/sh", "-c", "\n".join(lines)]


def _safe_load(path: Path) -> dict:
    """Arrays from an npz the sandbox wrote: no pickles, only numbers/bools/strings, size-capped."""
    if not path.exists() or path.stat().st_size > MAX_NPZ_BYTES:
        return {}
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            if sum(i.file_size for i in zf.infolist()) > 4 * MAX_NPZ_BYTES:
                return {}
        with np.load(path, allow_pickle=False) as z:
            for k in z.files:
                try:
                    a = z[k]
                except Exception:  # an object array (needs pickle) or a broken member
                    continue
                if a.dtype.kind in ALLOWED_KINDS and a.size <= 10_000_000:
                    out[k] = a
    except Exception:
        return {}
    return out


def _read_progress(work: Path) -> list:
    p = work / "progress"
    try:
        with open(p, "rb") as f:
            data = f.read(1 << 16)
    except OSError:
        return []
    return [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]


def _kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroups(name: str, limits: Limits) -> list:
    """Per-sandbox cgroups (v1 memory and pids, where writable): the memory and process limits then
    hold for all the sandbox's processes together, not only per process. [] where unavailable."""
    wanted = {"memory": {"memory.limit_in_bytes": limits.memory_bytes + limits.disk_bytes + 2**28},
              "pids": {"pids.max": limits.processes}}
    made = []
    for ctrl, files in wanted.items():
        base = CGROUP_ROOT / ctrl
        if not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
            continue
        d = base / name
        try:
            d.mkdir()
            for f, v in files.items():
                (d / f).write_text(str(v))
            made.append(d)
        except OSError:
            try:
                d.rmdir()
            except OSError:
                pass
    return made


def _cgroups_remove(dirs: list) -> bool:
    """Remove the cgroups; True when the memory one had hit its limit."""
    hit = False
    for d in dirs:
        try:
            if d.parent.name == "memory":
                hit = int((d / "memory.failcnt").read_text().strip() or 0) > 0
        except (OSError, ValueError):
            pass
        for _ in range(50):
            try:
                d.rmdir()
                break
            except OSError:
                time.sleep(0.02)
    return hit


def _attempt(mode, cells, skip_cells, skip_ex, exercises, inputs, limits, lib, deadline, uid, scratch):
    stage = Path(tempfile.mkdtemp(prefix="sbx-", dir=scratch))
    os.chmod(stage, 0o700)
    work, root_dir = stage / "work", stage / "root"
    work.mkdir()
    root_dir.mkdir()
    mounted = False
    if mode == "root":  # a size-limited working directory: a student cannot fill the disk
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={limits.disk_bytes},mode=0700,uid={uid},gid={uid}",
                                  "tmpfs", str(work)], capture_output=True).returncode == 0
    groups = _cgroups(f"autograder-{stage.name}", limits) if mode == "root" else []
    shutil.copy(HERE / "_runner.py", work / "runner.py")
    for proto in (lib / "checks").glob("_protocol*.py"):  # _protocol.py and its extensions
        shutil.copy(proto, work / proto.name)
    mpl = Path.home() / ".cache" / "matplotlib"
    (work / ".mpl").mkdir()
    if mpl.is_dir():
        for f in mpl.glob("fontlist*.json"):
            shutil.copy(f, work / ".mpl" / f.name)
    job = {"cells": cells, "skip_cells": sorted(skip_cells), "skip_exercises": sorted(skip_ex),
           "exercises": exercises, "cell_timeout": limits.cell_timeout,
           "call_timeout": limits.call_timeout, "max_output_chars": limits.max_output_chars}
    (work / "job.json").write_text(json.dumps(job))
    if mode == "root":
        for p in [work, *work.rglob("*")]:
            os.chown(p, uid, uid)
        os.chmod(work, 0o700)
    log = open(stage / "log", "wb")
    cmd = _launch_command(mode, root_dir, work, lib, uid, limits)
    if groups:  # join the cgroups before anything else runs
        join = "; ".join(f"echo $$ > {shlex.quote(str(d / 'cgroup.procs'))}" for d in groups)
        cmd = ["/bin/sh", "-c", join + '; exec "$@"', "sh", *cmd]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True, cwd=str(work) if mode == "limits" else "/")
    step, step_start, killed, sent_inputs = None, time.monotonic(), None, False
    try:
        while proc.poll() is None:
            time.sleep(0.02)
            lines = _read_progress(work)
            last = lines[-1] if lines else "start"
            now = time.monotonic()
            if last != step:
                step, step_start = last, now
            if last == "ready" and not sent_inputs:
                tmp = work / "inputs.part.npz"  # same filesystem as the target: the rename is atomic
                np.savez(tmp, **inputs)
                if mode == "root":
                    os.chown(tmp, uid, uid)
                os.replace(tmp, work / "inputs.npz")
                sent_inputs = True
            limit = (limits.cell_timeout if step.startswith("cell ") else
                     limits.call_timeout * 2 if step.startswith("exercise ") else 60.0)
            if now - step_start > limit + limits.grace:
                killed = "timeout"
            elif now > deadline:
                killed = "total_timeout"
            if killed:
                _kill(proc)
                break
    finally:
        if proc.poll() is None:
            _kill(proc)
        log.close()
    rc = proc.returncode
    result = {
        "rc": rc, "killed": killed, "step": step if step not in ("done", "written") else None,
        "progress": _read_progress(work),
        "cells": _safe_load(work / "cells.npz"), "judge": _safe_load(work / "judge.npz"),
        "log": (stage / "log").read_bytes()[-2000:].decode("utf-8", "replace"),
        "memory_limit_hit": _cgroups_remove(groups),
    }
    if mounted:
        subprocess.run(["umount", "-l", str(work)], capture_output=True)
    shutil.rmtree(stage, ignore_errors=True)
    return result


def _parse_cells(arrays: dict) -> dict:
    cells = {}
    for k, a in arrays.items():
        parts = k.split("/")
        if len(parts) < 3 or parts[0] != "cell" or not parts[1].isdigit():
            continue
        c = cells.setdefault(int(parts[1]), {"figures": []})
        if parts[2] == "fig" and a.dtype == np.uint8:
            c["figures"].append(a.tobytes())
        elif parts[2] == "truncated":
            c["truncated"] = bool(a.reshape(-1)[0]) if a.size else False
        elif a.dtype.kind == "U" and a.ndim == 0:
            c[parts[2]] = str(a)
    return cells


def run(cells: list, exercises: list, inputs: dict, limits: Limits, lib: Path, scratch: Path) -> SandboxResult:
    """Run ``cells`` (dicts with index and source) then call the exercise functions on ``inputs``.

    ``exercises``: dicts name, protocol, arg_names, scalar_names, n_cases. ``inputs``: arrays keyed
    ``"<exercise>/<case>/<arg>"``. Returns per-case output arrays keyed the same way.
    """
    mode, _ = probe()
    t0 = time.monotonic()
    deadline = t0 + limits.total_timeout
    skip_cells, skip_ex, events = set(), set(), []
    uid = 200000 + os.getpid() % 100000
    final_cells, judge = {}, {}
    attempts = 0
    while attempts < limits.attempts:
        attempts += 1
        r = _attempt(mode, cells, skip_cells, skip_ex, exercises, inputs, limits, lib, deadline, uid, scratch)
        got_cells = _parse_cells(r["cells"])
        if got_cells:
            final_cells = got_cells
        for k, a in r["judge"].items():
            judge[k] = a
        finished = "written" in r["progress"]
        if finished:
            break
        step = r["step"] or "start"
        kind = "timeout" if r["killed"] in ("timeout", "total_timeout") else "crash"
        if r["killed"] is None and r["memory_limit_hit"]:
            kind = "memory"
            events.append((kind, f"{step}: killed at the memory limit"))
        elif r["killed"] is None and r["rc"] is not None and r["rc"] < 0:
            sig = -r["rc"]
            kind = "timeout" if sig == signal.SIGXCPU else "crash"
            events.append((kind, f"{step}: killed by signal {signal.Signals(sig).name}"))
        elif r["killed"] is None:
            events.append(("crash", f"{step}: the process exited with status {r['rc']}"))
        else:
            events.append((kind, f"{step}: ran past its time limit and was killed"))
        if r["killed"] == "total_timeout" or time.monotonic() > deadline:
            break
        if step.startswith("cell "):
            skip_cells.add(int(step.split()[1]))
        elif step.startswith("exercise "):
            name = step.split(None, 1)[1]
            skip_ex.add(name)
            n = next((e["n_cases"] for e in exercises if e["name"] == name), 0)
            for i in range(n):
                if f"{name}/{i}/out_type" not in judge and f"{name}/{i}/error_type" not in judge:
                    judge[f"{name}/{i}/error_type"] = np.array("TimeLimit" if kind == "timeout" else "Crash")
                    judge[f"{name}/{i}/error"] = np.array(events[-1][1])
        elif step == "start" and attempts >= 2:
            events.append(("grader_error", "the sandbox could not start: " + r["log"][-300:]))
            break
    for idx, c in final_cells.items():
        et = c.get("error_type", "")
        if et == "CellTimeout":
            events.append(("timeout", f"cell {idx}: interrupted after the time limit"))
        elif et == "MemoryError" or "can't allocate memory" in c.get("error", "") or "out of memory" in c.get("error", "").lower():
            events.append(("memory", f"cell {idx}: out of memory"))
        elif et == "BlockingIOError" or "Resource temporarily unavailable" in c.get("error", ""):
            events.append(("process_limit", f"cell {idx}: hit the process limit"))
        elif "File too large" in c.get("error", ""):
            events.append(("output_limit", f"cell {idx}: hit the file size limit"))
        if c.get("truncated"):
            events.append(("output_limit", f"cell {idx}: output truncated"))
    for idx in skip_cells:
        final_cells.setdefault(idx, {"figures": []})
        c = final_cells[idx]
        reason = next((d for k, d in events if d.startswith(f"cell {idx}:")), "")
        c["error_type"] = "Skipped"
        c["error"] = f"This cell was stopped by the grader ({reason.split(': ', 1)[-1]}); the rest of the notebook was graded without it."
    for k, a in judge.items():
        if k.endswith("/error_type") and a.dtype.kind == "U" and str(a) == "TimeLimit":
            events.append(("timeout", f"{k.split('/')[0]}: a call ran past its time limit"))
    per_ex = {}
    for e in exercises:
        per_ex[e["name"]] = []
        for i in range(e["n_cases"]):
            key = f"{e['name']}/{i}/"
            d = {k[len(key):]: a for k, a in judge.items() if k.startswith(key)}
            if not d:
                d = {"error_type": np.array("Crash"), "error": np.array("no result came back from the sandbox")}
            per_ex[e["name"]].append(d)
    return SandboxResult(final_cells, per_ex, events, mode, attempts, time.monotonic() - t0)
