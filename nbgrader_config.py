"""nbgrader's configuration for this course. nbgrader reads it only from the working directory:
run every nbgrader command, and ``python -m autograder``, from the repository root.

Layout: ``solutions/`` is nbgrader's source, ``assignments/`` its release (committed); the
gradebook and the submitted / autograded / feedback folders live under ``autograder/`` (git-ignored).
Set ``NBGRADER_DB_URL`` (e.g. ``postgresql://user@host/fancy_rnns``) to use a database server
instead of the sqlite file, for large classes.

Scores are never computed in the student's kernel: ``autograder.nbgrader_plugin.JudgeExecute``
takes the place of nbgrader's ``Execute`` step. It runs the student's code in a sandbox and
records the verdicts of a judge that runs in the grader's own process (see ``autograder/``).
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.course_id = "fancy-rnns"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
# grading state (git-ignored); AUTOGRADER_STATE_DIR moves all of it, e.g. for tests
STATE = Path(os.environ.get("AUTOGRADER_STATE_DIR") or ROOT / "autograder")
c.CourseDirectory.submitted_directory = str(STATE / "submitted") if STATE != ROOT / "autograder" else "autograder/submitted"
c.CourseDirectory.autograded_directory = str(STATE / "autograded") if STATE != ROOT / "autograder" else "autograder/autograded"
c.CourseDirectory.feedback_directory = str(STATE / "feedback") if STATE != ROOT / "autograder" else "autograder/feedback"
c.CourseDirectory.db_url = os.environ.get("NBGRADER_DB_URL") or f"sqlite:///{STATE / 'gradebook.db'}"
# never copy authoring twins, caches or checkpoints into a release or an autograded folder
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "*.py", "*.md", "jupytext.toml",
                            ".DS_Store", "*.pt"]  # *.pt: a model or checkpoint written by running a notebook in place

# one kernel, whatever kernelspec a notebook carries, and explicit time limits
c.Execute.kernel_name = "python3"
c.ExecutePreprocessor.kernel_name = "python3"
c.Execute.timeout = 60
c.ExecutePreprocessor.timeout = 60

# a deleted test cell is put back (and graded) instead of becoming a silent 0
c.OverwriteCells.add_missing_cells = True

# the judge replaces the student's kernel as the source of autograded scores
from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern,  # noqa: E402
                                    LimitOutput, SaveAutoGrades)

from autograder.nbgrader_plugin import (FeedbackSanitizer, JudgeExecute, RebuildNbgraderMetadata,  # noqa: E402
                                       SanitizeStudentHTML, ValidateNotebook)
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import (ClearOutput, DeduplicateIds, GetGrades, OverwriteCells,  # noqa: E402
                                    OverwriteKernelspec)

# no student HTML, script, widget state or metadata reaches a page (autograder/student_html.py):
# cleaned first of all, so the autograded copy the formgrader renders is never unsafe, then again
# once the judge has filled in the outputs, and again right before feedback HTML is written
c.Autograde.sanitize_preprocessors = [RebuildNbgraderMetadata, SanitizeStudentHTML, ClearOutput, DeduplicateIds, OverwriteKernelspec,
                                      OverwriteCells, CheckCellMetadata]
c.Autograde.autograde_preprocessors = [JudgeExecute, SanitizeStudentHTML, IgnorePattern, ClearMetadataPreprocessor,
                                       LimitOutput, ValidateNotebook, SaveAutoGrades, AssignLatePenalties,
                                       CheckCellMetadata]
# feedback: no hidden test code, no grader traceback, no server path, no live student HTML
c.GenerateFeedback.preprocessors = [FeedbackSanitizer, SanitizeStudentHTML, GetGrades, CSSHTMLHeaderPreprocessor]
# nbconvert checks the notebook against nbformat's schema once, after the last preprocessor, instead of after
# every one (about 1 ms a check, 20 checks a submission); a preprocessor that broke it still fails the conversion,
# and autograde checks it once more right before SaveAutoGrades (ValidateNotebook): a failed run writes no grades
c.Exporter.optimistic_validation = True

# feedback pages render math offline: nbgrader's feedback template with MathJax inlined from the pinned
# django-static-mathjax wheel instead of a CDN (autograder/templates/feedback)
import nbgrader as _nbgrader  # noqa: E402

# (autograder/templates/feedback/ holds only mathjax.html.j2, found before nbconvert's; the page itself is
# nbgrader's feedback template, which `nbgrader generate_feedback` and formgrader's API both select)
c.HTMLExporter.extra_template_basedirs = [
    str(ROOT / "autograder" / "templates"),
    str(Path(_nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates")]
c.HTMLExporter.filters = {"local_mathjax": "autograder.nbgrader_plugin.local_mathjax"}
# nbconvert's HTMLExporter without its BeautifulSoup pass over the whole page (alt text given before rendering)
c.GenerateFeedback.exporter_class = "autograder.nbgrader_plugin.FeedbackHTML"

# late work: nbgrader compares each submission's timestamp.txt (written by `nbgrader collect`, or by
# `python -m autograder grade` from the student's timestamp.txt or --timestamps CSV) with the assignment's
# due date in the gradebook (`nbgrader db assignment add ASSIGNMENT --duedate "2025-03-07 23:59:00 UTC"`,
# or formgrader's Manage Assignments); AssignLatePenalties then asks this plugin for the penalty:
# percent_per_day of the score per started day late ('zero': a late submission scores 0)
c.AssignLatePenalties.plugin_class = "autograder.nbgrader_plugin.LatePenalty"
c.LatePenalty.percent_per_day = 10.0

# `nbgrader export` writes <state dir>/exports/nbgrader_grades.csv (git-ignored), never ./grades.csv at the
# repository root; fields a spreadsheet could evaluate are neutralised
c.ExportApp.plugin_class = "autograder.nbgrader_plugin.SafeCsvExport"

# the exchange JupyterLab's Assignment List and `nbgrader release_assignment / fetch_assignment / submit /
# collect` use: <state dir>/exchange (git-ignored) on one machine; on a hub, a folder every user can reach,
# e.g. NBGRADER_EXCHANGE=/srv/nbgrader/exchange (created once: mkdir -p ...; chmod 777 ...)
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE") or str(STATE / "exchange")
