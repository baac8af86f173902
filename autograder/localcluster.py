"""A throw-away PostgreSQL server and Dask cluster on this machine, as real processes stopped by pid.

What ``tests/test_distributed_grading.py`` grades against and ``scripts/bench_grading.py --distributed``
measures with; an instructor can use it to try ``grade --scheduler`` on one machine before a real cluster:

    with localcluster.Postgres.temporary() as pg, localcluster.DaskCluster(workers=2) as cluster:
        url = pg.create("class_db")   # NBGRADER_DB_URL
        cluster.address               # --scheduler

- :class:`Postgres`: Debian's ``initdb`` and ``pg_ctl`` (run as the ``postgres`` user when this is root:
  PostgreSQL refuses to run as root), on 127.0.0.1 and a free port, socket and data in a temporary
  folder, ``fsync`` off (a test server: nothing to keep).
- :class:`DaskCluster`: ``python -m dask scheduler`` and ``python -m dask worker ... --resources SANDBOX=1
  --nthreads 1`` processes (this interpreter, so a copied virtual environment's scripts never pick another
  one), started from the repository root, each in a process group of its own, killed by group at the end.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .config import ROOT
from .distributed import RESOURCE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bindir() -> Path | None:
    """The folder of PostgreSQL's ``initdb`` and ``pg_ctl`` (newest of ``/usr/lib/postgresql/*/bin``, else
    PATH), or None when they are not installed (``scripts/ensure_postgres.sh`` installs them)."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        if os.access(Path(d) / "initdb", os.X_OK) and os.access(Path(d) / "pg_ctl", os.X_OK):
            return Path(d)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


class Postgres:
    """A PostgreSQL server of its own in ``base``: ``url(db)``, ``create(db)``, ``sql(db, query)``, ``stop()``,
    ``start()``. Raises ``subprocess.CalledProcessError`` when ``initdb`` or ``pg_ctl`` fails."""

    def __init__(self, bindir: Path, base: Path, max_connections: int = 100):
        self.bindir, self.data, self.port = bindir, base / "data", free_port()
        self.max_connections = max_connections
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        base.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(base, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self.start()

    @classmethod
    @contextlib.contextmanager
    def temporary(cls, bindir: Path | None = None, **kw):
        """``with Postgres.temporary() as pg:`` a server in a new temporary folder, stopped and removed at
        the end. Raises ``FileNotFoundError`` when PostgreSQL's programs are not installed."""
        bindir = bindir or pg_bindir()
        if bindir is None:
            raise FileNotFoundError("PostgreSQL's initdb and pg_ctl are not installed (bash scripts/ensure_postgres.sh)")
        base = Path(tempfile.mkdtemp(prefix="autograder-pg-"))
        os.chmod(base, 0o755)  # the postgres user must reach its data folder inside
        server = None
        try:
            server = cls(bindir, base / "pg", **kw)
            yield server
        finally:
            if server is not None:
                server.stop()
            shutil.rmtree(base, ignore_errors=True)

    def _run(self, tool, *args):
        subprocess.run(self.as_user + [str(self.bindir / tool), *args], check=True, capture_output=True, timeout=120)

    def start(self):
        opts = (f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c max_connections={self.max_connections} -c synchronous_commit=off")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-o", opts, "-w", "-t", "60",
                  "start")

    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self):
        """Stop the server by its pid (SIGINT: fast shutdown) and wait until it is gone."""
        try:
            pid = self.pid()
        except (OSError, ValueError, IndexError):
            return
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (self.data / "postmaster.pid").exists():
            time.sleep(0.1)

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def sql(self, db: str, query: str, params=None):
        """Rows of ``query`` (None for a statement without rows), on a connection of its own (autocommit)."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=db, autocommit=True) as c:
            cur = c.execute(query, params)
            return cur.fetchall() if cur.description else None

    def create(self, db: str) -> str:
        """Create database ``db``; returns its URL (``NBGRADER_DB_URL``)."""
        self.sql("postgres", f'CREATE DATABASE "{db}"')
        return self.url(db)

    def connections(self, db: str) -> int:
        """Client connections to ``db`` open now (``pg_stat_activity``), not counting the one asking."""
        return self.sql(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = "
                            "'client backend' AND pid <> pg_backend_pid()", (db,))[0][0]

    @contextlib.contextmanager
    def watching_connections(self, db: str, every: float = 0.02):
        """``with pg.watching_connections(db) as seen:`` ``seen["most"]``, the most client connections to ``db``
        seen while the block ran (``pg_stat_activity`` every ``every`` seconds, on a connection of its own that
        is not counted), and ``seen["samples"]``, how many times it looked."""
        import threading

        import psycopg

        seen, done = {"most": 0, "samples": 0}, threading.Event()
        query = ("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend' "
                 "AND pid <> pg_backend_pid()")

        def watch():
            with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=db, autocommit=True) as c:
                while not done.is_set():
                    seen["most"] = max(seen["most"], c.execute(query, (db,)).fetchone()[0])
                    seen["samples"] += 1
                    time.sleep(every)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        try:
            yield seen
        finally:
            done.set()
            thread.join(timeout=10)

    def cpu_seconds(self) -> float:
        """CPU seconds the server's processes have used so far: the postmaster's own and those of its
        finished children (the backends of closed connections) from ``/proc``, plus the live children's."""
        tick = os.sysconf("SC_CLK_TCK")

        def times(pid, children):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return sum(int(x) for x in fields[11:15 if children else 13]) / tick  # utime stime [cutime cstime]

        total, parent = times(self.pid(), True), str(self.pid())
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                if Path(stat).read_text().rsplit(")", 1)[1].split()[1] == parent:
                    total += times(Path(stat).parent.name, False)
            except (OSError, IndexError):
                pass
        return total


