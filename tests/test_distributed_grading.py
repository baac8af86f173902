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
from test_grading_rnn import LIMITS as LIMITS_RNN
from test_grading_samples import LIMITS as LIMITS_A1
from test_grading_train import LIMITS as LIMITS_TRAIN

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
A = "01_gradient_flow"
A2 = "02_lstm_gru_cells"
ASSIGNMENTS = [A, A2, "03_deep_bidirectional", "04_training_with_clipping"]
SAMPLES = ROOT / "autograder" / "samples" / A
# each sample class at the limits its own local test grades it with (assignments 2 to 4 train and plot)
LIMITS = {a: {f"AUTOGRADER_{k.upper()}": f"{v:g}" for k, v in lim.items()}
          for a, lim in [(A, LIMITS_A1), (A2, LIMITS_RNN), (ASSIGNMENTS[2], LIMITS_RNN), (ASSIGNMENTS[3], LIMITS_TRAIN)]}
CLASS = ["correct", "partial", "mistake_rnn_sigmoid", "fault_os_exit"]
WORKERS = 2
WRITTEN = "written_lstm_or_gru"  # assignment 2's written answer, graded by hand in formgrader


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


def _sample_class(a: str, dest: Path) -> Path:
    """The whole sample class of ``a`` (expected.csv left out), a sample's relative link pointing where it did."""
    src = ROOT / "autograder" / "samples" / a
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("expected.csv"))
    for link in [p for p in dest.rglob("*") if p.is_symlink()]:
        target = os.path.normpath((src / link.relative_to(dest)).parent / os.readlink(link))
        link.unlink()
        link.symlink_to(target)
    return dest


def _expected(a=A):
    with open(ROOT / "autograder" / "samples" / a / "expected.csv") as f:
        return {r["student_id"]: (float(r["score"]), r["status"]) for r in csv.DictReader(f)}


def _env(state: Path, db_url: str | None, a=A, **extra):
    env = dict(os.environ, AUTOGRADER_STATE_DIR=str(state), AUTOGRADER_SECRET="ci-secret", OMP_NUM_THREADS="1",
               **LIMITS[a])
    env.update(extra)
    env.pop("NBGRADER_DB_URL", None)
    if db_url:
        env["NBGRADER_DB_URL"] = db_url
    return env


def _grade_cmd(subs, scheduler, *more, a=A):
    return [sys.executable, "-m", "autograder", "grade", a, str(subs)] + (["--scheduler", scheduler] if scheduler
                                                                          else []) + list(more)


