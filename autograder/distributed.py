"""``python -m autograder grade A FOLDER --scheduler tcp://HOST:PORT``: a class graded on a Dask cluster.

The grading command stays the one of ``pipeline.py`` (intake, stored results, resume, ``grades.csv``);
only the grading of each submission moves: it becomes one Dask task that needs one ``SANDBOX`` worker
resource (start workers with ``dask worker ADDRESS --resources SANDBOX=1 --nthreads 1``). A task carries
plain data, never a path of this machine:

- in: the task of ``pipeline`` (student id, file name, key, note, timestamp), the notebook's bytes, the
  bytes of the regular files beside it (assignment 4's ``charlm.pt``) and the student's previous
  ``submitted/`` copy (so hand grades of unchanged answers are kept);
- out: the result row, and the student's ``submitted/``, ``autograded/`` and ``feedback/`` files as
  bytes, which this process writes into its own state dir (formgrader and the feedback pages stay
  here).

Each worker process grades in a private state dir of its own (under its Dask local directory) and
records into the shared gradebook, which must therefore be PostgreSQL (``NBGRADER_DB_URL``): the
per-student advisory lock of :mod:`autograder.gradebook_db` lets bookkeeping run in parallel on every
machine. Workers need the course installed (the same release, checked per task) but no shared folder.

Faults: a worker that dies mid-task has its task rerun by Dask (``allowed-failures``, default 3);
the gradebook keeps one row per (assignment, student) and ``grades.csv`` one line per stored result,
so a student is counted once. Each result is stored as it arrives, so a killed command resumes.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

from . import config as config_mod
from . import gradebook_db

CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler ($AUTOGRADER_CONNECT_TIMEOUT)
RESOURCE = "SANDBOX"  # the worker resource one submission holds: one sandbox
STATE_KINDS = ("submitted", "autograded", "feedback")  # nbgrader's per-student folders, sent back as bytes

_SESSION: dict = {}  # the client of the run in progress (this process)


# ------------------------------------------------------------------ the grading command's side
class CannotStart(SystemExit):
    """The run cannot start (no PostgreSQL gradebook, scheduler unreachable): nothing was graded."""


def require_postgres(url: str) -> None:
    """Raise :class:`CannotStart` unless the gradebook ``url`` is PostgreSQL (every worker must reach it)."""
    if not gradebook_db.is_postgres(url):
        raise CannotStart(f"grading on a Dask cluster (--scheduler) needs a PostgreSQL gradebook that every worker "
                      f"can reach, but the gradebook is {gradebook_db.shown(url)}: set NBGRADER_DB_URL="
                      "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE (autograder/README.md, 'Grading a "
                      "large class'); nothing was graded")


def connect(address: str, timeout: float | None = None):
    """A ``distributed.Client`` of the scheduler at ``address``. Raises :class:`CannotStart` when it cannot be
    reached within ``timeout`` seconds (``$AUTOGRADER_CONNECT_TIMEOUT``, default 10)."""
    from distributed import Client

    timeout = float(timeout or os.environ.get("AUTOGRADER_CONNECT_TIMEOUT") or CONNECT_TIMEOUT)
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise CannotStart(f"cannot reach the Dask scheduler at {address} within {timeout:g} s ({type(exc).__name__}: "
                      f"{exc}): start it (`dask scheduler`) or fix --scheduler; nothing was graded") from None


def slots(client) -> int:
    """How many ``SANDBOX`` slots the cluster's workers offer now."""
    return int(sum(w.get("resources", {}).get(RESOURCE, 0) for w in client.scheduler_info()["workers"].values()))


@contextlib.contextmanager
def connected(cfg, log=print):
    """``with connected(cfg, log):`` the Dask client of a ``--scheduler`` run, checked before anything is
    graded or written. Raises :class:`CannotStart` (a ``SystemExit``) when the gradebook is not PostgreSQL
    or the scheduler cannot be reached, ``SystemExit`` when the database cannot be reached."""
    url = gradebook_db.db_url()
    require_postgres(url)
    gradebook_db.check(url)
    client = connect(cfg.scheduler)
    try:
        n = slots(client)
        log(f"Dask scheduler {cfg.scheduler}: {len(client.scheduler_info()['workers'])} worker(s), {n} {RESOURCE} "
            f"slot(s); dashboard {client.dashboard_link}")
        if not n:
            log(f"no worker offers the {RESOURCE} resource yet: tasks wait for one (start workers with "
                f"`dask worker {cfg.scheduler} --resources {RESOURCE}=1 --nthreads 1`)")
        _SESSION.update(client=client, cfg=cfg, log=log, db_url=url)
        yield client
    finally:
        _SESSION.clear()
        client.close()


