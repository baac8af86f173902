"""Install the course's offline-math settings for formgrader into a Python environment's own Jupyter
folders, which Jupyter reads by default (``make setup`` runs it for ``.venv``): a plain ``jupyter lab`` or
``jupyter server`` started from that environment then shows formulas with no network, no variable to set.

- ``<prefix>/etc/jupyter/jupyter_server_config.json`` (merged into one that is there): the server serves the
  pinned django-static-mathjax wheel's files at ``<base_url>static/mathjax/es5/`` (``ServerApp.extra_static_paths``;
  the server reads it from a ``jupyter_server_config`` file only: its ``.d`` folder enables extensions alone);
- ``<prefix>/share/jupyter/nbconvert/templates/formgrade/mathjax.html.j2``: a copy of
  ``autograder/jupyter/nbconvert/templates/formgrade/mathjax.html.j2``, which nbconvert finds right after
  nbgrader's own ``formgrade`` templates (before ``classic``/``base``, whose MathJax 2 comes from a CDN), so
  formgrader's submission view loads MathJax 3 from the server itself.

``<prefix>`` is ``sys.prefix`` of the Python running this (the environment's ``jupyter`` reads it), or
``--prefix``. ``--check`` changes nothing and exits 1 naming what is missing or stale. Used by
``tests/test_offline_pages.py`` (README: autograder/README.md, "Hand-grade").

    python scripts/install_jupyter_config.py [--prefix PREFIX] [--check]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "autograder" / "jupyter" / "nbconvert" / "templates" / "formgrade" / "mathjax.html.j2"
CONFIG_NAME = "jupyter_server_config.json"


def mathjax_static() -> Path:
    """The folder holding ``mathjax/es5/`` in the pinned django-static-mathjax wheel; raises RuntimeError
    when it is not installed."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("MathJax is not installed: `pip install -e .` (django-static-mathjax is pinned)")
    static = Path(list(spec.submodule_search_locations)[0]) / "static"
    if not (static / "mathjax" / "es5" / "tex-svg.js").is_file():
        raise RuntimeError(f"{static} holds no mathjax/es5/tex-svg.js: reinstall django-static-mathjax")
    return static


def _config_path(prefix: Path) -> Path:
    return prefix / "etc" / "jupyter" / CONFIG_NAME


def _template_path(prefix: Path) -> Path:
    return prefix / "share" / "jupyter" / "nbconvert" / "templates" / "formgrade" / TEMPLATE.name


def _read_config(path: Path) -> dict:
    """The environment's server config file as it is (``{}`` when there is none); raises RuntimeError when it
    is not a JSON object (it is never overwritten then)."""
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RuntimeError(f"{path} is not valid JSON ({exc}): fix it, then run this again") from None
    if not isinstance(config, dict):
        raise RuntimeError(f"{path} does not hold a JSON object: fix it, then run this again")
    return config


def stale(prefix: Path) -> list:
    """The files under ``prefix`` that are missing or differ from what :func:`install` writes."""
    out = []
    paths = _read_config(_config_path(prefix)).get("ServerApp", {}).get("extra_static_paths", [])
    if str(mathjax_static()) not in paths:
        out.append(_config_path(prefix))
    template = _template_path(prefix)
    if not (template.is_file() and template.read_bytes() == TEMPLATE.read_bytes()):
        out.append(template)
    return out


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def install(prefix: Path) -> list:
    """Write both files under ``prefix`` (the server config merged: its other settings, and other static
    paths that exist, are kept); returns their paths."""
    config = _read_config(_config_path(prefix))
    server = config.setdefault("ServerApp", {})
    static = str(mathjax_static())
    server["extra_static_paths"] = [p for p in server.get("extra_static_paths", [])
                                    if p != static and Path(p).is_dir()] + [static]
    _write(_config_path(prefix), (json.dumps(config, indent=2) + "\n").encode())
    _write(_template_path(prefix), TEMPLATE.read_bytes())
    return [_config_path(prefix), _template_path(prefix)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prefix", type=Path, default=Path(sys.prefix))
    ap.add_argument("--check", action="store_true", help="exit 1 when a file is missing or stale; write nothing")
    args = ap.parse_args(argv)
    if args.check:
        bad = stale(args.prefix)
        for p in bad:
            print(f"missing or stale: {p} (run `make setup` or {Path(__file__).name})", file=sys.stderr)
        return 1 if bad else 0
    for p in install(args.prefix):
        print(f"offline math for formgrader: {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
