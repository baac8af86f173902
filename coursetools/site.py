"""The course as a static site: executed lectures and student assignments, readable offline.

    python -m coursetools.site [--lectures build/lectures] [--out build/site]

:func:`build_site` lays out a Sphinx source folder (``site/``'s ``conf.py`` and ``index.md``, the
executed lecture notebooks, the unexecuted assignment notebooks, MathJax) and builds it with
myst-nb, which never executes anything here. The pages load nothing from the internet:

- MathJax 3 comes from the pinned ``django-static-mathjax`` wheel (a plain copy of MathJax's
  ``es5`` build) and is served from the site's own ``_static/mathjax/``;
- widgets cannot run on a static page, so their outputs are replaced by a one-line note and the
  static fallback figure that :func:`course_lib.widgets.explorer` drew is what the reader sees.

The HTML lands in ``<out>/html`` (open ``index.html``, or ``python -m http.server -d <out>/html``).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from course_lib import plots

from . import notebooks

ROOT = notebooks.ROOT
SITE_SOURCES = ROOT / "site"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
EXPLORER_NOTE = ('<p class="course-widget-note"><em>Interactive explorer: the sliders run when you open '
                 'this notebook in JupyterLab. The figure above shows the same plot at fixed settings.'
                 '</em></p>')
# the MathJax files the site needs: the TeX-to-HTML bundle, its fonts, the TeX extensions it may load
MATHJAX_FILES = ("tex-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions", "LICENSE")


@dataclass
class SiteResult:
    html_dir: Path
    lectures: list[str] = field(default_factory=list)     # page paths relative to html_dir, course order
    assignments: list[str] = field(default_factory=list)
    reference: list[str] = field(default_factory=list)    # the glossary page
    warnings: list[str] = field(default_factory=list)

    @property
    def index(self) -> Path:
        return self.html_dir / "index.html"


def mathjax_dir() -> Path:
    """MathJax 3's ``es5`` folder inside the installed ``django-static-mathjax`` package."""
    import importlib.util

    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("MathJax is not installed: `pip install -e .` (django-static-mathjax is pinned in "
                           "pyproject.toml) so the site can serve its math offline")
    es5 = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").is_file():
        raise RuntimeError(f"MathJax's tex-chtml.js not found under {es5}")
    return es5


def copy_mathjax(dest: Path) -> Path:
    src = mathjax_dir()
    for rel in MATHJAX_FILES:
        s, d = src / rel, dest / rel
        if not s.exists():
            s = src.parent / rel  # LICENSE sits beside es5/
        if s.is_dir():
            shutil.copytree(s, d, dirs_exist_ok=True)
        elif s.is_file():
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)
    return dest


def figure_alt(cell: dict, title: str = "") -> str:
    """The alt text of a code cell's figures: each image output's ``metadata["image/png"]["alt"]`` (set by
    :func:`course_lib.plots.finish`), else the ``Figure: ...`` lines the cell printed, else a plain
    description naming ``title`` (never empty). Several figures in one cell: their texts joined."""
    alts = []
    for out in cell.get("outputs", []):
        if "image/png" in out.get("data", {}):
            alt = out.get("metadata", {}).get("image/png", {}).get("alt")
            if alt and alt not in alts:
                alts.append(alt)
    if not alts:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text = out.get("text", "")
                text = "".join(text) if isinstance(text, list) else text
                alts += [l[len(plots.FIGURE_PREFIX):].strip() for l in text.splitlines()
                         if l.startswith(plots.FIGURE_PREFIX)]
    return " | ".join(alts) or f"A figure from {title or 'this page'} (its caption is in the text around it)"


def static_notebook(nb: dict, title: str = "") -> dict:
    """The notebook as the static site shows it: widget outputs replaced, widget state dropped, and each
    figure's alt text (:func:`figure_alt`) in its cell's ``mystnb.image`` options (myst-nb puts
    it in the ``<img alt>``)."""
    nb = json.loads(json.dumps(nb))
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        if any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
            opts = cell.setdefault("metadata", {}).setdefault("mystnb", {}).setdefault("image", {})
            opts.setdefault("alt", figure_alt(cell, title))
        outputs = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data or WIDGET_STATE in data:
                text = data.get("text/plain", "")
                text = "".join(text) if isinstance(text, list) else text
                if text.startswith("interactive(") or "widget-interact" in text:
                    out = {"output_type": "display_data", "metadata": {}, "data": {"text/html": EXPLORER_NOTE}}
                elif text.strip() and not re.match(r"^[A-Za-z]+\(", text):
                    # e.g. a tqdm bar: keep its text form
                    out = {"output_type": "display_data", "metadata": {}, "data": {"text/plain": text}}
                else:
                    continue
            outputs.append(out)
        cell["outputs"] = outputs
    return nb




def _toctree(caption: str, docs: list[str]) -> str:
    if not docs:
        return ""
    return "\n".join(["```{toctree}", f":caption: {caption}", ":maxdepth: 1", "", *docs, "```", ""])


