"""Seconds per submission: the grading command (warm and cold, 1 and 2 workers) vs plain `nbgrader autograde`.

    python scripts/bench_grading.py [--n 20] [--assignment 01_gradient_flow] [--json out.json]

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
    args = ap.parse_args(argv)
    res = measure(args.n, args.assignment)
    report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
