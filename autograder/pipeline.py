"""The grading command: a folder of submitted notebooks in, gradebook + feedback + grades.csv out.

For every student, in parallel worker processes:

1. intake: find the notebook (any file name), parse it (``malformed`` when it cannot be read),
   compare its structure with the release (``missing_cells``, ``tampering_detected``);
2. judge: run its code cells in the sandbox, call its functions on cases drawn from the secret
   seed, compute the verdicts here (``autograder.judge``);
3. bookkeeping, one student at a time under a lock: ``nbgrader autograde`` with the verdicts in
   place of a kernel (``autograder.nbgrader_plugin``), then ``nbgrader generate_feedback``;
4. an atomic ``autograder/runs/<assignment>/<student>.json``.

A stored result is reused when the submission, the release, the secret and the grader are
unchanged, so re-running is idempotent and an interrupted run resumes where it stopped.
``grades.csv`` is rebuilt from the stored results at the end.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import dataclasses
import fcntl
import hashlib
import json
import multiprocessing as mp
import os
import re
import shutil
import tempfile
import time
import unicodedata
from pathlib import Path

import nbformat

from . import config as config_mod
from . import gradebook_db, judge, sandbox

# most severe first; ``not_attempted`` (the release handed back untouched) ranks just above ``ok``: any other
# problem with such a notebook (an added cell that crashed, tampering) is what its row shows
STATUS_ORDER = ["grader_error", "malformed", "ambiguous", "tampering_detected", "missing_cells", "missing_files",
                "timeout", "memory", "crash", "process_limit", "output_limit", "not_attempted", "ok"]


# ------------------------------------------------------------------ nbgrader plumbing
def _venv_on_path() -> None:
    """nbgrader runs the ``alembic`` command when it creates a gradebook: find the venv's one."""
    import sys

    bindir = os.path.dirname(sys.executable)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


_venv_on_path()


def nbgrader_config(root: Path, **course_dir):
    from traitlets.config.loader import PyFileConfigLoader

    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    for k, v in course_dir.items():
        setattr(cfg.CourseDirectory, k, v)
    return cfg


def nbgrader_api(root: Path, **course_dir):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    config_mod.state_dir().mkdir(parents=True, exist_ok=True)  # sqlite cannot create its folder
    cfg = nbgrader_config(root, **course_dir)
    return NbGraderAPI(coursedir=CourseDirectory(config=cfg), config=cfg)


