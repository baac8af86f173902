"""nbgrader preprocessors that make nbgrader record the judge's verdicts.

``JudgeExecute`` takes the place of nbgrader's ``Execute`` in ``Autograde``: instead of running
the notebook in a kernel (where student code could change what the test cells report), it fills
every code cell with what the student's code printed in the sandbox, and every test cell with the
judge's verdict: a plain message when the exercise passed, an error with the hint when it did not.
nbgrader's own ``SaveAutoGrades`` then scores the test cells from those outputs, so the gradebook,
formgrader and ``nbgrader export`` all show the judge's scores.

``FeedbackSanitizer`` runs before feedback HTML is written: it removes hidden-test regions and
scrubs server paths.

``SanitizeStudentHTML`` makes the notebook safe to render on the instructor's origin (see
``autograder.student_html``): it runs first when nbgrader autogrades (before anything is written
to the autograded folder that the formgrader renders), again after ``JudgeExecute`` has filled in
the outputs, and again in feedback, right before the HTML is made.
"""
from __future__ import annotations

import base64
import functools
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor

from . import gradebook_db, judge, student_html

# a new gradebook is stamped with nbgrader's migration head read in-process, not by an `alembic` subprocess
import nbgrader.api  # noqa: E402

nbgrader.api.get_alembic_version = gradebook_db.alembic_head

ROOT = Path(__file__).resolve().parents[1]


def _scrub_paths(text: str) -> str:
    roots = {str(ROOT), os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix), sys.prefix,
             sys.base_prefix, tempfile.gettempdir(), str(Path.home())}
    for r in sorted((r for r in roots if r and r != "/"), key=len, reverse=True):
        text = text.replace(r, "...")
    return re.sub(r"/(?:usr|opt|home|root|work|srv|var)/[^\s'\"]+", "...", text)


def _caption(text: str) -> str:
    """A figure's caption from the sandbox as one line of plain text, no server path in it."""
    return " ".join(_scrub_paths(text).split())


def figure_placeholder(caption: str) -> str:
    """What the feedback shows in place of a figure grading did not draw: its caption (student text, shown
    as plain text), said to be in the student's own notebook."""
    caption = _caption(caption)
    return f"[Figure, not drawn at grading: run the notebook to see it.{' ' + caption if caption else ''}]"


def _cell_outputs(captured) -> list:
    if not captured:
        return []
    outs = []
    if captured.get("stdout"):
        outs.append(new_output("stream", name="stdout", text=_scrub_paths(captured["stdout"])))
    if captured.get("stderr"):
        outs.append(new_output("stream", name="stderr", text=_scrub_paths(captured["stderr"])))
    pngs, names = captured.get("figures", []), captured.get("figure_names", [])
    for png, name in zip(pngs, names):  # drawn (Limits.draw_figures): the caption is the image's alt text
        alt = _caption(name)
        outs.append(new_output("display_data", data={"image/png": base64.b64encode(png).decode(), "text/plain": "<Figure>"},
                               metadata={"image/png": {"alt": alt}} if alt else {}))
    for name in [] if pngs else names:  # not drawn: the caption in the figure's place
        outs.append(new_output("display_data", data={"text/plain": figure_placeholder(name)}))
    if captured.get("result"):
        outs.append(new_output("execute_result", data={"text/plain": _scrub_paths(captured["result"])},
                               execution_count=None))
    if captured.get("error_type"):
        msg = _scrub_paths(captured.get("error", ""))
        outs.append(new_output("error", ename=captured["error_type"], evalue=msg.strip().splitlines()[-1] if msg.strip() else "",
                               traceback=msg.splitlines()))
    return outs


