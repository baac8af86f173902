"""What an instructor reads and uploads after grading: the class overview and LMS exports.

- :func:`write_overview`: ``runs/<assignment>/overview.html`` next to ``grades.csv``: statuses,
  scores (a histogram), per-exercise pass rates, the most frequent hints (which mistakes the class
  made), hand-grading still to do. Every student-controlled string is escaped; the page has no
  script and loads nothing (the plot is an inline PNG).
- :func:`export_lms`: grades of one assignment or of the whole course as CSV in Canvas's gradebook-import
  layout or Moodle's grade import layout, under ``<state dir>/exports/`` (git-ignored), every text field
  neutralised (``pipeline.csv_safe``); students keyed as the LMS matches them, from a roster CSV when given
  (:func:`read_roster`). A student whose written answer still waits for hand-grading gets an empty grade
  (not a low one) unless ``include_pending``.
"""
from __future__ import annotations

import base64
import collections
import csv
import html
import io
from pathlib import Path

from . import config as config_mod


def _plot_png(assignment: str, rows: list, pass_rates: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), dpi=80)
    scores = [r["score"] for r in rows]
    top = max([r["max_score"] for r in rows] + [1])
    axes[0].hist(scores, bins=[x - 0.5 for x in range(int(top) + 2)], color="#4477aa", edgecolor="white")
    axes[0].set(title=f"{assignment}: scores", xlabel="score", ylabel="students")
    names = list(pass_rates)
    axes[1].barh(range(len(names)), [100 * pass_rates[n] for n in names], color="#66aa55")
    axes[1].set_yticks(range(len(names)), names)
    axes[1].invert_yaxis()
    axes[1].set(title="passed, % of submissions", xlim=(0, 100))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def overview_data(assignment: str, rows: list) -> dict:
    from course_lib.checks import ASSIGNMENTS

    exercises = list(ASSIGNMENTS[assignment])
    judged = [r for r in rows if r.get("verdicts")]
    passed = {n: sum(1 for r in judged if r["verdicts"].get(n, {}).get("passed")) for n in exercises}
    rates = {n: (passed[n] / len(judged) if judged else 0.0) for n in exercises}
    hints = collections.Counter()
    for r in judged:
        for n, v in r["verdicts"].items():
            if not v.get("passed") and v.get("hint"):
                hints[(n, v["hint"].strip().splitlines()[0][:300])] += 1
    statuses = collections.Counter(r["status"] for r in rows)
    return {"exercises": exercises, "passed": passed, "judged": len(judged), "rates": rates,
            "hints": hints.most_common(15), "statuses": statuses,
            "pending": sorted(r["student_id"] for r in rows if r.get("needs_manual_grading")),
            "late": sorted(r["student_id"] for r in rows if r.get("late_penalty"))}


