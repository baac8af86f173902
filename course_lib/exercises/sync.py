"""The notebook side of each spec: ``solutions/<assignment>/<assignment>.ipynb`` rewritten from the registry.

What the spec decides in the solution notebook (and so, through ``python -m autograder release``, in the
student's release):

- the answer cell's ``def`` line and one-line docstring (the stub the student sees), and its answer
  between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` when the spec has a ``solution``;
- the locked test cell ``test_<name>``: its code (visible check, hidden check) and its points;
- the points in the introduction's table (a new exercise gets a row) and in the section heading;
- the ``from course_lib.checks import ...`` line.

Everything else (the explanation, figures, the ungraded parts) is the notebook's own. A new exercise's
answer and test cells are inserted after the last markdown cell that names it as ```name(``` (its
explanation). :func:`problems` lists where a notebook and its spec disagree (``check-release`` fails then).
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from ._spec import Assignment, Spec, def_line

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
TEST_META = {"grade": True, "locked": True, "schema_version": 3, "solution": False, "task": False}
ANSWER_META = {"grade": False, "locked": False, "schema_version": 3, "solution": True, "task": False}


def notebook_path(a: Assignment, root: Path = ROOT) -> Path:
    return root / "solutions" / a.folder / f"{a.folder}.ipynb"


def _gid(cell) -> str | None:
    return cell["metadata"].get("nbgrader", {}).get("grade_id")


def _src(cell) -> str:
    s = cell["source"]
    return "".join(s) if isinstance(s, list) else s


def test_source(spec: Spec) -> str:
    src = f"check_{spec.name}({spec.name})"
    if spec.hidden_tests:
        src += f"\n### BEGIN HIDDEN TESTS\ncheck_{spec.name}({spec.name}, hidden=True)\n### END HIDDEN TESTS"
    return src


def _answer_source(spec: Spec, old: str | None) -> str:
    head = f'{def_line(spec.signature)}\n    """{spec.doc}"""\n'
    if old is None:
        body = spec.solution or "raise NotImplementedError()"
        return head + f"    {BEGIN}\n" + _indent(body) + f"\n    {END}"
    pattern = rf'^def {spec.name}\(.*?\):\n(    """.*?"""\n)?'
    if not re.search(pattern, old, flags=re.M | re.S):
        raise ValueError(f"the answer cell {spec.answer_cell!r} defines no `{spec.name}`")
    new = re.sub(pattern, lambda m: head, old, count=1, flags=re.M | re.S)
    if spec.solution is not None:
        new = re.sub(rf"({re.escape(BEGIN)}\n).*?(\n[ \t]*{re.escape(END)})",
                     lambda m: m[1] + _indent(spec.solution) + m[2], new, count=1, flags=re.S)
    return new


def _indent(code: str) -> str:
    return "\n".join("    " + ln if ln.strip() else "" for ln in code.strip("\n").splitlines())


def _cell(cell_id, source, nbgrader=None, cell_type="code") -> dict:
    c = {"cell_type": cell_type, "id": cell_id, "metadata": {}, "source": source}
    if nbgrader:
        c["metadata"]["nbgrader"] = nbgrader
    if cell_type == "code":
        c.update(execution_count=None, outputs=[])
    return c


def _insert_new(cells: list, spec: Spec) -> None:
    """A new exercise: answer and test cell after the last markdown cell that names ```name(```."""
    marks = [k for k, c in enumerate(cells) if c["cell_type"] == "markdown" and f"`{spec.name}(" in _src(c)]
    if not marks:
        raise ValueError(f"no markdown cell explains `{spec.name}(...)`: write its explanation first "
                         f"(a markdown cell that names `{spec.name}(`), then run the sync again")
    k = marks[-1] + 1
    cells[k:k] = [_cell(f"{spec.name}-answer", _answer_source(spec, None),
                        {**ANSWER_META, "grade_id": spec.answer_cell}),
                  _cell(f"{spec.name}-test", "", {**TEST_META, "grade_id": f"test_{spec.name}"})]


def _points_in_heading(cells: list, k: int, points: int) -> None:
    """The section heading above the answer cell says the points."""
    for j in range(k - 1, -1, -1):
        c = cells[j]
        if c["cell_type"] == "markdown" and _src(c).startswith("## "):
            first, _, rest = _src(c).partition("\n")
            first = re.sub(r"\(\d+ points?\)", f"({points} point{'s' if points != 1 else ''})", first)
            c["source"] = first + ("\n" + rest if rest else "")
            return


def _table(cells: list, a: Assignment) -> None:
    """Points of each exercise in the introduction's table; a row for an exercise that has none."""
    intro = cells[0]
    lines = _src(intro).split("\n")
    rows = [k for k, ln in enumerate(lines) if re.match(r"\| *\d+ *\|", ln)]
    for spec in a.specs:
        mine = [k for k in rows if f"`{spec.name}" in lines[k]]
        if mine:
            parts = lines[mine[0]].split("|")
            parts[-2] = f" {spec.points} "
            lines[mine[0]] = "|".join(parts)
        elif rows:
            n = int(lines[rows[-1]].split("|")[1]) + 1
            lines.insert(rows[-1] + 1, f"| {n} | `{spec.signature}` | {spec.points} |")
            rows.append(rows[-1] + 1)
    intro["source"] = "\n".join(lines)


