"""Student HTML never runs on the instructor's origin (nor in the student's feedback).

Unit tests feed ``autograder.student_html`` a notebook carrying every payload channel (markdown,
raw cells, attachments, rich outputs, output/cell/notebook metadata, cell ids, execution counts)
and read nbconvert's HTML for anything live; ordinary markdown, math and images must survive.

The browser test grades a class holding the ``attack_student_html`` sample with
``autograder.pipeline.grade``, then opens in headless Chromium (1) its feedback HTML and (2) its
formgrader page, served by a Jupyter server with nbgrader's formgrader on 127.0.0.1, and checks
that no payload ran (no ``window.__pwned``, title unchanged, no dialog, no navigation, no request
to the attacker's host) while the student's harmless text, math, image and raw text are on the
page. Skips with the reason when Chromium is absent, except under CI (``CI`` set), where a missing
browser is a failure.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from autograder import student_html
from autograder.samples import make_samples
from coursetools import browser
from jupyter_helpers import require_browser, stop_server, wait_until_serving

ROOT = Path(__file__).resolve().parents[1]
A = "01_gradient_flow"
SAMPLE = "attack_student_html"
MARK = "__pwned"
PNG = make_samples._png_1x1()
SVG_B64 = base64.b64encode(make_samples._SVG.encode()).decode()
FAKE_PNG = base64.b64encode(b"<svg onload=\"window.__pwned='fake png'\"/>").decode()
NORMAL_MD = """# Results

