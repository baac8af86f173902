"""The README's table of measured claims is generated from a run's records (coursetools/readme_claims.py):
the committed section is exactly what the committed snapshot gives, so no number in it is typed.
(tests/test_notebooks.py checks that the snapshot names the claims the lectures make today.)"""
import json

import pytest

from course_lib.claims import Claim
from coursetools import readme_claims as R


def test_readme_section_is_exactly_the_snapshot():
    snap = json.loads(R.SNAPSHOT.read_text(encoding="utf-8"))
    text = R.README.read_text(encoding="utf-8")
    assert R.rewritten(text, snap) == text, "README.md is stale: run python -m coursetools.readme_claims"
    assert R.main(["--check"]) == 0
    # the committed run was a green one, and every lecture recorded claims in it
    counted = [c for c in snap["claims"] if c.get("kind", "claim") == "claim"]
    assert counted and all(c["holds"] for c in counted)
    assert {c["notebook"][:2] for c in counted} == {f"0{k}" for k in range(1, 8)}
    assert snap["run"]["budget"] in ("ci", "default", "full")


def test_section_shows_recorded_values_thresholds_seeds_and_verdicts():
    records = [dict(Claim.every("nMSE below 0.1 in every seed", [0.0123, 0.0456], "<", 0.1, seeds=(0, 1)).as_record(),
                    notebook="03_lstm", section="Lecture 3"),
               dict(Claim.compare("bad", 3.0, "<", 1.0).as_record(), notebook="03_lstm", section="Lecture 3"),
               dict(Claim.illustration("time per epoch", seconds=12.3456).as_record(), notebook="07_x", section="L7")]
    snap = {"run": {"budget": "ci", "torch": "2.13.0"}, "lectures": [{"lecture": "03_lstm", "seconds": 41.2}],
            "claims": records}
    text = R.section(snap)
    assert "budget `ci`; torch 2.13.0): 1 of 2 counted claims held" in text
    assert "| 03 | nMSE below 0.1 in every seed | 0.0456 < 0.1; per_seed (0.0123, 0.0456) | 0, 1 | holds |" in text
    assert "| 03 | bad | 3 < 1 |  | DOES NOT HOLD |" in text
    assert "| 07 | time per epoch | seconds 12.3 |  | illustration |" in text
    assert "03: 41.2 s" in text


def test_markers_are_required_and_keys_ignore_numbers():
    with pytest.raises(ValueError, match="markers"):
        R.rewritten("no markers here", {"claims": []})
    a = {"notebook": "07_x", "claim": "bpc below 3.2 (this budget's target) on every seed"}
    b = {"notebook": "07_x", "claim": "bpc below 2.7 (this budget's target) on every seed"}
    assert R.claim_key(a) == R.claim_key(b) != R.claim_key({**b, "notebook": "06_x"})


def test_snapshot_needs_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="make run"):
        R.snapshot_from(tmp_path)
