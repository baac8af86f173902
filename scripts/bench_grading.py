"""Seconds per submission: the grading command (warm and cold, 1 and 2 workers) vs plain `nbgrader autograde`.

    python scripts/bench_grading.py [--n 20] [--assignment 01_gradient_flow | all]
                                    [--commands plain,cold1,warm1,warm2,figures1]
                                    [--json out.json]
    python scripts/bench_grading.py --distributed [--n 20] [--json out.json]   # a Dask cluster, PostgreSQL (assignment 1)

Every command grades the same N submissions (drawn from the assignment's sample class: correct,
partial and common-mistake notebooks, no attacks) in one run of this script, each from a fresh
state folder:

- plain: nbgrader's own `autograde` (student kernel, no sandbox, scores from the kernel), batched
  in one process, from a throwaway course folder whose nbgrader_config.py keeps nbgrader's defaults;
- ours, cold, 1 worker: `python -m autograder grade --cold` (a fresh interpreter per sandbox: the
  grading as it was before warm workers);
- ours, warm, 1 and 2 workers: `python -m autograder grade` (each worker's warm parent forks a
  sandbox per submission; bookkeeping set up once per worker; the student's figures named by their
  captions, not drawn: the default);
- ours, warm, 1 worker, `--figures`: the same with the student's figures drawn into the feedback.

Wall-clock times include each command's start-up (and each worker's warm parent). Also in the same
run: the seconds one Python start with torch and numpy imported takes (the median of 3), the ratio
of each command's seconds per submission to it, the command's timeline (until its first result,
seconds per submission between the first and the last result, which is the steady-state throughput
and what 1 -> 2 workers speeds up, the command's own share of that beyond the workers' time, and
what follows the last result), the seconds a submission takes inside a worker (the correct sample's
too) and where that time goes (from the stored results: sandbox start, student cells and calls,
judge, bookkeeping, feedback HTML). ``--assignment all`` does this for each assignment in turn and
ends with one line per assignment. Not a test: the numbers depend on the machine (and on whatever
else runs on it); the README reports them.

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
          ("  of which waiting for another worker's bookkeeping (gradebook lock)", "gradebook_lock_wait_seconds"),
          ("feedback HTML", "feedback_seconds"),
          ("in all, inside the worker", "seconds")]


def phases(state: Path, assignment: str, correct_ids: set) -> dict:
    """Mean seconds per submission of each phase, from the results the grading command stored; and
    the correct sample's own total (``correct``)."""
    rows = [json.loads(p.read_text()) for p in (state / "runs" / assignment).glob("*.json")]
    out = {}
    for label, key in PHASES:
        vals = [r["sandbox_seconds"] - r["startup_seconds"] if key is None else r.get(key, 0.0) for r in rows]
        out[label] = sum(vals) / len(vals)
    correct = [r["seconds"] for r in rows if r["student_id"] in correct_ids]
    out["correct"] = sum(correct) / len(correct) if correct else float("nan")
    return out


def timeline(state: Path, assignment: str, t0: float, wall: float, workers: int) -> dict:
    """Where the grading command's wall time went, from when each result was stored (each is written as it
    arrives, so a file's modification time is its arrival): ``first_s`` from the command's start to the first
    result (its start-up, the workers' and warm parents' start and the first submission), ``steady_s`` seconds
    per submission between the first and the last result (throughput: with 2 workers two are graded at once),
    ``finish_s`` after the last one (grades.csv, the class overview, exit), ``overhead_s`` what the command
    adds per submission in the steady state beyond the workers' own time (scheduling, result collection), and
    ``warm_parents_s`` the seconds a worker's warm parent took to start (in the worker's set-up, while the
    command checks the release; part of ``first_s``)."""
    files = sorted((state / "runs" / assignment).glob("*.json"), key=lambda p: p.stat().st_mtime)
    stamps = [p.stat().st_mtime for p in files]
    steady = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else float("nan")
    later = [json.loads(p.read_text())["seconds"] for p in files[workers:]] or [float("nan")]  # each worker's 1st left out
    inside_steady = sum(later) / len(later)
    starts = sum(json.loads(p.read_text()).get("worker_start_seconds", 0.0) for p in files)
    return {"first_s": stamps[0] - t0, "steady_s": steady, "finish_s": t0 + wall - stamps[-1],
            "overhead_s": steady - inside_steady / workers, "warm_parents_s": starts / workers}


