"""Every lecture executes top to bottom at the ci budget, and every notebook is committed clean."""
import subprocess
import sys

import pytest

from course_lib import notebooks

LECTURES = notebooks.lecture_paths()


def test_notebooks_are_normalised():
    r = subprocess.run([sys.executable, str(notebooks.ROOT / "scripts" / "normalize_notebooks.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("path", LECTURES, ids=[p.stem for p in LECTURES])
def test_lecture_executes_at_ci_budget(path, tmp_path):
    nb, seconds = notebooks.execute(path, budget="ci", output_dir=tmp_path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # every code cell that draws must leave a figure, never a blank cell
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])), "no figure produced"
