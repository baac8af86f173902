"""Every lecture executes top to bottom at the ci budget, every notebook is committed clean, and the
executed lectures make a static site that renders in a real browser.

The lectures are executed once (a module fixture) and that one run feeds both the per-lecture
checks and the site: myst-nb builds it from the executed notebooks without running them again,
then headless Chromium opens every page from a server on 127.0.0.1, lets nothing be fetched
from elsewhere, and checks that math rendered (no raw LaTeX), every image loaded and every link
leads to a page that exists. Each lecture's test also reads the claims the notebook recorded
(``claims.jsonl``, tagged with the notebook): a claim that does not hold at the ci budget fails it. Screenshots of each page are saved under pytest's tmp dir and
copied to build/screenshots/site/. ``make test`` runs pytest with ``--dist loadfile`` so this
module stays on one worker and the fixtures run once. The browser checks skip with the reason
when Chromium is absent (they fail under CI, which installs it: scripts/ensure_chromium.sh).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import traceback

import nbformat
import pytest

from course_lib import report
from coursetools import browser, notebooks
from coursetools import site as site_mod
from jupyter_helpers import require_browser

LECTURES = notebooks.lecture_paths()
ROOT = notebooks.ROOT
# Sphinx warnings that mean a broken page: a link, an image or a table-of-contents entry that leads nowhere
BROKEN = re.compile(r"reference target not found|local file not found|unknown document|undefined label|"
                    r"image file not readable|nonexisting document|could not find|failed to", re.I)




def _outputs(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def test_notebooks_are_normalised():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "normalize_notebooks.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """All lectures executed once at the ci budget: (output dir, {stem: None or the error})."""
    out = tmp_path_factory.mktemp("course")
    (out / "lectures").mkdir()
    errors = {}
    for path in LECTURES:
        try:
            nb, _ = notebooks.execute(path, budget="ci", output_dir=out)
            nbformat.write(nb, str(out / "lectures" / path.name))
            errors[path.stem] = None
        except Exception:  # one broken lecture must not hide the others
            errors[path.stem] = traceback.format_exc()[-4000:]
    return out, errors


@pytest.mark.slow
@pytest.mark.parametrize("path", LECTURES, ids=[p.stem for p in LECTURES])
def test_lecture_executes_at_ci_budget(path, executed):
    out, errors = executed
    assert errors[path.stem] is None, errors[path.stem]
    nb = nbformat.read(str(out / "lectures" / path.name), as_version=4)
    assert not [o for o in _outputs(nb) if o.get("output_type") == "error"]
    # every code cell that draws must leave a figure, never a blank cell
    assert any(o.get("output_type") in ("display_data", "execute_result") and "image/png" in o.get("data", {})
               for o in _outputs(nb)), "no figure produced"
    # claims that bind: every measured claim the lecture shows was recorded, and each one holds
    records = [c for c in report.read_claims(out) if c.get("notebook") == path.stem]
    assert [c for c in records if c.get("kind", "claim") == "claim"], f"{path.stem} recorded no measured claim"
    bad = report.failed_claims(records)
    assert not bad, f"{path.stem}: claims that DO NOT HOLD at the ci budget:\n" + "\n".join(
        f"- {c['claim']} ({ {k: v for k, v in c.items() if k not in ('claim', 'section', 'notebook')} })" for c in bad)
    printed = "".join(o.get("text", "") for o in _outputs(nb) if o.get("output_type") == "stream")
    assert "DOES NOT HOLD" not in printed, f"{path.stem} printed a claim that does not hold but did not record it"


@pytest.mark.slow
def test_readme_claims_snapshot_names_the_claims_the_lectures_make(executed):
    """The README's generated table (measured/claims.json) lists the counted claims the lectures record
    today, compared by notebook and sentence with numbers left out (thresholds and sizes differ by
    budget). bf16's claim exists only where the machine runs bf16, so it is left out of the comparison."""
    from coursetools import readme_claims

    out, errors = executed
    if any(errors.values()):
        pytest.skip("a lecture did not execute: its own test says why")
    snap = json.loads(readme_claims.SNAPSHOT.read_text(encoding="utf-8"))

    def keys(records):
        return {readme_claims.claim_key(c) for c in records
                if c.get("kind", "claim") == "claim" and "bf16" not in c["claim"]}

    now, committed = keys(report.read_claims(out)), keys(snap["claims"])
    assert now == committed, ("measured/claims.json is stale (run make run, then python -m coursetools.readme_claims "
                              f"--from build):\nnew: {sorted(now - committed)}\ngone: {sorted(committed - now)}")