def _normalize(paths):
    import importlib.util

    spec = importlib.util.spec_from_file_location("normalize_notebooks", config_mod.ROOT / "scripts" / "normalize_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for p in paths:
        p.write_text(mod.dumps(mod.normalize(json.loads(p.read_text(encoding="utf-8")))), encoding="utf-8")


def generate_release(assignment: str, dest: Path, root: Path = config_mod.ROOT) -> Path:
    """Run ``nbgrader generate_assignment`` into ``dest`` (also updating the gradebook) and normalise."""
    dest = Path(dest)
    api = nbgrader_api(root, release_directory=str(dest))
    # the gradebook's schema and assignment rows are created here: one process at a time, so two
    # commands started together (a grade and a release, two grades) never race to create them
    with gradebook_db.schema_lock(api.coursedir.db_url, config_mod.state_dir() / ".gradebook.lock"):
        r = api.generate_assignment(assignment, force=True, create=True)
    if not r["success"]:
        raise RuntimeError(f"nbgrader generate_assignment failed:\n{r.get('error') or r.get('log')}")
    out = dest / assignment
    _normalize(sorted(out.rglob("*.ipynb")))
    return out


def release_is_fresh(assignment: str, root: Path = config_mod.ROOT) -> tuple[bool, list]:
    """Regenerate the release in a temporary folder and compare it byte for byte with ``assignments/``."""
    with tempfile.TemporaryDirectory() as tmp:
        new = generate_release(assignment, Path(tmp), root)
        old = root / "assignments" / assignment
        names = sorted({p.relative_to(new).as_posix() for p in new.rglob("*") if p.is_file()}
                       | {p.relative_to(old).as_posix() for p in old.rglob("*") if p.is_file()})
        diff = [n for n in names if not ((new / n).is_file() and (old / n).is_file()
                                         and (new / n).read_bytes() == (old / n).read_bytes())]
        return not diff, diff


def release(assignment: str, root: Path = config_mod.ROOT) -> Path:
    """Write the committed release ``assignments/<assignment>/`` from ``solutions/``."""
    with tempfile.TemporaryDirectory() as tmp:
        new = generate_release(assignment, Path(tmp), root)
        target = root / "assignments" / assignment
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(new, target)
    return target


# ------------------------------------------------------------------ intake
def release_notebooks(assignment: str, root: Path) -> dict:
    folder = root / "assignments" / assignment
    return {p.stem: nbformat.read(str(p), as_version=4) for p in sorted(folder.glob("*.ipynb"))}


def why(exc: BaseException) -> str:
    """An exception as a message that is never empty (``OSError()`` and friends print as '')."""
    text = str(exc).strip()
    return text or type(exc).__name__


class IntakeError(Exception):
    """The submissions folder cannot be graded as it is (two files for one student id)."""


ID_MAX = 64  # characters of a student id (a gradebook key, a folder name, a CSV cell)
ID_MAX_BYTES = 128  # and its UTF-8 bytes: runs/<a>/<id>.json.tmp must stay under the 255-byte name limit


def _slug(name: str) -> str:
    """The student id of a file or folder name: its own name only (never the names of other entries),
    letters (any alphabet's: ``Müller`` stays ``Müller``, in NFC form), digits, ``_ . -``, starting with a
    letter or a digit, at most :data:`ID_MAX` characters and :data:`ID_MAX_BYTES` UTF-8 bytes. A longer one
    keeps its first 55 characters (fewer for four-byte letters) and
    ends in ``-`` and 8 hex digits of the SHA-256 of the whole (NFC) name: two long names that share a
    beginning get two ids, and a name always gets the same id."""
    whole = unicodedata.normalize("NFC", name)
    s = re.sub(r"[^\w.-]+", "_", whole).strip("._-") or "student"
    if len(s) <= ID_MAX and len(s.encode("utf-8")) <= ID_MAX_BYTES:
        return s
    tag = hashlib.sha256(whole.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    head = s[: ID_MAX - 9]
    while len(head.encode("utf-8")) > ID_MAX_BYTES - 9:  # four-byte letters: cut by bytes too
        head = head[:-1]
    return head.rstrip("._-") + "-" + tag


def student_id(name: str) -> str:
    """The id of the top-level entry ``name`` (``NAME.ipynb`` or a folder ``NAME``)."""
    return _slug(name[: -len(".ipynb")] if name.endswith(".ipynb") else name)


@dataclasses.dataclass
class Found:
    """One student's entry in the submissions folder."""

    student: str
    path: Path | None  # the notebook to grade (a regular file reached without a link), or None
    note: str  # said in the detail column (renamed notebook, skipped entries)
    entry: str  # the top-level name in the submissions folder
    rel: str = ""  # path of the notebook (or of the refused entry) inside the submissions folder
    refused: str = ""  # why nothing was read: the student gets a ``malformed`` row saying so
    ambiguous: str = ""  # several candidate notebooks, none named as released: an ``ambiguous`` row, none graded

    def __iter__(self):  # ``for sid, path, note in discover(...)``
        return iter((self.student, self.path, self.note))


def discover(submissions: Path, notebook_names: list) -> list:
    """One :class:`Found` per student: a top-level ``NAME.ipynb`` file, or a folder ``NAME`` holding
    a notebook (any file name, at any depth).

    Only regular files inside the folder are taken: no symbolic link is followed at any level (a
    linked folder or notebook, or a link inside a folder, is refused and reported in its own row,
    ``malformed``), FIFOs, devices and sockets are never opened. Names starting with ``.`` and other
    regular files at the top level are not submissions. A student's id depends on its own entry's
    name only; two entries with the same id raise :class:`IntakeError` naming both."""
    import stat as st_

    from . import safefs

    submissions = Path(submissions)
    root_fd = safefs.open_dir(submissions)
    try:
        top = safefs.entries(root_fd)
    finally:
        os.close(root_fd)
    found, owner = [], {}
    for name, st in top:
        if name.startswith("."):
            continue
        mode = st.st_mode
        if st_.S_ISREG(mode):
            if not name.endswith(".ipynb"):
                continue
            f = Found(student_id(name), submissions / name, "", name, name)
        elif st_.S_ISDIR(mode):
            f = _discover_folder(submissions, name, notebook_names)
        else:  # a link (to a notebook, to a folder, anywhere), a FIFO, a socket, a device
            f = Found(student_id(name), None, "", name, name,
                      refused=f"not a regular file: {safefs.kind(mode)} ({name}, not read)")
        if f.student in owner:
            raise IntakeError(f"two submissions have the same student id {f.student!r}: {owner[f.student]!r} and "
                              f"{name!r} (ids keep letters, digits, '_', '.', '-' of the name): rename one and "
                              "run again; nothing was graded")
        owner[f.student] = name
        found.append(f)
    return found


def _discover_folder(submissions: Path, name: str, notebook_names: list) -> Found:
    import stat as st_

    from . import safefs

    sid = student_id(name)
    try:
        tree = safefs.walk(submissions, (name,))
    except (safefs.Refused, OSError) as exc:
        return Found(sid, None, "", name, name, refused=f"the folder cannot be read: {why(exc)}")
    nbs, skipped = [], []
    for parts, st in tree:
        if not parts[-1].endswith(".ipynb"):
            continue
        rel = "/".join((name,) + parts)
        if st_.S_ISREG(st.st_mode):
            nbs.append((parts, st, rel))
        elif not st_.S_ISDIR(st.st_mode):
            skipped.append((rel, f"not a regular file: {safefs.kind(st.st_mode)} ({rel}, not read)"))
    nbs.sort(key=lambda x: x[0])
    exact = [x for x in nbs if x[0][-1][: -len(".ipynb")] in notebook_names]
    if exact:
        parts, _, rel = exact[0]
        note = ""
    elif len(nbs) > 1:  # which one the student meant cannot be told (modification times are not evidence)
        names = ["/".join(shown(x, 60) for x in p) for p, _, _ in nbs]
        listed = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        reason = (f"{len(nbs)} notebooks in the folder ({listed}) and none is named "
                  f"{' or '.join(n + '.ipynb' for n in notebook_names)}: none was graded; keep the one to grade (or "
                  f"rename it {notebook_names[0]}.ipynb) and grade again with --student {sid}")
        note = "; ".join(w for _, w in skipped)
        return Found(sid, None, note, name, "", ambiguous=reason)
    elif nbs:
        parts, _, rel = nbs[0]
        note = f"notebook named '{shown(parts[-1], 80)}'"
    elif skipped:  # only a linked (or otherwise irregular) notebook: nothing is read, the row says why
        return Found(sid, None, "; ".join(w for _, w in skipped[1:]), name, skipped[0][0], refused=skipped[0][1])
    else:
        return Found(sid, None, "no notebook in the folder", name, "")
    note = "; ".join([note] * bool(note) + [w for _, w in skipped])
    return Found(sid, submissions / rel, note, name, rel)


def structure(nb, release_nb, source_nb=None) -> dict:
    """How the submission's nbgrader cells differ from the release's (a test cell may also carry
    the source's version, hidden tests included: the solution notebook is a valid submission)."""
    def ids(book):
        out = {}
        for cell in book.cells:
            nbg = cell.get("metadata", {}).get("nbgrader", {})
            if nbg.get("grade_id") and (nbg.get("grade") or nbg.get("solution")):
                out.setdefault(nbg["grade_id"], []).append(cell)
        return out

    got, want = ids(nb), ids(release_nb)
    also = ids(source_nb) if source_nb is not None else {}
    missing = [g for g in want if g not in got]
    duplicated = [g for g, cs in got.items() if len(cs) > 1 and g in want]
    edited = []
    for g, cs in want.items():
        if g in got and judge.is_test_cell(cs[0]):
            for c in got[g]:
                src = c.source if isinstance(c.source, str) else "".join(c.source)
                allowed = {cs[0].source.strip()} | {a.source.strip() for a in also.get(g, [])}
                if src.strip() not in allowed or not judge.is_test_cell(c):
                    edited.append(g)
                    break
    return {"missing": missing, "duplicated": duplicated, "edited": edited}


def _src(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _grade_id(cell):
    nbg = cell.get("metadata", {}).get("nbgrader")
    gid = nbg.get("grade_id") if isinstance(nbg, dict) else None
    return gid if isinstance(gid, str) and gid else None


def _grading_view(nbg):
    """What of a cell's nbgrader metadata decides grading (bookkeeping keys such as the checksum left out)."""
    if not isinstance(nbg, dict):
        return repr(nbg)
    view = {k: bool(nbg.get(k)) for k in ("grade", "solution", "locked", "task")}
    view["grade_id"] = nbg.get("grade_id")
    if view["grade"]:
        try:
            view["points"] = float(nbg.get("points") or 0)
        except (TypeError, ValueError):
            view["points"] = repr(nbg.get("points"))
    return view


_CELL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def make_schema_valid(nb) -> list:
    """Make a parsed submission one that nbformat's schema (which nbconvert checks after every
    preprocessor) accepts, or raise ``ValueError`` (then it is ``malformed``, never a grader error):
    cell ids made valid and unique; if the schema still refuses it, every cell's metadata cut to
    nbgrader's keys, the notebook's dropped, attachments dropped.
    Returns what was repaired."""
    from nbformat import ValidationError, validate

    notes, seen = [], set()
    for i, c in enumerate(nb.cells):
        cid = c.get("id")
        if not isinstance(cid, str) or not _CELL_ID.fullmatch(cid) or cid in seen:
            c["id"] = next(f"cell-{i}-{k}" for k in range(len(nb.cells) + 1) if f"cell-{i}-{k}" not in seen)
            notes.append("cell ids")
        seen.add(c["id"])
    nb["nbformat"], nb["nbformat_minor"] = 4, max(5, int(nb.get("nbformat_minor", 5) or 5))
    try:
        validate(nb)
        return sorted(set(notes))
    except ValidationError:
        pass
    for c in nb.cells:
        c["metadata"] = {k: v for k, v in c.get("metadata", {}).items() if k in ("nbgrader", "editable", "deletable")}
        c.pop("attachments", None)
    nb["metadata"] = {}  # nbgrader puts the release's kernelspec back
    try:
        validate(nb)
    except ValidationError as exc:
        raise ValueError(f"the notebook's structure is invalid ({exc.message[:120]})") from None
    return sorted(set(notes + ["metadata"]))


def rebuild_nbgrader_metadata(nb, release_nb) -> dict:
    """Rebuild every cell's nbgrader metadata from the release, by grade id, before anything else
    reads the submission (the judge, nbgrader): the student's metadata is never trusted.

    - a cell whose grade id is in the release gets exactly the release cell's nbgrader metadata,
      cell type and locking (``editable`` / ``deletable``); when several cells carry that id, one
      keeps it (the first of the release's cell type, a test cell preferring the release's
      source) and the others become ordinary cells;
    - every other cell loses its nbgrader metadata and locking (an added graded cell, a markdown
      cell made a graded task, an unknown grade id): it is an ordinary cell.

    Returns ``{"restored": [...], "removed": [...], "duplicated": [...]}``: grade ids whose cell
    type or grading metadata (grade, solution, locked, task, points) differed from the release,
    cells that lost foreign nbgrader metadata, grade ids found more than once. Any of them is
    ``tampering_detected``, except an answer cell split in two (``"split"``, present only when there is one:
    graded normally, with a note). (A checksum, a schema version or locking alone is restored silently:
    the solution notebook, which has neither checksums nor locks, is a valid submission.)"""
    release = {}
    for rc in release_nb.cells:
        gid = _grade_id(rc)
        if gid:
            release.setdefault(gid, rc)
    copies = {}
    for i, c in enumerate(nb.cells):
        gid = _grade_id(c)
        if gid in release:
            copies.setdefault(gid, []).append(i)
    keep = {}
    for gid, idx in copies.items():
        rc = release[gid]
        keep[min(idx, key=lambda i: (nb.cells[i].get("cell_type") != rc.cell_type,
                                      judge.is_test_cell(rc) and _src(nb.cells[i]).strip() != rc.source.strip(),
                                      i))] = gid
    restored, removed = [], []
    for i, c in enumerate(nb.cells):
        md = c.setdefault("metadata", {})
        if i in keep:
            rc = release[keep[i]]
            before = (c.get("cell_type"), _grading_view(md.get("nbgrader")))
            if c.get("cell_type") != rc.cell_type:
                c["cell_type"] = rc.cell_type
                if rc.cell_type == "code":
                    c.pop("attachments", None)
                    c["outputs"], c["execution_count"] = [], None
                else:
                    c.pop("outputs", None)
                    c.pop("execution_count", None)
            md["nbgrader"] = nbformat.from_dict(json.loads(json.dumps(rc.metadata["nbgrader"])))
            for key in ("editable", "deletable"):
                if key in rc.metadata:
                    md[key] = rc.metadata[key]
                else:
                    md.pop(key, None)
            if before != (c.cell_type, _grading_view(md["nbgrader"])):
                restored.append(keep[i])
        elif "nbgrader" in md:
            nbg = md.pop("nbgrader")
            gid = _grade_id({"metadata": {"nbgrader": nbg}})
            flags = not isinstance(nbg, dict) or any(nbg.get(k) for k in ("grade", "solution", "locked", "task"))
            if gid not in release and (gid or flags):
                removed.append(f"{shown(gid) if gid else f'cell {i + 1}'} ({c.get('cell_type')})")
            for key in ("editable", "deletable"):
                md.pop(key, None)
    # an answer cell split in two (JupyterLab's split keeps the grade id on both halves): consecutive cells of
    # the release's type, an answer (solution) cell; the halves after the first run as ordinary cells
    split = [g for g, idx in copies.items() if len(idx) > 1 and release[g].metadata["nbgrader"].get("solution")
             and not judge.is_test_cell(release[g]) and idx == list(range(idx[0], idx[0] + len(idx)))
             and all(nb.cells[i].get("cell_type") == release[g].cell_type for i in idx)]
    out = {"restored": restored, "removed": removed,
           "duplicated": [g for g, idx in copies.items() if len(idx) > 1 and g not in split]}
    if split:  # not tampering: graded normally, with a note
        out["split"] = split
    return out


def repair(nb, release_nb) -> None:
    """Put missing test cells back after the cell that precedes them in the release (nbgrader
    0.9.6's own handling can crash). Run after :func:`rebuild_nbgrader_metadata` (which leaves
    one cell per grade id)."""
    present = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.cells}
    for i, rc in enumerate(release_nb.cells):
        if not judge.is_test_cell(rc) or rc.metadata["nbgrader"]["grade_id"] in present:
            continue
        pos = len(nb.cells)
        for prev in reversed(release_nb.cells[:i]):
            pid = prev.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            idx = next((k for k, c in enumerate(nb.cells)
                        if pid and c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == pid), None)
            if idx is not None:
                pos = idx + 1
                break
        cell = nbformat.from_dict(json.loads(json.dumps(rc)))
        nb.cells.insert(pos, cell)
        present.add(rc.metadata["nbgrader"]["grade_id"])


# ------------------------------------------------------------------ one student (in a worker)
_W: dict = {}


def init_worker(cfg_dict):
    """Set up a grading worker process (one per pool slot or Dask worker) from the config's plain dict."""
    import warnings

    sandbox.die_with_parent()  # a grading command killed with SIGKILL leaves no worker holding its locks
    if os.getppid() != cfg_dict.get("parent", os.getppid()):
        os._exit(1)

    warnings.filterwarnings("ignore", message=".*not in session.*")  # nbgrader + SQLAlchemy 2.1 noise
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:
        pass
    root = Path(cfg_dict["root"])
    _W["root"] = root
    _W["limits"] = sandbox.Limits(**cfg_dict["limits"])
    _W["lib"] = Path(cfg_dict["lib"])
    _W["scratch"] = Path(cfg_dict["scratch"])
    from . import nbgrader_plugin

    nbgrader_plugin.warm_bookkeeping()  # engines and templates set up once per worker
    _W["api"] = nbgrader_api(root)
    _W["lock"] = config_mod.state_dir() / ".gradebook.lock"
    if sandbox.start_kind() == "warm":  # the warm parent starts now, before the first submission needs it
        from . import warm

        with contextlib.suppress(Exception):  # the first submission tries again (and starts cold if it must)
            # (the folder the sandbox binds: sandbox.Run.lib_dir); its start is the worker's, reported with the
            # worker's first result, not charged to that submission's sandbox start
            imports = judge.warm_imports(cfg_dict["assignment"]) if cfg_dict.get("assignment") else ()
            _W["worker_start"] = warm.server(_W["lib"].parent, _W["limits"], imports).take_startup()
    if cfg_dict.get("assignment"):  # the judge's first-use imports and visible cases' references, before any submission
        t0 = time.monotonic()
        with contextlib.suppress(Exception):  # a failure shows again (and is reported) when a submission is judged
            judge.warm_up(cfg_dict["assignment"])
        _W["worker_start"] = _W.get("worker_start", 0.0) + time.monotonic() - t0


def _malformed_judgement(assignment, reason) -> judge.Judgement:
    from course_lib.checks import ASSIGNMENTS
    from course_lib.checks._core import Verdict

    v = {name: Verdict(False, f"Your notebook could not be read ({reason}), so `{name}` could not be graded.",
                       0, 0, "the whole notebook") for name in ASSIGNMENTS[assignment]}
    return judge.Judgement(v, {}, [], "none", 0, 0.0)


def grade_one(task: dict) -> dict:
    """Grade one submission; a failure of the grader itself is reported, never a silent 0."""
    try:
        return _grade_one(task)
    except Exception as exc:  # noqa: BLE001
        import traceback

        return grader_error(task, f"{type(exc).__name__}: {why(exc)}", traceback.format_exc())


def grader_error(task, message, tb=""):
    """The result row of a submission the grader itself failed on: zero points, status ``grader_error``, the message."""
    return {"student_id": task["student"], "score": 0.0, "max_score": float(sum(e.points for e in _exercises(task["assignment"]).values())),
            "auto_score": 0.0, "auto_max": _auto_max(task["assignment"]), "timestamp": task.get("timestamp") or "",
            "status": "grader_error", "detail": f"the grader failed on this submission ({message}); it was NOT graded: fix and re-run",
            "file": str(task["rel_path"]), "verdicts": {}, "sandbox": "", "attempts": 0, "seconds": 0.0,
            "key": None, "traceback": tb[-4000:]}


def _grade_one(task: dict) -> dict:
    """The steps of the module's docstring for one student: intake, judge, bookkeeping, the result."""
    t0 = time.monotonic()
    rel = nbformat.read(str(_W["root"] / "assignments" / task["assignment"] / f"{task['notebook']}.ipynb"),
                        as_version=4)
    details = [task["note"]] if task["note"] else []
    nb, reason = _intake(task, details)
    if nb is None:
        status, nb, j = _unreadable(task, rel, reason, details)
    else:
        status, j = _check_and_judge(task, nb, rel, details)
    if j.mode == "limits":
        details.append(f"sandbox degraded: {sandbox.probe()[1]} ({j.start} start)")
    details.extend([j.start_note] if j.start_note else [])  # a warm start that fell back to a cold one
    if task.get("needs_folder"):
        status.append("missing_files")
        details.append(task["needs_folder"])
    book = _bookkeeping(task, nb, rel, j)
    details.extend(book["review"])
    return _result(task, status, details, j, book, t0)


def _intake(task: dict, details: list) -> tuple:
    """(the parsed notebook, '') or (None, why it cannot be read); a repair made is added to ``details``."""
    if task.get("ambiguous"):
        return None, task["ambiguous"]
    if task.get("refused"):
        return None, task["refused"]
    if task["path"] is None:
        return None, "no notebook was handed in"
    from . import safefs

    try:  # the same checks as at intake: a regular file reached without a link, size capped
        raw = safefs.read_file(task["root"], task["rel_path"])
    except (safefs.Refused, OSError) as exc:
        return None, why(exc)
    try:
        nb, repaired = parse_submission(raw)
    except Exception as exc:  # noqa: BLE001 - whatever the bytes are, the row says malformed
        return None, f"not a valid notebook: {type(exc).__name__}"
    if repaired:
        details.append("notebook repaired before grading: " + ", ".join(repaired))
    return nb, ""


def _fill_cell_ids(data) -> bool:
    """Give every cell without an ``id`` one (``cell-<index>``, stable), before nbformat reads the notebook:
    a notebook saved without ids (an older Jupyter, a script) is normal input, not a fault, and nbformat
    would otherwise warn (``MissingIDFieldWarning``) into the grading command's output for each one. A
    repeated id, or one that is not a valid id (not a string: a number, null, a list; empty, too long, other
    characters), is renamed the same way (nbformat would log the schema error, or rename it at random and
    warn, ``DuplicateCellId``): returns True then, a repair to report. Raises ``ValueError`` when the cells
    are not a list of objects."""
    if not isinstance(data, dict):
        raise ValueError("not a notebook")
    cells = data.get("cells")
    if cells is None:
        return False  # nbformat 3 (worksheets) is converted by nbformat; 4 without cells is refused there
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise ValueError("the cells are not a list of objects")
    taken = {c["id"] for c in cells if isinstance(c.get("id"), str)}
    first, repeated = set(), False
    for i, c in enumerate(cells):
        cid = c.get("id")
        if isinstance(cid, str) and _CELL_ID.fullmatch(cid) and cid not in first:
            first.add(cid)
            continue
        repeated |= "id" in c
        c["id"] = next(n for k in range(len(cells) + 1) if (n := f"cell-{i}" + f"-{k}" * bool(k)) not in taken)
        taken.add(c["id"])
    if data.get("nbformat") == 4 and isinstance(data.get("nbformat_minor"), int) and data["nbformat_minor"] < 5:
        data["nbformat_minor"] = 5  # ids exist from nbformat 4.5 on
    return repeated


def parse_submission(raw: bytes) -> tuple:
    """A submitted notebook's bytes as a schema-valid nbformat 4.5 notebook: (notebook, repairs made).
    Raises ``ValueError`` (or a JSON/Unicode error) when it is not a notebook: the row is ``malformed``."""
    text = raw.decode("utf-8")
    data, mended = _mend_surrogates(json.loads(text), text)
    repeated = _fill_cell_ids(data)
    try:  # not nbformat.reads: it logs a schema error into the command's output (make_schema_valid validates)
        nb = nbformat.convert(nbformat.reader.reads(json.dumps(data)), 4)
    except (nbformat.ValidationError, AssertionError, AttributeError, KeyError, TypeError) as exc:
        raise ValueError(f"not a notebook ({type(exc).__name__})") from None
    if not isinstance(nb.get("cells"), list):
        raise ValueError("no list of cells")
    for c in nb.cells:
        if c.get("cell_type") not in ("code", "markdown", "raw") or not isinstance(c.get("source", ""), (str, list)):
            raise ValueError("a cell without a valid type or source")
        c.setdefault("metadata", {})
        if c.cell_type == "code":
            c.setdefault("outputs", [])
            c.setdefault("execution_count", None)
    extra = {"cell ids"} if repeated else set()
    return nb, sorted(set(make_schema_valid(nb)) | extra | ({"lone surrogates"} if mended else set()))


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _mend_surrogates(data, text: str) -> tuple:
    """(``data``, whether it changed) with each lone surrogate (a ``\\udXXX`` escape without its pair: raw
    UTF-8 cannot hold one, and no file the notebook is written to can) as U+FFFD."""
    if not _SURROGATE_ESCAPE.search(text):
        return data, False
    dumped = json.dumps(data, ensure_ascii=False)
    mended = dumped.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return (json.loads(mended), True) if mended != dumped else (data, False)


def _unreadable(task: dict, rel, reason: str, details: list) -> tuple:
    """(statuses, the notebook recorded, judgement) for a submission that cannot be graded: the release with
    a note on top, 0 points, ``malformed`` (or ``ambiguous``)."""
    kind = "ambiguous" if task.get("ambiguous") else "malformed"
    details.append(reason)
    nb = nbformat.from_dict(json.loads(json.dumps(rel)))
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(
        f"**This submission could not be graded: {reason}.** It was recorded with a score of 0 "
        f"and the status `{kind}`. Contact the course staff."))
    return [kind], nb, _malformed_judgement(task["assignment"], reason)


def _structure_problems(nb, rel, root: Path, assignment: str, nb_name: str) -> tuple:
    """(statuses, details) of a readable submission's cells against the release, after rebuilding its
    nbgrader metadata from the release (first: nothing reads the student's own metadata)."""
    meta = rebuild_nbgrader_metadata(nb, rel)
    src_path = root / "solutions" / assignment / f"{nb_name}.ipynb"
    s = structure(nb, rel, nbformat.read(str(src_path), as_version=4) if src_path.exists() else None)
    status, details = [], []
    if s["edited"] or meta["duplicated"] or meta["restored"] or meta["removed"]:
        status.append("tampering_detected")
    if s["edited"]:
        details.append("test cells edited: " + ", ".join(s["edited"]) + " (restored from the gradebook)")
    if meta["duplicated"]:
        details.append("cells duplicated: " + ", ".join(meta["duplicated"]))
    if meta["restored"]:
        details.append("nbgrader metadata changed on cells: " + ", ".join(meta["restored"]) + " (rebuilt from the release)")
    if meta["removed"]:
        details.append("cells given nbgrader metadata that is not in the release: " + ", ".join(meta["removed"])
                       + " (graded as ordinary cells)")
    if meta.get("split"):
        details.append("answer cell split in two: " + ", ".join(meta["split"]) + " (graded as one answer)")
    if s["missing"]:
        status.append("missing_cells")
        details.append("cells missing: " + ", ".join(s["missing"]) + " (test cells put back)")
    if not meta.get("split") and untouched(nb, rel):
        status.append("not_attempted")
        details.append("not attempted: every answer cell is as released and no code was added")
    return status, details


def _check_and_judge(task: dict, nb, rel, details: list) -> tuple:
    """(statuses, judgement) of a readable submission: its structure, then the judge; test cells put back."""
    assignment, sid = task["assignment"], task["student"]
    status, found = _structure_problems(nb, rel, _W["root"], assignment, task["notebook"])
    details.extend(found)
    j = judge.judge_notebook(nb, assignment, sid, _W["limits"], _W["lib"], _W["scratch"],
                             folder=student_folder(task))
    for kind, d in j.events:
        status.append(kind)
        details.append(d)
    forged = judge.malformed_results(j.verdicts)
    if forged:  # not a wrong answer: what reached the grader was not what any function returns
        status.append("tampering_detected")
        details.append(f"malformed results for {', '.join(forged)} (the sandbox's result helpers patched, e.g. "
                       "through sys.modules): those exercises failed, 0 points for them, whatever the code computes")
    repair(nb, rel)
    return status, j


def _previous_answers(sub_dir: Path, nb_name: str, manual_ids: set) -> dict:
    """The written answers as they were when last autograded (and maybe hand-graded since); {} when none."""
    if not (sub_dir / f"{nb_name}.ipynb").is_file():
        return {}
    try:
        return answers(nbformat.read(str(sub_dir / f"{nb_name}.ipynb"), as_version=4), manual_ids)
    except Exception:  # noqa: BLE001 - an unreadable old copy: every hand grade is reviewed
        return {}


def _write_submitted(task: dict, nb) -> Path:
    """nbgrader's ``submitted/<student>/<assignment>/``: the notebook to autograde (outputs cleared) and
    the submission time (``AssignLatePenalties`` applies the due date to it)."""
    sub_dir = config_mod.state_dir() / "submitted" / task["student"] / task["assignment"]
    if sub_dir.exists():
        shutil.rmtree(sub_dir)
    sub_dir.mkdir(parents=True)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    nbformat.write(nb, str(sub_dir / f"{task['notebook']}.ipynb"))
    if task.get("timestamp"):
        (sub_dir / "timestamp.txt").write_text(task["timestamp"] + "\n")
    return sub_dir


def _bookkeeping(task: dict, nb, rel, j) -> dict:
    """``nbgrader autograde`` with the judge's verdicts (hand grades kept, or marked for review when the
    written answer changed), then ``nbgrader generate_feedback``. Returns the gradebook's scores, the review
    notes and timings; raises ``RuntimeError`` when nbgrader fails or its autograded points are not the judge's."""
    assignment, sid, nb_name = task["assignment"], task["student"], task["notebook"]
    manual_ids = manual_grade_ids(assignment, rel)
    sub_dir = config_mod.state_dir() / "submitted" / sid / assignment
    before = _previous_answers(sub_dir, nb_name, manual_ids)
    _write_submitted(task, nb)
    now = answers(nb, manual_ids)
    judge.CACHE.clear()
    judge.CACHE[(assignment, sid, nb_name)] = j
    api = _W["api"]
    t0 = time.monotonic()
    # sqlite: one student at a time on this machine; PostgreSQL: an advisory lock on this student alone
    with gradebook_db.bookkeeping_lock(api.coursedir.db_url, assignment, sid, _W["lock"]):
        waited = time.monotonic() - t0  # for another worker's bookkeeping (sqlite: one at a time)
        r = api.autograde(assignment, sid, force=True, create=True)
        if not r["success"]:
            raise RuntimeError(f"nbgrader autograde failed for {sid}: {(r.get('log') or '')[-3000:]}")
        book = _record_hand_grades(api, task, manual_ids, before, now)
    book["autograde_seconds"], book["lock_wait_seconds"] = round(time.monotonic() - t0, 3), round(waited, 3)
    # feedback only reads the gradebook: outside the lock, in parallel with other workers
    f = api.generate_feedback(assignment, sid, force=True)
    if not f["success"]:
        raise RuntimeError(f"nbgrader generate_feedback failed for {sid}: {f.get('error') or f.get('log')}")
    judge_score = float(sum(ex.points for name, ex in _exercises(assignment).items() if j.verdicts[name].passed))
    if abs(judge_score - book["auto_score"]) > 1e-9:  # the autograded cells only: hand grades are a person's
        raise RuntimeError(f"gradebook auto score {book['auto_score']} for {sid} differs from the judge's {judge_score}")
    book["nbgrader_seconds"] = round(time.monotonic() - t0, 3)
    return book


def _record_hand_grades(api, task: dict, manual_ids: set, before: dict, now: dict) -> dict:
    """After autograde (under the student's lock): keep each earlier hand grade, cleared for review only
    when its written answer changed. Returns {auto_score, score, max_score, review}."""
    from nbgrader.api import Gradebook

    assignment, sid = task["assignment"], task["student"]
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        sub = gb.find_submission(assignment, sid)
        auto_score, review = 0.0, []
        for g in gb.find_submission_notebook(task["notebook"], assignment, sid).grades:
            if g.name not in manual_ids:  # an autograded test cell: the judge's points
                auto_score += float(g.auto_score or 0)
            elif g.manual_score is not None:  # graded by hand before: kept; reviewed only if it changed
                g.needs_manual_grade = not (before.get(g.name) is not None and before.get(g.name) == now.get(g.name))
                if g.needs_manual_grade:
                    review.append(f"{g.name} changed since it was hand-graded ({float(g.manual_score):g} of "
                                  f"{float(g.max_score):g} kept): review it in formgrader")
        gb.db.commit()
        return {"auto_score": auto_score, "score": float(sub.score), "max_score": float(sub.max_score),
                "review": review}


def _result(task: dict, status: list, details: list, j, book: dict, t0: float) -> dict:
    """The stored result (``runs/<assignment>/<student>.json``): the most severe status, never without a detail."""
    status = min(status or ["ok"], key=STATUS_ORDER.index)
    if status != "ok" and not any(details):  # every status but ok says what happened
        details.append(f"{status.replace('_', ' ')} (no further detail was recorded)")
    return {
        "student_id": task["student"], "score": book["score"], "max_score": book["max_score"], "status": status,
        "auto_score": book["auto_score"], "auto_max": _auto_max(task["assignment"]),
        "timestamp": task.get("timestamp") or "",
        "detail": "; ".join(dict.fromkeys(details)), "file": str(task["rel_path"]),
        "verdicts": {n: {"passed": v.passed, "hint": v.hint, "hidden_failed": v.failed_hidden}
                     for n, v in j.verdicts.items()},
        "sandbox": j.mode, "sandbox_start": j.start, "attempts": j.attempts, "seconds": round(time.monotonic() - t0, 3),
        "sandbox_seconds": round(j.seconds, 3), "nbgrader_seconds": book["nbgrader_seconds"],
        "student_cpu_seconds": j.cpu_seconds, "startup_seconds": j.startup_seconds,
        "worker_start_seconds": round(_W.pop("worker_start", 0.0), 3),  # its warm parent's, while the release was checked
        "judge_seconds": j.judge_seconds, "autograde_seconds": book["autograde_seconds"],
        "feedback_seconds": round(book["nbgrader_seconds"] - book["autograde_seconds"], 3),
        "gradebook_lock_wait_seconds": book["lock_wait_seconds"],  # part of autograde_seconds
        "wall_trips": [] if task.get("alone") else j.wall_trips,
        "key": task["key"],
    }


def _squeezed(text) -> str:
    return re.sub(r"\s+", "", text)


def untouched(nb, release_nb) -> bool:
    """Whether ``nb`` is the release handed back as it was: every answer (solution) cell's source equals the
    release's, whitespace ignored (a missing one counts as unchanged: ``missing_cells`` says so), and no
    code cell holds code the release does not (an added cell is work, or an attack, never "not attempted").
    Run after :func:`rebuild_nbgrader_metadata` (one cell per grade id, the release's metadata)."""
    want = {}
    for c in release_nb.cells:
        gid = _grade_id(c)
        if gid and c.get("metadata", {}).get("nbgrader", {}).get("solution"):
            want.setdefault(gid, _squeezed(_src(c)))
    if not want:
        return False
    got = {}
    for c in nb.cells:
        gid = _grade_id(c)
        if gid in want:
            got.setdefault(gid, _squeezed(_src(c)))
    if any(got.get(g, v) != v for g, v in want.items()):
        return False
    released_code = {_squeezed(_src(c)) for c in release_nb.cells if c.get("cell_type") == "code"} | {""}
    return all(_squeezed(_src(c)) in released_code for c in nb.cells if c.get("cell_type") == "code")


def manual_grade_ids(assignment, release_nb) -> set:
    """Grade ids of the release's cells a person grades (a written answer): every graded cell that is
    not the test cell of an exercise the judge grades."""
    tests = {f"test_{name}" for name in _exercises(assignment)}
    return {gid for c in release_nb.cells
            if (gid := _grade_id(c)) and c.get("metadata", {}).get("nbgrader", {}).get("grade") and gid not in tests}


def answers(nb, ids) -> dict:
    """grade id -> the source of that cell (stripped), for the cells ``ids``."""
    out = {}
    for c in nb.cells:
        gid = _grade_id(c)
        if gid in ids and gid not in out:
            out[gid] = _src(c).strip()
    return out


def _auto_max(assignment) -> float:
    return float(sum(e.points for e in _exercises(assignment).values()))


def student_folder(task) -> Path | None:
    """The folder the student's notebook was handed in with (files an exercise grades sit there), or
    None for a bare ``NAME.ipynb`` in the submissions folder (which other students share)."""
    if not task.get("path") or len(Path(task["rel_path"]).parts) < 2:
        return None
    return Path(task["path"]).parent


def _exercises(assignment):
    from course_lib.checks import ASSIGNMENTS

    return ASSIGNMENTS[assignment]


# ------------------------------------------------------------------ the command
@dataclasses.dataclass
class Summary:
    results: list  # the rows of the students in this run (hand grades and late penalties merged in)
    graded: int
    reused: int
    seconds: float
    csv: Path
    mode: str
    class_rows: list = dataclasses.field(default_factory=list)  # every stored result of the assignment
    overview: Path | None = None


# score = raw_score - late_penalty (at least 0); raw_score = auto_score + manual_score (+ any formgrader
# override or extra credit); needs_manual_grading: a written answer waits for a person (formgrader)
CSV_COLUMNS = ["student_id", "score", "max_score", "auto_score", "auto_max", "manual_score", "manual_max",
               "needs_manual_grading", "raw_score", "late_penalty", "timestamp", "status", "detail", "file"]


def shown(text, limit: int = 40) -> str:
    """Student-chosen text (a grade id, a file name) as it may appear in a detail, a CSV or a page:
    letters, digits and ``_.- `` only (anything else becomes ``?``), at most ``limit`` characters."""
    s = re.sub(r"[^\w.\- ]", "?", str(text))
    return s if len(s) <= limit else s[: limit - 3] + "..."


def visible(text) -> str:
    """``text`` with every control and format character (a newline, an escape, a right-to-left override:
    Unicode categories Cc and Cf) written as its Python escape (``\\n``, ``\\x1b``, ``\\u202e``): one line,
    shown as it is, and still identifiable (a file name ``a<newline>b.ipynb`` reads ``a\\nb.ipynb``)."""
    return "".join(c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in _ESCAPED else c
                   for c in str(text))


# control, format, lone surrogate (an undecodable byte in a file name), private, unassigned, line/paragraph separators
_ESCAPED = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def csv_safe(value) -> str:
    """A text field a spreadsheet will not evaluate and that stays one line: control characters escaped
    (:func:`visible`), then one starting with ``= + - @``, a tab or a carriage return gets a leading ``'``
    (OWASP's advice against CSV injection)."""
    text = visible(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_grades_csv(path: Path, rows: list) -> None:
    """``grades.csv``: every text field neutralised (:func:`csv_safe`); the scores are our own numbers."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL)  # one cell per field whatever separator a spreadsheet assumes
        w.writerow(CSV_COLUMNS)
        for r in rows:
            w.writerow([f"{r[k]:g}" if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)
                        else ("yes" if r.get(k) else "no") if isinstance(r.get(k), bool)
                        else csv_safe(r.get(k) if r.get(k) is not None else "") for k in CSV_COLUMNS])


def gradebook_view(assignment: str, students) -> dict:
    """What the gradebook holds now for each of ``students`` (hand grades made in formgrader since the
    grading run included): ``{sid: {raw_score, max_score, manual_score, manual_max, pending, late_penalty,
    timestamp}}``; ``pending`` lists the hand-graded cells that wait for a person. Students without a
    submission in the gradebook are left out."""
    from nbgrader.api import Gradebook, MissingEntry

    api = nbgrader_api(config_mod.ROOT)
    rel = release_notebooks(assignment, config_mod.ROOT)
    manual = set().union(*(manual_grade_ids(assignment, nb) for nb in rel.values())) if rel else set()
    plugin = _late_plugin(api.config)
    out = {}
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        for sid in students:
            try:
                sub = gb.find_submission(assignment, sid)
            except MissingEntry:
                continue
            if sub.total_seconds_late > 0:  # hand grades added after autograde: the penalty follows the score
                changed = False
                for nb in sub.notebooks:
                    pen = plugin.late_submission_penalty(sid, nb.score, sub.total_seconds_late)
                    pen = None if pen is None else min(max(float(pen), 0.0), float(nb.score))
                    if pen != nb.late_submission_penalty:
                        nb.late_submission_penalty, changed = pen, True
                if changed:
                    gb.db.commit()
            grades = [g for nb in sub.notebooks for g in nb.grades]
            hand = [g for g in grades if g.name in manual]
            pending = [g for g in hand if g.needs_manual_grade]
            out[sid] = {"raw_score": float(sub.score), "max_score": float(sub.max_score),
                        "manual_score": float(sum(float(g.score or 0) for g in hand)),
                        "manual_max": float(sum(float(g.max_score or 0) for g in hand)),
                        "pending": [f"{g.name} ({float(g.max_score):g} points)" for g in pending],
                        "late_penalty": float(sub.late_submission_penalty or 0.0),
                        "timestamp": str(sub.timestamp) if sub.timestamp else ""}
    return out


def _late_plugin(cfg):
    """The late-submission plugin nbgrader's AssignLatePenalties uses (``nbgrader_config.py``)."""
    from nbgrader.preprocessors import AssignLatePenalties

    return AssignLatePenalties(config=cfg).plugin_class(config=cfg)


def merge_gradebook(results: list, assignment: str) -> list:
    """The rows of ``grades.csv``: each stored result with the gradebook's current hand grades and late
    penalty merged in (formgrader writes them there, after the grading run)."""
    view = gradebook_view(assignment, [r["student_id"] for r in results])
    rows = []
    for r in results:
        row = dict(r)
        v = view.get(r["student_id"])
        auto = float(r.get("auto_score", r["score"] if r["status"] != "grader_error" else 0.0))
        row["auto_score"], row["auto_max"] = auto, float(r.get("auto_max", r["max_score"]))
        if v is None or r["status"] == "grader_error":
            row.update(raw_score=auto, manual_score=0.0, manual_max=float(r["max_score"]) - row["auto_max"],
                       needs_manual_grading=False, late_penalty=0.0, score=auto)
        else:
            row.update(raw_score=v["raw_score"], max_score=v["max_score"], manual_score=v["manual_score"],
                       manual_max=v["manual_max"], needs_manual_grading=bool(v["pending"]),
                       late_penalty=v["late_penalty"], score=max(0.0, v["raw_score"] - v["late_penalty"]),
                       timestamp=v["timestamp"] or r.get("timestamp", ""))
            notes = [row.get("detail", "")] * bool(row.get("detail"))
            if v["pending"]:
                notes.append("needs manual grading: " + ", ".join(v["pending"]) + " (formgrader; the score "
                             "counts none of it yet)")
            if v["late_penalty"]:
                notes.append(f"late: {v['late_penalty']:g} points deducted (handed in {row['timestamp']})")
            row["detail"] = "; ".join(dict.fromkeys(notes))
        rows.append(row)
    return rows


def stored_results(runs: Path) -> list:
    """Every stored result of an assignment (``runs/<assignment>/<student>.json``), by student id."""
    out = []
    for p in sorted(runs.glob("*.json")):
        try:
            r = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(r, dict) and r.get("student_id") == p.stem:
            out.append(r)
    return sorted(out, key=lambda r: r["student_id"])


def write_class_files(assignment: str, runs: Path, out_csv: Path | None = None) -> tuple:
    """Rebuild ``runs/grades.csv`` (and ``out_csv`` when given) from every stored result of the assignment
    and the gradebook, and the class overview next to it. Returns (rows, csv path, overview path)."""
    from . import reports

    rows = merge_gradebook(stored_results(runs), assignment)
    targets = [runs / "grades.csv"] + ([Path(out_csv)] if out_csv else [])
    for target in targets:
        tmp = target.with_name(target.name + ".tmp")
        write_grades_csv(tmp, rows)
        os.replace(tmp, target)
    overview = reports.write_overview(assignment, rows, runs / "overview.html")
    return rows, targets[-1], overview


def read_timestamps(path: Path) -> dict:
    """A CSV of submission times as an LMS download gives them: a header with ``student_id`` (or ``id``) and
    ``timestamp`` (or ``submitted_at``); times as nbgrader parses them (ISO 8601, a zone, else UTC)."""
    from nbgrader.utils import parse_utc

    out = {}
    with open(path, newline="") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            sid = row.get("student_id") or row.get("id")
            ts = row.get("timestamp") or row.get("submitted_at")
            if not sid or not ts:
                raise SystemExit(f"{path}: line {i} lacks student_id or timestamp")
            try:
                out[_slug(sid)] = _utc_text(parse_utc(ts))
            except (ValueError, OverflowError) as exc:
                raise SystemExit(f"{path}: line {i}: {ts!r} is not a time ({exc})") from None
    return out


def _utc_text(dt) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f") + " UTC"


def _timestamp_file(submissions: Path, rel: str) -> tuple:
    """(timestamp, note) from ``timestamp.txt`` beside the notebook (nbgrader's collect writes one per
    submission), read like any student file (no link, regular file, small)."""
    from nbgrader.utils import parse_utc

    from . import safefs

    parent = Path(rel).parent
    if parent == Path("."):
        return "", ""
    try:
        raw = safefs.read_file(submissions, (parent / "timestamp.txt").as_posix())
    except (safefs.Refused, OSError):
        return "", ""
    text = raw[:200].decode("utf-8", "replace").strip()
    try:
        return _utc_text(parse_utc(text)), ""
    except (ValueError, OverflowError):
        return "", f"timestamp.txt is not a time ({text[:40]!r}): graded without a submission time"


def _needs_folder(assignment: str, submissions: Path, f) -> str:
    """Why a notebook handed in alone cannot be fully graded for an assignment that grades files handed in
    beside the notebook (assignment 4's model), or ''."""
    names = []
    for ex in _exercises(assignment).values():
        if getattr(ex, "attach", None):
            from course_lib.checks import training

            names.append(training.MODEL_FILE if ex.attach is training.model_file_arrays else "its files")
    if not names or f.path is None or len(Path(f.rel).parts) > 1:
        return ""
    names = sorted(set(names))
    loose = sorted(p.name for p in submissions.iterdir()
                   if not p.name.endswith(".ipynb") and not p.name.startswith(".") and not p.is_dir())
    files = " and ".join(names)
    msg = (f"handed in as a single notebook ({f.rel}), but {assignment} also grades {files}, which must sit "
           f"beside the notebook in the student's own folder: one folder per student is required "
           f"({f.student}/{assignment}.ipynb and {f.student}/{names[0]}), so no {files} was graded")
    if loose:
        msg += (f"; the submissions folder holds {', '.join(loose[:5])}{' ...' if len(loose) > 5 else ''} at its top, "
                "which cannot be told apart by student: put each student's files in their own folder")
    return msg


LOCK_WAIT = 600.0  # seconds a grading run waits for another run of the same assignment


@contextlib.contextmanager
def grading_lock(assignment: str, wait: float | None = None, log=print, poll: float = 0.5):
    """Held for a whole grading command: ``<state dir>/.grade-<assignment>.lock`` (the grading state
    dir, which no sandbox can see). A second run of the same assignment says it waits for the other
    one, for at most ``wait`` seconds (``$AUTOGRADER_LOCK_WAIT``, default 600), then refuses with
    ``SystemExit`` naming the holder."""
    if wait is None:
        wait = float(os.environ.get("AUTOGRADER_LOCK_WAIT") or LOCK_WAIT)
    state = config_mod.state_dir()
    state.mkdir(parents=True, exist_ok=True)
    path = state / f".grade-{_slug(assignment)}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "r+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = f.read().strip() or "another process"
            log(f"another grading run of {assignment} is in progress ({holder}): waiting for it to finish "
                f"(at most {wait:g} s)")
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise SystemExit(f"another grading run of {assignment} ({holder}) is still in progress after "
                                         f"{wait:g} s (lock {path}): nothing was graded; run again when it has "
                                         "finished") from None
                    time.sleep(poll)
            log(f"the other grading run of {assignment} has finished: grading now")
        try:
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            f.flush()
            # PostgreSQL gradebook: also an advisory lock there, so runs on two machines exclude each other
            with gradebook_db.run_lock(gradebook_db.db_url(), assignment, wait, log, poll):
                yield path
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def atomic_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename (never half-written)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _run_pool(tasks: list, workers: int, cfg_dict: dict, arrived, pool=None) -> None:
    """Grade ``tasks`` in ``workers`` worker processes (``pool``'s, or a new pool's), calling ``arrived(task,
    result)`` in this process as each result comes in (the command sleeps in between: no polling); a worker that
    dies is reported as that submission's grader_error, never a silent 0."""
    if not tasks:
        return
    if cfg_dict.get("scheduler"):  # --scheduler: one Dask task per submission (autograder/distributed.py)
        from . import distributed

        for t, res in distributed.run_tasks(tasks, workers, cfg_dict):
            arrived(t, res)
        return
    with contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(_new_pool(min(workers, len(tasks)), cfg_dict))
        futures = {}
        for k, t in enumerate(tasks):
            try:
                futures[pool.submit(grade_one, t)] = t
            except cf.BrokenExecutor as exc:  # a worker died setting itself up: the pool takes no more tasks
                for rest in tasks[k:]:
                    arrived(rest, grader_error(rest, f"worker failed: {type(exc).__name__}: {why(exc)}"))
                break
        for fut in cf.as_completed(futures):
            t = futures.pop(fut)
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker died: report, keep going
                res = grader_error(t, f"worker failed: {type(exc).__name__}: {why(exc)}")
            arrived(t, res)


def _new_pool(n: int, cfg_dict: dict) -> cf.ProcessPoolExecutor:
    """``n`` grading workers, forked from this process, each set up by :func:`init_worker`."""
    _preloaded()  # no thread may be importing while a worker is forked (it could inherit a held lock)
    return cf.ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("fork"), initializer=init_worker,
                                  initargs=(cfg_dict,))


_PRELOAD: dict = {}


def _preload_plotting() -> None:
    """Import matplotlib (the class overview's plot, 0.3-0.5 s) in a thread of this process while the workers
    grade, when this process only waits for their results; :func:`_preloaded` before forking again."""
    import threading

    def load():
        with contextlib.suppress(Exception):  # the overview imports it again, and says so if it fails
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot  # noqa: F401

    if "thread" not in _PRELOAD:
        _PRELOAD["thread"] = threading.Thread(target=load, name="preload-matplotlib", daemon=True)
        _PRELOAD["thread"].start()


def _preloaded() -> None:
    """Wait for :func:`_preload_plotting`'s thread, if one was started."""
    t = _PRELOAD.get("thread")
    if t is not None:
        t.join()


def _record(task: dict, res: dict, runs: Path, results: dict, log) -> None:
    atomic_json(runs / f"{task['student']}.json", res)
    results[task["student"]] = res
    log(f"  {res['student_id']:<28} {res['score']:>5g}/{res['max_score']:g}  {res['status']:<18} "
        f"{res['seconds']:.1f}s")


def _cluster(cfg, log):
    """``--scheduler``: the Dask cluster's client for the run (``distributed.connected``: raises ``SystemExit``
    before anything is written when the gradebook is not PostgreSQL or the scheduler or database is down)."""
    if not cfg.scheduler:
        return contextlib.nullcontext()
    from . import distributed

    return distributed.connected(cfg, log)


def grade(assignment: str, submissions: Path, *, workers: int | None = None, force: bool = False,
          out_csv: Path | None = None, cfg=None, log=print, lock_wait: float | None = None,
          students=None, timestamps: dict | None = None) -> Summary:
    """Grade every submission in ``submissions`` (only ``students``, ids, when given: a regrade or a late
    student). Refuses (``SystemExit``, nothing written) when two entries have the same student id, when a
    student asked for is not in the folder, or when another grading run of ``assignment`` still holds the
    lock after ``lock_wait`` seconds (default ``$AUTOGRADER_LOCK_WAIT`` or 600).

    ``timestamps`` (``{student id: time}``, e.g. :func:`read_timestamps` of an LMS's CSV) gives submission
    times; otherwise a ``timestamp.txt`` beside a student's notebook (as ``nbgrader collect`` writes) does.
    File modification times are never used (unzipping an LMS download resets them).

    ``grades.csv`` is rebuilt from every stored result of the assignment, whichever folder it came from,
    with the gradebook's hand grades and late penalties merged in."""
    cfg = cfg or config_mod.load()
    root = cfg.root
    submissions = Path(submissions).resolve()
    workers = workers or cfg.workers
    t0 = time.monotonic()
    rel_dir = root / "assignments" / assignment
    if not rel_dir.is_dir():
        raise SystemExit(f"no release at {rel_dir}: run `python -m autograder release {assignment}`")
    if not submissions.is_dir():
        raise SystemExit(f"no submissions folder at {submissions}")
    own = (config_mod.state_dir() / "submitted").resolve()
    if submissions == own or submissions.is_relative_to(own):
        raise SystemExit(f"{submissions} is the grading command's own working folder (nbgrader's submitted/, "
                         "rewritten for every student it grades): copy what `nbgrader collect` put there first, "
                         f"e.g. cp -r {own} collected-{assignment}, and grade the copy; nothing was graded")
    nb_names = sorted(release_notebooks(assignment, root))
    if len(nb_names) != 1:
        raise SystemExit(f"{assignment}: the grading command handles one notebook per assignment, found {nb_names}")
    try:
        found = discover(submissions, nb_names)
    except IntakeError as exc:
        raise SystemExit(f"cannot grade {submissions}: {exc}") from None
    if students:
        wanted = {_slug(s) for s in students}
        missing = sorted(wanted - {f.student for f in found})
        if missing:
            raise SystemExit(f"no submission for {', '.join(missing)} in {submissions} (ids there: "
                             f"{', '.join(sorted(f.student for f in found)) or 'none'}): nothing was graded")
        found = [f for f in found if f.student in wanted]
    with _cluster(cfg, log), grading_lock(assignment, wait=lock_wait, log=log):
        return _grade_locked(assignment, submissions, found, nb_names, workers, force, out_csv, cfg, log, t0,
                             timestamps or {})


def _grade_locked(assignment, submissions, found, nb_names, workers, force, out_csv, cfg, log, t0,
                  timestamps) -> Summary:
    """Under the assignment's lock: plan (reuse what is unchanged), start the workers, check the release while
    they start, grade the rest, and rebuild the class files from every stored result."""
    root = cfg.root
    rel_dir = root / "assignments" / assignment
    mode, mode_note = sandbox.probe()
    release_hash = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(rel_dir.rglob("*.ipynb")))).hexdigest()
    secret_hash = hashlib.sha256(judge.secret().encode()).hexdigest()[:16]
    runs = cfg.runs / assignment
    runs.mkdir(parents=True, exist_ok=True)
    tasks, results = [], {}
    for f in found:
        task = _plan_task(assignment, submissions, f, nb_names[0], cfg, timestamps, (release_hash, secret_hash))
        old = None if force else _reusable(runs / f"{f.student}.json", task["key"])
        if old is not None:
            results[f.student] = old
        else:
            tasks.append(task)
    reused = len(results)
    with _workers(tasks, workers, cfg) as grade_batch:  # forked now: each sets itself up while the release is checked
        fresh, diff = release_is_fresh(assignment, root)  # also puts the assignment into the gradebook
        if not fresh:
            raise SystemExit(f"the release of {assignment} is stale ({', '.join(diff)}): run "
                             f"`python -m autograder release {assignment}` and hand out the new release")
        log(f"sandbox: {mode} ({mode_note}), {sandbox.start_kind()} start")
        log(f"{len(tasks)} to grade, {reused} unchanged since the last run, {workers} worker(s)")
        _preload_plotting()  # while the workers grade: the class overview's plotting library
        _grade_tasks(tasks, grade_batch, bool(cfg.scheduler), runs, results, log)
    class_rows, out_csv, overview = write_class_files(assignment, runs, out_csv)
    here = set(results)
    rows = [r for r in class_rows if r["student_id"] in here]
    return Summary(rows, len(tasks), reused, time.monotonic() - t0, out_csv, mode, class_rows, overview)