def fill_outputs(nb, j: judge.Judgement) -> None:
    queues = {src: list(items) for src, items in j.cells.items()}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if judge.is_test_cell(cell):
            name = judge.exercise_of(cell)
            v = j.verdicts.get(name)
            if v is None:
                cell.outputs = [new_output("stream", name="stdout", text="(not an autograded exercise)\n")]
            elif v.passed:
                cell.outputs = [new_output("stream", name="stdout", text=judge.verdict_text(name, v))]
            else:
                text = judge.verdict_text(name, v)
                cell.outputs = [new_output("error", ename="AssertionError", evalue=v.hint,
                                           traceback=["AssertionError: " + line for line in text.splitlines()[:1]]
                                           + text.splitlines()[1:])]
        else:
            src = cell.source if isinstance(cell.source, str) else "".join(cell.source)
            q = queues.get(src)
            cell.outputs = _cell_outputs(q.pop(0)) if q else []


class JudgeExecute(NbGraderPreprocessor):
    """Autograde step: the judge's verdicts instead of a kernel's outputs."""

    def preprocess(self, nb, resources):
        meta = resources["nbgrader"]
        j = judge.CACHE.get((meta["assignment"], meta["student"], meta["notebook"]))
        if j is None:  # `nbgrader autograde` run directly: judge this submission now
            from . import config, sandbox

            cfg = config.load()
            sandbox.cleanup_stale()
            scratch, lock = sandbox.scratch_dir()
            try:
                lib = sandbox.prepare_library(scratch / "lib")
                j = judge.judge_notebook(nb, meta["assignment"], meta["student"], cfg.limits, lib, scratch)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
                os.close(lock)
            self.log.info("judged %s in the sandbox (%s)", meta["student"], j.mode)
        fill_outputs(nb, j)
        return nb, resources


_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.S | re.M)


class ValidateNotebook(NbGraderPreprocessor):
    """Autograde step, right before ``SaveAutoGrades``: the notebook checked against nbformat's schema as
    nbconvert checks it (``relax_add_props``), so that a notebook a preprocessor broke fails the conversion
    before anything is written to the gradebook. nbconvert itself checks only after the last preprocessor
    (``Exporter.optimistic_validation``): the gradebook then got the failed run's scores. Raises
    ``nbformat.ValidationError``."""

    def preprocess(self, nb, resources):
        import nbformat

        try:
            nbformat.validate(nb, relax_add_props=True)
        except nbformat.ValidationError:
            self.log.error("Notebook is invalid before its grades are saved (a preprocessor broke it)")
            raise
        return nb, resources


class FeedbackSanitizer(NbGraderPreprocessor):
    """Feedback step: no hidden-test code, no server paths."""

    def preprocess(self, nb, resources):
        for cell in nb.cells:
            src = cell.source if isinstance(cell.source, str) else "".join(cell.source)
            cell.source = _HIDDEN.sub("", src).rstrip("\n")
            for out in cell.get("outputs", []):
                if out.get("output_type") == "stream":
                    out["text"] = _scrub_paths(out.get("text", ""))
                elif out.get("output_type") == "error":
                    out["evalue"] = _scrub_paths(out.get("evalue", ""))
                    out["traceback"] = [_scrub_paths(t) for t in out.get("traceback", [])]
                elif "data" in out and "text/plain" in out["data"]:
                    out["data"]["text/plain"] = _scrub_paths(out["data"]["text/plain"])
        return nb, resources


class SanitizeStudentHTML(NbGraderPreprocessor):
    """Autograde and feedback step: nothing the student wrote can run in the page that renders the
    notebook (markdown, raw cells, attachments, outputs, cell and notebook metadata)."""

    def _instructor_sources(self, resources) -> dict:
        """grade id -> the instructor's source of that cell, from the gradebook (empty if none)."""
        meta = (resources or {}).get("nbgrader") or {}
        if not meta.get("db_url"):
            return {}
        from nbgrader.api import Gradebook, MissingEntry

        try:
            with Gradebook(meta["db_url"]) as gb:
                notebook = gb.find_notebook(meta["notebook"], meta["assignment"])
                return {c.name: c.source for c in notebook.source_cells}
        except (MissingEntry, KeyError):
            return {}

    def preprocess(self, nb, resources):
        student_html.sanitize_notebook(nb, self._instructor_sources(resources))
        return nb, resources