class DaskCluster:
    """``with DaskCluster(workers=2, logs=FOLDER) as c:`` a scheduler on 127.0.0.1 and ``workers`` worker
    processes with one ``SANDBOX`` slot and one thread each; ``c.address``, ``c.client`` (a
    ``distributed.Client``), ``c.scale(n)`` adds workers. Raises ``RuntimeError`` (with the log's tail)
    when the scheduler or a worker does not come up within two minutes."""

    def __init__(self, workers: int = 2, logs: Path | None = None, env: dict | None = None):
        self.n, self.procs, self.files = 0, [], []
        self.logs = Path(logs or tempfile.mkdtemp(prefix="autograder-dask-"))
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env or {}))
        self.want, self.client, self.address = workers, None, None

    def _spawn(self, name, *args):
        log = open(self.logs / f"{name}.log", "w")
        self.files.append(log)
        self.procs.append(subprocess.Popen([sys.executable, "-m", "dask", *args], cwd=ROOT, env=self.env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True))

    def __enter__(self):
        from distributed import Client

        sfile = self.logs / "scheduler.json"
        try:
            self._spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
                        "127.0.0.1:0", "--scheduler-file", str(sfile))
            deadline = time.monotonic() + 120
            while not sfile.exists() and time.monotonic() < deadline and self.procs[0].poll() is None:
                time.sleep(0.2)
            if not sfile.exists():
                raise RuntimeError("the Dask scheduler did not start:\n" + (self.logs / "scheduler.log").read_text()[-3000:])
            self.client = Client(scheduler_file=str(sfile), timeout=30, set_as_default=False)
            self.address = self.client.scheduler.address
            self.scale(self.want)
            return self
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def scale(self, n: int) -> None:
        """Start workers until there are ``n`` (never fewer), and wait for them."""
        while self.n < n:
            self._spawn(f"worker{self.n}", "worker", self.address, "--resources", f"{RESOURCE}=1", "--nworkers", "1",
                        "--nthreads", "1", "--no-dashboard", "--name", f"w{self.n}",
                        "--local-directory", str(self.logs / f"w{self.n}"))
            self.n += 1
        try:
            self.client.wait_for_workers(n, timeout=120)
        except TimeoutError:
            raise RuntimeError(f"{n} Dask worker(s) did not come up:\n" + (self.logs / f"worker{n - 1}.log"
                                                                          ).read_text()[-3000:]) from None

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        for p in self.procs:  # each in a process group of its own: the nanny's worker and its sandboxes too
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        for f in self.files:
            f.close()
        return False
