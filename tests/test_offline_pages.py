"""Offline pages in headless Chromium (issue 13): the math of a feedback page and of formgrader's submission
view renders with nothing fetched from off the machine (MathJax from the pinned django-static-mathjax wheel:
inlined in feedback; for formgrader served by the Jupyter server itself, set up by `make setup` in the venv's
own Jupyter folders, so a plain `jupyter server` from the venv, no JUPYTER_PATH or JUPYTER_CONFIG_PATH, has it),
and the class overview shows its plot and tables with JavaScript off (it has no script to run)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coursetools import browser
from jupyter_helpers import require_browser, stop_server
from test_student_html import start_formgrader

ROOT = Path(__file__).resolve().parents[1]
A = "01_gradient_flow"
INSTALL = ROOT / "scripts" / "install_jupyter_config.py"
MATH = "The spectral bound $\\sigma_{\\max}(W_{hh}) \\le 1$ and $$\\|g\\|_2 = \\sqrt{\\sum_i g_i^2}.$$"

_MATH_PROBE = """() => {
  const scope = document.querySelector('#notebook-container') || document.body;
  const shown = scope.innerText;
  return {containers: scope.querySelectorAll('mjx-container').length,
          all_svg: [...scope.querySelectorAll('mjx-container')].every(m => m.querySelector('svg') !== null),
          // the student's own cell: its two formulas typeset, the text around them kept
          mine: [...scope.querySelectorAll('div.student-markdown, div.text_cell_render')]
                .filter(d => d.innerText.includes('The spectral bound'))
                .map(d => d.querySelectorAll('mjx-container').length),
          raw: (shown.match(/\\$[^$\\n]{1,80}\\$/g) || []).slice(0, 5),
          version: window.MathJax && window.MathJax.version ? String(window.MathJax.version) : null};
}"""


def _open(b, url: str, ready: str, *, javascript=True) -> tuple:
    """(page, requests that would have left the machine); everything off the page's origin is refused."""
    ctx = b.new_context(java_script_enabled=javascript)
    page = ctx.new_page()
    origin = "/".join(url.split("/")[:3])
    outside = []

    def route(r):
        u = r.request.url
        if u.startswith((origin, "file:", "data:")):
            r.continue_()
        else:
            outside.append(u)
            r.abort()

    page.route("**/*", route)
    page.goto(url, wait_until="load", timeout=60_000)
    page.locator(ready).first.wait_for(state="attached", timeout=30_000)
    return page, outside


def _math_rendered(page) -> dict:
    page.wait_for_function("() => document.querySelectorAll('mjx-container').length > 0", timeout=30_000)
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=10_000)
    page.evaluate("() => MathJax.startup.promise")  # typesetting finished
    return page.evaluate(_MATH_PROBE)


def _install(*args):
    return subprocess.run([sys.executable, str(INSTALL), *args], capture_output=True, text=True, timeout=120)


def test_make_setup_puts_offline_math_into_the_environments_own_jupyter_folders(tmp_path):
    """What `make setup` installs (scripts/install_jupyter_config.py), where Jupyter reads it by default: the
    venv's server serves MathJax, and nbconvert picks the course's formgrade/mathjax.html.j2 over the CDN one."""
    prefix = tmp_path / "env"
    (prefix / "etc" / "jupyter").mkdir(parents=True)
    (prefix / "etc" / "jupyter" / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"port": 9999, "extra_static_paths": [str(tmp_path), str(tmp_path / "gone")]}}))
    assert _install("--prefix", str(prefix), "--check").returncode == 1
    assert _install("--prefix", str(prefix)).returncode == 0
    assert _install("--prefix", str(prefix), "--check").returncode == 0
    server = json.loads((prefix / "etc" / "jupyter" / "jupyter_server_config.json").read_text())["ServerApp"]
    assert server["port"] == 9999 and server["extra_static_paths"][0] == str(tmp_path)  # the rest is kept
    assert str(tmp_path / "gone") not in server["extra_static_paths"]
    assert Path(server["extra_static_paths"][-1], "mathjax", "es5", "tex-svg.js").is_file()
    # this checkout's environment, read as a plain `jupyter server` reads it (no variable set)
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH")}
    probe = ("from jupyter_server.serverapp import ServerApp\n"
             "from nbconvert.exporters import HTMLExporter\n"
             "from traitlets.config import Config\n"
             "from nbgrader.server_extensions.formgrader import handlers\n"
             "app = ServerApp(); app.load_config_file()\n"
             "c = Config(); c.HTMLExporter.template_name = 'formgrade'\n"
             "c.HTMLExporter.extra_template_basedirs = [handlers.template_path]\n"  # as formgrader sets it up
             "print(app.extra_static_paths)\n"
             "print(HTMLExporter(config=c).environment.get_template('mathjax.html.j2').filename)\n")
    r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    statics, template = r.stdout.strip().splitlines()
    assert "mathjax/static" in statics, f"run `make setup` ({INSTALL.name}): {statics}"
    assert Path(template).read_bytes() == (ROOT / "autograder" / "jupyter" / "nbconvert" / "templates" / "formgrade"
                                           / "mathjax.html.j2").read_bytes(), template
    assert Path(template).is_relative_to(sys.prefix)


