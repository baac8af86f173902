"""The warm parent of a grading worker's sandboxes: imports once, forks one fresh child per submission.

Runs as the grader's own user, outside any sandbox, and never runs student code. Started by
:class:`autograder.warm.WarmServer` as ``python -I -B _zygote.py CONTROL_FD LIB_DIR [MODULE ...]``; it
imports numpy, torch (one thread), matplotlib (Agg, fonts and the PNG writer loaded), the sandbox-side
course code and the modules named (``_runner.setup``) once, freezes them out of the garbage collector
(a child's collections never walk, and so never copy, the parent's objects), checks that no thread
is alive, then answers on ``CONTROL_FD`` (a Unix
SOCK_SEQPACKET socket; one JSON object per packet):

  grader -> parent  {"op": "fork", "plan": {...}} with four fds: the runner's request and reply
                    pipes and its stdout and stderr
  parent -> grader  {"op": "forked", "pid": P}: the sandbox process, kept unreaped (a zombie once
                    it exits) until the grader asks, so that its pid cannot be reused under a pidfd
                    {"op": "reap", "pid": P} -> {"op": "reaped", "status": S} (negative: a signal)

The child ``P`` (a supervisor, like ``unshare --fork``) joins the submission's cgroups, unshares
its namespaces and forks the process that runs the student's cells: PID 1 of a new PID namespace,
which builds the root filesystem the grader planned (the same layout the cold path's shell script
builds, :func:`autograder.sandbox.root_layout`), chroots into it, takes the submission's own uid,
sets ``no_new_privs`` and the resource limits, and serves the grader over the same pipe protocol as
a cold runner (:mod:`_runner`). Nothing the student does can reach the parent: it is another
process, in another PID namespace (root and userns modes), under another uid (root mode); when the
submission ends its whole PID namespace is killed, its tmpfs disappears with its mount namespace.
"""
import ctypes
import fcntl
import json
import os
import resource
import signal
import socket
import sys

libc = ctypes.CDLL(None, use_errno=True)
CLONE = {"mount": 0x00020000, "uts": 0x04000000, "ipc": 0x08000000, "user": 0x10000000,
         "pid": 0x20000000, "net": 0x40000000}
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
RLIMITS = {"as": resource.RLIMIT_AS, "nproc": resource.RLIMIT_NPROC, "cpu": resource.RLIMIT_CPU,
           "fsize": resource.RLIMIT_FSIZE, "nofile": resource.RLIMIT_NOFILE, "core": resource.RLIMIT_CORE}
REQ_FD, REP_FD = 3, 4  # where the child keeps the runner's pipes


def _ok(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _enc(s):
    return s.encode() if s is not None else None


def _mount(src, target, fstype, flags, data=None):
    _ok(libc.mount(_enc(src), _enc(target), _enc(fstype), ctypes.c_ulong(flags), _enc(data)), f"mount {target}")


def _bind_ro(src, target):
    """``mount -o bind,ro``: bind, then remount read-only keeping the flags the source is locked with
    (a user namespace may not clear nosuid/nodev/noexec/atime flags of a mount it did not make)."""
    os.makedirs(target, exist_ok=True)
    _mount(src, target, None, MS_BIND)
    f = os.statvfs(src).f_flag
    keep = MS_NOSUID * bool(f & os.ST_NOSUID) | MS_NODEV * bool(f & os.ST_NODEV) | MS_NOEXEC * bool(f & os.ST_NOEXEC)
    keep |= MS_NOATIME * bool(f & os.ST_NOATIME) | MS_NODIRATIME * bool(f & os.ST_NODIRATIME)
    keep |= MS_RELATIME * bool(f & os.ST_RELATIME)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep)


def _chown_tree(path, uid):
    for d, dirs, files in os.walk(path):
        for name in [d, *(os.path.join(d, x) for x in dirs + files)]:
            os.lchown(name, uid, uid)


def build_root(layout):
    """Carry out :func:`autograder.sandbox.root_layout`'s steps with system calls."""
    import shutil

    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    for op, *a in layout:
        if op == "tmpfs":
            os.makedirs(a[0], exist_ok=True)
            _mount("tmpfs", a[0], "tmpfs", MS_NOSUID | MS_NODEV, a[1])
        elif op == "symlink":
            os.symlink(a[0], a[1])
        elif op == "bind_ro":
            _bind_ro(a[0], a[1])
        elif op == "bind_dev":
            os.makedirs(os.path.dirname(a[1]), exist_ok=True)
            open(a[1], "a").close()
            _mount(a[0], a[1], None, MS_BIND)
        elif op == "copy":
            shutil.copytree(a[0], a[1], dirs_exist_ok=True)
            if a[2] is not None:
                _chown_tree(a[1], a[2])
        elif op == "proc":
            os.makedirs(a[0], exist_ok=True)
            _mount("proc", a[0], "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        else:
            raise ValueError(f"unknown layout step {op}")


# ------------------------------------------------------------------ the child
def _unshare(plan):
    flags = 0
    for name in plan["namespaces"]:
        flags |= CLONE[name]
    if flags:
        _ok(libc.unshare(flags), "unshare")
    if "user" in plan["namespaces"]:  # uid 0 inside is the grader's own uid outside
        outer_uid, outer_gid = plan["outer_ids"]
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {outer_uid} 1"), ("gid_map", f"0 {outer_gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)


def _capabilities() -> int:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1], 16) for ln in f if ln.startswith("CapEff:"))