@contextlib.contextmanager
def _workers(tasks: list, workers: int, cfg):
    """The run's grading workers, forked before they get anything to grade, so that each sets itself up (and starts
    its warm parent) while this process checks the release. Yields ``grade(batch, arrived, alone=False)``
    (:func:`_run_pool` on them; ``alone``: one at a time in a worker of its own). The scratch folder (the
    sandboxes' library) is removed at the end."""
    sandbox.cleanup_stale()  # cgroups and scratch folders of runs that were killed
    scratch, scratch_lock = sandbox.scratch_dir()
    pool = None
    try:
        lib = sandbox.prepare_library(scratch / "lib")
        cfg_dict = {"root": str(cfg.root), "limits": dataclasses.asdict(cfg.limits), "lib": str(lib),
                    "scratch": str(scratch), "scheduler": cfg.scheduler, "parent": os.getpid(),
                    "assignment": tasks[0]["assignment"] if tasks else None}
        if tasks and not cfg.scheduler:
            pool = _new_pool(min(workers, len(tasks)), cfg_dict)
            pool.submit(int)  # the fork start forks every worker at the first task: now

        def grade(batch, arrived, alone=False):
            _run_pool(batch, 1 if alone else workers, cfg_dict, arrived, None if alone else pool)

        yield grade
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(scratch, ignore_errors=True)
        os.close(scratch_lock)


