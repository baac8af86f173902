"""Seconds per submission: the grading command (warm and cold, 1 and 2 workers) vs plain `nbgrader autograde`.

    python scripts/bench_grading.py [--n 20] [--assignment 01_gradient_flow] [--json out.json]
    python scripts/bench_grading.py --distributed [--n 20] [--json out.json]   # a Dask cluster, PostgreSQL (assignment 1)

Every command grades the same N submissions (drawn from the assignment's sample class: correct,
partial and common-mistake notebooks, no attacks) in one run of this script, each from a fresh
state folder:

- plain: nbgrader's own `autograde` (student kernel, no sandbox, scores from the kernel), batched
  in one process, from a throwaway course folder whose nbgrader_config.py keeps nbgrader's defaults;
- ours, cold, 1 worker: `python -m autograder grade --cold` (a fresh interpreter per sandbox: the
  grading as it was before warm workers);
- ours, warm, 1 and 2 workers: `python -m autograder grade` (each worker's warm parent forks a
  sandbox per submission; bookkeeping set up once per worker).

Wall-clock times include each command's start-up (and each worker's warm parent). Also in the same
run: the seconds one Python start with torch and numpy imported takes (the median of 3), the ratio
of each command's seconds per submission to it, the seconds a submission takes inside a worker once
it runs (steady state; the correct sample's too), and where that time goes (from the stored
results: sandbox start, student cells and calls, judge, bookkeeping, feedback HTML). Not a test:
the numbers depend on the machine (and on whatever else runs on it); the README reports them.

``--distributed`` measures ``grade --scheduler`` instead (see :func:`main_distributed`): a private
PostgreSQL gradebook and a Dask scheduler started here (``autograder/localcluster.py``), one worker,
then two; per-slot seconds per submission, the scheduler's cost per task, the gradebook's writes under
concurrency, and from them the projected time for a class of 10,000 on 64 slots.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
A = "01_gradient_flow"
SAMPLES = ROOT / "autograder" / "samples" / A
PLAIN_CONFIG = """
c = get_config()
c.CourseDirectory.root = "COURSE"
c.CourseDirectory.course_id = "bench"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "RELEASE"
c.CourseDirectory.submitted_directory = "SUBMITTED"
c.CourseDirectory.autograded_directory = "AUTOGRADED"
c.CourseDirectory.db_url = "sqlite:///DB"
c.Execute.kernel_name = "python3"
c.Execute.timeout = 60
c.OverwriteCells.add_missing_cells = True
"""


def pick(n, samples: Path):
    names = sorted(p.name for p in samples.iterdir() if p.is_dir() and p.name.startswith(("correct", "partial", "mistake", "blank")))
    names = [m for m in names if m != "slow_function"]
    return [names[i % len(names)] for i in range(n)]


def plain(students, tmp: Path, assignment: str = A, samples: Path = SAMPLES) -> float:
    course = tmp / "plain"
    course.mkdir()
    # a course folder of its own: nbgrader also reads nbgrader_config.py from the course root
    shutil.copytree(ROOT / "solutions" / assignment, course / "solutions" / assignment)
    cfg = PLAIN_CONFIG.replace("COURSE", str(course)).replace("RELEASE", str(course / "release")).replace("SUBMITTED", str(course / "submitted"))
    cfg = cfg.replace("AUTOGRADED", str(course / "autograded")).replace("DB", str(course / "gradebook.db"))
    (course / "nbgrader_config.py").write_text(cfg)
    for k, name in enumerate(students):
        shutil.copytree(samples / name, course / "submitted" / f"s{k:02d}" / assignment)
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"], OMP_NUM_THREADS="1")
    nbgrader = [sys.executable, "-m", "nbgrader"]
    subprocess.run([*nbgrader, "generate_assignment", assignment, "--force"], cwd=course, env=env, check=True,
                   capture_output=True)
    t0 = time.perf_counter()
    r = subprocess.run([*nbgrader, "autograde", assignment, "--force"], cwd=course, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode:  # nbgrader exits 1 when any submission failed; the time still counts
        print("plain nbgrader reported failures:", *[ln for ln in r.stderr.splitlines() if "ERROR" in ln][:5], sep="\n  ")
    return dt


def import_seconds(repeat: int = 3) -> float:
    """Median seconds of `python -c "import torch, numpy"`: the start-up every fresh sandbox pays."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, numpy"], check=True)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


