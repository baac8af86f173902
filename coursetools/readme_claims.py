"""The README's table of measured claims, generated from a run's recorded claims, never typed.

    python -m coursetools.readme_claims --from build      # after `make run`: snapshot, then rewrite README.md
    python -m coursetools.readme_claims --check           # exit 1 when README.md disagrees with the snapshot

``--from DIR`` reads the claims a main-job run recorded (``DIR/claims.jsonl``, written by
:func:`course_lib.claims.show` through :func:`course_lib.report.record_claim`) and its settings
(``DIR/run.json``: budget, torch version, CPU count, date; ``DIR/lectures.json``: seconds per
lecture), writes them to the committed snapshot :data:`SNAPSHOT`, and rewrites the README section
between :data:`BEGIN` and :data:`END` from it. Every number in that section is a recorded value,
threshold or per-seed number, formatted by :func:`course_lib.claims.Claim` itself; the tests check
that the section is exactly :func:`section` of the snapshot (tests/test_readme_claims.py) and that
the snapshot names the claims the lectures make today (tests/test_notebooks.py, from the lectures
executed at the ci budget), so a claim added, removed or renamed fails CI until the snapshot is
regenerated.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from course_lib.claims import Claim, format_value, to_plain

from . import notebooks

ROOT = notebooks.ROOT
SNAPSHOT = ROOT / "measured" / "claims.json"
README = ROOT / "README.md"
BEGIN = "<!-- BEGIN claims: generated from measured/claims.json by python -m coursetools.readme_claims -->"
END = "<!-- END claims -->"
SKIP = ("notebook", "section", "claim", "holds", "kind", "value", "op", "threshold", "seeds")


def snapshot_from(run_dir) -> dict:
    """The snapshot of one run: ``{"run": {budget, torch, cpus, date}, "lectures": [...], "claims": [...]}``.

    Raises FileNotFoundError when ``run_dir`` has no ``claims.jsonl`` (run ``make run`` first)."""
    from course_lib import report

    run_dir = Path(run_dir)
    if not (run_dir / "claims.jsonl").is_file():
        raise FileNotFoundError(f"{run_dir / 'claims.jsonl'} not found: run the main job first (make run)")
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    lectures = json.loads((run_dir / "lectures.json").read_text()) if (run_dir / "lectures.json").is_file() else []
    return {"run": run, "lectures": [{"lecture": r["lecture"], "seconds": round(float(r["seconds"]), 1)}
                                     for r in lectures if r.get("ok")],
            "claims": report.read_claims(run_dir)}


def _measured(c: dict) -> str:
    claim = Claim(c["claim"], c["holds"], c.get("value"), c.get("op"),
                  tuple(c["threshold"]) if isinstance(c.get("threshold"), list) else c.get("threshold"),
                  tuple(c.get("seeds") or ()), kind=c.get("kind", "claim"))
    parts = [claim.test_text()] if claim.op else []
    parts += [f"{k} {format_value(to_plain(v))}" for k, v in c.items() if k not in SKIP and v not in (None, [], "")]
    return "; ".join(p for p in parts if p).replace("|", r"\|")


def section(snap: dict) -> str:
    """The README's markdown between the markers: what run it is, then one row per recorded claim."""
    run, claims = snap.get("run", {}), snap["claims"]
    counted = [c for c in claims if c.get("kind", "claim") == "claim"]
    held = sum(bool(c["holds"]) for c in counted)
    where = ", ".join(f"{k} {run[k]}" for k in ("torch", "cpus", "date") if k in run)
    lines = [f"Generated from the claims one run recorded (budget `{run.get('budget', '?')}`"
             + (f"; {where}" if where else "") + f"): {held} of {len(counted)} counted claims held. "
             "Illustrations (true by construction, or a timing on that machine) are shown, never counted.", ""]
    if snap.get("lectures"):
        secs = ", ".join(f"{r['lecture'][:2]}: {r['seconds']:g} s" for r in snap["lectures"])
        lines += [f"Lectures' run times in that run: {secs}.", ""]
    lines += ["| lecture | claim | measured | seeds | verdict |", "|---|---|---|---|---|"]
    for c in claims:
        verdict = ("illustration" if c.get("kind") == "illustration" else "holds" if c["holds"] else "DOES NOT HOLD")
        seeds = ", ".join(str(s) for s in c.get("seeds") or ())
        name = c["claim"].replace("|", r"\|")  # a pipe inside a table cell is escaped
        lines.append(f"| {c.get('notebook', '')[:2] or c['section']} | {name} | "
                     f"{_measured(c)} | {seeds} | {verdict} |")
    return "\n".join(lines)


def rewritten(text: str, snap: dict) -> str:
    """``text`` (the README) with the section between the markers replaced. Raises ValueError without them."""
    head, sep, rest = text.partition(BEGIN)
    if not sep or END not in rest:
        raise ValueError(f"README.md lacks the markers {BEGIN!r} ... {END!r}")
    return head + BEGIN + "\n" + section(snap) + "\n" + END + rest.partition(END)[2]


def claim_key(record: dict) -> tuple[str, str]:
    """(notebook, the sentence with every number replaced by '#'): what identifies a claim across budgets."""
    return record.get("notebook", ""), re.sub(r"\d[\d.,e+\-]*", "#", record["claim"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Generate the README's table of measured claims.")
    ap.add_argument("--from", dest="run_dir", help="a main-job output folder (e.g. build): snapshot it first")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 when README.md is stale")
    args = ap.parse_args(argv)
    if args.run_dir:
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(json.dumps(snapshot_from(args.run_dir), indent=1) + "\n", encoding="utf-8")
    snap = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    old = README.read_text(encoding="utf-8")
    new = rewritten(old, snap)
    if args.check:
        if new != old:
            print("README.md's claims section is stale: run python -m coursetools.readme_claims")
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    print(f"README.md: {len(snap['claims'])} claims from {SNAPSHOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
