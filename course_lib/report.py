"""The main job's text report: lectures record each measured claim as they run.

:func:`record_claim` (what :func:`course_lib.claims.show` calls) appends a
:class:`course_lib.claims.Claim` as one JSON line to ``$COURSE_OUTPUT_DIR/claims.jsonl`` when the
main job or the notebook tests run a lecture, and does nothing otherwise (a reader running a
notebook just sees the printed claim). Each line carries the section (``"Lecture 3"``), the
notebook that recorded it (``$COURSE_NOTEBOOK``, set by :func:`coursetools.notebooks.execute`),
the sentence, whether it holds, its kind (``claim`` or ``illustration``) and its numbers.

:func:`read_claims` reads them back and :func:`failed_claims` lists the counted claims that did not
hold: tests/test_notebooks.py fails a lecture on one, and the main job names each on its last line.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def _write(line: dict) -> None:
    out = os.environ.get("COURSE_OUTPUT_DIR")
    if not out:
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    line = {"notebook": os.environ.get("COURSE_NOTEBOOK", ""), **line}
    with open(Path(out) / "claims.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def record_claim(claim, section: str) -> bool:
    """Record a :class:`course_lib.claims.Claim` under ``section``; returns whether it holds."""
    _write({"section": section, **claim.as_record()})
    return bool(claim.holds)


def record(section: str, claim: str, holds: bool, **numbers) -> bool:
    """Record a claim given as a sentence and a verdict (older form of :func:`record_claim`).

    Returns ``holds`` so a caller can print or assert it.
    """
    line = {"section": section, "claim": claim, "holds": bool(holds), "kind": "claim"}
    line.update({k: (float(v) if isinstance(v, (int, float)) else str(v)) for k, v in numbers.items()})
    _write(line)
    return bool(holds)


def read_claims(out_dir) -> list[dict]:
    """Every recorded claim in ``out_dir/claims.jsonl``, in order (dicts; see :func:`record_claim`)."""
    path = Path(out_dir) / "claims.jsonl"
    if not path.exists():
        return []
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def failed_claims(records, notebook: str | None = None) -> list[dict]:
    """The counted claims among ``records`` (from :func:`read_claims`) that did not hold.

    ``notebook``: only those recorded by that notebook (its file stem, e.g. ``"03_lstm"``).
    """
    return [c for c in records if c.get("kind", "claim") == "claim" and not c["holds"]
            and (notebook is None or c.get("notebook") == notebook)]
