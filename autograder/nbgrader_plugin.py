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
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor

from . import judge, student_html

ROOT = Path(__file__).resolve().parents[1]


def _scrub_paths(text: str) -> str:
    roots = {str(ROOT), os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix), sys.prefix,
             sys.base_prefix, tempfile.gettempdir(), str(Path.home())}
    for r in sorted((r for r in roots if r and r != "/"), key=len, reverse=True):
        text = text.replace(r, "...")
    return re.sub(r"/(?:usr|opt|home|root|work|srv|var)/[^\s'\"]+", "...", text)


def _cell_outputs(captured) -> list:
    if not captured:
        return []
    outs = []
    if captured.get("stdout"):
        outs.append(new_output("stream", name="stdout", text=_scrub_paths(captured["stdout"])))
    if captured.get("stderr"):
        outs.append(new_output("stream", name="stderr", text=_scrub_paths(captured["stderr"])))
    for png in captured.get("figures", []):
        outs.append(new_output("display_data", data={"image/png": base64.b64encode(png).decode(),
                                                     "text/plain": "<Figure>"}))
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
        release = ROOT / "assignments" / meta["assignment"] / f"{meta['notebook']}.ipynb"
        if release.is_file():
            changed = pipeline.rebuild_nbgrader_metadata(nb, nbformat.read(str(release), as_version=4))
            if any(v for k, v in changed.items() if k != "split"):  # a split answer cell is no tampering
                self.log.warning("%s: nbgrader metadata rebuilt from the release (tampering): %s",
                                 meta["student"], changed)
        return nb, resources
