"""Grading on a Dask cluster with a PostgreSQL gradebook (issue 14), with real servers on this machine.

A private PostgreSQL cluster (Debian's ``initdb`` / ``pg_ctl``, run as the ``postgres`` user when root,
on 127.0.0.1 and a free port, in a temporary folder) and a real ``dask scheduler`` with two ``dask worker
--resources SANDBOX=1 --nworkers 1 --nthreads 1`` processes; the grading command runs as a subprocess
(``python -m autograder grade ... --scheduler``), exactly as an instructor runs it (servers: ``autograder/localcluster.py``). Without the
PostgreSQL binaries the module skips saying why (under CI, ``$CI`` set, it fails instead:
``scripts/ensure_postgres.sh`` installs them).
"""
import csv
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autograder import localcluster

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
A = "01_gradient_flow"
SAMPLES = ROOT / "autograder" / "samples" / A
LIMITS = {"AUTOGRADER_CELL_TIMEOUT": "8", "AUTOGRADER_CALL_TIMEOUT": "4", "AUTOGRADER_TOTAL_TIMEOUT": "120"}
CLASS = ["correct", "partial", "mistake_rnn_sigmoid", "fault_os_exit"]


def _missing(what):
    msg = (f"{what} not found: install Debian's postgresql (`apt-get install -y postgresql`, as "
           "scripts/ensure_postgres.sh does in CI) to run the distributed grading tests")
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def postgres():
    if localcluster.pg_bindir() is None:
        _missing("PostgreSQL's initdb and pg_ctl")
    if os.geteuid() == 0 and not shutil.which("runuser"):
        _missing("runuser (to run PostgreSQL as the postgres user)")
    with localcluster.Postgres.temporary() as server:
        yield server


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A Dask scheduler and two workers (one SANDBOX slot each), real processes started from the
    repository root with this interpreter and stopped by pid (their process groups) at the end."""
    with localcluster.DaskCluster(workers=2, logs=tmp_path_factory.mktemp("dask")) as c:
        yield {"address": c.address, "client": c.client, "logs": c.logs}


def _class(tmp: Path, names=CLASS) -> Path:
    subs = tmp / "submissions"
    subs.mkdir(parents=True)
    for n in names:
        shutil.copytree(SAMPLES / n, subs / n)
    return subs


def _expected():
    with open(SAMPLES / "expected.csv") as f:
        return {r["student_id"]: (float(r["score"]), r["status"]) for r in csv.DictReader(f)}


def _env(state: Path, db_url: str | None, **extra):
    env = dict(os.environ, AUTOGRADER_STATE_DIR=str(state), AUTOGRADER_SECRET="ci-secret", OMP_NUM_THREADS="1",
               **LIMITS)
    env.update(extra)
    env.pop("NBGRADER_DB_URL", None)
    if db_url:
        env["NBGRADER_DB_URL"] = db_url
    return env


def _grade_cmd(subs, scheduler, *more):
    return [sys.executable, "-m", "autograder", "grade", A, str(subs)] + (["--scheduler", scheduler] if scheduler
                                                                          else []) + list(more)


def _grade(subs, state, db_url, scheduler, *more, timeout=300, **extra):
    t0 = time.monotonic()
    r = subprocess.run(_grade_cmd(subs, scheduler, *more), cwd=ROOT, env=_env(state, db_url, **extra),
                       capture_output=True, text=True, timeout=timeout)
    r.seconds = time.monotonic() - t0
    return r


def _main(subs, state, db_url, scheduler, **extra):
    """``python -m autograder grade`` run in this process (the modules are loaded already, so a refusal's
    own time is measured): (exit status as Python gives it, message, seconds)."""
    from autograder.__main__ import main

    env = _env(state, db_url, **extra)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        for k in set(os.environ) | set(env):
            if k in env:
                mp.setenv(k, env[k])
            else:
                mp.delenv(k)
        t0 = time.monotonic()
        try:
            code, msg = main(_grade_cmd(subs, scheduler)[3:]), ""
        except SystemExit as exc:
            code, msg = (exc.code, "") if isinstance(exc.code, int) else (1, str(exc.code))
    return code, msg, time.monotonic() - t0


def _csv(state: Path):
    with open(state / "runs" / A / "grades.csv") as f:
        return list(csv.DictReader(f))


def _gradebook_scores(pg, db):
    """{student: score} from the gradebook, with SQL (one row per submission, so duplicates would show)."""
    rows = pg.sql(db, """SELECT s.student_id, SUM(COALESCE(g.manual_score, g.auto_score, 0))
                         FROM submitted_assignment s JOIN assignment a ON a.id = s.assignment_id
                         JOIN submitted_notebook n ON n.assignment_id = s.id JOIN grade g ON g.notebook_id = n.id
                         WHERE a.name = %s GROUP BY s.id, s.student_id""", (A,))
    students = [r[0] for r in rows]
    assert len(students) == len(set(students)), f"a student recorded twice: {sorted(students)}"
    return {sid: float(score) for sid, score in rows}


@pytest.fixture(scope="module")
def graded(postgres, cluster, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dclass")
    subs, state = _class(tmp), tmp / "state"
    db = "class_db"
    url = postgres.create(db)
    first = _grade(subs, state, url, cluster["address"])
    return {"subs": subs, "state": state, "db": db, "url": url, "first": first}


def _nbgrader_scores(state, url):
    """[(student, score)] of the assignment read back with nbgrader's own API, as formgrader and export do."""
    from nbgrader.api import Gradebook

    from autograder import config, pipeline

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBGRADER_DB_URL", url)
        mp.setenv("AUTOGRADER_STATE_DIR", str(state))
        api = pipeline.nbgrader_api(config.ROOT)
        with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
            return sorted((s.student.id, float(s.score)) for s in gb.find_assignment(A).submissions)


