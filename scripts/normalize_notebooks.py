"""Strip outputs and volatile metadata from notebooks so diffs stay readable.

    python scripts/normalize_notebooks.py [--check] [PATH ...]

With no PATH: every ``*.ipynb`` under lectures/, solutions/, assignments/. ``--check`` changes
nothing and exits 1 listing the notebooks that are not normalised (the tests run it).
nbgrader's cell metadata is kept: it is what makes a cell a solution or a test.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIRS = ("lectures", "solutions", "assignments")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
KEEP_CELL_META = ("nbgrader", "tags", "deletable", "editable")


def normalize(nb: dict) -> dict:
    nb = dict(nb)
    meta = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    nb["metadata"] = meta
    nb["nbformat"], nb["nbformat_minor"] = 4, 5
    cells = []
    for i, cell in enumerate(nb.get("cells", [])):
        c = {"cell_type": cell["cell_type"]}
        c["id"] = cell.get("id") or f"cell-{i}"
        c["metadata"] = {k: cell.get("metadata", {})[k] for k in KEEP_CELL_META if k in cell.get("metadata", {})}
        src = cell.get("source", "")
        c["source"] = "".join(src) if isinstance(src, list) else src
        if cell["cell_type"] == "code":
            c["execution_count"] = None
            c["outputs"] = []
        elif "attachments" in cell:
            c["attachments"] = cell["attachments"]
        cells.append(c)
    nb["cells"] = cells
    return nb


def dumps(nb: dict) -> str:
    # nbformat's own on-disk style: indent 1, sorted keys, source as a list of lines
    out = json.loads(json.dumps(nb))
    for c in out["cells"]:
        c["source"] = c["source"].splitlines(keepends=True)
    return json.dumps(out, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def targets(paths) -> list[Path]:
    if paths:
        return [Path(p) for p in paths]
    return sorted(p for d in DIRS for p in (ROOT / d).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("paths", nargs="*")
    args = ap.parse_args(argv)
    stale = []
    for path in targets(args.paths):
        text = path.read_text(encoding="utf-8")
        new = dumps(normalize(json.loads(text)))
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    if args.check and stale:
        print("not normalised (run python scripts/normalize_notebooks.py):")
        for p in stale:
            print("  ", p)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