@pytest.fixture(scope="module")
def site(executed, tmp_path_factory):
    out, _ = executed
    if not LECTURES:
        pytest.skip("no lectures yet: nothing to build a site from")
    return site_mod.build_site(out / "lectures", tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="module")
def pages(site, tmp_path_factory):
    """Every page of the site opened in Chromium: {page: PageReport}, screenshots saved."""
    require_browser()
    shots = tmp_path_factory.mktemp("screenshots")
    reports = browser.check_site(site.html_dir, site_mod.site_pages(site), shots)
    artifacts = ROOT / "build" / "screenshots" / "site"
    shutil.rmtree(artifacts, ignore_errors=True)
    shutil.copytree(shots, artifacts)
    return {r.page: r for r in reports}


@pytest.mark.slow
def test_site_builds_with_every_lecture_and_assignment(site, executed):
    _, errors = executed
    built = {p.split("/")[-1].removesuffix(".html") for p in site.lectures}
    expected = {stem for stem, err in errors.items() if err is None}
    assert expected <= built, f"lectures missing from the site: {sorted(expected - built)}"
    n_assignments = len(site_mod.assignment_paths())
    assert len(site.assignments) == n_assignments
    for page in site_mod.site_pages(site):
        assert (site.html_dir / page).is_file(), page
    assert (site.html_dir / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax is not served by the site"
    # the glossary page, built from its one source (course_lib/selfstudy/glossary.py)
    from course_lib import selfstudy

    glossary = (site.html_dir / "glossary.html").read_text(encoding="utf-8")
    missing = [t for t in selfstudy.GLOSSARY if f"<strong>{t}</strong>" not in glossary]
    assert not missing, f"glossary terms missing from the site's glossary page: {missing}"
    broken = [w for w in site.warnings if BROKEN.search(w)]
    assert not broken, "the site has broken links, images or contents entries:\n" + "\n".join(broken)
    # every figure on a lecture page carries alt text (its caption), not a file name
    for page in site.lectures:
        html = (site.html_dir / page).read_text(encoding="utf-8")
        imgs = re.findall(r"<img\b[^>]*>", html)
        bad = [i for i in imgs if not re.search(r'\balt="(?![^"]*\.(?:png|svg|jpe?g)")[^"]{10,}"', i)]
        assert not bad, f"{page}: figures without alt text: {bad[:3]}"
    # nothing on the pages points the browser at the internet (MathJax, widgets, fonts ...)
    for page in site_mod.site_pages(site):
        html = (site.html_dir / page).read_text(encoding="utf-8")
        assert not re.findall(r"<(?:script|link|img)[^>]+(?:src|href)=\"(?:https?:)?//", html), page


@pytest.mark.slow
def test_site_contents_in_course_order(site, pages):
    nav = [href.split("#")[0] for _, href in pages["index.html"].nav]
    want = site.lectures + site.assignments
    seen = [p for p in nav if p in want]
    assert seen == want, f"table of contents {seen} is not the course order {want}"
    index = pages["index.html"]
    assert not index.problems(), index.problems()


@pytest.mark.slow
@pytest.mark.parametrize("path", LECTURES, ids=[p.stem for p in LECTURES])
def test_site_lecture_page_renders_in_chromium(path, site, pages):
    page = f"lectures/{path.stem}.html"
    if page not in pages:
        pytest.fail(f"{page} is not on the site (did the lecture execute?)")
    rep = pages[page]
    assert not rep.problems(), "\n".join(rep.problems())
    source = json.loads(path.read_text(encoding="utf-8"))
    md = "".join("".join(c["source"]) for c in source["cells"] if c["cell_type"] == "markdown")
    if "$" in md:
        assert rep.math > 0 and rep.math >= rep.math_sources, \
            f"{page}: {rep.math} of {rep.math_sources} math elements rendered"
    assert rep.images > 0, f"{page}: no figure on the page"
    assert os.path.getsize(rep.screenshot) > 10_000, f"{page}: screenshot {rep.screenshot} is (nearly) empty"


@pytest.mark.slow
def test_site_assignment_pages_render_in_chromium(site, pages):
    if not site.assignments:
        pytest.skip("no student assignments in assignments/ yet")
    for page in site.assignments:
        rep = pages[page]
        assert not rep.problems(), "\n".join(rep.problems())
        assert os.path.getsize(rep.screenshot) > 10_000, f"{page}: screenshot is (nearly) empty"
