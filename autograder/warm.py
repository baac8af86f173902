"""Warm grading workers (issue 15): a warm parent per worker, forked once per submission.

A fresh interpreter per sandbox pays Python's start and the imports of torch, numpy and matplotlib
for every submission. Instead each grading worker starts one *warm parent* (``_zygote.py``, run
from the grader's prepared library) that imports them once and then only forks: each submission
gets a new child that enters new namespaces, builds the same root filesystem, takes a uid of its
own, joins its own cgroups and limits, and serves the grader over the same pipes as a cold runner
(:class:`autograder.sandbox.Sandbox` drives both alike; every limit stays the grader's).

The parent never runs student code, and a child is never reused: what a student patches, starts
or writes dies with that child's PID namespace and tmpfs. A child that crashes or blows its memory
limit is that submission's event; a parent that died (or was killed) is noticed before the next
fork and started again; if no parent can be had, the submission is started cold and says so.

``AUTOGRADER_START=cold`` (``grade --cold``) starts every sandbox cold, as before, e.g. to debug.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

from . import sandbox

_SERVERS: dict = {}  # (pid of this process, lib dir, imports) -> WarmServer: a forked process starts its own


class WarmProc:
    """A warm child as the grader sees it: the ``subprocess.Popen`` calls :class:`sandbox.Sandbox`
    uses (``pid``, ``poll``, ``wait``, ``kill``, ``returncode``), over a pidfd. The parent keeps the
    child unreaped until :meth:`poll` asks for its status, so the pidfd always names that child."""

    def __init__(self, server: "WarmServer", pid: int):
        self.server, self.pid, self.returncode = server, pid, None
        self.pidfd = os.pidfd_open(pid)

    def _exited(self, timeout: float) -> bool:
        p = select.poll()
        p.register(self.pidfd, select.POLLIN)
        return bool(p.poll(max(0.0, timeout) * 1000))

    def poll(self):
        if self.returncode is None and self.pidfd is not None and self._exited(0):
            self.returncode = self.server.reap(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None):
        if self.returncode is None and self.pidfd is not None and not self._exited(timeout if timeout is not None else 1e6):
            raise subprocess.TimeoutExpired("warm sandbox", timeout)
        return self.poll()

    def kill(self):
        if self.returncode is None and self.pidfd is not None:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def release(self):
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


class WarmServer:
    """One warm parent and the grader's end of its control socket. ``imports``: modules it imports
    beyond the usual (``_runner.setup``), e.g. what an assignment's notebooks import on first use."""

    def __init__(self, lib_dir: Path, limits: sandbox.Limits, imports: tuple = ()):
        self.lib_dir, self.limits, self.imports = Path(lib_dir), limits, tuple(imports)
        self.proc, self.ctl, self.starts, self.unclaimed = None, None, 0, 0.0
        self.start()

    def start(self) -> None:
        """Start (or replace) the warm parent; its start-up is the grader's, never a student's."""
        self.close()
        t0 = time.monotonic()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        home = self.lib_dir / "_grader"
        env = dict(kv.split("=", 1) for kv in sandbox.sandbox_env(str(home)))
        env["MPLCONFIGDIR"] = str(home / "mpl")
        cmd = [sandbox.python_path(), "-I", "-B", str(home / "_zygote.py"), str(theirs.fileno()), str(self.lib_dir),
               *self.imports]
        self.log = self.lib_dir.parent / f"warm-parent-{os.getpid()}.log"  # the grader's scratch, not the sandbox's
        try:
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             pass_fds=(theirs.fileno(),), env=env, cwd=str(home),
                                             start_new_session=True, preexec_fn=sandbox.die_with_parent)
        finally:
            theirs.close()
        self.ctl = mine
        try:
            hello = self._recv(self.limits.startup_timeout)
            if hello.get("op") != "ready" or hello.get("threads") != 1:
                raise RuntimeError(f"the warm parent did not start: {hello} {self.log_tail()}")
        except BaseException:
            self.close()  # no half-started parent left behind
            raise
        self.starts += 1
        self.unclaimed += time.monotonic() - t0

    def take_startup(self) -> float:
        """Seconds spent starting the parent since last asked (charged to nobody; reported)."""
        t, self.unclaimed = self.unclaimed, 0.0
        return t

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _recv(self, timeout: float) -> dict:
        p = select.poll()
        p.register(self.ctl, select.POLLIN)
        if not p.poll(timeout * 1000):
            raise TimeoutError("the warm parent did not answer")
        data = self.ctl.recv(1 << 16)
        if not data:
            raise ConnectionError(f"the warm parent is gone: {self.log_tail()}")
        return json.loads(data)

    def log_tail(self) -> str:
        try:
            return self.log.read_bytes()[-400:].decode(errors="replace").strip()
        except OSError:
            return ""

    def _fork(self, plan: dict, fds: tuple) -> WarmProc:
        socket.send_fds(self.ctl, [json.dumps({"op": "fork", "plan": plan}).encode()], list(fds))
        reply = self._recv(30)
        if reply.get("op") != "forked":
            raise RuntimeError(reply.get("error") or f"unexpected reply {reply}")
        return WarmProc(self, int(reply["pid"]))

    def spawn(self, plan: dict, fds: tuple) -> WarmProc:
        """A new sandbox child; a parent found dead (or dying on the way) is replaced once."""
        if not self.alive():
            self.start()
        try:
            return self._fork(plan, fds)
        except (OSError, ConnectionError, TimeoutError, ValueError):
            self.start()
            return self._fork(plan, fds)

    def reap(self, pid: int):
        """The child's exit status (negative: killed by that signal)."""
        if self.ctl is None:  # this parent was closed or replaced: it took its children with it
            return -signal.SIGKILL
        try:
            self.ctl.sendall(json.dumps({"op": "reap", "pid": pid}).encode())
            return int(self._recv(30)["status"])
        except (OSError, ConnectionError, TimeoutError, ValueError, KeyError):
            return -signal.SIGKILL  # its parent is gone, and so (PR_SET_PDEATHSIG) is it

    def close(self) -> None:
        if self.ctl is not None:
            self.ctl.close()
            self.ctl = None
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def server(lib_dir: Path, limits: sandbox.Limits, imports: tuple = ()) -> WarmServer:
    """This process's warm parent for ``lib_dir`` importing ``imports`` (started on first use)."""
    key = (os.getpid(), str(lib_dir), tuple(imports))
    s = _SERVERS.get(key)
    if s is None:
        for k in [k for k in _SERVERS if k[0] != os.getpid()]:  # inherited through a fork: not ours
            del _SERVERS[k]
        s = _SERVERS[key] = WarmServer(lib_dir, limits, imports)
    return s


def shutdown() -> None:
    """Stop this process's warm parents (they also die with it: PR_SET_PDEATHSIG)."""
    for k in [k for k in _SERVERS if k[0] == os.getpid()]:
        _SERVERS.pop(k).close()