def ours(students, tmp: Path, workers: int, assignment: str, samples: Path, start: str = "warm",
         figures: bool = False) -> dict:
    """One `python -m autograder grade` (``--figures`` too when ``figures``) over ``students`` (sample names),
    in a fresh state folder: its wall seconds from its start (``wall_s``), its :func:`timeline`, and the
    :func:`phases`."""
    tag = f"{assignment}-{start}{workers}{'-figures' * figures}"
    subs, state = tmp / f"subs-{tag}", tmp / f"state-{tag}"
    for k, name in enumerate(students):  # the sample's whole folder (assignment 4 hands in a model too)
        shutil.copytree(samples / name, subs / f"s{k:02d}")
    correct = {f"s{k:02d}" for k, name in enumerate(students) if name == "correct"}
    env = dict(os.environ, AUTOGRADER_STATE_DIR=str(state), AUTOGRADER_SECRET="bench", OMP_NUM_THREADS="1",
               AUTOGRADER_START=start)
    env.pop("NBGRADER_DB_URL", None)
    t0, c0 = time.time(), time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "autograder", "grade", assignment, str(subs), "--workers", str(workers),
                        "--force", *["--figures"] * figures], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - c0
    if r.returncode:
        raise SystemExit(r.stdout + r.stderr)
    return {"wall_s": wall, **timeline(state, assignment, t0, wall, workers), "phases": phases(state, assignment, correct)}


COMMANDS = ("plain", "cold1", "warm1", "warm2", "figures1")
# (start, workers, --figures) of each of ours; figures1: warm, 1 worker, the student's figures drawn
OURS = {"cold1": ("cold", 1, False), "warm1": ("warm", 1, False), "warm2": ("warm", 2, False),
        "figures1": ("warm", 1, True)}


