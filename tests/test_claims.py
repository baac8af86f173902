"""The claims API (course_lib/claims.py), its record for the main job, and the main job's last line."""
import json

import numpy as np
import pytest

from course_lib import claims as C
from coursetools import main as main_mod
from course_lib import report


def test_every_takes_the_worst_seed_and_fails_on_any_seed():
    c = C.Claim.every("nMSE below 0.1 in every seed", [0.01, 0.05, 0.02], "<", 0.1, seeds=(0, 1, 2))
    assert c.holds and c.value == 0.05 and c.seeds == (0, 1, 2) and c.counted
    bad = C.Claim.every("nMSE below 0.1 in every seed", [0.01, 0.2, 0.02], "<", 0.1, seeds=(0, 1, 2))
    assert not bad.holds and bad.value == 0.2
    assert not C.Claim.every("finite", [1.0, np.nan], ">", 0.5).holds  # a NaN never passes
    assert C.failed([c, bad]) == [bad]
    assert "[DOES NOT HOLD]" in str(bad) and "0.2 < 0.1" in str(bad)


def test_between_is_two_sided_and_illustrations_never_count():
    assert C.Claim.between("near 1", [0.9, 1.1], 0.7, 1.3).holds
    assert not C.Claim.between("near 1", [0.9, 1.4], 0.7, 1.3).holds
    assert not C.Claim.between("near 1", [0.5], 0.7, 1.3).holds
    ill = C.Claim.illustration("ratio 1 at distance 0", ratio=1.0)
    assert not ill.counted and C.failed([ill]) == [] and "[illustration]" in str(ill)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="op"):
        C.Claim.compare("x", 1.0, "=>", 2.0)
    with pytest.raises(ValueError, match="empty"):
        C.Claim.every("x", [], "<", 1.0)
    with pytest.raises(ValueError, match="low"):
        C.Claim.between("x", [1.0], 2.0, 1.0)
    with pytest.raises(ValueError, match="kind"):
        C.Claim("x", True, kind="maybe")


def test_older_dicts_convert_and_claims_read_like_them():
    a = C.from_dict({"claim": "a", "holds": False, "numbers": {"x": 1.0, "seeds": "[0, 1]"}})
    b = C.from_dict({"claim": "b", "holds": True, "x": 2.0, "seeds": [0, 1, 2]})
    assert not a.holds and a["numbers"]["x"] == 1.0 and b.seeds == (0, 1, 2) and b["x"] == 2.0
    assert b["claim"] == "b" and b["holds"]


def test_show_records_each_claim_tagged_with_its_notebook(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setenv("COURSE_NOTEBOOK", "03_lstm")
    shown = C.show([C.Claim.every("a", [1, 2], ">", 0, seeds=(0, 1)), C.Claim.compare("b", 3, "<", 1),
                    C.Claim.illustration("c")], "Lecture 3")
    assert len(shown) == 3 and "[DOES NOT HOLD] b" in capsys.readouterr().out
    records = report.read_claims(tmp_path)
    assert [r["notebook"] for r in records] == ["03_lstm"] * 3
    assert records[0]["seeds"] == [0, 1] and records[0]["per_seed"] == [1.0, 2.0]
    json.dumps(records)
    assert [r["claim"] for r in report.failed_claims(records)] == ["b"]
    assert report.failed_claims(records, notebook="01_vanishing_gradients") == []


def test_main_job_ends_naming_each_failed_claim():
    records = [{"notebook": "03_lstm", "section": "Lecture 3", "claim": "LSTM beats RNN", "holds": False,
                "kind": "claim"},
               {"notebook": "01_x", "section": "Lecture 1", "claim": "ok", "holds": True, "kind": "claim"},
               {"notebook": "01_x", "section": "Lecture 1", "claim": "shown", "holds": False,
                "kind": "illustration"}]
    line = main_mod.summary_line(records)
    assert line.startswith("FAILED (1 of 2 claims") and "[03_lstm]: LSTM beats RNN" in line and "shown" not in line
    assert main_mod.summary_line(records[1:]) == "OK: all 1 measured claims hold"