def write_overview(assignment: str, rows: list, path: Path) -> Path:
    """The class overview page (see the module's docstring)."""
    e = html.escape
    d = overview_data(assignment, rows)
    n = len(rows)
    mean = sum(r["score"] for r in rows) / n if n else 0.0
    parts = [
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{e(assignment)}: class overview</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:1em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}td.n{text-align:right}</style></head><body>",
        f"<h1>{e(assignment)}: class overview</h1>",
        f"<p>{n} submissions; mean score {mean:.2f}; rebuilt from every stored result and the gradebook "
        "(hand grades and late penalties included).</p>",
    ]
    if n:
        png = base64.b64encode(_plot_png(assignment, rows, d["rates"])).decode()
        parts.append(f"<p><img alt='score histogram and pass rates' src='data:image/png;base64,{png}'></p>")
    parts.append("<h2>Statuses</h2><table id='statuses'><tr><th>status</th><th>submissions</th></tr>")
    parts += [f"<tr><td>{e(s)}</td><td class='n'>{c}</td></tr>" for s, c in sorted(d["statuses"].items())]
    parts.append("</table><h2>Exercises</h2><table id='exercises'><tr><th>exercise</th><th>passed</th>"
                 "<th>of judged</th><th>pass rate</th></tr>")
    parts += [f"<tr><td>{e(x)}</td><td class='n'>{d['passed'][x]}</td><td class='n'>{d['judged']}</td>"
              f"<td class='n'>{100 * d['rates'][x]:.0f}%</td></tr>" for x in d["exercises"]]
    parts.append("</table><h2>Most frequent hints</h2><table id='hints'><tr><th>exercise</th><th>hint</th>"
                 "<th>submissions</th></tr>")
    parts += [f"<tr><td>{e(x)}</td><td>{e(h)}</td><td class='n'>{c}</td></tr>" for (x, h), c in d["hints"]]
    parts.append("</table>")
    parts.append(f"<h2>Hand-grading to do</h2><p id='pending'>{len(d['pending'])} submission(s) wait for a person "
                 f"in formgrader{': ' + e(', '.join(d['pending'])) if d['pending'] else ''}.</p>")
    parts.append(f"<p id='late'>Late: {len(d['late'])}{': ' + e(', '.join(d['late'])) if d['late'] else ''}.</p>")
    parts.append("<h2>Students</h2><table id='students'><tr><th>student</th><th>score</th><th>auto</th><th>manual</th>"
                 "<th>hand-grading</th><th>late penalty</th><th>status</th><th>detail</th></tr>")
    for r in rows:
        parts.append(f"<tr><td>{e(str(r['student_id']))}</td><td class='n'>{r['score']:g}/{r['max_score']:g}</td>"
                     f"<td class='n'>{r.get('auto_score', 0):g}</td><td class='n'>{r.get('manual_score', 0):g}</td>"
                     f"<td>{'waiting' if r.get('needs_manual_grading') else ''}</td>"
                     f"<td class='n'>{r.get('late_penalty', 0):g}</td><td>{e(str(r['status']))}</td>"
                     f"<td>{e(str(r.get('detail', '')))}</td></tr>")
    parts.append("</table></body></html>")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(path)
    return path


# ------------------------------------------------------------------ LMS exports
def _rows(assignment: str) -> list:
    from . import pipeline

    runs = config_mod.state_dir() / "runs" / assignment
    return pipeline.merge_gradebook(pipeline.stored_results(runs), assignment)


ROSTER_COLUMNS = ("student_id", "name", "email", "lms_id", "sis_user_id", "sis_login_id", "section")


def read_roster(path: Path) -> dict:
    """The class list an LMS gives (saved as CSV): ``{student id: {name, email, lms_id, sis_user_id,
    sis_login_id, section}}``. ``student_id`` (required) is the id the grading command gave the student's
    submission (reduced as every student id is); ``lms_id`` is the LMS's own key (Canvas's *ID*, Moodle's
    *ID number*); the other columns are optional, and columns not listed are ignored. Raises ``SystemExit``
    naming the line for a missing ``student_id`` column or value, or an id listed twice."""
    from . import pipeline

    out = {}
    with open(path, newline="", encoding="utf-8-sig") as f:  # a spreadsheet's UTF-8 export starts with a BOM
        reader = csv.DictReader(f)
        header = [(h or "").strip().lower() for h in reader.fieldnames or []]
        if "student_id" not in header:
            raise SystemExit(f"{path}: the roster needs a student_id column (the id in grades.csv), beside any of "
                             f"{', '.join(ROSTER_COLUMNS[1:])}; its header is {header}")
        for i, row in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if isinstance(v, str)}
            if not row.get("student_id"):
                raise SystemExit(f"{path}: line {i} has no student_id")
            sid = pipeline.student_id(row["student_id"])
            if sid in out:
                raise SystemExit(f"{path}: line {i}: student {sid!r} is listed twice")
            out[sid] = {k: row.get(k, "") for k in ROSTER_COLUMNS[1:]}
    return out


def course_assignments() -> list:
    """Every assignment of the course with stored results, in the course's order (the course-wide export)."""
    from course_lib.checks import ASSIGNMENTS

    runs = config_mod.state_dir() / "runs"
    return [a for a in ASSIGNMENTS if any((runs / a).glob("*.json"))]