Some *emphasis*, **strong** text, `code`, and a [safe link](https://example.org/page).

- one
- two

| x | y |
|:--|--:|
| 1 | 2 |

```python
def f(x):
    return x < 1
```

Inline math $\\|W\\|_2 < 1$ and display math

$$\\sum_{t=1}^{T} \\gamma^t$$

![my figure](attachment:fig.png)
"""


def payload_notebook(invalid=True):
    """Every channel; ``invalid``: also the payloads that nbformat's schema rejects (nbconvert would
    refuse to export them, but a notebook is read without that check)."""
    nb = new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"},
                   "title": "</title><script>window.__pwned='title'</script>",
                   "widgets": {"application/vnd.jupyter.widget-state+json": {
                       "state": {"w": {"model_name": "</script><script>window.__pwned='widgets'</script>"}},
                       "version_major": 2, "version_minor": 0}}}
    md = new_markdown_cell(make_samples._HTML_PAYLOADS)
    md.attachments = {"plot.png": {"image/png": PNG}, "evil.svg": {"image/svg+xml": SVG_B64}}
    md.metadata = {"tags": ["x\" onmouseover=\"window.__pwned='tag'"], "jupyter": {"source_hidden": True},
                   "nbgrader": {"grade_id": "x\" onfocus=\"window.__pwned='grade_id'", "solution": True}}
    normal = new_markdown_cell(NORMAL_MD)
    normal.attachments = {"fig.png": {"image/png": PNG}}
    more = new_markdown_cell("<a href=\"jav&#x09;ascript:window.__pwned='entity link'\">x</a> "
                             "<a href=' JAVASCRIPT:window.__pwned=1'>y</a> <img src=\"data:image/svg+xml;base64,"
                             + SVG_B64 + "\"> <object data=\"javascript:window.__pwned='object'\"></object>"
                             "<embed src=\"javascript:window.__pwned='embed'\"><math><mtext><script>"
                             "window.__pwned='math'</script></mtext></math><textarea><script>window.__pwned="
                             "'ta'</script></textarea><noscript><img src=x onerror=\"window.__pwned='ns'\">"
                             "</noscript><div style=\"background:url(javascript:window.__pwned='css')\">s</div>"
                             + ("\n\n![missing](attachment:nope.png)" if invalid else ""))
    raw = new_raw_cell("<script>window.__pwned='raw'</script><b>RAW</b>")
    raw_html = new_raw_cell("<img src=x onerror=\"window.__pwned='raw html'\">")
    raw_html.metadata = {"raw_mimetype": "text/html"}
    code = new_code_cell("print('<b>hi</b>')")
    code.outputs = [
        new_output("stream", name="stdout", text="<script>window.__pwned='stdout'</script>\n"),
        new_output("display_data", data={
            "text/html": "<img src=x onerror=\"window.__pwned='text/html'\">",
            "text/markdown": "<img src=x onerror=\"window.__pwned='text/markdown'\">",
            "application/javascript": "window.__pwned='javascript'",
            "image/svg+xml": make_samples._SVG,
            "text/latex": "$x$</script><script>window.__pwned='latex'</script>",
            "application/vnd.jupyter.widget-view+json": {"model_id": "w", "version_major": 2},
            "text/plain": "plain <b>text</b>"}),
        new_output("display_data", data={"image/png": FAKE_PNG, "text/plain": "<Figure>"}),
        new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"},
                   metadata={"image/png": {"width": "1\" onerror=\"window.__pwned='width'",
                                           "alt": ALT_BREAKOUT,
                                           "filenames": {"image/png": "x\" onerror=\"window.__pwned=1"}}}),
        new_output("execute_result", data={"text/plain": "42"}, execution_count=7),
        new_output("error", ename="ValueError", evalue="<script>window.__pwned='evalue'</script>",
                   traceback=["<img src=x onerror=\"window.__pwned='traceback'\">"]),
    ]
    if invalid:
        code.execution_count = "<img src=x onerror=\"window.__pwned='execution_count'\">"
        code.outputs[4]["execution_count"] = "<script>window.__pwned='count'</script>"
    code.metadata = {"tags": ["</div><script>window.__pwned='code tag'</script>"],
                     "jupyter": {"source_hidden": True, "outputs_hidden": True},
                     "transient": {"remove_source": True}}
    nb.cells = [md, normal, more, raw, raw_html, code]
    if invalid:
        nb.cells[0]["id"] = "x\" onmouseover=\"window.__pwned='cell id'"
    return nb


ALT_BREAKOUT = 'a plot" onerror="alert(1)" x="'  # an alt text that tries to close its attribute (an on* would show)


def _export(nb, template="classic"):
    return HTMLExporter(template_name=template).from_notebook_node(nbformat.from_dict(json.loads(json.dumps(nb))))[0]


def _live_payloads(html: str) -> list:
    """Places in ``html`` where a payload could run or load something."""
    soup = BeautifulSoup(html, "html.parser")
    bad = []
    for tag in soup.find_all(True):
        if tag.name in ("iframe", "form", "object", "embed", "base", "svg", "math", "frame", "frameset", "applet"):
            bad.append(f"<{tag.name}> element")
        if tag.name == "meta" and tag.get("http-equiv"):
            bad.append(f"<meta http-equiv={tag.get('http-equiv')}>")
        for attr, value in tag.attrs.items():
            value = " ".join(value) if isinstance(value, list) else str(value)
            if attr.lower().startswith("on"):
                bad.append(f"<{tag.name} {attr}=...>")
            if MARK in value:
                bad.append(f"<{tag.name} {attr}={value[:60]!r}>")
            if attr in ("href", "src", "action", "formaction", "data") and \
                    "".join(value.split()).lower().startswith(("javascript:", "vbscript:", "data:text", "data:image/svg")):
                bad.append(f"<{tag.name} {attr}={value[:60]!r}>")
        if tag.name in ("script", "style") and (MARK in tag.get_text() or "background: red" in tag.get_text()):
            bad.append(f"<{tag.name}> with the student's code")
    return bad


def _student_blocks(html: str):
    return BeautifulSoup(html, "html.parser").find_all("div", class_=student_html.WRAPPER_CLASS)


# ------------------------------------------------------------------ unit tests
def test_the_payloads_are_live_without_the_sanitiser():
    """The test notebook really carries live payloads (so the next test is not vacuous)."""
    bad = _live_payloads(_export(payload_notebook(invalid=False)))
    for what in ("<img onerror=...>", "<svg> element", "<iframe> element", "<script> with the student's code",
                 "<form> element", "<base> element", "<meta http-equiv=refresh>"):
        assert what in bad, (what, bad)


@pytest.mark.parametrize("template", ["classic", "lab"])
def test_sanitised_notebook_exports_nothing_live(template):
    nb = student_html.sanitize_notebook(payload_notebook())
    html = _export(nb, template)
    assert _live_payloads(html) == []
    alts = [t.get("alt") for t in BeautifulSoup(html, "html.parser").find_all("img") if "alert" in (t.get("alt") or "")]
    assert alts == ([ALT_BREAKOUT] if template == "classic" else [])  # one attribute's text (lab shows no alt)
    assert "jupyter-widgets" not in html and "widget-state" not in html  # no widget JavaScript loaded
    assert "window.__pwned='title'" not in html and "cell id" not in html


def test_the_feedback_exporter_gives_the_same_page_without_reparsing_it():
    """``FeedbackHTML`` (feedback pages) skips HTMLExporter's BeautifulSoup pass over the whole page: the
    page is the same document (same DOM once parsed), every image has an alternative text (an output
    figure and a student's ``<img>`` without one get nbconvert's), and nothing is live."""
    from autograder.nbgrader_plugin import FeedbackHTML

    nb = student_html.sanitize_notebook(payload_notebook(invalid=False))
    nb.cells.append(new_markdown_cell(f'<img src="data:image/png;base64,{PNG}" title="no alt <img">'))
    nb = student_html.sanitize_notebook(nb)
    ours = FeedbackHTML(template_name="classic").from_notebook_node(nbformat.from_dict(json.loads(json.dumps(nb))))[0]
    theirs = _export(nb)
    assert str(BeautifulSoup(ours, "html.parser")) == str(BeautifulSoup(theirs, "html.parser"))
    assert _live_payloads(ours) == []
    images = BeautifulSoup(ours, "html.parser").find_all("img")
    assert len(images) >= 4 and all(img.get("alt") for img in images)
    assert [img["alt"] for img in images].count(student_html.NO_ALT) >= 2  # the output figure and the bare <img>


def test_sanitised_cells_and_metadata_are_minimal():
    nb = student_html.sanitize_notebook(payload_notebook())
    assert set(nb.metadata) == {"kernelspec", "language_info"}
    md, normal, more, raw, raw_html, code = nb.cells
    assert md.metadata == {} and code.metadata == {}  # tags, jupyter, transient gone; forged nbgrader id gone
    assert all(c.cell_type != "raw" for c in nb.cells)
    assert all(student_html._CELL_ID.match(c.id) for c in nb.cells)
    assert "attachments" not in md  # the PNG is inlined, the SVG dropped
    assert code.execution_count is None
    kinds = [(o.output_type, sorted(o.get("data", {}))) for o in code.outputs]
    assert kinds == [("stream", []), ("display_data", ["text/plain"]), ("display_data", ["text/plain"]),
                     ("display_data", ["image/png", "text/plain"]), ("execute_result", ["text/plain"]),
                     ("error", [])]
    # of output metadata only an image's alt text is kept, as plain text (the templates escape it)
    assert [o.get("metadata", {}) for o in code.outputs] == [
        {}, {}, {}, {"image/png": {"alt": ALT_BREAKOUT}}, {}, {}]
    assert code.outputs[4].execution_count is None
    nbformat.validate(nb)


def test_markdown_math_and_images_survive():
    nb = student_html.sanitize_notebook(payload_notebook())
    html = _export(nb)
    normal = _student_blocks(html)[1]
    text = normal.get_text()
    assert normal.find("h1") and normal.find("em") and normal.find("strong") and normal.find("table")
    assert [li.get_text() for li in normal.find_all("li")] == ["one", "two"]
    assert normal.find("a", href="https://example.org/page").get_text() == "safe link"
    assert "return x < 1" in normal.find("pre").get_text()
    # math reaches the page as TeX text, as MathJax expects it
    assert "$\\|W\\|_2 < 1$" in text and "$$\\sum_{t=1}^{T} \\gamma^t$$" in text
    img = normal.find("img", alt="my figure")
    assert img["src"] == "data:image/png;base64," + PNG
    first = _student_blocks(html)[0]
    assert "HARMLESS-TEXT" in first.get_text() and "\\sigma_{\\max}(W_{hh}) < 1" in first.get_text()
    assert first.find("img", alt="a plot of mine")["src"].startswith("data:image/png;base64,")
    assert "RAW" in html  # the raw cell is shown, as text
    assert "&lt;script&gt;window.__pwned=&#39;raw&#39;&lt;/script&gt;" in html or \
        "&lt;script&gt;window.__pwned='raw'&lt;/script&gt;" in html
    # code outputs: text stays text, the real PNG stays, the fake one is gone
    assert "plain &lt;b&gt;text&lt;/b&gt;" in html
    assert html.count("data:image/png;base64," + PNG) >= 3
    assert FAKE_PNG not in html


def test_clean_markdown_is_copied_verbatim_by_nbconvert():
    """What the browser parses is exactly nh3's output: the templates' markdown renderer copies the
    sanitised one-line HTML block as it is (no markdown or math rule applies inside it)."""
    nb = student_html.sanitize_notebook(payload_notebook())
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            assert "\n" not in cell.source and cell.source.startswith("<div class=")
            assert markdown2html_mistune(cell.source).strip() == cell.source
            assert student_html.safe_markdown(cell.source) == cell.source


def test_sanitising_is_idempotent():
    once = student_html.sanitize_notebook(payload_notebook())
    twice = student_html.sanitize_notebook(nbformat.from_dict(json.loads(json.dumps(once))))
    assert json.dumps(once, sort_keys=True) == json.dumps(twice, sort_keys=True)


def test_the_instructors_unchanged_cells_keep_their_source():
    """An unanswered written question keeps its exact text (nbgrader's checksum then says 'no
    response'); the same grade id with the student's text is cleaned."""
    text = "YOUR ANSWER HERE <b>bold</b>"
    mine = new_markdown_cell(text, metadata={"nbgrader": {"grade_id": "written", "solution": True, "grade": True,
                                                          "points": 2, "locked": False}})
    theirs = new_markdown_cell("<img src=x onerror=\"window.__pwned=1\">",
                               metadata={"nbgrader": {"grade_id": "written2", "solution": True}})
    nb = new_notebook(cells=[mine, theirs])
    student_html.sanitize_notebook(nb, {"written": text, "written2": "YOUR ANSWER HERE"})
    assert nb.cells[0].source == text
    assert nb.cells[0].metadata["nbgrader"]["points"] == 2
    assert "onerror" not in nb.cells[1].source and nb.cells[1].metadata["nbgrader"]["grade_id"] == "written2"


def test_the_sample_is_cleaned():
    nb = nbformat.read(str(ROOT / "autograder" / "samples" / A / SAMPLE / f"{A}.ipynb"), as_version=4)
    assert "widgets" in nb.metadata and any(c.cell_type == "raw" for c in nb.cells)
    assert _live_payloads(_export(nb))  # live before
    assert _live_payloads(_export(student_html.sanitize_notebook(nb))) == []


# ------------------------------------------------------------------ in a browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_formgrader(state: Path, workdir: Path, db_url: str | None = None):
    """A Jupyter server (nbgrader's formgrader on) for the course at ROOT whose grading state is
    ``state`` (and gradebook ``db_url``, default the state's sqlite file); returns (process, base_url, token)."""
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, AUTOGRADER_STATE_DIR=str(state), AUTOGRADER_SECRET="test-secret",
               JUPYTER_RUNTIME_DIR=str(workdir / "runtime"), OMP_NUM_THREADS="1")
    env.pop("NBGRADER_DB_URL", None)
    if db_url:
        env["NBGRADER_DB_URL"] = db_url
    # this interpreter's environment (its sys.prefix holds the Jupyter config `make setup` installs), whatever
    # the shebang of a copied venv's bin/jupyter-server says
    cmd = [sys.executable, "-m", "jupyter_server"]
    cmd += ["--no-browser", f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = workdir / "server.log"
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/"
    wait_until_serving(proc, base, token, log)
    return proc, base, token, log


_PROBE = """() => {
  const blocks = [...document.querySelectorAll('div.student-markdown')];
  const imgs = blocks.flatMap(b => [...b.querySelectorAll('img')]).filter(i => i.getAttribute('src'));
  return {pwned: window.__pwned === undefined ? null : String(window.__pwned), title: document.title,
          url: location.href, frames: window.frames.length,
          text: blocks.map(b => b.textContent).join('\\n'), body: document.body.innerText,
          typeset: blocks.some(b => b.querySelector('mjx-container') !== null),
          images: imgs.map(i => [i.getAttribute('alt'), i.complete && i.naturalWidth > 0]),
          // (the formgrader's own navigation has onclick handlers: look inside the notebook's cells)
          handlers: [...document.querySelectorAll('div.cell, div.cell *')].flatMap(e => [...e.attributes]
              .filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name))};
}"""


def _visit(b, url: str, ready: str) -> dict:
    """Open ``url``; what the page did and shows."""
    page = b.new_page()
    seen = {"dialogs": [], "outside": [], "console": []}
    origin = "/".join(url.split("/")[:3])

    def route(r):
        u = r.request.url
        if u.startswith((origin, "file:", "data:")):
            r.continue_()
        else:  # nothing leaves the machine (MathJax's CDN included); the attacker's host must not be asked
            seen["outside"].append(u)
            r.abort()

    page.route("**/*", route)
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.on("console", lambda m: seen["console"].append(m.text[:200]))
    page.goto(url, wait_until="load", timeout=120_000)
    page.locator(ready).first.wait_for(state="attached", timeout=60_000)
    page.wait_for_timeout(1500)  # onerror / onload / autofocus / meta refresh would have fired by now
    out = page.evaluate(_PROBE)
    out.update(seen)
    page.close()
    return out


def _assert_nothing_ran(res: dict, where: str, url: str):
    assert res["pwned"] is None, f"{where}: a student script ran: window.__pwned = {res['pwned']!r}"
    assert res["title"] != "PWNED", f"{where}: a student script changed the title"
    assert not res["dialogs"], f"{where}: a student script opened a dialog: {res['dialogs']}"
    assert res["url"].split("?")[0].split("#")[0] == url.split("?")[0].split("#")[0], f"{where}: navigated to {res['url']}"
    assert not [u for u in res["outside"] if "attacker.invalid" in u], f"{where}: {res['outside']}"
    assert res["frames"] == 0, f"{where}: a student frame is on the page"
    assert not res["handlers"], f"{where}: event handler attributes in the notebook: {res['handlers']}"
    # the page really shows the student's work (it cannot pass by being empty)
    assert "HARMLESS-TEXT" in res["text"], f"{where}: the student's text is not on the page"
    # as TeX source, or typeset by the MathJax the page carries (feedback inlines it: offline)
    assert "\\sigma_{\\max}(W_{hh}) < 1" in res["text"] or (res["typeset"] and "\u03c3" in res["text"]), \
        f"{where}: the student's math is not on the page"
    assert ["a plot of mine", True] in res["images"], f"{where}: the student's image did not load: {res['images']}"
    assert "RAW-TEXT" in res["body"], f"{where}: the raw cell's text is not shown"
    assert "<img src=x onerror=window.__pwned='stdout'>" in res["body"], f"{where}: the printed text is not shown"


@pytest.mark.slow
def test_no_student_script_runs_in_feedback_or_formgrader(tmp_path, monkeypatch):
    require_browser()
    from nbgrader.api import Gradebook

    from autograder import config, pipeline

    t0 = time.monotonic()
    subs, state = tmp_path / "submissions", tmp_path / "state"
    subs.mkdir()
    shutil.copytree(ROOT / "autograder" / "samples" / A / SAMPLE, subs / SAMPLE)
    monkeypatch.setenv("AUTOGRADER_STATE_DIR", str(state))
    monkeypatch.setenv("AUTOGRADER_SECRET", "test-secret")
    monkeypatch.delenv("NBGRADER_DB_URL", raising=False)
    summary = pipeline.grade(A, subs, workers=1, log=lambda *a: None,
                             cfg=config.load(cell_timeout=8.0, call_timeout=4.0, total_timeout=120.0))
    row = {r["student_id"]: r for r in summary.results}[SAMPLE]
    assert (row["score"], row["status"]) == (12.0, "ok"), row["detail"]
    t_grade = time.monotonic() - t0

    feedback = state / "feedback" / SAMPLE / A / f"{A}.html"
    autograded = nbformat.read(str(state / "autograded" / SAMPLE / A / f"{A}.ipynb"), as_version=4)
    assert "widgets" not in autograded.metadata and all(c.cell_type != "raw" for c in autograded.cells)
    api = pipeline.nbgrader_api(ROOT)
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        submission_id = gb.find_submission_notebook(A, A, SAMPLE).id

    proc, base, token, log = start_formgrader(state, tmp_path)
    try:
        with browser.chromium() as b:
            url = feedback.as_uri()
            res = _visit(b, url, "div.student-markdown")
            _assert_nothing_ran(res, "feedback", url)
            url = f"{base}formgrader/submissions/{submission_id}/?token={token}"
            res = _visit(b, url, "#notebook-container div.student-markdown")
            _assert_nothing_ran(res, "formgrader", url)
            assert "Submission 1 / 1" in res["body"], res["body"][:500]
    finally:
        stop_server(proc)
    print(f"graded in {t_grade:.1f} s, whole test {time.monotonic() - t0:.1f} s")


def test_a_markdown_cell_seen_before_is_not_rendered_again(monkeypatch):
    rendered = []
    real = student_html.render_markdown
    monkeypatch.setattr(student_html, "render_markdown", lambda *a, **k: rendered.append(1) or real(*a, **k))
    monkeypatch.setattr(student_html, "_DONE", {})
    source = "# Mine\n\n<img src=x onerror=alert(1)> ![plot](attachment:p.png)"
    first = student_html.safe_markdown(source, {"p.png": {"image/png": PNG}})
    assert student_html.safe_markdown(source, {"p.png": {"image/png": PNG}}) == first and len(rendered) == 1
    other = student_html.safe_markdown(source, {})  # other attachments: another answer, rendered
    assert len(rendered) >= 2 and other != first and "onerror" not in first + other


def test_a_huge_cell_is_sanitised_but_not_kept_for_the_next_students(monkeypatch):
    """Red team: a 50 MiB notebook of big markdown cells must not pin its text (and its HTML) in the grading
    worker's memory for the rest of the class; a cell over the cap is cleaned every time and never remembered,
    nor is a big code cell's highlighting."""
    from nbconvert.filters.highlight import Highlight2HTML

    from autograder import nbgrader_plugin

    monkeypatch.setattr(student_html, "_DONE", {})
    big = "<img src=x onerror=alert(1)> word " * (student_html.REMEMBER_MAX_CHARS // 30)
    clean = student_html.safe_markdown(big)
    assert clean == student_html._safe_markdown(big) and "onerror" not in clean and student_html._DONE == {}
    student_html.safe_markdown("# a small cell")
    assert len(student_html._DONE) == 1
    monkeypatch.setattr(nbgrader_plugin._Highlighted, "_done", {})
    highlight = nbgrader_plugin._Highlighted(Highlight2HTML(pygments_lexer="ipython3"))
    code = "x = 1\n" * (student_html.REMEMBER_MAX_CHARS // 6 + 1)
    assert "<span" in highlight(code) and nbgrader_plugin._Highlighted._done == {}
    assert highlight("y = 2\n") and len(nbgrader_plugin._Highlighted._done) == 1