PHASES = [("sandbox start (never charged)", "startup_seconds"),
          ("student cells and calls (sandbox, less its start)", None),
          ("judge (verdicts against the reference)", "judge_seconds"),
          ("bookkeeping (nbgrader autograde, gradebook)", "autograde_seconds"),
          ("feedback HTML", "feedback_seconds"),
          ("in all, inside the worker", "seconds")]


def phases(state: Path, assignment: str) -> dict:
    """Mean seconds per submission of each phase, from the results the grading command stored; and
    the correct sample's own total (``correct``)."""
    rows = [json.loads(p.read_text()) for p in (state / "runs" / assignment).glob("*.json")]
    out = {}
    for label, key in PHASES:
        vals = [r["sandbox_seconds"] - r["startup_seconds"] if key is None else r[key] for r in rows]
        out[label] = sum(vals) / len(vals)
    correct = [r["seconds"] for r in rows if r["student_id"] in CORRECT]
    out["correct"] = sum(correct) / len(correct) if correct else float("nan")
    return out


CORRECT: set = set()  # the ids the correct sample was copied to


def ours(students, tmp: Path, workers: int, assignment: str, samples: Path, start: str = "warm") -> float:
    """Seconds of one `python -m autograder grade` over ``students`` (sample names), from its start."""
    tag = f"{start}{workers}"
    subs, state = tmp / f"subs-{tag}", tmp / f"state-{tag}"
    for k, name in enumerate(students):  # the sample's whole folder (assignment 4 hands in a model too)
        shutil.copytree(samples / name, subs / f"s{k:02d}")
        if name == "correct":
            CORRECT.add(f"s{k:02d}")
    env = dict(os.environ, AUTOGRADER_STATE_DIR=str(state), AUTOGRADER_SECRET="bench", OMP_NUM_THREADS="1",
               AUTOGRADER_START=start)
    env.pop("NBGRADER_DB_URL", None)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "autograder", "grade", assignment, str(subs), "--workers", str(workers),
                        "--force"], cwd=ROOT, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(r.stdout + r.stderr)
    return dt


def measure(n: int, assignment: str) -> dict:
    """Every command over the same ``n`` submissions, in one run."""
    samples = ROOT / "autograder" / "samples" / assignment
    students = pick(n, samples)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        res = {"n": n, "assignment": assignment, "cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
        res["import_torch_numpy_s"] = import_seconds()
        res["plain_nbgrader_s"] = plain(students, tmp, assignment, samples)
        res["cold_1_worker_s"] = ours(students, tmp, 1, assignment, samples, "cold")
        res["phases_cold_1_worker_s"] = phases(tmp / "state-cold1", assignment)
        res["ours_1_worker_s"] = ours(students, tmp, 1, assignment, samples)
        res["phases_1_worker_s"] = phases(tmp / "state-warm1", assignment)
        res["ours_2_workers_s"] = ours(students, tmp, 2, assignment, samples)
        res["load_after"] = os.getloadavg()[0]
    return res


def report(res: dict) -> None:
    n, imp = res["n"], res["import_torch_numpy_s"]
    print(f"{res['assignment']}: {n} submissions, {res['cpus']} CPUs, load average {res['load_before']:.1f} -> "
          f"{res['load_after']:.1f}; one Python start with torch and numpy imported: {imp:.2f} s")
    print("| command | total s | s per submission | / import |")
    print("|---|---|---|---|")
    for label, key in [("nbgrader autograde (plain, batched)", "plain_nbgrader_s"),
                       ("python -m autograder grade --cold, 1 worker", "cold_1_worker_s"),
                       ("python -m autograder grade (warm), 1 worker", "ours_1_worker_s"),
                       ("python -m autograder grade (warm), 2 workers", "ours_2_workers_s")]:
        print(f"| {label} | {res[key]:.1f} | {res[key] / n:.2f} | {res[key] / n / imp:.2f} |")
    print(f"speed-up 1 -> 2 warm workers: {res['ours_1_worker_s'] / res['ours_2_workers_s']:.2f}x; "
          f"warm / cold (1 worker): {res['ours_1_worker_s'] / res['cold_1_worker_s']:.2f}; "
          f"warm 1 worker / plain: {res['ours_1_worker_s'] / res['plain_nbgrader_s']:.2f}")
    print("| one worker, per submission, inside the worker | cold s | warm s | warm / import |")
    print("|---|---|---|---|")
    cold, warm = res["phases_cold_1_worker_s"], res["phases_1_worker_s"]
    for label in warm:
        name = "the correct sample, in all" if label == "correct" else label
        print(f"| {name} | {cold[label]:.2f} | {warm[label]:.2f} | {warm[label] / imp:.2f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--assignment", default=A)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--distributed", action="store_true",
                    help="grade --scheduler on a PostgreSQL gradebook and a Dask cluster started here (1, then 2 workers)")
    ap.add_argument("--slots", type=int, default=64, help="--distributed: project the class on this many slots")
    ap.add_argument("--class-size", type=int, default=10_000, help="--distributed: the class size projected")
    args = ap.parse_args(argv)
    if args.distributed:
        return main_distributed(args)
    res = measure(args.n, args.assignment)
    report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