def run_tasks(tasks: list, workers: int, cfg_dict: dict) -> list:
    """[(task, result)] for ``tasks`` graded on the cluster of the open :class:`connected` session, at most
    twice as many in flight as there are slots; each result is stored (``runs/<assignment>/<student>.json``)
    and its files written as it arrives. A task that fails on the cluster (its workers died more often than
    ``distributed.scheduler.allowed-failures``) is that student's ``grader_error``, never a silent 0."""
    from distributed import as_completed
    from tqdm import tqdm

    from . import pipeline

    if not tasks:
        return []
    client, cfg = _SESSION["client"], _SESSION["cfg"]
    setup = _setup(tasks[0]["assignment"], cfg_dict)
    pending, futures, out = list(reversed(tasks)), {}, []

    def submit_next():
        t = pending.pop()
        fut = client.submit(grade_task, _payload(t, cfg), setup, resources={RESOURCE: 1}, pure=False, retries=1,
                            key=f"grade-{t['assignment']}-{t['student']}-{uuid.uuid4().hex[:8]}")
        futures[fut] = t
        return fut

    first = [submit_next() for _ in range(min(len(pending), max(4, 2 * slots(client))))]
    window = as_completed(first, loop=client.loop)
    with tqdm(total=len(tasks), desc=f"grading {tasks[0]['assignment']}", unit="submission", mininterval=1.0) as bar:
        for fut in window:
            t = futures.pop(fut)
            try:
                reply = fut.result()
                _write_state(cfg.state, t, reply["files"])
                res = reply["result"]
            except Exception as exc:  # noqa: BLE001 - the cluster gave up on it: reported, re-run next time
                res = pipeline.grader_error(t, f"grading on the Dask cluster failed: {type(exc).__name__}: {exc}")
            fut.release()
            if not t.get("alone") and not res.get("wall_trips"):  # stored now: a killed command resumes here
                pipeline.atomic_json(cfg.runs / t["assignment"] / f"{t['student']}.json", res)
            out.append((t, res))
            bar.update()
            if pending:
                window.add(submit_next())
    return out


def _setup(assignment: str, cfg_dict: dict) -> dict:
    """What every task of the run shares: the gradebook, the secret, the limits, the release's hash."""
    from . import judge

    return {"db_url": _SESSION["db_url"], "secret": judge.secret(), "limits": cfg_dict["limits"],
            "assignment": assignment, "release": release_hash(config_mod.ROOT, assignment)}


def release_hash(root: Path, assignment: str) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted((root / "assignments" / assignment).rglob("*.ipynb"))
                                   )).hexdigest()


def _payload(t: dict, cfg) -> dict:
    """The bytes a worker needs for task ``t``: the notebook (read as intake reads it), the regular files
    beside it, and the student's previous ``submitted/`` copy."""
    from . import pipeline, safefs

    task = {k: v for k, v in t.items() if k not in ("path", "root")}
    notebook, files = None, {}
    if t.get("path") and not t.get("refused"):
        try:
            notebook = safefs.read_file(t["root"], t["rel_path"])
        except (safefs.Refused, OSError) as exc:
            task["refused"] = str(exc)
        folder = pipeline.student_folder(t)
        if folder is not None:
            with tempfile.TemporaryDirectory(prefix="autograder-payload-") as view:
                for name in safefs.copy_regular_files(folder, Path(view), keep=lambda n: not n.endswith(".ipynb")):
                    files[name] = (Path(view) / name).read_bytes()
    previous = _read_tree(cfg.state / "submitted" / t["student"] / t["assignment"])
    return {"task": task, "notebook": notebook, "files": files, "state": {"submitted": previous}}


