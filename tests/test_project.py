"""The project's own promises: one set of pins, the fixed layout, CI runs the README's command."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_pins():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["test"]
    pins = {}
    for d in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", d.strip())
        assert m, f"pyproject dependency {d!r} is not pinned with =="
        pins[m.group(1).lower()] = m.group(2)
    return pins


def _environment_pins():
    pins = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.fullmatch(r"\s*-\s*([A-Za-z0-9_.\-]+)==(\S+)\s*", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_environment_yml_and_pyproject_agree():
    py, env = _pyproject_pins(), _environment_pins()
    assert py, "no pins found in pyproject.toml"
    assert py == env, f"only in pyproject: {set(py.items()) - set(env.items())}; only in environment.yml: {set(env.items()) - set(py.items())}"
    assert py["torch"] == "2.13.0"


def test_fixed_layout_exists():
    for d in ("lectures", "solutions", "assignments", "autograder", "course_lib"):
        assert (ROOT / d).is_dir(), d
    for f in ("environment.yml", "README.md", "pyproject.toml", ".ci/run"):
        assert (ROOT / f).is_file(), f


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "make test" in readme and "make run" in readme