# ------------------------------------------------------------------ --distributed: grade --scheduler
def _class_folder(students, subs: Path) -> Path:
    for k, name in enumerate(students):
        (subs / f"s{k:02d}").mkdir(parents=True)
        shutil.copy(SAMPLES / name / f"{A}.ipynb", subs / f"s{k:02d}" / f"{A}.ipynb")
    return subs


def _cpu_of(pid: int) -> float:
    """CPU seconds process ``pid`` has used (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _arrivals(proc, runs: Path, pg) -> list:
    """While ``proc`` (the grading command) runs: (time, the command's CPU s, PostgreSQL's CPU s, results so far)
    each time new results appear in ``runs`` (each is stored as it arrives)."""
    seen, out = set(), []
    while proc.poll() is None:
        new = {p.name for p in runs.glob("*.json")} - seen if runs.is_dir() else set()
        if new:
            seen |= new
            try:
                out.append((time.time(), _cpu_of(proc.pid), pg.cpu_seconds(), len(seen)))
            except OSError:  # the command has just exited
                break
        time.sleep(0.05)
    return out


def on_cluster(students, tmp: Path, pg, address: str, workers: int) -> dict:
    """One ``grade --scheduler`` run of ``students`` into a fresh state dir and database. Steady state, from the
    first result's arrival to the last: per-slot seconds per submission (the mean gap times ``workers``), the
    command's and PostgreSQL's CPU seconds per submission; start-up (the rest of the wall time); the most
    gradebook connections; the workers' own timings (stored results)."""
    subs, state, db = _class_folder(students, tmp / f"dsubs{workers}"), tmp / f"dstate{workers}", f"bench_w{workers}"
    env = dict(os.environ, AUTOGRADER_STATE_DIR=str(state), AUTOGRADER_SECRET="bench", OMP_NUM_THREADS="1",
               NBGRADER_DB_URL=pg.create(db))
    with pg.watching_connections(db) as seen:
        t0 = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "autograder", "grade", A, str(subs), "--scheduler", address,
                                 "--force"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        marks = _arrivals(proc, state / "runs" / A, pg)
        out = proc.communicate()[0].decode()
        wall = time.time() - t0
    if proc.returncode or len(marks) < 2:
        raise SystemExit(out)
    (ta, ca, pa, na), (tb, cb, pb, nb) = marks[0], marks[-1]
    k = nb - na  # results that arrived after the first look that saw one
    rows = [json.loads(p.read_text()) for p in (state / "runs" / A).glob("*.json")]
    mean = lambda key: sum(x[key] for x in rows) / len(rows)  # noqa: E731
    return {"workers": workers, "n": len(rows), "wall_s": wall, "startup_s": wall - (tb - ta) * (len(rows) - 1) / k,
            "slot_s_per_submission": (tb - ta) / k * workers, "command_cpu_s_per_submission": (cb - ca) / k,
            "postgres_cpu_s_per_submission": (pb - pa) / k, "max_connections": seen["most"],
            "worker_s_per_submission": mean("seconds"), "bookkeeping_s_per_submission": mean("nbgrader_seconds"),
            "autograde_locked_s_per_submission": mean("autograde_seconds")}


