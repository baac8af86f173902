"""The code's shape: readable units and one home per helper (read with ``ast``, nothing imported).

- no function in ``course_lib/``, ``coursetools/``, ``autograder/`` or ``scripts/`` is longer than
  60 lines (its code from ``def`` to its last line, its docstring not counted: a public docstring
  gives shapes, units, errors, a source and a lecture, and that text should not be squeezed);
- no private name (``_x``) defined in one of the project's modules is imported into another, or
  read from it as ``module._x``: a helper two modules need gets a public name in one home
  (``course_lib._validate`` for argument checks, ``course_lib.seeding`` for seeds,
  ``course_lib.train`` for devices). Private *modules* of a package (``course_lib._validate``,
  ``course_lib.checks._protocol``) may be imported: their public names are the package's own API.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("course_lib", "coursetools", "autograder")
MAX_LINES = 60


def source_files():
    files = [f for p in PACKAGES for f in (ROOT / p).rglob("*.py")]
    return sorted(files + list((ROOT / "scripts").glob("*.py")))


def module_name(f: Path) -> str:
    parts = f.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(f): f for f in source_files()}


def function_lengths(tree):
    """(name, lines without the docstring, first line) of every function and method in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            doc = node.body[0] if node.body else None
            if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
                lines -= doc.end_lineno - doc.lineno + 1
            yield node.name, lines, node.lineno


def long_functions():
    out = {}
    for f in source_files():
        for name, lines, lineno in function_lengths(ast.parse(f.read_text())):
            if lines > MAX_LINES:
                out[f"{f.relative_to(ROOT).as_posix()}:{name}"] = (lines, lineno)
    return out


def test_no_function_is_longer_than_60_lines():
    too_long = long_functions()
    assert not too_long, "split these along the steps their docstrings name: " + ", ".join(
        f"{k} ({n} lines, line {at})" for k, (n, at) in sorted(too_long.items()))


def test_the_length_rule_counts_code_not_docstrings():
    doc = '    """' + "\n".join(["x"] * 30) + '"""\n'
    body = "".join(f"    a{i} = {i}\n" for i in range(58))
    (name, n, _), = function_lengths(ast.parse("def f():\n" + doc + body))
    assert n == 59  # the def line and 58 statements
    (name, n, _), = function_lengths(ast.parse("def f():\n" + body + "    a = 1\n    b = 2\n"))
    assert n == 61


def resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    base = parts[: len(parts) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def private_imports(source: str, module: str, is_package: bool, modules) -> list[str]:
    """Private names of the project's modules that ``source`` (module ``module``) imports or reads."""
    bad, aliases = [], {}
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = resolve(module, node, is_package)
            if target not in modules:
                continue
            for a in node.names:
                if f"{target}.{a.name}" in modules:  # a submodule, private or not
                    aliases[a.asname or a.name] = f"{target}.{a.name}"
                elif a.name.startswith("_") and not a.name.startswith("__"):
                    bad.append(f"{target}.{a.name}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name in modules:
                    aliases[a.asname or a.name] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")
                and f"{aliases[node.value.id]}.{node.attr}" not in modules):
            bad.append(f"{aliases[node.value.id]}.{node.attr}")
    return sorted(set(bad))


def test_no_private_name_is_imported_across_modules():
    found = {}
    for name, f in MODULES.items():
        bad = private_imports(f.read_text(), name, f.name == "__init__.py", MODULES)
        if bad:
            found[f.relative_to(ROOT).as_posix()] = bad
    assert not found, f"give these helpers a public name in one home: {found}"


def test_the_private_name_scan_finds_each_form():
    mods = {"pkg", "pkg.a", "pkg.b", "pkg._c"}
    for src in ("from .b import _helper", "from pkg.b import _helper", "from . import b\nb._helper()",
                "import pkg.b as m\nm._x", "from .. import b\nb._y"):
        module = "pkg.sub.a" if src.startswith("from ..") else "pkg.a"
        assert private_imports(src, module, False, mods | {"pkg.sub", "pkg.sub.a"}), src
    for src in ("from . import _c", "from ._c import helper", "from .b import helper", "import os\nos._exit(0)",
                "from . import _c\n_c.helper()"):
        assert not private_imports(src, "pkg.a", False, mods), src