def _read_tree(folder: Path) -> dict:
    """{relative path: bytes} of the regular files below ``folder`` (none when it is absent)."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def _write_tree(folder: Path, files: dict) -> None:
    """Replace ``folder`` by exactly ``files`` ({relative path: bytes}); names are checked (no ``..``)."""
    from . import safefs

    new = folder.with_name(folder.name + f".new-{os.getpid()}")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    for rel, data in files.items():
        target = new.joinpath(*safefs.parts_of(rel))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(new, folder)


def _write_state(state: Path, t: dict, files: dict) -> None:
    for kind in STATE_KINDS:
        if kind in files:
            _write_tree(state / kind / t["student"] / t["assignment"], files[kind])


# ------------------------------------------------------------------ the worker's side
_WORKER: dict = {}
_ONE_AT_A_TIME = threading.Lock()  # the grading code keeps per-process state: one task per process at once


def grade_task(payload: dict, setup: dict) -> dict:
    """Run on a Dask worker: grade one submission from ``payload`` (see :func:`_payload`) with
    ``pipeline.grade_one`` in this worker's private state dir; returns ``{"result": row, "files":
    {kind: {path: bytes}}}``. Raises ``RuntimeError`` when this worker's release of the assignment
    differs from the grading command's (install the same course on every worker)."""
    from . import pipeline

    with _ONE_AT_A_TIME:
        state = _worker_setup(setup)
        task = payload["task"]
        sid, assignment = task["student"], task["assignment"]
        with tempfile.TemporaryDirectory(prefix="submission-", dir=state.parent) as tmp:
            task = _materialise(payload, Path(tmp))
            _write_tree(state / "submitted" / sid / assignment, payload["state"]["submitted"])
            try:
                res = pipeline.grade_one(task)
                files = {kind: _read_tree(state / kind / sid / assignment) for kind in STATE_KINDS}
            finally:
                for kind in STATE_KINDS:
                    shutil.rmtree(state / kind / sid, ignore_errors=True)
        return {"result": res, "files": files}


def _materialise(payload: dict, tmp: Path) -> dict:
    """The task with its submission written under ``tmp`` (the notebook at its own relative path, the
    files beside it), as ``pipeline.grade_one`` reads a submissions folder."""
    from . import safefs

    task = dict(payload["task"], root=str(tmp), path=None)
    if payload["notebook"] is None:
        return task
    nb = tmp.joinpath(*safefs.parts_of(task["rel_path"]))
    nb.parent.mkdir(parents=True, exist_ok=True)
    nb.write_bytes(payload["notebook"])
    for name, data in payload["files"].items():
        (nb.parent / safefs.parts_of(name)[-1]).write_bytes(data)
    task["path"] = str(nb)
    return task


def _worker_setup(setup: dict) -> Path:
    """Once per worker process (again when the run's settings change): a private state dir, the run's
    gradebook and secret in the environment nbgrader reads, the sandbox's scratch and library, and
    ``pipeline``'s worker state. Returns the state dir."""
    from . import pipeline, sandbox

    key = hashlib.sha256(json.dumps(setup, sort_keys=True).encode()).hexdigest()
    if _WORKER.get("key") == key:
        return _WORKER["state"]
    mine = release_hash(config_mod.ROOT, setup["assignment"])
    if mine != setup["release"]:
        raise RuntimeError(f"the release of {setup['assignment']} on this worker ({config_mod.ROOT}) differs from "
                           "the grading command's: install the same course (git commit) on every worker")
    if "home" not in _WORKER:
        _WORKER["home"] = _private_dir()
        sandbox.cleanup_stale()  # what workers killed on this machine left behind
        scratch, _WORKER["scratch_lock"] = sandbox.scratch_dir()  # held for the life of this process
        _WORKER["scratch"], _WORKER["lib"] = scratch, sandbox.prepare_library(scratch / "lib")
    state = _WORKER["home"] / "state"
    state.mkdir(parents=True, exist_ok=True)
    os.environ.update(AUTOGRADER_STATE_DIR=str(state), NBGRADER_DB_URL=setup["db_url"],
                      AUTOGRADER_SECRET=setup["secret"])
    os.chdir(config_mod.ROOT)  # nbgrader reads nbgrader_config.py from the working directory
    pipeline.init_worker({"root": str(config_mod.ROOT), "limits": setup["limits"], "lib": str(_WORKER["lib"]),
                           "scratch": str(_WORKER["scratch"])})
    _WORKER.update(key=key, state=state)
    return state


def _private_dir() -> Path:
    """A folder of this worker process alone: inside its Dask local directory (which Dask removes when a
    dead worker's directory is found), else a temporary one."""
    try:
        from distributed import get_worker

        base = Path(get_worker().local_directory)
    except ValueError:  # not inside a Dask worker (a test calling grade_task directly)
        base = Path(tempfile.mkdtemp(prefix="autograder-worker-"))
    home = base / f"autograder-{os.getpid()}-{int(time.time())}"
    home.mkdir(mode=0o700, parents=True)
    return home