def scheduler_overhead(client, n: int = 300, size: int = 40_000) -> float:
    """Seconds per task the cluster itself costs: ``n`` tasks that do nothing (``len``) but carry ``size``
    bytes (a notebook) and hold a SANDBOX slot, submitted at once, divided into the wall time."""
    payload = os.urandom(size)
    t0 = time.perf_counter()
    client.gather([client.submit(len, payload, resources={"SANDBOX": 1}, pure=False) for _ in range(n)])
    return (time.perf_counter() - t0) / n


def _gradebook_writer(job) -> list:
    """In a process of its own: ``m`` submissions of new students written as the grading command's bookkeeping
    writes them (the student's advisory lock, nbgrader's Gradebook, every grade cell's score, commit);
    returns the seconds of each."""
    url, course, prefix, m = job
    import warnings

    from nbgrader.api import Gradebook

    warnings.filterwarnings("ignore", message=".*not in session.*")  # nbgrader + SQLAlchemy 2.1 noise

    from autograder import gradebook_db

    times = []
    for i in range(m):
        sid, t0 = f"{prefix}-{i}", time.perf_counter()
        with gradebook_db.bookkeeping_lock(url, A, sid, Path("/nonexistent")), Gradebook(url, course) as gb:
            gb.update_or_create_student(sid)
            for nb in gb.update_or_create_submission(A, sid).notebooks:
                for g in nb.grades:
                    g.auto_score = g.max_score
            gb.db.commit()
        times.append(time.perf_counter() - t0)
    return times


def gradebook_writes(pg, db: str, concurrency=(1, 4, 16), m: int = 15) -> dict:
    """For each number of concurrent writers (processes): seconds per write (the mean), writes per second
    (all of them), and PostgreSQL's own CPU seconds per write, on a database the grading runs created."""
    import concurrent.futures as cf
    import multiprocessing as mp

    from autograder import config, pipeline

    url, course = pg.url(db), pipeline.nbgrader_api(config.ROOT).coursedir.course_id
    out = {}
    for k in concurrency:
        pg0, t0 = pg.cpu_seconds(), time.perf_counter()
        with cf.ProcessPoolExecutor(k, mp_context=mp.get_context("fork")) as pool:
            times = [t for ts in pool.map(_gradebook_writer, [(url, course, f"w{k}-{j}", m) for j in range(k)])
                     for t in ts]
        wall = time.perf_counter() - t0
        out[k] = {"s_per_write": sum(times) / len(times), "writes_per_s": len(times) / wall,
                  "postgres_cpu_s_per_write": (pg.cpu_seconds() - pg0) / len(times)}
    return out


def projection(res: dict, class_size: int, slots: int) -> dict:
    """Seconds to grade ``class_size`` submissions on ``slots`` slots as fast as this machine's, the stages
    pipelined (each runs while the others do): the slowest of the workers (per-slot seconds per submission,
    with 2 workers, over ``slots``), the scheduler (its cost per task, one process), the grading command
    (its CPU seconds per submission, one process) and PostgreSQL (its CPU seconds per submission, one
    core; a write takes one connection for its duration), plus the command's start-up."""
    two = res["cluster"][2]
    stages = {"workers": class_size * two["slot_s_per_submission"] / slots,
              "scheduler": class_size * res["scheduler_s_per_task"],
              "grading command": class_size * two["command_cpu_s_per_submission"],
              "PostgreSQL (one core)": class_size * two["postgres_cpu_s_per_submission"]}
    bound = max(stages, key=stages.get)
    return {"stages_s": stages, "bound_by": bound, "projected_s": stages[bound] + two["startup_s"]}


