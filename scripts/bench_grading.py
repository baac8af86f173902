"""Seconds per submission: the grading command (1 and 2 workers) vs plain `nbgrader autograde`.

    python scripts/bench_grading.py [--n 20] [--json out.json]

All three grade the same N submissions (drawn from the sample class: correct, partial and
common-mistake notebooks, no attacks) in one run of this script, each from a fresh state folder:

- plain: nbgrader's own `autograde` (student kernel, no sandbox, scores from the kernel), batched
  in one process, from a throwaway course folder whose nbgrader_config.py keeps nbgrader's defaults;
- ours, 1 and 2 workers: `python -m autograder grade` (sandbox, judge, nbgrader bookkeeping, feedback).

Wall-clock times include each command's start-up. Also in the same run: the seconds one Python
start with torch and numpy imported takes (the median of 3), the ratio of each command's seconds
per submission to it, and where one worker's time goes per submission (from the stored results:
sandbox start-up, student cells and calls, judge, nbgrader autograde, feedback HTML). Not a test:
the numbers depend on the machine (and on whatever else runs on it); the README reports them.
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


def pick(n):
    names = sorted(p.name for p in SAMPLES.iterdir() if p.is_dir() and p.name.startswith(("correct", "partial", "mistake", "blank")))
    names = [m for m in names if m != "slow_function"]
    return [names[i % len(names)] for i in range(n)]


def plain(students, tmp: Path) -> float:
    course = tmp / "plain"
    course.mkdir()
    # a course folder of its own: nbgrader also reads nbgrader_config.py from the course root
    shutil.copytree(ROOT / "solutions" / A, course / "solutions" / A)
    cfg = PLAIN_CONFIG.replace("COURSE", str(course)).replace("RELEASE", str(course / "release")).replace("SUBMITTED", str(course / "submitted"))
    cfg = cfg.replace("AUTOGRADED", str(course / "autograded")).replace("DB", str(course / "gradebook.db"))
    (course / "nbgrader_config.py").write_text(cfg)
    for k, name in enumerate(students):
        d = course / "submitted" / f"s{k:02d}" / A
        d.mkdir(parents=True)
        shutil.copy(SAMPLES / name / f"{A}.ipynb", d / f"{A}.ipynb")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"], OMP_NUM_THREADS="1")
    nbgrader = [sys.executable, "-m", "nbgrader"]
    subprocess.run([*nbgrader, "generate_assignment", A, "--force"], cwd=course, env=env, check=True, capture_output=True)
    t0 = time.perf_counter()
    r = subprocess.run([*nbgrader, "autograde", A, "--force"], cwd=course, env=env, capture_output=True, text=True)
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


PHASES = [("sandbox start-up (never charged)", "startup_seconds"),
          ("student cells and calls (sandbox, less start-up)", None),
          ("judge (verdicts against the reference)", "judge_seconds"),
          ("nbgrader autograde (bookkeeping)", "autograde_seconds"),
          ("feedback HTML", "feedback_seconds")]


def phases(state: Path) -> dict:
    """Mean seconds per submission of each phase, from the results the grading command stored."""
    rows = [json.loads(p.read_text()) for p in (state / "runs" / A).glob("*.json")]
    out = {}
    for label, key in PHASES:
        vals = [r["sandbox_seconds"] - r["startup_seconds"] if key is None else r[key] for r in rows]
        out[label] = sum(vals) / len(vals)
    return out


def ours(students, tmp: Path, workers: int) -> float:
    subs, state = tmp / f"subs{workers}", tmp / f"state{workers}"
    subs.mkdir()
    for k, name in enumerate(students):
        (subs / f"s{k:02d}").mkdir()
        shutil.copy(SAMPLES / name / f"{A}.ipynb", subs / f"s{k:02d}" / f"{A}.ipynb")
    env = dict(os.environ, AUTOGRADER_STATE_DIR=str(state), AUTOGRADER_SECRET="bench", OMP_NUM_THREADS="1")
    env.pop("NBGRADER_DB_URL", None)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "autograder", "grade", A, str(subs), "--workers", str(workers), "--force"],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(r.stdout + r.stderr)
    return dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    students = pick(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        res = {"n": args.n, "cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
        res["import_torch_numpy_s"] = import_seconds()
        res["plain_nbgrader_s"] = plain(students, tmp)
        res["ours_1_worker_s"] = ours(students, tmp, 1)
        res["phases_1_worker_s"] = phases(tmp / "state1")
        res["ours_2_workers_s"] = ours(students, tmp, 2)
        res["load_after"] = os.getloadavg()[0]
    n = args.n
    print(f"{n} submissions, {res['cpus']} CPUs, load average {res['load_before']:.1f} -> {res['load_after']:.1f}")
    print("| command | total s | s per submission |")
    print("|---|---|---|")
    for label, key in [("nbgrader autograde (plain, batched)", "plain_nbgrader_s"),
                       ("python -m autograder grade, 1 worker", "ours_1_worker_s"),
                       ("python -m autograder grade, 2 workers", "ours_2_workers_s")]:
        print(f"| {label} | {res[key]:.1f} | {res[key] / n:.2f} |")
    print(f"ratio 1 worker / plain: {res['ours_1_worker_s'] / res['plain_nbgrader_s']:.2f}; "
          f"2 workers / plain: {res['ours_2_workers_s'] / res['plain_nbgrader_s']:.2f}; "
          f"speed-up 1 -> 2 workers: {res['ours_1_worker_s'] / res['ours_2_workers_s']:.2f}x")
    imp = res["import_torch_numpy_s"]
    print(f"one Python start with torch and numpy imported: {imp:.2f} s; seconds per submission / that: "
          f"plain {res['plain_nbgrader_s'] / n / imp:.2f}, 1 worker {res['ours_1_worker_s'] / n / imp:.2f}, "
          f"2 workers {res['ours_2_workers_s'] / n / imp:.2f}")
    print("| one worker, per submission | s |")
    print("|---|---|")
    for label, sec in res["phases_1_worker_s"].items():
        print(f"| {label} | {sec:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
