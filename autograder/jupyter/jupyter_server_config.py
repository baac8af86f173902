"""Jupyter server settings for formgrader with offline math (read when JUPYTER_CONFIG_PATH includes
autograder/jupyter; see autograder/README.md, "Hand-grade"): MathJax 3 from the pinned
django-static-mathjax wheel, served by the server itself at <base_url>static/mathjax/es5/, which
autograder/jupyter/nbconvert/templates/formgrade/mathjax.html.j2 loads instead of a CDN."""
import importlib.util
from pathlib import Path

c = get_config()  # noqa: F821 - provided by the config loader

_spec = importlib.util.find_spec("mathjax")  # django-static-mathjax (pinned in pyproject.toml)
if _spec is None:
    raise RuntimeError("MathJax is not installed: `pip install -e .` (django-static-mathjax is pinned)")
_static = Path(list(_spec.submodule_search_locations)[0]) / "static"  # holds mathjax/es5/
c.ServerApp.extra_static_paths = [str(_static)]