def test_class_on_dask_and_postgres_gets_exact_scores(graded, postgres):
    """Every student's score and status as in expected.csv; the PostgreSQL gradebook holds the same scores
    (with SQL and with nbgrader's own API), one submission per student; feedback came back as files."""
    r = graded["first"]
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "dashboard http://" in r.stdout, r.stdout
    assert "2 SANDBOX slot(s)" in r.stdout
    rows = {row["student_id"]: row for row in _csv(graded["state"])}
    want = _expected()
    assert {s: (float(row["score"]), row["status"]) for s, row in rows.items()} == {s: want[s] for s in CLASS}
    assert _gradebook_scores(postgres, graded["db"]) == {s: want[s][0] for s in CLASS}
    assert _nbgrader_scores(graded["state"], graded["url"]) == sorted((s, want[s][0]) for s in CLASS)
    for s in CLASS:
        assert (graded["state"] / "feedback" / s / A / f"{A}.html").stat().st_size > 1000
        assert (graded["state"] / "autograded" / s / A / f"{A}.ipynb").is_file()


def test_rerun_reuses_every_stored_result(graded, cluster):
    r = _grade(graded["subs"], graded["state"], graded["url"], cluster["address"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"graded 0, reused {len(CLASS)}" in r.stdout, r.stdout


def test_command_killed_then_rerun_resumes(graded, postgres, cluster):
    """The grading command killed (SIGKILL) once a result is stored: the next run reuses what was stored,
    grades the rest, and every student is in grades.csv and the gradebook once, with the exact score."""
    state, runs = graded["state"], graded["state"] / "runs" / A
    env = _env(state, graded["url"], AUTOGRADER_SECRET="another-secret")  # a new secret: every result is stale
    two = ["--student", "correct", "--student", "partial"]  # regraded; the class's other rows stay as they are
    t0 = time.time()
    proc = subprocess.Popen(_grade_cmd(graded["subs"], cluster["address"], *two), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        if any(p.stat().st_mtime > t0 for p in runs.glob("*.json")):
            proc.kill()
            break
        time.sleep(0.1)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    stored = sum(p.stat().st_mtime > t0 for p in runs.glob("*.json"))
    r = subprocess.run(_grade_cmd(graded["subs"], cluster["address"], *two), cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    reused = int(r.stdout.split("reused ")[1].split(",")[0])
    assert 1 <= stored <= reused < 2 and f"graded {2 - reused}, reused {reused}" in r.stdout, r.stdout
    want = _expected()
    rows = _csv(state)
    assert sorted(row["student_id"] for row in rows) == sorted(CLASS)
    assert {row["student_id"]: (float(row["score"]), row["status"]) for row in rows} == {s: want[s] for s in CLASS}
    assert _gradebook_scores(postgres, graded["db"]) == {s: want[s][0] for s in CLASS}


def test_worker_killed_mid_task_grades_each_student_once(postgres, cluster, tmp_path):
    """kill -9 of the worker process that holds a grading task: Dask reruns it elsewhere; grades.csv and
    the gradebook have each student exactly once, with the exact expected score."""
    names = ["correct", "partial", "blank"]
    subs, state, db = _class(tmp_path, names), tmp_path / "state", "kill_db"
    url = postgres.create(db)
    client = cluster["client"]
    proc = subprocess.Popen(_grade_cmd(subs, cluster["address"]), cwd=ROOT, env=_env(state, url),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {}
    reader = threading.Thread(target=lambda: out.update(zip(("stdout", "stderr"), proc.communicate())))
    reader.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        busy = {w: ks for w, ks in client.processing().items() if any(str(k).startswith("grade-") for k in ks)}
        if busy:
            worker = sorted(busy)[0]
            time.sleep(1.0)  # inside the task: sandbox or bookkeeping
            pid = client.run(os.getpid, workers=[worker])[worker]
            os.kill(pid, signal.SIGKILL)
            killed = pid
        time.sleep(0.2)
    reader.join(timeout=300)
    assert killed, "no worker was seen holding a grading task"
    assert proc.returncode == 0, out.get("stdout", "")[-3000:] + out.get("stderr", "")[-3000:]
    rows = _csv(state)
    assert sorted(r["student_id"] for r in rows) == sorted(names)
    want = _expected()
    assert {r["student_id"]: (float(r["score"]), r["status"]) for r in rows} == {s: want[s] for s in names}, [r["detail"] for r in rows]
    assert _gradebook_scores(postgres, db) == {s: want[s][0] for s in names}
    client.wait_for_workers(2, timeout=120)  # the nanny restarted it: the next test has two workers again


def test_unreachable_scheduler_is_a_clear_error_within_seconds(postgres, tmp_path):
    subs, state = _class(tmp_path, ["correct"]), tmp_path / "state"
    url = postgres.create("unreachable_db")
    r = _grade(subs, state, url, f"tcp://127.0.0.1:{localcluster.free_port()}", AUTOGRADER_CONNECT_TIMEOUT="3")
    assert r.returncode != 0
    assert "cannot reach the Dask scheduler" in r.stderr and "nothing was graded" in r.stderr, r.stderr[-2000:]
    assert r.seconds < 30
    assert not (state / "runs").exists()


def test_sqlite_gradebook_is_refused_for_a_cluster(cluster, tmp_path):
    subs, state = _class(tmp_path, ["correct"]), tmp_path / "state"
    code, msg, seconds = _main(subs, state, None, cluster["address"])
    assert code == 1 and "needs a PostgreSQL gradebook" in msg and "sqlite" in msg, msg
    assert not (state / "runs").exists() and not (state / "gradebook.db").exists()


def test_stopped_database_is_a_clear_error_within_seconds(postgres, cluster, tmp_path):
    subs, state = _class(tmp_path, ["correct"]), tmp_path / "state"
    url = postgres.create("stopped_db")
    postgres.stop()
    try:
        for scheduler in (cluster["address"], None):  # on the cluster, and on this machine alone
            code, msg, seconds = _main(subs, state, url, scheduler)
            assert code == 1 and "cannot reach the gradebook database" in msg, msg
            assert "postgres@127.0.0.1" in msg and "nothing was graded" in msg and seconds < 10
            assert not (state / "runs").exists()
    finally:
        postgres.start()


def test_two_runs_on_two_machines_exclude_each_other(postgres, tmp_path):
    """The run lock of a PostgreSQL gradebook is in the database: a run from another state dir (another
    machine: its own lock files) waits for it, then refuses, saying why."""
    from autograder import gradebook_db

    subs = _class(tmp_path, ["correct"])
    url = postgres.create("two_runs_db")
    with gradebook_db.run_lock(url, A, wait=0, log=lambda *a: None):
        code, msg, seconds = _main(subs, tmp_path / "other_machine", url, None, AUTOGRADER_LOCK_WAIT="1")
    assert code == 1 and "another grading run of 01_gradient_flow" in msg and "advisory lock" in msg, msg
    assert not (tmp_path / "other_machine" / "runs").exists()


def test_bookkeeping_locks_are_per_student(postgres):
    """Two holders of one student's advisory lock take turns; another student's lock is free meanwhile."""
    from autograder import gradebook_db

    url = postgres.create("locks_db")
    order = []

    def hold(student, tag, seconds):
        with gradebook_db.bookkeeping_lock(url, A, student, Path("/nonexistent")):
            order.append(("in", tag, time.monotonic()))
            time.sleep(seconds)
            order.append(("out", tag, time.monotonic()))

    with gradebook_db.bookkeeping_lock(url, A, "ann", Path("/nonexistent")):
        other = threading.Thread(target=hold, args=("bob", "bob", 0))
        same = threading.Thread(target=hold, args=("ann", "ann2", 0))
        other.start()
        same.start()
        other.join(timeout=20)
        assert [t for _, t, _ in order] == ["bob", "bob"]  # bob went through while ann is held
        time.sleep(0.5)
        assert "ann2" not in [t for _, t, _ in order]
    same.join(timeout=20)
    assert [t for _, t, _ in order][-2:] == ["ann2", "ann2"]