def _imports(cells: list, a: Assignment) -> None:
    """``from course_lib.checks import ...``: every check of the assignment (and the ones it had)."""
    pat = re.compile(r"^from course_lib\.checks import (\([^)]*\)|[^\n]*)", re.M)
    for c in cells:
        if c["cell_type"] != "code" or not pat.search(_src(c)):
            continue
        m = pat.search(_src(c))
        have = set(re.findall(r"\w+", m[1]))
        want = have | {f"check_{s.name}" for s in a.specs}
        if want != have:
            c["source"] = _src(c)[: m.start()] + _import_line(sorted(want)) + _src(c)[m.end():]
        return


def _import_line(names: list, width: int = 120) -> str:
    one = "from course_lib.checks import " + ", ".join(names)
    if len(one) <= width:
        return one
    lines, cur, pad = [], "from course_lib.checks import (", " " * len("from course_lib.checks import (")
    for k, n in enumerate(names):
        piece = n + ("," if k < len(names) - 1 else ")")
        if len(cur) + len(piece) + 1 > width and cur.strip():
            lines.append(cur.rstrip())
            cur = pad
        cur += piece + " "
    return "\n".join(lines + [cur.rstrip()])


def synced(nb: dict, a: Assignment) -> dict:
    """The notebook ``nb`` as the specs of ``a`` say it must be (a new dict; ``nb`` is not changed)."""
    nb = copy.deepcopy(nb)
    cells = nb["cells"]
    for spec in a.specs:
        if not any(_gid(c) == spec.answer_cell for c in cells):
            _insert_new(cells, spec)
        k = next(i for i, c in enumerate(cells) if _gid(c) == spec.answer_cell)
        cells[k]["source"] = _answer_source(spec, _src(cells[k]))
        _points_in_heading(cells, k, spec.points)
        test = next((c for c in cells if _gid(c) == f"test_{spec.name}"), None)
        if test is None:
            raise ValueError(f"{a.folder}: no test cell test_{spec.name}")
        test["source"] = test_source(spec)
        test["metadata"]["nbgrader"] = {**test["metadata"]["nbgrader"], "grade": True, "points": spec.points}
    _table(cells, a)
    _imports(cells, a)
    return nb


def _normalized(nb: dict) -> str:
    import importlib.util

    spec = importlib.util.spec_from_file_location("normalize_notebooks", ROOT / "scripts" / "normalize_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.dumps(mod.normalize(nb))


def problems(a: Assignment, root: Path = ROOT) -> list:
    """Where the solution notebook and the specs of ``a`` disagree (empty: they agree)."""
    path = notebook_path(a, root)
    nb = json.loads(path.read_text())
    try:
        new = synced(nb, a)
    except ValueError as exc:
        return [str(exc)]
    old_cells = {c.get("id"): _src(c) for c in nb["cells"]}
    out = []
    for c in new["cells"]:
        if c.get("id") not in old_cells:
            out.append(f"{a.folder}: cell {c['id']} is missing")
        elif old_cells[c["id"]] != _src(c):
            out.append(f"{a.folder}: cell {c['id']} ({_gid(c) or c['cell_type']}) differs from its spec")
    if not out and _normalized(new) != _normalized(nb):
        out.append(f"{a.folder}: the nbgrader metadata (points) differs from the specs")
    return out


def write(a: Assignment, root: Path = ROOT) -> bool:
    """Rewrite the solution notebook from the specs; True when it changed."""
    path = notebook_path(a, root)
    old = path.read_text()
    new = _normalized(synced(json.loads(old), a))
    if new != old:
        path.write_text(new)
    return new != old
