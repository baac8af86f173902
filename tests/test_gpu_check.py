"""scripts/gpu_check.sh runs end to end without a GPU (``--dry-run``), and grading says it is CPU-only.

The dry run marks every step that needs CUDA ``skipped`` with its reason and runs the same steps on
the CPU at the ci budget with tiny sizes (about 30 s of CPU). The check itself, with CUDA, is run by
hand on a GPU machine: ``bash scripts/gpu_check.sh OUTDIR`` (see the README's GPU section).
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import __main__ as cli

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["environment", "cuda_tests", "charlm_full", "bench_cells", "lecture07_default", "lecture07_full"]


@pytest.mark.slow
def test_dry_run_writes_every_step_and_skips_cuda_saying_why(tmp_path):
    out = tmp_path / "gpu"
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--no-setup", "--dry-run", str(out)],
                       cwd=ROOT, env=dict(os.environ, PY=sys.executable), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    steps = result["steps"]
    assert result["dry_run"] is True and list(steps) == STEPS
    assert all(s["status"] in ("ok", "skipped") and s["seconds"] >= 0 for s in steps.values())
    assert steps["environment"]["status"] == "ok" and steps["environment"]["cuda"]["status"] == "skipped"
    for name in STEPS[1:]:  # everything that needs CUDA: skipped, with the reason
        assert steps[name]["status"] == "skipped" and steps[name]["reason"], name
    tests = steps["cuda_tests"]["tests"]
    assert len(tests) >= 30 and any("test_cuda::" in t for t in tests)
    assert all(t["outcome"] == "skipped" and "needs a CUDA GPU" in t["message"] for t in tests.values())
    lm = steps["charlm_full"]["dry_run_cpu"]  # the CPU stand-ins ran and gave numbers
    assert lm["status"] == "ok" and lm["device"] == "cpu" and lm["final_val_bpc"] < lm["unigram_bpc"]
    assert lm["seconds_per_epoch"] > 0 and lm["tokens_per_second"] > 0
    bench = steps["bench_cells"]["dry_run_cpu"]
    assert bench["status"] == "ok" and bench["results"][0]["ms_per_step"]["loop"]["lstm"][0] > 0
    lec = steps["lecture07_default"]["dry_run_cpu"]
    assert lec["status"] == "ok" and lec["claims"] and all(c["holds"] for c in lec["claims"])
    assert math.isfinite(lec["seconds"])
    summary = (out / "summary.txt").read_text().splitlines()
    assert "DRY RUN" in summary[0] and [l.split()[0] for l in summary[1:]] == STEPS


def test_grade_says_grading_is_cpu_only_when_course_device_asks_for_cuda(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # not the repository root: main() stops right after the note, grading nothing
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    assert cli.main(["grade", "01_gradient_flow", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "grading is CPU-only: COURSE_DEVICE=cuda is ignored" in out and "/dev/nvidia" in out
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert cli.main(["grade", "01_gradient_flow", str(tmp_path)]) == 2
    assert "CPU-only" not in capsys.readouterr().out