class RebuildNbgraderMetadata(NbGraderPreprocessor):
    """First step of ``nbgrader autograde`` run directly (CLI, formgrader): every cell's nbgrader
    metadata rebuilt from the release by grade id (``pipeline.rebuild_nbgrader_metadata``), so a
    student's graded answer cell or added graded cell never reaches nbgrader's own checks. The
    grading command does the same at intake and reports it as ``tampering_detected``."""

    def preprocess(self, nb, resources):
        import nbformat

        from . import pipeline

        meta = resources["nbgrader"]
        pipeline.make_schema_valid(nb)  # nbconvert validates after each step: an invalid id would stop it
        release = ROOT / "assignments" / meta["assignment"] / f"{meta['notebook']}.ipynb"
        if release.is_file():
            changed = pipeline.rebuild_nbgrader_metadata(nb, nbformat.read(str(release), as_version=4))
            if any(v for k, v in changed.items() if k != "split"):  # a split answer cell is no tampering
                self.log.warning("%s: nbgrader metadata rebuilt from the release (tampering): %s",
                                 meta["student"], changed)
        return nb, resources


# ------------------------------------------------------------------ warm bookkeeping
_WARM = {"installed": False}
TEMPLATE_CACHE = ROOT / "build" / "jinja2"  # compiled feedback templates (git-ignored, the grader's own)


def _template_cache(folder: Path):
    """jinja2's bytecode cache, in this process's memory and in ``folder``: nbconvert builds a new template
    environment for every exporter (every feedback page), and compiling its templates was about 0.9 s of
    every command's first page. Keyed by jinja2 on the template's name; each entry carries the template
    source's checksum and the Python version, so an edited template is compiled again."""
    import jinja2

    class Cache(jinja2.FileSystemBytecodeCache):
        def __init__(self):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            super().__init__(str(folder))
            self.memory = {}

        def load_bytecode(self, bucket):
            code = self.memory.get(bucket.key)
            if code is None:
                super().load_bytecode(bucket)  # jinja2 checks the checksum; a stale or broken file is ignored
                if bucket.code is not None:
                    self.memory[bucket.key] = bucket.bytecode_to_string()
            else:
                bucket.bytecode_from_string(code)

        def dump_bytecode(self, bucket):
            self.memory[bucket.key] = bucket.bytecode_to_string()
            super().dump_bytecode(bucket)  # a temporary file renamed into place: two workers never clash

    return Cache()


def warm_bookkeeping() -> None:
    """Make nbgrader's bookkeeping warm in this (grading worker) process: what nbgrader sets up again
    for every submission is set up once. Its own code still does all the work, in-process
    (``NbGraderAPI.autograde`` / ``generate_feedback``, no new interpreter):

    - one SQLAlchemy engine per gradebook URL for every ``nbgrader.api.Gradebook`` (nbgrader made a new
      engine each time, so every SQL statement was compiled again: the engine keeps the compiled cache;
      closing a ``Gradebook`` still disposes of its connections, so nothing is held between students;
      an engine is never shared with a forked process);
    - compiled jinja2 templates kept for the feedback HTML (:func:`_template_cache`, in memory and on disk
      under ``build/jinja2``, so the next command finds them compiled too).
    """
    if _WARM["installed"]:
        return
    from nbconvert.exporters.templateexporter import TemplateExporter

    engines, make = {}, nbgrader.api.create_engine

    def create_engine(url, *args, **kw):
        key = (os.getpid(), str(url), repr(args), repr(sorted(kw.items())))
        if key not in engines:
            engines[key] = make(url, *args, **kw)
        return engines[key]

    nbgrader.api.create_engine = create_engine
    cache, create_env = _template_cache(TEMPLATE_CACHE), TemplateExporter._create_environment

    def _create_environment(self):
        env = create_env(self)
        env.bytecode_cache = cache
        return env

    TemplateExporter._create_environment = _create_environment
    _WARM["installed"] = True