def _plan_task(assignment, submissions: Path, f: Found, notebook: str, cfg, timestamps: dict, hashes: tuple) -> dict:
    """The grading task of one entry: what a worker needs, and the key of everything the result depends on
    (the submission's bytes and files beside it, release, secret, submission time, grader, limits)."""
    from . import safefs

    sid, path, note, refused = f.student, f.path, f.note, f.refused
    if path is not None:
        try:
            data = safefs.read_file(submissions, f.rel)
        except (safefs.Refused, OSError) as exc:
            path, refused = None, why(exc)
    if path is None:
        data = (b"refused: " + refused.encode() if refused else
                b"ambiguous: " + f.ambiguous.encode() if f.ambiguous else b"")
    folder = student_folder({"path": path, "rel_path": f.rel}) if path else None
    for arrays in judge.attachments(assignment, folder).values():  # a new model file is a new submission
        data += b"|" + b"".join(a.tobytes() for a in arrays.values())
    stamp, stamp_note = (timestamps[sid], "") if sid in timestamps else _timestamp_file(submissions, f.rel) if path else ("", "")
    note = "; ".join(x for x in (note, stamp_note) if x)
    key = hashlib.sha256(b"|".join([data, hashes[0].encode(), hashes[1].encode(), stamp.encode(),
                                    config_mod.GRADER_VERSION.encode(), note.encode(),
                                    json.dumps(dataclasses.asdict(cfg.limits), sort_keys=True).encode()])).hexdigest()
    return {"assignment": assignment, "student": sid, "path": str(path) if path else None,
            "root": str(submissions), "rel_path": f.rel, "refused": refused, "note": note,
            "key": key, "notebook": notebook, "timestamp": stamp,
            "needs_folder": _needs_folder(assignment, submissions, f), "ambiguous": f.ambiguous}


