"""The course's main job: ``python -m coursetools.main`` (what ``make run`` calls).

Runs every lecture top to bottom at the chosen budget (so every ``course_lib`` experiment runs and
every figure is drawn), keeps the executed notebooks, collects the figures, grades every
assignment's sample class with the real grading pipeline (checking each release is fresh), writes
a short report of each lecture's measured claims and run time to ``build/report.md``, and builds
the static site.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from course_lib import budget as budget_mod
from course_lib import report

from . import notebooks

ROOT = notebooks.ROOT


def run_lectures(out: Path, budget: str, only=None) -> list[dict]:
    import nbformat

    results = []
    paths = [p for p in notebooks.lecture_paths() if not only or any(o in p.stem for o in only)]
    (out / "lectures").mkdir(parents=True, exist_ok=True)
    for path in tqdm(paths, desc="lectures", unit="notebook"):
        t0 = time.perf_counter()
        try:
            nb, seconds = notebooks.execute(path, budget=budget, output_dir=out)
            nbformat.write(nb, str(out / "lectures" / path.name))
            results.append({"lecture": path.stem, "ok": True, "seconds": seconds})
        except Exception as exc:  # keep going: one broken lecture must not hide the others
            results.append({"lecture": path.stem, "ok": False, "seconds": time.perf_counter() - t0,
                            "error": str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else repr(exc)})
    return results


def grade_sample_classes(out: Path) -> list[dict]:
    """Check every release is fresh and grade each assignment's sample class with the real pipeline.

    Each row compares the grades with the class's ``expected.csv`` (exact score and status).
    """
    import csv
    import os

    from autograder import pipeline

    rows = []
    samples = sorted(p for p in (ROOT / "autograder" / "samples").iterdir() if (p / "expected.csv").exists())
    cwd = os.getcwd()
    os.chdir(ROOT)  # nbgrader reads nbgrader_config.py from the working directory
    try:
        for folder in tqdm(samples, desc="sample classes", unit="assignment"):
            t0 = time.perf_counter()
            try:
                s = pipeline.grade(folder.name, folder, log=lambda *a: None)
                got = {r["student_id"]: (float(r["score"]), r["status"]) for r in s.results}
                with open(folder / "expected.csv", newline="") as f:
                    want = {r["student_id"]: (float(r["score"]), r["status"]) for r in csv.DictReader(f)}
                wrong = sorted(k for k in want if got.get(k) != want[k])
                rows.append({"assignment": folder.name, "ok": not wrong, "students": len(got),
                             "mismatches": wrong, "csv": str(s.csv), "seconds": time.perf_counter() - t0,
                             "statuses": sorted({v[1] for v in got.values()})})
            except BaseException as exc:  # SystemExit from a stale release included: report, go on
                rows.append({"assignment": folder.name, "ok": False, "students": 0, "mismatches": [],
                             "error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - t0})
    finally:
        os.chdir(cwd)
    return rows


def write_report(out: Path, budget: str, lectures: list[dict], grading: list[dict] = ()) -> Path:
    claims = report.read_claims(out)
    lines = [f"# Vanishing Gradients and Fancy RNNs: main job report (budget `{budget}`)", ""]
    lines += ["## Lectures", "", "| lecture | status | seconds |", "|---|---|---|"]
    for r in lectures:
        lines.append(f"| {r['lecture']} | {'ok' if r['ok'] else 'FAILED: ' + r.get('error', '')} | {r['seconds']:.1f} |")
    if grading:
        lines += ["", "## Sample classes graded (release fresh, every grade against expected.csv)", "",
                  "| assignment | students | matches expected | seconds | grades |", "|---|---|---|---|---|"]
        for g in grading:
            verdict = "yes" if g["ok"] else ("NO: " + (g.get("error") or ", ".join(g["mismatches"])))
            lines.append(f"| {g['assignment']} | {g['students']} | {verdict} | {g['seconds']:.0f} | {g.get('csv', '')} |")
    lines += ["", "## Measured claims", ""]
    if not claims:
        lines.append("(no claims recorded)")
    for c in claims:
        nums = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in c.items() if k not in ("section", "claim", "holds", "kind", "notebook")
                         and v not in (None, [], ""))
        verdict = ("illustration (not counted)" if c.get("kind") == "illustration"
                   else "holds" if c["holds"] else "DOES NOT HOLD")
        lines.append(f"- **{c['section']}**: {c['claim']} — {verdict}" + (f" ({nums})" if nums else ""))
    figs = sorted((out / "figures").glob("*.png")) if (out / "figures").exists() else []
    lines += ["", "## Figures", ""] + [f"- `{f.relative_to(out)}`" for f in figs]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run the course's main job.")
    ap.add_argument("--budget", default="default", choices=budget_mod.LEVELS)
    ap.add_argument("--out", default=str(ROOT / "build"), help="output folder (default: build/)")
    ap.add_argument("--only", nargs="*", help="run only lectures whose name contains one of these")
    ap.add_argument("--no-grading", action="store_true", help="skip grading the sample classes")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "claims.jsonl").unlink(missing_ok=True)
    lectures = run_lectures(out, args.budget, args.only)
    grading = [] if args.no_grading else grade_sample_classes(out)
    path = write_report(out, args.budget, lectures, grading)
    (out / "lectures.json").write_text(json.dumps(lectures, indent=1))
    (out / "run.json").write_text(json.dumps(run_settings(args.budget), indent=1))  # for coursetools.readme_claims
    print(path.read_text())
    print(f"report: {path}\nexecuted lectures: {out / 'lectures'}\nfigures: {out / 'figures'}")
    # the static site of the executed lectures (and screenshots of its pages): coursetools/site.py
    from . import site

    site_result = site.publish(out)
    failed = [r for r in lectures if not r["ok"]]
    records = report.read_claims(out)
    claims_failed = report.failed_claims(records)
    grading_failed = [g for g in grading if not g["ok"]]
    print(summary_line(records, failed, grading_failed, site_result["ok"]))
    return 1 if failed or claims_failed or grading_failed or not site_result["ok"] else 0


def run_settings(budget: str) -> dict:
    """What the README's generated claims table says about the run: budget, torch, CPUs, date (UTC)."""
    import datetime
    import os

    import torch

    return {"budget": budget, "torch": torch.__version__, "cpus": os.cpu_count(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")}


def summary_line(records: list[dict], failed_lectures=(), failed_grading=(), site_ok=True) -> str:
    """The main job's last line: ``OK: ...`` or ``FAILED: ...`` naming each claim that did not hold
    (with its lecture), each lecture that did not run, each sample class that graded wrong."""
    bad = report.failed_claims(records)
    counted = [c for c in records if c.get("kind", "claim") == "claim"]
    problems = [f"claim did not hold [{c.get('notebook') or c['section']}]: {c['claim']}" for c in bad]
    problems += [f"lecture did not run: {r['lecture']}" for r in failed_lectures]
    problems += [f"sample class graded wrong: {g['assignment']}" for g in failed_grading]
    if not site_ok:
        problems.append("site check failed")
    if not problems:
        return f"OK: all {len(counted)} measured claims hold"
    return f"FAILED ({len(bad)} of {len(counted)} claims did not hold): " + "; ".join(problems)


if __name__ == "__main__":
    sys.exit(main())
