"""The main job's text report: lectures record each measured claim as they run.

``record("lecture 1", "tanh RNN, sigma=0.9: measured decay <= bound", True, value=0.87)``
appends a line to ``$COURSE_OUTPUT_DIR/claims.jsonl`` when the main job runs, and does nothing
otherwise (a reader running a notebook just sees the printed number).
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def record(section: str, claim: str, holds: bool, **numbers) -> bool:
    """Record a claim and whether it held; returns ``holds`` so a notebook can print or assert it."""
    out = os.environ.get("COURSE_OUTPUT_DIR")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        line = {"section": section, "claim": claim, "holds": bool(holds)}
        line.update({k: (float(v) if isinstance(v, (int, float)) else str(v)) for k, v in numbers.items()})
        with open(Path(out) / "claims.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
    return bool(holds)


def read_claims(out_dir) -> list[dict]:
    path = Path(out_dir) / "claims.jsonl"
    if not path.exists():
        return []
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