def _keys(fmt: str, roster: dict | None, students: list) -> tuple:
    """(header, {student: key cells}) identifying each student as the LMS ``fmt`` matches them on import.
    Without a roster the grading id is the key (Canvas: *SIS Login ID*; Moodle: *ID number*); with one,
    each graded student must be in it with a key the LMS reads, else ``SystemExit`` lists who is not."""
    if roster is None:
        if fmt == "canvas":
            return ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"], {s: ["", "", "", s, ""] for s in students}
        return ["ID number"], {s: [s] for s in students}
    absent = [s for s in students if s not in roster]
    if absent:
        raise SystemExit(f"graded but not in the roster: {', '.join(absent)}: add them (student_id as in "
                         "grades.csv) so that their grades reach the LMS; nothing was written")
    if fmt == "canvas":
        keyless = [s for s in roster if not any(roster[s][k] for k in ("lms_id", "sis_user_id", "sis_login_id"))]
        cells = {s: [r["name"], r["lms_id"], r["sis_user_id"], r["sis_login_id"], r["section"]] for s, r in roster.items()}
        header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    else:
        keyless = [s for s in roster if not (roster[s]["lms_id"] or roster[s]["email"])]
        cells = {s: [r["lms_id"], r["email"]] for s, r in roster.items()}
        header = ["ID number", "Email address"]
    if keyless:
        need = "lms_id, sis_user_id or sis_login_id" if fmt == "canvas" else "lms_id (Moodle's ID number) or email"
        raise SystemExit(f"the roster gives no {need} for {', '.join(keyless)}: the LMS could not match them; "
                         "nothing was written")
    return header, cells


def export_lms(assignments: list | None, fmt: str, out: Path | None = None, include_pending: bool = False,
               roster: Path | None = None) -> Path:
    """One CSV for ``assignments`` (one column each; ``None`` or empty: the whole course, every assignment
    with stored results) in the layout ``fmt`` (``canvas`` or ``moodle``); returns its path (default
    ``<state dir>/exports/<fmt>_<assignments>.csv``).

    Canvas (gradebook import): ``Student,ID,SIS User ID,SIS Login ID,Section,<assignment>...`` with a
    ``Points Possible`` row first. Moodle (Grades > Import > CSV file): ``ID number[,Email address],
    <assignment>...``, mapped on import to the user field "ID number" (or "Email address"). The students are
    keyed from ``roster`` (:func:`read_roster`: name, LMS id, SIS ids, section, email) when given, every roster
    student a row; else by the grading id (Canvas: *SIS Login ID*, Moodle: *ID number*). Raises ``SystemExit``,
    nothing written, for an unknown format, no stored results, or a graded student the roster cannot key."""
    from . import pipeline

    if fmt not in ("canvas", "moodle"):
        raise SystemExit(f"unknown export format {fmt!r}: canvas or moodle")
    assignments = list(assignments or course_assignments())
    if not assignments:
        raise SystemExit(f"no stored results under {config_mod.state_dir() / 'runs'}: grade an assignment first")
    tables = {a: {r["student_id"]: r for r in _rows(a)} for a in assignments}
    graded = sorted(set().union(*tables.values()))
    people = read_roster(roster) if roster else None
    header, keys = _keys(fmt, people, graded)
    exports = config_mod.state_dir() / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    out = Path(out) if out else exports / f"{fmt}_{'+'.join(assignments)}.csv"
    if not out.is_absolute():
        out = exports / out

    def grade(a, sid):
        r = tables[a].get(sid)
        if r is None or (r.get("needs_manual_grading") and not include_pending):
            return ""
        return f"{r['score']:g}"

    safe = pipeline.csv_safe
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header + [safe(a) for a in assignments])
        if fmt == "canvas":
            maxes = [max([r["max_score"] for r in tables[a].values()] or [0]) for a in assignments]
            w.writerow(["Points Possible"] + [""] * (len(header) - 1) + [f"{m:g}" for m in maxes])
        for sid in sorted(keys):
            w.writerow([safe(c) for c in keys[sid]] + [grade(a, sid) for a in assignments])
    return out
