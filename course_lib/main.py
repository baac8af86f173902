"""The course's main job: ``python -m course_lib.main`` (what ``make run`` calls).

Runs every lecture top to bottom at the chosen budget (so every ``course_lib`` experiment runs and
every figure is drawn), keeps the executed notebooks, collects the figures, and writes a short
report of each lecture's measured claims and run time to ``build/report.md``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from . import budget as budget_mod
from . import notebooks, report

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


def write_report(out: Path, budget: str, lectures: list[dict]) -> Path:
    claims = report.read_claims(out)
    lines = [f"# Vanishing Gradients and Fancy RNNs: main job report (budget `{budget}`)", ""]
    lines += ["## Lectures", "", "| lecture | status | seconds |", "|---|---|---|"]
    for r in lectures:
        lines.append(f"| {r['lecture']} | {'ok' if r['ok'] else 'FAILED: ' + r.get('error', '')} | {r['seconds']:.1f} |")
    lines += ["", "## Measured claims", ""]
    if not claims:
        lines.append("(no claims recorded)")
    for c in claims:
        nums = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in c.items() if k not in ("section", "claim", "holds"))
        lines.append(f"- **{c['section']}**: {c['claim']} — {'holds' if c['holds'] else 'DOES NOT HOLD'}"
                     + (f" ({nums})" if nums else ""))
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
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "claims.jsonl").unlink(missing_ok=True)
    lectures = run_lectures(out, args.budget, args.only)
    path = write_report(out, args.budget, lectures)
    (out / "lectures.json").write_text(json.dumps(lectures, indent=1))
    print(path.read_text())
    print(f"report: {path}\nexecuted lectures: {out / 'lectures'}\nfigures: {out / 'figures'}")
    # the static site of the executed lectures (and screenshots of its pages): course_lib/site.py
    from . import site

    site_result = site.publish(out)
    failed = [r for r in lectures if not r["ok"]]
    claims_failed = [c for c in report.read_claims(out) if not c["holds"]]
    return 1 if failed or claims_failed or not site_result["ok"] else 0


if __name__ == "__main__":
    sys.exit(main())
