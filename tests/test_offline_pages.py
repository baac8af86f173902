"""Offline pages in headless Chromium (issue 13): the math of a feedback page and of formgrader's submission
view renders with nothing fetched from off the machine (MathJax from the pinned django-static-mathjax wheel:
inlined in feedback, served by the Jupyter server for formgrader when it runs with
JUPYTER_PATH/JUPYTER_CONFIG_PATH = autograder/jupyter), and the class overview shows its plot and tables
with JavaScript off (it has no script to run)."""
import os
import shutil
from pathlib import Path

import pytest

from coursetools import browser
from jupyter_helpers import require_browser, stop_server
from test_student_html import start_formgrader

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
A = "01_gradient_flow"
JUPYTER = ROOT / "autograder" / "jupyter"
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

    # formgrader as the README starts it: autograder/jupyter on JUPYTER_PATH and JUPYTER_CONFIG_PATH
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(JUPYTER), os.environ.get("JUPYTER_PATH")])))
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", os.pathsep.join(filter(None, [str(JUPYTER),
                                                                            os.environ.get("JUPYTER_CONFIG_PATH")])))
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