def measure(n: int, assignment: str, commands=COMMANDS) -> dict:
    """Every command of ``commands`` over the same ``n`` submissions of ``assignment``, in one run."""
    samples = ROOT / "autograder" / "samples" / assignment
    students = pick(n, samples)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        res = {"n": n, "assignment": assignment, "cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
        res["import_torch_numpy_s"] = import_seconds()
        if "plain" in commands:
            res["plain_nbgrader_s"] = plain(students, tmp, assignment, samples)
        for c in commands:
            if c != "plain":
                start, workers, figures = OURS[c]
                res[c] = ours(students, tmp, workers, assignment, samples, start, figures)
        res["load_after"] = os.getloadavg()[0]
    return res


def report(res: dict) -> None:
    n, imp = res["n"], res["import_torch_numpy_s"]
    print(f"\n{res['assignment']}: {n} submissions, {res['cpus']} CPUs, load average {res['load_before']:.1f} -> "
          f"{res['load_after']:.1f}; one Python start with torch and numpy imported: {imp:.2f} s")
    print("| command | total s | s per submission | / import | until the 1st result s (warm parent's start in it) "
          "| steady s per submission | / import | command's own s per submission (steady) | after the last result s |")
    print("|---|---|---|---|---|---|---|---|---|")
    if "plain_nbgrader_s" in res:
        p = res["plain_nbgrader_s"]
        print(f"| nbgrader autograde (plain, batched) | {p:.1f} | {p / n:.2f} | {p / n / imp:.2f} | | | | | |")
    names = {"cold1": "grade --cold, 1 worker", "warm1": "grade (warm), 1 worker", "warm2": "grade (warm), 2 workers",
             "figures1": "grade --figures (warm), 1 worker"}
    for c in (c for c in COMMANDS if c in res):
        r = res[c]
        print(f"| python -m autograder {names[c]} | {r['wall_s']:.1f} | {r['wall_s'] / n:.2f} | {r['wall_s'] / n / imp:.2f} "
              f"| {r['first_s']:.2f} ({r['warm_parents_s']:.2f}) | {r['steady_s']:.2f} | {r['steady_s'] / imp:.2f} | {r['overhead_s']:.3f} "
              f"| {r['finish_s']:.2f} |")
    if "warm1" in res and "warm2" in res:
        w1, w2 = res["warm1"], res["warm2"]
        print(f"speed-up 1 -> 2 warm workers: {w1['wall_s'] / w2['wall_s']:.2f}x whole command, "
              f"{w1['steady_s'] / w2['steady_s']:.2f}x steady state")
    if "warm1" in res and "plain_nbgrader_s" in res:
        print(f"warm 1 worker / plain nbgrader: {res['warm1']['wall_s'] / res['plain_nbgrader_s']:.2f}"
              + (f"; warm / cold (1 worker): {res['warm1']['wall_s'] / res['cold1']['wall_s']:.2f}" if "cold1" in res else ""))
    shown = [c for c in ("cold1", "warm1", "warm2", "figures1") if c in res]  # warm2: the same, two at a time (contention)
    if not shown:
        return
    print("| per submission, inside the worker | " + " | ".join(f"{c} s | {c} / import" for c in shown) + " |")
    print("|---|" + "---|---|" * len(shown))
    for label in res[shown[-1]]["phases"]:
        name = "the correct sample, in all" if label == "correct" else label
        print(f"| {name} | " + " | ".join(f"{res[c]['phases'][label]:.3f} | {res[c]['phases'][label] / imp:.3f}"
                                         for c in shown) + " |")


def summary(all_res: list) -> None:
    """One line per assignment: the warm one-worker split per submission and the correct sample, as / import."""
    print("\n| assignment (warm, 1 worker; / import) | start | cells | judge | bookkeeping | (its lock wait) | feedback "
          "| in all | correct sample | whole command per submission | plain nbgrader | 2 workers (steady) "
          "| correct sample, --figures |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for res in all_res:
        imp, w = res["import_torch_numpy_s"], res.get("warm1")
        if w is None:
            continue
        ph = [w["phases"][label] / imp for label, _ in PHASES] + [w["phases"]["correct"] / imp]
        plain_ = f"{res['plain_nbgrader_s'] / res['n'] / imp:.2f}" if "plain_nbgrader_s" in res else ""
        two = f"{w['steady_s'] / res['warm2']['steady_s']:.2f}x" if "warm2" in res else ""
        figs = f"{res['figures1']['phases']['correct'] / imp:.3f}" if "figures1" in res else ""
        print(f"| {res['assignment']} | " + " | ".join(f"{v:.3f}" for v in ph) +
              f" | {w['wall_s'] / res['n'] / imp:.2f} | {plain_} | {two} | {figs} |")


ASSIGNMENTS = ("01_gradient_flow", "02_lstm_gru_cells", "03_deep_bidirectional", "04_training_with_clipping")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--assignment", default=A, help=f"one assignment, or 'all' ({', '.join(ASSIGNMENTS)})")
    ap.add_argument("--commands", default=",".join(COMMANDS),
                    help=f"which to run, comma-separated, of {','.join(COMMANDS)} (default: all)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--distributed", action="store_true",
                    help="grade --scheduler on a PostgreSQL gradebook and a Dask cluster started here (1, then 2 workers)")
    ap.add_argument("--slots", type=int, default=64, help="--distributed: project the class on this many slots")
    ap.add_argument("--class-size", type=int, default=10_000, help="--distributed: the class size projected")
    args = ap.parse_args(argv)
    if args.distributed:
        return main_distributed(args)
    commands = list(dict.fromkeys(c for c in args.commands.split(",") if c))
    if set(commands) - set(COMMANDS):
        ap.error(f"--commands: unknown {sorted(set(commands) - set(COMMANDS))}")
    every = []
    for a in ASSIGNMENTS if args.assignment == "all" else [args.assignment]:
        every.append(measure(args.n, a, commands))
        report(every[-1])
    if len(every) > 1:
        summary(every)
    if args.json:
        args.json.write_text(json.dumps(every if len(every) > 1 else every[0], indent=1))
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
