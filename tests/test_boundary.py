"""The sandbox boundary (autograder/boundary.py): what runs beside student code never reaches the judge.

Every module the sandbox receives is listed in one place; the copier copies exactly those, and none
of them imports ``course_lib.reference`` (the answers) or ``course_lib.checks`` (the verdicts).
``course_lib`` (course content, partly copied into the sandbox) imports neither ``autograder`` nor
``coursetools``.
"""
import ast
from pathlib import Path

from autograder import boundary, sandbox

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(source: str, module: str) -> set[str]:
    """Every module ``source`` imports (at any depth in the file), relative imports resolved against
    ``module`` (its dotted name); ``from a import b`` yields both ``a`` and ``a.b``."""
    out = set()
    package = module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, *([node.module] if node.module else [])])
            out.add(name)
            out.update(f"{name}.{a.name}" for a in node.names)
    return out


def reaches(names: set[str], forbidden) -> list[str]:
    return sorted(n for n in names for f in forbidden if n == f or n.startswith(f + "."))


def sandbox_modules() -> dict[str, Path]:
    """{dotted name of the source module: file} for everything the boundary declares."""
    mods = {}
    for rel, f in boundary.library_files().items():
        parts = ["course_lib", *Path(rel).with_suffix("").parts]
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    for f in boundary.RUNTIME.values():
        mods[".".join(f.relative_to(ROOT).with_suffix("").parts)] = f
    return mods


def test_no_sandbox_module_imports_the_judge():
    mods = sandbox_modules()
    assert "course_lib.train" in mods and "autograder._runner" in mods and "course_lib.checks._protocol_rnn" in mods
    for name, f in mods.items():
        bad = reaches(imported_modules(f.read_text(), name + (".__init__" if f.name == "__init__.py" else "")),
                      boundary.JUDGE)
        assert not bad, f"{f.relative_to(ROOT)} runs in the sandbox but imports {bad}"


def test_the_import_scan_catches_every_form():
    """The scan is what the boundary rests on: each way of writing an import of the judge is found."""
    for src, module in [("import course_lib.reference", "course_lib.models"),
                        ("from course_lib import checks", "course_lib.models"),
                        ("from ..reference import lstm_cell", "course_lib.tasks.corpus"),
                        ("from . import reference", "course_lib.models"),
                        ("from .checks._core import verdict", "course_lib.train"),
                        ("def f():\n    from course_lib.checks import _core\n", "course_lib.plots")]:
        assert reaches(imported_modules(src, module), boundary.JUDGE), src
    for src, module in [("from . import _validate", "course_lib.models"),
                        ("from .synthetic import x", "course_lib.tasks.corpus"),
                        ("import course_lib.referenced", "course_lib.models")]:
        assert not reaches(imported_modules(src, module), boundary.JUDGE), src


def test_course_lib_imports_neither_autograder_nor_coursetools():
    for f in sorted((ROOT / "course_lib").rglob("*.py")):
        rel = f.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts if rel.name != "__init__" else (*rel.parts[:-1], "__init__"))
        bad = reaches(imported_modules(f.read_text(), name), ("autograder", "coursetools"))
        assert not bad, f"{f.relative_to(ROOT)} imports {bad}: course content must not depend on the grader or the tooling"


def test_the_copier_copies_exactly_the_declared_modules(tmp_path):
    lib = sandbox.prepare_library(tmp_path / "lib")
    got = {p.relative_to(tmp_path / "lib").as_posix(): p for p in (tmp_path / "lib").rglob("*") if p.is_file()}
    got = {k: v for k, v in got.items() if not k.startswith("_grader/mpl/")}
    want = {**{f"course_lib/{rel}": f for rel, f in boundary.library_files().items()},
            **{f"_grader/{n}": f for n, f in boundary.RUNTIME.items()}}
    assert set(got) == set(want) | {f"course_lib/{rel}" for rel in boundary.STUBS}
    for k, f in want.items():
        assert got[k].read_bytes() == f.read_bytes(), k
    assert lib == tmp_path / "lib" / "course_lib"
    assert "experiments/__init__.py" not in {k.removeprefix("course_lib/") for k in got}  # imports reference
