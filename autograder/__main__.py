"""``python -m autograder``: release, grade and check assignments (run from the repository root).

    python -m autograder release 01_gradient_flow          # solutions/ -> assignments/ (nbgrader)
    python -m autograder check-release 01_gradient_flow    # exit 1 when assignments/ is stale or disagrees with its specs
    python -m autograder grade 01_gradient_flow SUBMISSIONS_DIR [--workers N | --scheduler tcp://HOST:PORT] [--force] [--out grades.csv]
                               [--student ID ...] [--timestamps TIMES.csv]
    python -m autograder report 02_lstm_gru_cells          # rebuild grades.csv + overview (after hand-grading)
    python -m autograder export [ASSIGNMENT ...] --format canvas|moodle [--roster ROSTER.csv]   # none: the course
    python -m autograder self-check 02_lstm_gru_cells MY_NOTEBOOK.ipynb   # a student's own check, own state
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


def _lazy_iri_syntax() -> None:
    """jsonschema (under nbformat) imports ``rfc3987_syntax`` for its IRI format checker, and that module builds
    a lark Earley parser of RFC 3987 when imported: 0.65 s of every command's start, for a checker no notebook
    schema uses. Put a stand-in in its place that imports the real module on first use (same functions)."""
    import importlib
    import importlib.util
    import types

    if "rfc3987_syntax" in sys.modules:
        return
    spec = importlib.util.find_spec("rfc3987_syntax")
    if spec is None or not spec.submodule_search_locations:
        return
    stand_in = types.ModuleType("rfc3987_syntax")
    stand_in.__path__ = list(spec.submodule_search_locations)
    stand_in.__getattr__ = lambda name: getattr(importlib.import_module("rfc3987_syntax.syntax_helpers"), name)

    def is_valid_syntax(term, value):
        return stand_in.__getattr__("is_valid_syntax")(term, value)

    stand_in.is_valid_syntax = is_valid_syntax
    sys.modules["rfc3987_syntax"] = stand_in


def main(argv=None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _lazy_iri_syntax()
    args = _parser().parse_args(argv)
    if args.cmd == "self-check":  # before anything reads the state dir, the secret or the database
        return _done(_self_check(args))
    device = (os.environ.get("COURSE_DEVICE") or "").strip()
    if args.cmd == "grade" and device and device.lower() != "cpu":
        print(CPU_ONLY.format(device=device), flush=True)

    from . import config

    if Path.cwd().resolve() != config.ROOT:
        print(f"run this from the repository root ({config.ROOT}): nbgrader reads nbgrader_config.py there",
              file=sys.stderr)
        return 2
    commands = {"release": _release, "check-release": _check_release, "report": _report, "export": _export,
                "grade": _grade}
    return _done(commands[args.cmd](args))


def _done(code: int) -> int:
    """``code``, after moving every object into the collector's permanent generation: the interpreter's last
    collections at exit would otherwise walk everything torch, nbgrader and nbconvert made (about 0.7 s of
    every command); the memory goes back to the system whole."""
    import gc

    sys.stdout.flush()
    gc.freeze()
    return code


def _parser() -> argparse.ArgumentParser:
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
    g.add_argument("--cold", action="store_true",
                   help="start every sandbox from a fresh interpreter instead of forking the worker's warm parent "
                        "(slower; the same isolation; e.g. for debugging; or AUTOGRADER_START=cold)")
    g.add_argument("--out", type=Path, default=None, help="grades.csv path (default autograder/runs/ASSIGNMENT/grades.csv)")
    g.add_argument("--student", action="append", default=None, metavar="ID",
                   help="grade only this student (repeatable): a regrade, a late student; the others keep their rows")
    g.add_argument("--timestamps", type=Path, default=None,
                   help="CSV of submission times (student_id,timestamp) as an LMS gives them; else timestamp.txt "
                        "beside each notebook (nbgrader collect); file modification times are never used")
    g.add_argument("--figures", action="store_true", default=None,
                   help="draw the student's figures into the feedback (about 70 ms a figure: assignment 1's four "
                        "are half its grading time); by default grading draws none and names each by its caption "
                        "(or AUTOGRADER_DRAW_FIGURES=1); scores never depend on figures")
    g.add_argument("--cell-timeout", type=float, default=None)
    g.add_argument("--total-timeout", type=float, default=None)
    g.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="grade on this Dask cluster: one task per submission on workers started with "
                        "--resources SANDBOX=1 (needs a PostgreSQL gradebook, NBGRADER_DB_URL); --workers is ignored")
    rp = sub.add_parser("report", help="rebuild grades.csv and the class overview from stored results + gradebook")
    rp.add_argument("assignment")
    ex = sub.add_parser("export", help="grades as CSV for an LMS (Canvas or Moodle), under autograder/exports/")
    ex.add_argument("assignments", nargs="*", help="default: the whole course (every assignment graded so far)")
    ex.add_argument("--format", choices=["canvas", "moodle"], default="canvas")
    ex.add_argument("--out", type=Path, default=None, help="file name (relative: inside autograder/exports/)")
    ex.add_argument("--roster", type=Path, default=None, metavar="ROSTER.csv",
                    help="the class list (student_id as in grades.csv, name, email, lms_id, sis_user_id, sis_login_id, "
                         "section): students keyed as the LMS matches them; default: the grading id")
    ex.add_argument("--include-pending", action="store_true",
                    help="export a score also while a written answer waits for hand-grading (default: empty)")
    sc = sub.add_parser("self-check", help="grade your own notebook with the real judge, in a state folder of "
                                           "its own (never the instructor's gradebook)")
    sc.add_argument("assignment")
    sc.add_argument("notebook", type=Path)
    sc.add_argument("--state", type=Path, default=None, help="default: autograder/selfcheck/ (git-ignored)")
    return ap


def _rel(p: Path) -> Path:
    from . import config

    return p.relative_to(config.ROOT) if p.is_relative_to(config.ROOT) else p


def _release(args) -> int:
    from . import config, pipeline

    out = pipeline.release(args.assignment)
    print(f"release written to {out.relative_to(config.ROOT)}")
    return 0


def _check_release(args) -> int:
    """The solution notebook says what its specs say, and the release is fresh."""
    from course_lib.exercises import REGISTRY, sync

    from . import pipeline

    disagree = sync.problems(REGISTRY[args.assignment]) if args.assignment in REGISTRY else []
    for line in disagree:
        print(f"{line} (python -m course_lib.exercises sync)")
    fresh, diff = pipeline.release_is_fresh(args.assignment)
    print("release is up to date" if fresh else f"release is stale: {diff}")
    return 0 if fresh and not disagree else 1


def _report(args) -> int:
    from . import config, pipeline

    runs = config.state_dir() / "runs" / args.assignment
    if not runs.is_dir():
        print(f"no stored results under {runs}: grade {args.assignment} first", file=sys.stderr)
        return 1
    rows, csv_path, overview = pipeline.write_class_files(args.assignment, runs)
    pending = [r["student_id"] for r in rows if r.get("needs_manual_grading")]
    print(f"{len(rows)} students; {len(pending)} wait for hand-grading"
          + (f" ({', '.join(pending)})" if pending else ""))
    print(f"grades:   {_rel(csv_path)}\noverview: {_rel(overview)}")
    return 0


def _export(args) -> int:
    from . import reports

    out = reports.export_lms(args.assignments, args.format, args.out, args.include_pending, args.roster)
    print(f"{args.format} export written to {_rel(out)}"
          + ("" if args.roster else " (keyed by the grading id: --roster ROSTER.csv keys it by the LMS's own ids)"))
    return 0


def _grade(args) -> int:
    from . import config, pipeline

    if args.cold:
        os.environ["AUTOGRADER_START"] = "cold"  # read by every worker (sandbox.start_kind)
    cfg = config.load(cell_timeout=args.cell_timeout, total_timeout=args.total_timeout, workers=args.workers,
                      scheduler=args.scheduler, draw_figures=args.figures)
    stamps = pipeline.read_timestamps(args.timestamps) if args.timestamps else None
    s = pipeline.grade(args.assignment, args.submissions, workers=args.workers, force=args.force,
                       out_csv=args.out, cfg=cfg, students=args.student, timestamps=stamps)
    counts = {}
    for row in s.results:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    print(f"graded {s.graded}, reused {s.reused}, in {s.seconds:.1f} s; statuses: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    pending = [r["student_id"] for r in s.class_rows if r.get("needs_manual_grading")]
    if pending:
        print(f"{len(pending)} of {len(s.class_rows)} wait for hand-grading of a written answer (formgrader; "
              f"their score counts none of it yet): {', '.join(pending[:10])}{' ...' if len(pending) > 10 else ''}")
    print(f"grades:   {_rel(s.csv)} ({len(s.class_rows)} students: every stored result of {args.assignment})")
    print(f"overview: {_rel(s.overview)}")
    print(f"feedback: {_rel(config.state_dir() / 'feedback')}/<student>/{args.assignment}/*.html")
    return 0


def _self_check(args) -> int:
    """A student grades their own notebook with the instructor's judge. Everything (gradebook, secret,
    feedback) goes to a state folder of its own; ``NBGRADER_DB_URL`` and ``AUTOGRADER_SECRET`` are ignored,
    so nothing can reach the instructor's gradebook."""
    import shutil
    import tempfile

    from . import config

    default = config.ROOT / "autograder" / "selfcheck"
    state = (args.state or default).resolve()
    if state == (config.ROOT / "autograder").resolve():
        print("self-check never uses autograder/ itself (the instructor's gradebook): choose another --state",
              file=sys.stderr)
        return 2
    if not args.notebook.is_file():
        print(f"no notebook at {args.notebook}", file=sys.stderr)
        return 2
    os.environ["AUTOGRADER_STATE_DIR"] = str(state)
    for var in ("NBGRADER_DB_URL", "AUTOGRADER_SECRET"):
        os.environ.pop(var, None)
    if Path.cwd().resolve() != config.ROOT:
        os.chdir(config.ROOT)  # nbgrader reads nbgrader_config.py from the working directory
    from . import pipeline

    with tempfile.TemporaryDirectory(prefix="selfcheck-") as tmp:
        me = Path(tmp) / "me"
        me.mkdir()
        shutil.copy(args.notebook, me / f"{args.assignment}.ipynb")
        for extra in args.notebook.resolve().parent.iterdir():  # files graded beside the notebook (a model)
            if extra.is_file() and not extra.is_symlink() and extra.suffix == ".pt":
                shutil.copy(extra, me / extra.name)
        s = pipeline.grade(args.assignment, Path(tmp), workers=1, force=True, log=lambda *a: None)
    r = s.results[0]
    print(f"{args.assignment}: {r['auto_score']:g} of {r['auto_max']:g} autograded points; status {r['status']}")
    for name, v in r["verdicts"].items():
        print(f"  {'passed' if v['passed'] else 'FAILED'}  {name}" + ("" if v["passed"] else f": {v['hint']}"))
    if r.get("manual_max"):
        print(f"  ({r['manual_max']:g} more points are graded by hand by the course staff)")
    if r["detail"]:
        print(f"detail: {r['detail']}")
    print(f"feedback: {state / 'feedback' / 'me' / args.assignment / (args.assignment + '.html')}")
    print(f"(state of this self-check, yours alone: {state})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