def assignment_paths(assignments_dir: Path | None = None) -> list[Path]:
    """Student release notebooks under ``assignments/`` in course order (checkpoints skipped)."""
    d = Path(assignments_dir or ROOT / "assignments")
    if not d.is_dir():
        return []
    return sorted(p for p in d.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def build_site(executed_lectures_dir, out_dir, assignments_dir=None, quiet=True) -> SiteResult:
    """Build the static site from executed lecture notebooks into ``out_dir/html``.

    ``executed_lectures_dir`` holds the executed ``NN_*.ipynb`` lectures (the main job's
    ``build/lectures``); assignments are taken unexecuted from ``assignments_dir`` (default
    ``assignments/``). Raises ``RuntimeError`` with Sphinx's output if the build fails.
    """
    import nbformat

    lectures_dir, out = Path(executed_lectures_dir), Path(out_dir)
    src, html = out / "src", out / "html"
    for d in (src, html, out / "doctrees"):
        shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(SITE_SOURCES, src, ignore=shutil.ignore_patterns("__pycache__", "_build"))
    copy_mathjax(src / "_static" / "mathjax")

    lectures = sorted(lectures_dir.glob("[0-9][0-9]_*.ipynb"))
    if not lectures:
        raise RuntimeError(f"no executed lectures (NN_*.ipynb) in {lectures_dir}")
    lecture_docs, assignment_docs = [], []
    for path in lectures:
        nb = static_notebook(json.loads(path.read_text(encoding="utf-8")), title=path.stem)
        nbformat.validate(nbformat.from_dict(nb))
        (src / "lectures").mkdir(parents=True, exist_ok=True)
        (src / "lectures" / path.name).write_text(json.dumps(nb, indent=1), encoding="utf-8")
        lecture_docs.append(f"lectures/{path.stem}")
    a_root = Path(assignments_dir or ROOT / "assignments")
    for path in assignment_paths(a_root):
        rel = path.relative_to(a_root)
        dest = src / "assignments" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb.get("cells", []):  # as students receive them: no outputs
            if cell.get("cell_type") == "code":
                cell["outputs"], cell["execution_count"] = [], None
        dest.write_text(json.dumps(nb, indent=1), encoding="utf-8")
        assignment_docs.append(f"assignments/{rel.with_suffix('').as_posix()}")

    # the glossary, from its one source (course_lib/selfstudy/glossary.py)
    from course_lib import selfstudy

    (src / "glossary.md").write_text(selfstudy.glossary_markdown(), encoding="utf-8")
    index = (src / "index.md").read_text(encoding="utf-8")
    toc = (_toctree("Lectures", lecture_docs) + "\n" + _toctree("Assignments", assignment_docs) + "\n"
           + _toctree("Reference", ["glossary"]))
    (src / "index.md").write_text(index.replace("{{ toc }}", toc), encoding="utf-8")

    warnings_file = out / "sphinx-warnings.txt"
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-j", "1", "-d", str(out / "doctrees"),
           "-w", str(warnings_file), str(src), str(html)]
    if quiet:
        cmd.insert(3, "-q")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or not (html / "index.html").is_file():
        raise RuntimeError(f"sphinx-build failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    warnings = [w for w in warnings_file.read_text(encoding="utf-8").splitlines()
                if w.strip() and "running over TCP without encryption" not in w] if warnings_file.exists() else []
    return SiteResult(html_dir=html, lectures=[d + ".html" for d in lecture_docs],
                      assignments=[d + ".html" for d in assignment_docs], reference=["glossary.html"],
                      warnings=warnings)


def site_pages(res: SiteResult) -> list[str]:
    """Every page a reader reaches from the table of contents, in course order."""
    return ["index.html"] + res.lectures + res.assignments + res.reference


def publish(out, lectures_dir=None) -> dict:
    """The main job's site step: build ``out/site/html`` from the executed lectures, then open every
    page in headless Chromium (when there is one) and save a screenshot of each under
    ``out/screenshots/site/``. Prints where the site is; returns ``{"ok", "index", "problems", ...}``."""
    from . import browser

    out = Path(out)
    lectures_dir = Path(lectures_dir or out / "lectures")
    result = {"ok": False, "index": None, "problems": [], "screenshots": None}
    try:
        res = build_site(lectures_dir, out / "site")
    except Exception as exc:  # the report and the executed notebooks stay useful without the site
        result["problems"].append(f"site build failed: {exc}")
        print(f"site: NOT BUILT: {exc}")
        return result
    result["index"] = str(res.index)
    for w in res.warnings:
        print("site warning:", w)
    reason = browser.unavailable_reason()
    if reason:
        print(f"site screenshots: skipped ({reason})")
    else:
        shots = out / "screenshots" / "site"
        shutil.rmtree(shots, ignore_errors=True)
        try:
            reports = browser.check_site(res.html_dir, site_pages(res), shots)
            result["problems"] += [p for r in reports for p in r.problems()]
            result["problems"] += [f"{r.page}: no figure" for r in reports if r.page in res.lectures and not r.images]
            result["screenshots"] = str(shots)
            print(f"site screenshots: {shots} ({len(reports)} pages checked in Chromium)")
        except Exception as exc:
            result["problems"].append(f"browser check failed: {exc}")
    for p in result["problems"]:
        print("site problem:", p)
    result["ok"] = not result["problems"]
    print(f"site: {res.index}  (open it in a browser, or serve it: python -m http.server -d {res.html_dir})")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Build the course's static site from executed lectures.")
    ap.add_argument("--lectures", default=str(ROOT / "build" / "lectures"), help="executed lecture notebooks")
    ap.add_argument("--out", default=str(ROOT / "build" / "site"))
    args = ap.parse_args(argv)
    res = build_site(args.lectures, args.out, quiet=False)
    for w in res.warnings:
        print("warning:", w)
    print(f"site: {res.index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