def _grade(subs, state, db_url, scheduler, *more, a=A, timeout=300, **extra):
    t0 = time.monotonic()
    r = subprocess.run(_grade_cmd(subs, scheduler, *more, a=a), cwd=ROOT, env=_env(state, db_url, a, **extra),
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


def _csv(state: Path, a=A):
    with open(state / "runs" / a / "grades.csv") as f:
        return list(csv.DictReader(f))


def _gradebook_scores(pg, db, a=A):
    """{student: score} from the gradebook, with SQL (one row per submission, so duplicates would show)."""
    rows = pg.sql(db, """SELECT s.student_id, SUM(COALESCE(g.manual_score, g.auto_score, 0))
                         FROM submitted_assignment s JOIN assignment a ON a.id = s.assignment_id
                         JOIN submitted_notebook n ON n.assignment_id = s.id JOIN grade g ON g.notebook_id = n.id
                         WHERE a.name = %s GROUP BY s.id, s.student_id""", (a,))
    students = [r[0] for r in rows]
    assert len(students) == len(set(students)), f"a student recorded twice: {sorted(students)}"
    return {sid: float(score) for sid, score in rows}


class _Run:
    """A finished grading command: returncode, stdout, stderr, seconds (as ``subprocess.run`` gives them)."""

    def __init__(self, proc, out: Path, err: Path, seconds: float):
        self.returncode, self.seconds = proc.returncode, seconds
        self.stdout, self.stderr = out.read_text(), err.read_text()


@pytest.fixture(scope="module")
def classes(postgres, cluster, tmp_path_factory):
    """Every sample class graded on the cluster into one PostgreSQL gradebook and one state dir: one grade
    command per assignment, the four at once (as an instructor grading a term's work would run them; their
    tasks share the two SANDBOX slots), the gradebook's client connections counted meanwhile."""
    tmp = tmp_path_factory.mktemp("classes")
    state, db = tmp / "state", "class_db"
    url = postgres.create(db)
    out = {"state": state, "db": db, "url": url, "subs": {}, "result": {}}
    procs, t0 = {}, time.monotonic()
    with postgres.watching_connections(db) as seen:
        for a in ASSIGNMENTS:
            out["subs"][a] = _sample_class(a, tmp / a)
            logs = (tmp / f"{a}.out", tmp / f"{a}.err")
            with open(logs[0], "w") as o, open(logs[1], "w") as e:
                procs[a] = (subprocess.Popen(_grade_cmd(out["subs"][a], cluster["address"], a=a), cwd=ROOT,
                                             env=_env(state, url, a), stdout=o, stderr=e), logs)
        for a, (proc, logs) in procs.items():
            try:
                proc.wait(timeout=max(1.0, 3600 - (time.monotonic() - t0)))  # CI: minutes; a shared, loaded machine: more
            except subprocess.TimeoutExpired:
                for p, _ in procs.values():
                    p.kill()
                raise
            out["result"][a] = _Run(proc, *logs, time.monotonic() - t0)
    out["connections"], out["connection_samples"] = seen["most"], seen["samples"]
    return out


@pytest.fixture(scope="module")
def graded(classes):
    """Assignment 1's sample class as graded on the cluster."""
    return {"subs": classes["subs"][A], "state": classes["state"], "db": classes["db"], "url": classes["url"],
            "first": classes["result"][A]}


def _nbgrader_scores(state, url, a=A):
    """[(student, score)] of the assignment read back with nbgrader's own API, as formgrader and export do."""
    from nbgrader.api import Gradebook

    from autograder import config, pipeline

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBGRADER_DB_URL", url)
        mp.setenv("AUTOGRADER_STATE_DIR", str(state))
        api = pipeline.nbgrader_api(config.ROOT)
        with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
            return sorted((s.student.id, float(s.score)) for s in gb.find_assignment(a).submissions)


@pytest.mark.parametrize("a", ASSIGNMENTS)
def test_every_sample_class_on_dask_and_postgres_gets_exact_scores(classes, postgres, a):
    """Every sample of the four classes gets its score and status of expected.csv; the PostgreSQL gradebook
    holds the same scores (with SQL and with nbgrader's own API), one submission per student; feedback and
    the autograded notebook came back as files."""
    r = classes["result"][a]
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "dashboard http://" in r.stdout and f"{WORKERS} SANDBOX slot(s)" in r.stdout, r.stdout
    rows = {row["student_id"]: row for row in _csv(classes["state"], a)}
    want = _expected(a)
    got = {s: (float(row["score"]), row["status"]) for s, row in rows.items()}
    wrong = {s: (got.get(s), want.get(s), rows[s]["detail"] if s in rows else "") for s in set(got) | set(want)
             if got.get(s) != want.get(s)}
    assert not wrong, "\n".join(f"{s}: got {g}, expected {w}; {d}" for s, (g, w, d) in sorted(wrong.items()))
    assert _gradebook_scores(postgres, classes["db"], a) == {s: w[0] for s, w in want.items()}
    assert _nbgrader_scores(classes["state"], classes["url"], a) == sorted((s, w[0]) for s, w in want.items())
    for s, row in rows.items():
        if row["status"] not in ("malformed", "ambiguous"):
            assert (classes["state"] / "feedback" / s / a / f"{a}.html").stat().st_size > 1000, s
            assert (classes["state"] / "autograded" / s / a / f"{a}.ipynb").is_file(), s


def test_gradebook_connections_follow_the_workers_not_the_class(classes, postgres):
    """While every sample class was graded (about a hundred submissions, four commands at once, two worker
    slots), the gradebook never had more client connections than two per worker slot (its student's advisory
    lock and nbgrader's own) plus two per command (its run lock and its own bookkeeping), whatever the size
    of the class; afterwards none is left open."""
    assert classes["connection_samples"] > 100  # the counter really watched the runs
    assert 1 <= classes["connections"] <= 2 * WORKERS + 2 * len(ASSIGNMENTS), classes["connections"]
    deadline = time.monotonic() + 10  # a closed connection's backend takes a moment to leave pg_stat_activity
    while postgres.connections(classes["db"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert postgres.connections(classes["db"]) == 0


def _gradebook_cells(url, state, a, students):
    """{student: (score, [(grade cell, auto, manual, needs a person)])} read with nbgrader's own API."""
    from nbgrader.api import Gradebook

    from autograder import config, pipeline

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBGRADER_DB_URL", url)
        mp.setenv("AUTOGRADER_STATE_DIR", str(state))
        api = pipeline.nbgrader_api(config.ROOT)
        with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
            return {sid: (float(gb.find_submission(a, sid).score),
                          sorted((g.name, g.auto_score, g.manual_score, g.needs_manual_grade)
                                 for n in gb.find_submission(a, sid).notebooks for g in n.grades))
                    for sid in students}


SAME = ["correct", "blank", "mistake_lstm_gate_order", "mistake_run_state_not_masked", "attack_drop_keys_rnn"]


def test_sqlite_here_and_postgres_on_the_cluster_agree(classes, tmp_path):
    """Some of assignment 2's samples (a written answer waiting for a person, a blank, mistakes, an attack)
    graded on this machine with the default sqlite gradebook give exactly the grades.csv rows and gradebook
    entries (every grade cell's auto and manual score) the cluster gave them with PostgreSQL."""
    subs, state = tmp_path / "subs", tmp_path / "state"
    for sid in SAME:
        shutil.copytree(ROOT / "autograder" / "samples" / A2 / sid, subs / sid)
    r = _grade(subs, state, None, None, "--workers", str(WORKERS), a=A2)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    here = sorted(_csv(state, A2), key=lambda row: row["student_id"])
    there = sorted((row for row in _csv(classes["state"], A2) if row["student_id"] in SAME),
                   key=lambda row: row["student_id"])
    assert [row["student_id"] for row in here] == sorted(SAME)
    assert here == there
    assert any(row["needs_manual_grading"] == "yes" for row in here)  # the written answer waits in both
    sqlite = _gradebook_cells(f"sqlite:///{state / 'gradebook.db'}", state, A2, SAME)
    assert sqlite == _gradebook_cells(classes["url"], classes["state"], A2, SAME)
    assert {s: v[0] for s, v in sqlite.items()} == {s: _expected(A2)[s][0] for s in SAME}


def _api(base, token, path, method="GET", body=None):
    """A formgrader API call with the server's token (as formgrader's own pages make it); the JSON reply."""
    import json
    import urllib.request

    req = urllib.request.Request(f"{base}formgrader/api/{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as reply:
        return json.loads(reply.read())


def _table(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_formgrader_and_exports_read_the_postgres_gradebook(classes, tmp_path):
    """The instructor's side after a cluster run, on the PostgreSQL gradebook: formgrader (nbgrader's Jupyter
    server extension) lists assignment 2's submissions with the cluster's scores, a person grades one written
    answer through formgrader's API, and `python -m autograder export` (Canvas, Moodle) and `nbgrader export`
    all give that student the hand grade added, read back from PostgreSQL."""
    from test_student_html import start_formgrader

    from jupyter_helpers import stop_server

    state, url, sid = classes["state"], classes["url"], "correct_written_differently"
    want = _expected(A2)
    proc, base, token, _ = start_formgrader(state, tmp_path, db_url=url)
    try:
        listed = {s["student"]: s for s in _api(base, token, f"submissions/{A2}")}
        assert {s: v["score"] for s, v in listed.items()} == {s: w[0] for s, w in want.items()}
        assert listed[sid]["needs_manual_grade"] and not listed["blank"]["needs_manual_grade"]
        notebooks = _api(base, token, f"submitted_notebooks/{A2}/{A2}")
        nb_id = next(n["id"] for n in notebooks if n["student"] == sid)
        grade = next(g for g in _api(base, token, f"grades?submission_id={nb_id}") if g["name"] == WRITTEN)
        assert grade["manual_score"] is None and grade["max_score"] == 2
        _api(base, token, f"grade/{grade['id']}", "PUT", {"manual_score": 2})
        after = {s["student"]: s for s in _api(base, token, f"submissions/{A2}")}
        assert after[sid]["score"] == want[sid][0] + 2 and not after[sid]["needs_manual_grade"]
    finally:
        stop_server(proc)
    env = _env(state, url, A2)
    for fmt, col in (("canvas", "SIS Login ID"), ("moodle", "ID number")):
        r = subprocess.run([sys.executable, "-m", "autograder", "export", A2, "--format", fmt, "--out", f"{fmt}.csv"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        rows = {row[col]: row[A2] for row in _table(state / "exports" / f"{fmt}.csv") if row[col]}
        assert rows[sid] == f"{want[sid][0] + 2:g}"  # hand-graded: the written answer counts
        assert rows["correct"] == "" and rows["blank"] == "0"  # still waiting for a person: no grade yet
    r = subprocess.run([sys.executable, "-m", "nbgrader", "export"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    exported = {(row["assignment"], row["student_id"]): float(row["score"])
                for row in _table(state / "exports" / "nbgrader_grades.csv")}
    assert exported[(A2, sid)] == want[sid][0] + 2
    assert {s: exported[(A, s)] for s in _expected()} == {s: w[0] for s, w in _expected().items()}


def test_rerun_reuses_every_stored_result(graded, cluster):
    r = _grade(graded["subs"], graded["state"], graded["url"], cluster["address"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"graded 0, reused {len(_expected())}" in r.stdout, r.stdout


def test_command_killed_then_rerun_resumes(graded, postgres, cluster):
    """The grading command killed (SIGKILL) once a result is stored: the next run reuses what was stored,
    grades the rest, and every student is in grades.csv and the gradebook once, with the exact score."""
    state, runs = graded["state"], graded["state"] / "runs" / A
    env = _env(state, graded["url"], AUTOGRADER_SECRET="another-secret")  # a new secret: every result is stale
    # regraded (the class's other rows stay as they are): one graded in a second, one that runs into its time
    # limit for several, so the kill lands between their results however fast grading is
    two = ["--student", "correct", "--student", "slow_function"]
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
    assert sorted(row["student_id"] for row in rows) == sorted(want)
    assert {row["student_id"]: (float(row["score"]), row["status"]) for row in rows} == want
    assert _gradebook_scores(postgres, graded["db"]) == {s: w[0] for s, w in want.items()}


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