def main_distributed(args) -> int:
    """``--distributed``: a PostgreSQL gradebook and a Dask cluster on this machine; the same submissions
    graded with 1 and 2 workers; the scheduler's cost per task; the gradebook's writes at 1, 4 and 16
    concurrent writers; the projection (see :func:`projection`)."""
    from autograder import localcluster

    students = pick(args.n, SAMPLES)
    res = {"n": args.n, "cpus": os.cpu_count(), "load_before": os.getloadavg()[0], "cluster": {}}
    with tempfile.TemporaryDirectory() as tmp, localcluster.Postgres.temporary(max_connections=200) as pg, \
            localcluster.DaskCluster(workers=1, logs=Path(tmp) / "dask") as cluster:
        for w in (1, 2):
            cluster.scale(w)
            res["cluster"][w] = on_cluster(students, Path(tmp), pg, cluster.address, w)
        res["scheduler_s_per_task"] = scheduler_overhead(cluster.client)
        res["gradebook_writes"] = gradebook_writes(pg, "bench_w2")
        res["plain_nbgrader_s_per_submission"] = plain(students, Path(tmp)) / args.n  # same submissions, same run
    res["load_after"] = os.getloadavg()[0]
    res["projection"] = projection(res, args.class_size, args.slots)
    _print_distributed(res, args)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


def _print_distributed(res: dict, args) -> None:
    one, two = res["cluster"][1], res["cluster"][2]
    print(f"{res['n']} submissions, {res['cpus']} CPUs, load average {res['load_before']:.1f} -> {res['load_after']:.1f}")
    print("| grade --scheduler | wall s | start-up s | s per submission per slot | worker s per submission | "
          "bookkeeping s (under the lock) | command CPU s per submission | PostgreSQL CPU s per submission | "
          "most connections |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in (one, two):
        print(f"| {r['workers']} worker(s) | {r['wall_s']:.1f} | {r['startup_s']:.1f} | {r['slot_s_per_submission']:.2f}"
              f" | {r['worker_s_per_submission']:.2f} | {r['bookkeeping_s_per_submission']:.2f} "
              f"({r['autograde_locked_s_per_submission']:.2f}) | {r['command_cpu_s_per_submission']:.3f} | "
              f"{r['postgres_cpu_s_per_submission']:.3f} | {r['max_connections']} |")
    print(f"speed-up 1 -> 2 workers (steady state): {2 * one['slot_s_per_submission'] / two['slot_s_per_submission']:.2f}x;"
          f" scheduler: {1000 * res['scheduler_s_per_task']:.1f} ms per task")
    plain_s = res["plain_nbgrader_s_per_submission"]
    print(f"plain nbgrader autograde (one process), same submissions: {plain_s:.2f} s per submission; "
          f"1 worker per slot / plain: {one['slot_s_per_submission'] / plain_s:.2f}; "
          f"bookkeeping share of a worker's time: {one['bookkeeping_s_per_submission'] / one['worker_s_per_submission']:.0%}")
    print("| concurrent gradebook writers | s per write | writes per s | PostgreSQL CPU ms per write |")
    print("|---|---|---|---|")
    for k, g in res["gradebook_writes"].items():
        print(f"| {k} | {g['s_per_write']:.3f} | {g['writes_per_s']:.1f} | {1000 * g['postgres_cpu_s_per_write']:.1f} |")
    p = res["projection"]
    print(f"projected for {args.class_size} submissions on {args.slots} slots: {p['projected_s'] / 60:.1f} min, bound by "
          f"{p['bound_by']} (" + ", ".join(f"{k} {v / 60:.1f} min" for k, v in p["stages_s"].items()) + ")")


if __name__ == "__main__":
    sys.exit(main())