# ------------------------------------------------------------------ late work, exports, offline math
from nbconvert.exporters import HTMLExporter, TemplateExporter  # noqa: E402
from nbconvert.filters.highlight import Highlight2HTML  # noqa: E402
from nbconvert.filters.metadata import get_metadata  # noqa: E402
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter  # noqa: E402
from nbgrader.plugins import CsvExportPlugin, LateSubmissionPlugin  # noqa: E402
from traitlets import Float  # noqa: E402


class LatePenalty(LateSubmissionPlugin):
    """nbgrader's late-submission plugin (``c.AssignLatePenalties.plugin_class``), with a third method:
    ``percent_per_day`` (``c.LatePenalty.percent_per_day``, default 10) of the notebook's score per
    started day late, at most the whole score. ``c.LatePenalty.penalty_method = 'zero'`` keeps
    nbgrader's own "late means 0"; ``percent_per_day = 0`` with ``'none'`` disables penalties.
    The lateness is nbgrader's (``timestamp.txt`` of the submission against the assignment's due
    date in the gradebook)."""

    percent_per_day = Float(10.0, help="percent of the score taken per started day late").tag(config=True)

    def late_submission_penalty(self, student_id, score, total_seconds_late):
        if self.penalty_method == "zero" or total_seconds_late <= 0 or not score:
            return super().late_submission_penalty(student_id, score, total_seconds_late)
        days = -(-float(total_seconds_late) // 86400)  # started days
        return round(min(1.0, days * self.percent_per_day / 100.0) * float(score), 6)


class SafeCsvExport(CsvExportPlugin):
    """``nbgrader export``: nbgrader's columns, written with a real CSV writer (a name with a comma stays
    one field), every text field a spreadsheet could evaluate neutralised (``pipeline.csv_safe``), and
    by default under ``<state dir>/exports/nbgrader_grades.csv`` (git-ignored), never the repository
    root. A relative ``--to`` is taken inside ``<state dir>/exports/`` too."""

    def export(self, gradebook):
        import csv

        from nbgrader.api import MissingEntry

        from . import config, pipeline

        exports = config.state_dir() / "exports"
        dest = Path(self.to) if self.to else Path("nbgrader_grades.csv")
        if not dest.is_absolute():
            dest = exports / dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        keys = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                "raw_score", "late_submission_penalty", "score", "max_score"]
        students = [str(s) for s in self.student]
        assignments = [str(a) for a in self.assignment]
        self.log.info("Exporting grades to %s", dest)
        with open(dest, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(keys)
            for assignment in gradebook.assignments:
                if assignments and assignment.name not in assignments:
                    continue
                for student in gradebook.students:
                    if students and student.id not in students:
                        continue
                    row = {"assignment": assignment.name, "duedate": assignment.duedate, "student_id": student.id,
                           "last_name": student.last_name, "first_name": student.first_name,
                           "email": student.email, "max_score": assignment.max_score}
                    try:
                        sub = gradebook.find_submission(assignment.name, student.id)
                    except MissingEntry:
                        row.update(timestamp="", raw_score=0.0, late_submission_penalty=0.0, score=0.0)
                    else:
                        penalty = sub.late_submission_penalty or 0.0
                        row.update(timestamp=sub.timestamp, raw_score=sub.score, late_submission_penalty=penalty,
                                   score=max(0.0, sub.score - penalty))
                    w.writerow([f"{row[k]:g}" if isinstance(row[k], float) else pipeline.csv_safe("" if row[k] is None else row[k])
                                for k in keys])
        self.log.info("Exported grades to %s", dest)


# the text nbconvert's HTMLExporter gives an image that has none (WCAG: every image has an alternative text)
NO_ALT = student_html.NO_ALT


class _Highlighted:
    """nbconvert's ``highlight_code`` filter, remembered per process (``student_html.remember``): Pygments' HTML
    of a code cell depends only on its source, language, cell metadata and the formatter's options, and most
    cells of a class's feedback (the release's code, the test cells) are the same for every student."""

    _done: dict = {}

    def __init__(self, inner: Highlight2HTML):
        self.inner = inner

    def __call__(self, source, language=None, metadata=None):
        meta = json.dumps(metadata or {}, sort_keys=True, default=repr)
        key = (self.inner.pygments_lexer, repr(self.inner.extra_formatter_options), language, meta, source)
        return student_html.remember(self._done, key, len(source) + len(meta),
                                     lambda: self.inner(source, language, metadata))


class FeedbackHTML(HTMLExporter):
    """The feedback page's exporter (``c.GenerateFeedback.exporter_class``): nbconvert's ``HTMLExporter``
    (same templates, filters and configuration) without its last step, which parsed the whole rendered page
    again with BeautifulSoup's pure-Python ``html.parser`` (about 13,000 tags a page: 60% of the feedback's
    time) only to add an ``alt`` to images that lack one and a ``tabindex`` to JupyterLab-template cells,
    which the classic-based feedback template does not have. Here the alternative text is given before
    the template renders: an output image without one gets :data:`NO_ALT` in its output metadata (escaped
    by the template like any metadata); student markdown images get it in ``student_html.safe_markdown``,
    inside nh3's output. The page is the template's output as it is (what nh3 wrote reaches the browser
    byte for byte; nothing re-serialises it)."""

    def _preprocess(self, nb, resources):
        nb, resources = super()._preprocess(nb, resources)  # every preprocessor, the sanitisers included
        for cell in nb.cells:
            for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
                data = out.get("data") or {}
                for mime in ("image/png", "image/jpeg"):
                    if mime in data and get_metadata(out, "alt", mime) is None:
                        out.setdefault("metadata", {})[mime] = {**(out["metadata"].get(mime) or {}), "alt": NO_ALT}
        return nb, resources

    def from_notebook_node(self, nb, resources=None, **kw):
        """``HTMLExporter.from_notebook_node`` (nbconvert 7.16) less the BeautifulSoup pass: (html, resources)."""
        langinfo = nb.metadata.get("language_info", {})
        lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
        self.register_filter("highlight_code", self.filters.get("highlight_code", _Highlighted(
            Highlight2HTML(pygments_lexer=lexer, parent=self))))
        resources = self._init_resources(resources)
        self.register_filter("filter_data_type", WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata,
                                                                        parent=self, resources=resources))
        return TemplateExporter.from_notebook_node(self, nb, resources, **kw)


