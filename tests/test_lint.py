"""The linter (ruff, pinned in pyproject.toml's test extras, configured in its [tool.ruff]) finds nothing."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f"ruff check . (fix these; see pyproject.toml [tool.ruff]):\n{r.stdout}{r.stderr}"


def test_ruff_checks_what_the_configuration_says(tmp_path):
    """The rules are live: an unused import anywhere, and a public reference function without a
    docstring, are both reported (so an empty run above means something)."""
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    ref = tmp_path / "course_lib" / "reference"
    ref.mkdir(parents=True)
    (ref / "cells.py").write_text('"""Cells."""\n\n\ndef lstm_cell(x):\n    return x\n')
    (tmp_path / "coursetools").mkdir()
    (tmp_path / "coursetools" / "main.py").write_text('"""Main."""\nimport os\n\n\ndef run(x):\n    return x\n')
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                       cwd=tmp_path, capture_output=True, text=True)
    assert "course_lib/reference/cells.py:4:5: D103" in r.stdout, r.stdout + r.stderr
    assert "coursetools/main.py:2:8: F401" in r.stdout, r.stdout
    assert "coursetools/main.py:5:5: D103" not in r.stdout  # docstring rules only for the public API
