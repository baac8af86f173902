"""Headless Chromium for the course's browser checks (the site and JupyterLab).

Playwright (pinned in pyproject.toml) drives the system's Chromium, Debian's ``chromium`` package,
which ``scripts/ensure_chromium.sh`` installs; Playwright's own browser download is never used.
:func:`check_site` opens every page of the built site from a server on 127.0.0.1, lets no
request leave the machine, and reports for each page whether its math rendered (no raw LaTeX
left, no TeX error), whether every image loaded, whether its links lead to pages that exist,
and saves a full-page screenshot.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

# As root and with no network, Chromium stalls on refused connections without these.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--disable-dev-shm-usage"]
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
INSTALL_HINT = ("install Debian's `chromium` and `chromium-driver` (`bash scripts/ensure_chromium.sh`, which "
                "`make test` runs) or point COURSE_CHROMIUM at a Chromium/Chrome binary")


def find_chromium() -> str | None:
    """Path of a Chromium binary: ``$COURSE_CHROMIUM``, else the first of CANDIDATES on PATH."""
    env = os.environ.get("COURSE_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def unavailable_reason() -> str | None:
    """Why the browser checks cannot run here, or ``None`` when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install -e '.[test]')"
    if find_chromium() is None:
        return "Chromium not found: " + INSTALL_HINT
    return None


@contextlib.contextmanager
def chromium():
    """A launched headless Chromium (Playwright ``Browser``) with a fresh profile."""
    from playwright.sync_api import sync_playwright

    exe = find_chromium()
    if exe is None:
        raise RuntimeError("Chromium not found: " + INSTALL_HINT)
    with sync_playwright() as pw:
        # launch() gives every browser a new, empty --user-data-dir of its own
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(directory):
    """Serve ``directory`` on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class PageReport:
    page: str
    title: str = ""
    math: int = 0                       # rendered math elements (MathJax containers)
    math_sources: int = 0               # elements Sphinx marked as math
    unrendered_math: list = field(default_factory=list)
    tex_errors: list = field(default_factory=list)
    raw_latex: list = field(default_factory=list)
    images: int = 0
    broken_images: list = field(default_factory=list)
    broken_links: list = field(default_factory=list)
    outside_requests: list = field(default_factory=list)
    failed_requests: list = field(default_factory=list)
    console_errors: list = field(default_factory=list)
    nav: list = field(default_factory=list)  # the table of contents (sidebar), in order
    screenshot: str = ""

    def problems(self) -> list[str]:
        out = []
        for name in ("unrendered_math", "tex_errors", "raw_latex", "broken_images", "broken_links",
                     "outside_requests", "failed_requests", "console_errors"):
            vals = getattr(self, name)
            if vals:
                out.append(f"{self.page}: {name.replace('_', ' ')}: {vals[:5]}")
        return out


_PAGE_CHECK_JS = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const art = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const mathEls = [...art.querySelectorAll('.math')];
  const unrendered = mathEls.filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 100));
  const texErrors = [...art.querySelectorAll('mjx-merror, .mjx-merror')].map(e => e.textContent.slice(0, 100));
  const raw = [];
  const rawRe = /\$\$|\\\(|\\\[|\\(frac|sum|prod|partial|sigma|gamma|mathrm|operatorname|left|right|leq?|geq?|cdot|max|min|odot|tanh|top|mathbf|boldsymbol)(?![A-Za-z])|\$[^$]*[\\^_][^$]*\$/;
  const walker = document.createTreeWalker(art, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const n = walker.currentNode, p = n.parentElement;
    if (!p || p.closest('pre, code, script, style, mjx-container, mjx-assistive-mml, .highlight')) continue;
    if (rawRe.test(n.textContent)) raw.push(n.textContent.trim().slice(0, 120));
  }
  const imgs = [...art.querySelectorAll('img')];
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'));
  const links = [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'));
  const nav = [...document.querySelectorAll('nav.bd-docs-nav a.reference.internal, .bd-sidebar-primary a.reference.internal')]
      .map(a => [a.textContent.trim(), a.href]);
  return {title: document.title, math: art.querySelectorAll('mjx-container').length, mathSources: mathEls.length,
          unrendered, texErrors, raw, images: imgs.length, broken, links, nav};
}
"""


def _broken_links(page_url: str, base: str, html_dir: Path, hrefs) -> list[str]:
    bad = []
    for href in hrefs:
        if not href or href.startswith(("#", "mailto:", "javascript:", "data:")):
            continue
        url = urljoin(page_url, href)
        if not url.startswith(base):
            continue  # an outside link: the reader's browser follows it, the site does not load it
        path = unquote(urlsplit(url).path)[len(urlsplit(base).path):]
        target = html_dir / path
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            bad.append(href)
    return sorted(set(bad))


def check_site(html_dir, pages, screenshot_dir, width=1280, height=900, timeout_ms=60_000) -> list[PageReport]:
    """Open each page (paths relative to ``html_dir``) in Chromium; a report and a screenshot each."""
    html_dir, shots = Path(html_dir), Path(screenshot_dir)
    shots.mkdir(parents=True, exist_ok=True)
    reports = []
    with serve(html_dir) as base, chromium() as browser:
        context = browser.new_context(viewport={"width": width, "height": height})
        for rel in pages:
            rep = PageReport(page=rel)
            page = context.new_page()

            def route(r, rep=rep):
                if r.request.url.startswith(base) or r.request.url.startswith("data:"):
                    r.continue_()
                else:  # the site must read offline: nothing may be fetched from elsewhere
                    rep.outside_requests.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.on("response", lambda resp, rep=rep: resp.status >= 400 and rep.failed_requests.append(
                f"{resp.status} {resp.url}"))
            page.on("requestfailed", lambda req, rep=rep: req.url.startswith(base) and rep.failed_requests.append(
                f"failed {req.url}"))
            page.on("console", lambda msg, rep=rep: msg.type == "error" and rep.console_errors.append(msg.text[:200]))
            url = urljoin(base, rel)
            page.goto(url, wait_until="load", timeout=timeout_ms)
            res = page.evaluate(_PAGE_CHECK_JS)
            rep.title, rep.math, rep.math_sources = res["title"], res["math"], res["mathSources"]
            rep.unrendered_math, rep.tex_errors, rep.raw_latex = res["unrendered"], res["texErrors"], res["raw"]
            rep.images, rep.broken_images = res["images"], res["broken"]
            rep.nav = [(t, h[len(base):] if h.startswith(base) else h) for t, h in res["nav"]]
            rep.broken_links = _broken_links(page.url, base, html_dir, res["links"])
            rep.console_errors = [e for e in rep.console_errors if "favicon" not in e]
            name = rel.replace("/", "__").replace(".html", ".png")
            page.screenshot(path=str(shots / name), full_page=True)
            rep.screenshot = str(shots / name)
            page.close()
            reports.append(rep)
        context.close()
    return reports
