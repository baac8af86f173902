"""``python -m autograder``: release, grade and check assignments (run from the repository root).

    python -m autograder release 01_gradient_flow          # solutions/ -> assignments/ (nbgrader)
    python -m autograder check-release 01_gradient_flow    # exit 1 when assignments/ is stale
    python -m autograder grade 01_gradient_flow SUBMISSIONS_DIR [--workers N] [--force] [--out grades.csv]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Said by `grade` when COURSE_DEVICE asks for anything but the CPU (tests/test_gpu_check.py)
CPU_ONLY = ("grading is CPU-only: COURSE_DEVICE={device} is ignored. Each submission runs in the sandbox "
            "(autograder/sandbox.py) with a reset environment (COURSE_BUDGET=ci, no COURSE_DEVICE) and no "
            "/dev/nvidia* mounted, and the verdicts are computed on the CPU, so a grade never depends on "
            "the grading machine's GPU.")


def main(argv=None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ap = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("release", help="generate the student release from solutions/")
    r.add_argument("assignment")
    c = sub.add_parser("check-release", help="fail when the committed release is stale")
    c.add_argument("assignment")
    g = sub.add_parser("grade", help="grade a folder of submitted notebooks")
    g.add_argument("assignment")
    g.add_argument("submissions", type=Path)
    g.add_argument("--workers", type=int, default=None, help="parallel workers (default: CPU cores)")
    g.add_argument("--force", action="store_true", help="regrade even unchanged submissions")
    g.add_argument("--out", type=Path, default=None, help="grades.csv path (default autograder/runs/ASSIGNMENT/grades.csv)")
    g.add_argument("--cell-timeout", type=float, default=None)
    g.add_argument("--total-timeout", type=float, default=None)
    args = ap.parse_args(argv)
    device = (os.environ.get("COURSE_DEVICE") or "").strip()
    if args.cmd == "grade" and device and device.lower() != "cpu":
        print(CPU_ONLY.format(device=device), flush=True)

    from . import config, pipeline

    if Path.cwd().resolve() != config.ROOT:
        print(f"run this from the repository root ({config.ROOT}): nbgrader reads nbgrader_config.py there",
              file=sys.stderr)
        return 2
    if args.cmd == "release":
        out = pipeline.release(args.assignment)
        print(f"release written to {out.relative_to(config.ROOT)}")
        return 0
    if args.cmd == "check-release":
        fresh, diff = pipeline.release_is_fresh(args.assignment)
        print("release is up to date" if fresh else f"release is stale: {diff}")
        return 0 if fresh else 1
    cfg = config.load(cell_timeout=args.cell_timeout, total_timeout=args.total_timeout, workers=args.workers)
    s = pipeline.grade(args.assignment, args.submissions, workers=args.workers, force=args.force,
                       out_csv=args.out, cfg=cfg)
    counts = {}
    for row in s.results:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    print(f"graded {s.graded}, reused {s.reused}, in {s.seconds:.1f} s; statuses: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    rel = lambda p: p.relative_to(config.ROOT) if p.is_relative_to(config.ROOT) else p  # noqa: E731
    print(f"grades:   {rel(s.csv)}")
    print(f"feedback: {rel(config.state_dir() / 'feedback')}/<student>/{args.assignment}/*.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