def _reusable(stored: Path, key: str) -> dict | None:
    """The stored result when it was graded from exactly this key (a grader failure is always retried)."""
    if not stored.exists():
        return None
    try:
        old = json.loads(stored.read_text())
    except (OSError, ValueError):
        return None
    return old if isinstance(old, dict) and old.get("key") == key and old.get("status") != "grader_error" else None


def _grade_tasks(tasks: list, grade_batch, scheduler: bool, runs: Path, results: dict, log) -> None:
    """Grade ``tasks`` with ``grade_batch`` (:func:`_workers`) and record each result as it is final."""
    # a step stopped on the wall clock while it used little CPU: maybe the machine was busy, not
    # the student slow. Grade those submissions again, one at a time, before the timeout counts
    # (and record nothing for them before that, so that a resumed run grades them again too).
    # Every other result is recorded as it arrives (a killed command resumes after it).
    again = []

    def arrived(t, res):
        if res.get("wall_trips"):
            again.append(dict(t, alone=True))
        else:
            _record(t, res, runs, results, log)

    grade_batch(tasks, arrived)
    how = "again, one task per sandbox slot" if scheduler else "again alone"
    if again:
        log(f"{len(again)} submission(s) stopped on the wall clock: grading them {how}")

    def regraded(t, res):
        res["detail"] = "; ".join(x for x in [res.get("detail", ""), f"graded {how} after a "
                                              "wall-clock stop (a busy machine is never charged)"] if x)
        _record(t, res, runs, results, log)

    grade_batch(again, regraded, alone=True)