def drop_capabilities():
    """No capability left and none to regain by exec (empty bounding set): in a user namespace the
    student is uid 0 there with every capability of it, and CAP_SYS_CHROOT alone walks out of a
    chroot to the host's files. After a uid change (root mode) there is nothing to drop."""
    if not _capabilities():
        return
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == 22:  # EINVAL: past the last capability this kernel knows
                break
            _ok(-1, f"drop capability {cap} from the bounding set")
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable (two 32-bit halves each): none
    _ok(libc.capset(header, data), "capset")
    if _capabilities():
        raise OSError("capabilities still held after dropping them")


def _drop(plan):
    """Into the new root, the submission's uid, no new privileges, its resource limits and environment."""
    if plan["layout"]:
        build_root(plan["layout"])
        os.chroot(plan["root"])
    os.chdir(plan["home"])
    uid = plan["uid"]
    if uid is not None:
        os.setgroups([uid])
        os.setgid(uid)
        os.setuid(uid)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # a uid change clears it
    _ok(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    for name, value in plan["rlimits"].items():
        resource.setrlimit(RLIMITS[name], (value, value))
    drop_capabilities()
    os.environ.clear()
    os.environ.update(dict(kv.split("=", 1) for kv in plan["env"]))


def _supervisor_gone(alive_r) -> bool:
    os.set_blocking(alive_r, False)
    try:
        return os.read(alive_r, 1) == b""
    except BlockingIOError:
        return False


def _serve(plan, alive_r):
    """PID 1 of the sandbox: set up, then run the student's cells as a cold runner would. It dies
    with its supervisor (parent-death signal, set again after the uid change), so a PID 1 that left
    the supervisor's process group still ends with the sandbox where no cgroup holds it."""
    import _runner

    _runner.MAIN_PID = os.getpid()  # a process the student forks reports nothing
    sys.modules["__main__"] = _runner  # as in a cold runner, where the runner is the main module
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _drop(plan)
    if _supervisor_gone(alive_r):  # it died before the parent-death signal was set again
        os._exit(1)
    os.close(alive_r)
    sys.argv = ["notebook"]
    sys.orig_argv = [sys.executable, "-I", "-B", f"{plan['course_dir']}/_grader/_runner.py", str(REQ_FD), str(REP_FD),
                     plan["course_dir"]]  # as a cold runner's
    code = _runner.serve(REQ_FD, REP_FD, plan["course_dir"])
    _runner.flush_streams()
    os._exit(code)


def _child_fds(fds):
    """The runner's pipes at fds 3 and 4, its output on 1 and 2, /dev/null on 0, nothing else open
    (not the parent's control socket: a student must never talk to the parent)."""
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 64) for fd in fds]  # above every number dup2 writes below
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    for src, dst in zip(high, (REQ_FD, REP_FD, 1, 2)):
        os.dup2(src, dst)
    os.closerange(REP_FD + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _supervise(plan, fds):
    """The forked child: joins its cgroups, unshares, forks PID 1 and ends as it ends."""
    try:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        os.setsid()
        for procs in plan["cgroups"]:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        _child_fds(fds)
        _unshare(plan)
        alive_r, alive_w = os.pipe()  # EOF on it: this supervisor is gone (getppid says 0 in a new PID namespace)
        pid = os.fork()
        if pid == 0:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            os.close(alive_w)
            if _supervisor_gone(alive_r):
                os._exit(1)
            _serve(plan, alive_r)
        for fd in (0, 1, 2, REQ_FD, REP_FD, alive_r):
            os.close(fd)
        _, status = os.waitpid(pid, 0)
    except BaseException as exc:  # noqa: BLE001 - said on stderr (the grader's log), then a failed start
        try:
            os.write(2, f"sandbox set-up failed: {type(exc).__name__}: {exc}\n".encode())
        finally:
            os._exit(125)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


# ------------------------------------------------------------------ the parent
def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def fork_one(plan, fds):
    """One sandbox for one submission; the parent keeps nothing of it but its pid."""
    if threads() != 1:  # a thread alive at fork could hold a lock the child then never gets
        raise RuntimeError(f"{threads()} threads alive in the warm parent")
    for s in (sys.stdout, sys.stderr):
        s.flush()
    pid = os.fork()
    if pid == 0:
        _supervise(plan, fds)  # never returns
    return pid


def _answer(ctl, msg, fds):
    op = msg.get("op")
    if op == "fork":
        try:
            return {"op": "forked", "pid": fork_one(msg["plan"], fds)}
        finally:
            for fd in fds:
                os.close(fd)
    if op == "reap":
        _, status = os.waitpid(int(msg["pid"]), 0)
        rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        return {"op": "reaped", "pid": msg["pid"], "status": rc}
    return None


def main(ctl_fd, lib_dir, *imports):
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # no ptrace, no /proc/PID/mem, even for the same uid
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import _runner

    _runner.setup(lib_dir, imports)
    ctl = socket.socket(fileno=ctl_fd)
    ctl.sendall(json.dumps({"op": "ready", "pid": os.getpid(), "threads": threads()}).encode())
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(ctl, 1 << 20, 8)
        except OSError:
            return 0
        if not data:
            return 0
        try:
            reply = _answer(ctl, json.loads(data), fds)
        except Exception as exc:  # noqa: BLE001 - the grader falls back to a cold start and says so
            reply = {"op": "error", "error": f"{type(exc).__name__}: {exc}"}
        if reply is None:
            return 0
        ctl.sendall(json.dumps(reply).encode())


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), sys.argv[2], *sys.argv[3:]))