@functools.lru_cache(maxsize=1)
def local_mathjax(_unused="") -> str:
    """Jinja filter (``c.HTMLExporter.filters``) used by ``autograder/templates/feedback/mathjax.html.j2``: MathJax 3
    (TeX in, SVG out: no font files to fetch) inlined from the pinned ``django-static-mathjax`` wheel, so a
    feedback page renders its formulas with no network. ``require``/``autoload`` are removed (nothing is
    ever fetched) and MathJax's ``safe`` extension filters ``\\href`` and the like in student TeX."""
    from coursetools.site import mathjax_dir

    es5 = mathjax_dir()
    config_js = (
        "window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], displayMath: [['$$', '$$'], "
        "['\\\\[', '\\\\]']], processEscapes: true, processEnvironments: true, "
        "packages: {'[-]': ['require', 'autoload']}}, svg: {fontCache: 'global'}, "
        "options: {ignoreHtmlClass: 'tex2jax_ignore', processHtmlClass: 'tex2jax_process'}};")
    parts = [f"<script>{config_js}</script>"]
    for name in ("tex-svg.js", "ui/safe.js"):
        js = (es5 / name).read_text(encoding="utf-8").replace("</script", "<\\/script")
        parts.append(f"<script>/* MathJax {name} (Apache-2.0), from django-static-mathjax */\n{js}\n</script>")
    return "\n".join(parts)