@pytest.mark.slow
def test_math_renders_offline_in_feedback_and_formgrader_and_the_overview_needs_no_script(tmp_path, monkeypatch):
    require_browser()
    import nbformat
    from bs4 import BeautifulSoup
    from nbgrader.api import Gradebook

    from autograder import config, pipeline

    subs, state = tmp_path / "submissions", tmp_path / "state"
    shutil.copytree(ROOT / "autograder" / "samples" / A / "correct", subs / "ann")
    nb_path = subs / "ann" / f"{A}.ipynb"
    nb = nbformat.read(str(nb_path), as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell(MATH))  # the student's own math, shown in both pages
    nbformat.write(nb, str(nb_path))
    shutil.copy(ROOT / "assignments" / A / f"{A}.ipynb", subs / "bob.ipynb")
    monkeypatch.setenv("AUTOGRADER_STATE_DIR", str(state))
    monkeypatch.setenv("AUTOGRADER_SECRET", "test-secret")
    monkeypatch.delenv("NBGRADER_DB_URL", raising=False)
    summary = pipeline.grade(A, subs, workers=2, log=lambda *a: None,
                             cfg=config.load(cell_timeout=8.0, call_timeout=4.0, total_timeout=120.0))
    rows = {r["student_id"]: r for r in summary.results}
    assert (rows["ann"]["score"], rows["bob"]["status"]) == (12.0, "not_attempted")
    api = pipeline.nbgrader_api(ROOT)
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        submission_id = gb.find_submission_notebook(A, A, "ann").id

    # formgrader as the README starts it: a plain server from the venv, nothing set by hand
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    monkeypatch.delenv("JUPYTER_CONFIG_PATH", raising=False)
    proc, base, token, log = start_formgrader(state, tmp_path)
    try:
        with browser.chromium() as b:
            # (a) the feedback page: MathJax inlined, nothing fetched
            page, outside = _open(b, (state / "feedback" / "ann" / A / f"{A}.html").as_uri(), "div.student-markdown")
            got = _math_rendered(page)
            assert got["containers"] >= 3 and got["all_svg"] and 2 in got["mine"], got
            assert got["raw"] == [] and got["version"].startswith("3."), got
            assert outside == [], outside
            # formgrader's submission view: MathJax from the server itself, never the CDN
            page, outside = _open(b, f"{base}formgrader/submissions/{submission_id}/?token={token}",
                                  "#notebook-container div.student-markdown")
            got = _math_rendered(page)
            assert got["containers"] >= 3 and got["all_svg"] and 2 in got["mine"], got
            assert got["raw"] == [] and got["version"].startswith("3."), got
            assert outside == [], outside
            assert "/static/mathjax/es5/tex-svg.js" in page.content()

            # (b) the class overview with JavaScript off: the plot decodes, the tables are there
            overview = state / "runs" / A / "overview.html"
            assert not BeautifulSoup(overview.read_text(), "html.parser").find_all("script")
            page, outside = _open(b, overview.as_uri(), "#students", javascript=False)
            img = page.locator("img").first
            assert img.evaluate("i => i.complete && i.naturalWidth > 100 && i.naturalHeight > 100")
            statuses = dict(tuple(td.inner_text() for td in tr.locator("td").all())
                            for tr in page.locator("#statuses tr").all()[1:])
            assert statuses == {"not_attempted": "1", "ok": "1"}
            students = [tr.locator("td").first.inner_text() for tr in page.locator("#students tr").all()[1:]]
            assert sorted(students) == ["ann", "bob"]
            assert page.locator("#exercises tr").count() > 1 and outside == []
    finally:
        stop_server(proc)
