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
from pathlib import Path

import nbformat

from . import config as config_mod
from . import judge, sandbox

STATUS_ORDER = ["grader_error", "malformed", "tampering_detected", "missing_cells", "timeout", "memory", "crash",
                "process_limit", "output_limit", "ok"]


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


def _slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "student"
    return s[:64]


def discover(submissions: Path, notebook_names: list) -> list:
    """[(student_id, path or None, note)]: one ``.ipynb`` per student, as a file or in a folder."""
    found, seen = [], set()
    for entry in sorted(Path(submissions).iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            sid, path, note = _slug(entry.stem), entry, ""
        elif entry.is_dir():
            nbs = sorted(p for p in entry.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
            sid = _slug(entry.name)
            exact = [p for p in nbs if p.stem in notebook_names]
            if exact:
                path, note = exact[0], ""
            elif nbs:
                path = max(nbs, key=lambda p: p.stat().st_mtime)
                note = f"notebook named {path.name!r}" + (f" (latest of {len(nbs)})" if len(nbs) > 1 else "")
            else:
                path, note = None, "no notebook in the folder"
        else:
            continue
        base, k = sid, 2
        while sid in seen:
            sid, k = f"{base}_{k}", k + 1
        seen.add(sid)
        found.append((sid, path, note))
    return found


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


def repair(nb, release_nb) -> None:
    """Make the notebook nbgrader's bookkeeping can take: a duplicated nbgrader cell keeps its
    first copy (later copies become plain cells), and missing test cells are put back after the
    cell that precedes them in the release. (nbgrader 0.9.6's own handling of both can crash.)"""
    seen = set()
    for c in nb.cells:
        nbg = c.get("metadata", {}).get("nbgrader")
        if not nbg:
            continue
        gid = nbg.get("grade_id")
        if not gid or gid in seen:
            for key in ("nbgrader", "editable", "deletable"):
                c["metadata"].pop(key, None)
        else:
            seen.add(gid)
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


def _init_worker(cfg_dict):
    import warnings

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
    _W["api"] = nbgrader_api(root)
    _W["lock"] = config_mod.state_dir() / ".gradebook.lock"


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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

        return _grader_error(task, f"{type(exc).__name__}: {exc}", traceback.format_exc())


def _grader_error(task, message, tb=""):
    return {"student_id": task["student"], "score": 0.0, "max_score": float(sum(e.points for e in _exercises(task["assignment"]).values())),
            "status": "grader_error", "detail": f"the grader failed on this submission ({message}); it was NOT graded: fix and re-run",
            "file": str(task["rel_path"]), "verdicts": {}, "sandbox": "", "attempts": 0, "seconds": 0.0,
            "key": None, "traceback": tb[-4000:]}


def _grade_one(task: dict) -> dict:
    root, assignment, sid = _W["root"], task["assignment"], task["student"]
    t0 = time.monotonic()
    nb_name = task["notebook"]
    rel = nbformat.read(str(root / "assignments" / assignment / f"{nb_name}.ipynb"), as_version=4)
    status, details = [], []
    if task["note"]:
        details.append(task["note"])
    nb = None
    if task["path"] is None:
        reason = "no notebook was handed in"
    else:
        raw = Path(task["path"]).read_bytes()
        try:
            nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
            if not isinstance(nb.get("cells"), list):
                raise ValueError("no list of cells")
            for c in nb.cells:
                if c.get("cell_type") not in ("code", "markdown", "raw") or not isinstance(c.get("source", ""), (str, list)):
                    raise ValueError("a cell without a valid type or source")
                c.setdefault("metadata", {})
                if c.cell_type == "code":
                    c.setdefault("outputs", [])
                    c.setdefault("execution_count", None)
        except Exception as exc:  # noqa: BLE001
            nb, reason = None, f"not a valid notebook: {type(exc).__name__}"
    if nb is None:
        status.append("malformed")
        details.append(reason)
        j = _malformed_judgement(assignment, reason)
        nb = nbformat.from_dict(json.loads(json.dumps(rel)))
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(
            f"**This submission could not be graded: {reason}.** It was recorded with a score of 0 "
            "and the status `malformed`. Contact the course staff."))
    else:
        src_path = root / "solutions" / assignment / f"{nb_name}.ipynb"
        s = structure(nb, rel, nbformat.read(str(src_path), as_version=4) if src_path.exists() else None)
        if s["edited"] or s["duplicated"]:
            status.append("tampering_detected")
            if s["edited"]:
                details.append("test cells edited: " + ", ".join(s["edited"]) + " (restored from the gradebook)")
            if s["duplicated"]:
                details.append("cells duplicated: " + ", ".join(s["duplicated"]))
        if s["missing"]:
            status.append("missing_cells")
            details.append("cells missing: " + ", ".join(s["missing"]) + " (test cells put back)")
        j = judge.judge_notebook(nb, assignment, sid, _W["limits"], _W["lib"], _W["scratch"],
                                 folder=_student_folder(task))
        for kind, d in j.events:
            status.append(kind)
            details.append(d)
        repair(nb, rel)
    if j.mode == "limits":
        details.append("sandbox degraded: " + sandbox.probe()[1])
    # nbgrader bookkeeping
    sub_dir = config_mod.state_dir() / "submitted" / sid / assignment
    if sub_dir.exists():
        shutil.rmtree(sub_dir)
    sub_dir.mkdir(parents=True)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    nbformat.write(nb, str(sub_dir / f"{nb_name}.ipynb"))
    judge.CACHE.clear()
    judge.CACHE[(assignment, sid, nb_name)] = j
    api = _W["api"]
    t_book = time.monotonic()
    with _locked(_W["lock"]):
        r = api.autograde(assignment, sid, force=True, create=True)
        if not r["success"]:
            raise RuntimeError(f"nbgrader autograde failed for {sid}: {(r.get('log') or '')[-3000:]}")
        from nbgrader.api import Gradebook

        with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
            sub = gb.find_submission(assignment, sid)
            score, max_score = float(sub.score), float(sub.max_score)
    # feedback only reads the gradebook: outside the lock, in parallel with other workers
    f = api.generate_feedback(assignment, sid, force=True)
    if not f["success"]:
        raise RuntimeError(f"nbgrader generate_feedback failed for {sid}: {f.get('error') or f.get('log')}")
    judge_score = float(sum(ex.points for name, ex in _exercises(assignment).items() if j.verdicts[name].passed))
    if abs(judge_score - score) > 1e-9:
        raise RuntimeError(f"gradebook score {score} for {sid} differs from the judge's {judge_score}")
    t_book = time.monotonic() - t_book
    status = min(status or ["ok"], key=STATUS_ORDER.index)
    return {
        "student_id": sid, "score": score, "max_score": max_score, "status": status,
        "detail": "; ".join(dict.fromkeys(details)), "file": str(task["rel_path"]),
        "verdicts": {n: {"passed": v.passed, "hint": v.hint, "hidden_failed": v.failed_hidden}
                     for n, v in j.verdicts.items()},
        "sandbox": j.mode, "attempts": j.attempts, "seconds": round(time.monotonic() - t0, 3),
        "sandbox_seconds": round(j.seconds, 3), "nbgrader_seconds": round(t_book, 3),
        "key": task["key"],
    }


def _student_folder(task) -> Path | None:
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
    results: list
    graded: int
    reused: int
    seconds: float
    csv: Path
    mode: str


def _atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def grade(assignment: str, submissions: Path, *, workers: int | None = None, force: bool = False,
          out_csv: Path | None = None, cfg=None, log=print) -> Summary:
    cfg = cfg or config_mod.load()
    root = cfg.root
    submissions = Path(submissions).resolve()
    workers = workers or cfg.workers
    t0 = time.monotonic()
    rel_dir = root / "assignments" / assignment
    if not rel_dir.is_dir():
        raise SystemExit(f"no release at {rel_dir}: run `python -m autograder release {assignment}`")
    fresh, diff = release_is_fresh(assignment, root)  # also puts the assignment into the gradebook
    if not fresh:
        raise SystemExit(f"the release of {assignment} is stale ({', '.join(diff)}): run "
                         f"`python -m autograder release {assignment}` and hand out the new release")
    nb_names = sorted(release_notebooks(assignment, root))
    if len(nb_names) != 1:
        raise SystemExit(f"{assignment}: the grading command handles one notebook per assignment, found {nb_names}")
    mode, why = sandbox.probe()
    log(f"sandbox: {mode} ({why})")
    release_hash = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(rel_dir.rglob("*.ipynb")))).hexdigest()
    secret_hash = hashlib.sha256(judge.secret().encode()).hexdigest()[:16]
    runs = cfg.runs / assignment
    runs.mkdir(parents=True, exist_ok=True)
    tasks, results, reused = [], {}, 0
    for sid, path, note in discover(submissions, nb_names):
        data = path.read_bytes() if path else b""
        folder = _student_folder({"path": path, "rel_path": path.relative_to(submissions).as_posix()}) if path else None
        for arrays in judge.attachments(assignment, folder).values():  # a new model file is a new submission
            data += b"|" + b"".join(a.tobytes() for a in arrays.values())
        key = hashlib.sha256(b"|".join([data, release_hash.encode(), secret_hash.encode(),
                                        config_mod.GRADER_VERSION.encode(), note.encode(),
                                        json.dumps(dataclasses.asdict(cfg.limits), sort_keys=True).encode()])).hexdigest()
        stored = runs / f"{sid}.json"
        if not force and stored.exists():
            try:
                old = json.loads(stored.read_text())
                if old.get("key") == key:
                    results[sid] = old
                    reused += 1
                    continue
            except (OSError, ValueError):
                pass
        tasks.append({"assignment": assignment, "student": sid, "path": str(path) if path else None,
                      "rel_path": path.relative_to(submissions).as_posix() if path else "", "note": note,
                      "key": key, "notebook": nb_names[0]})
    log(f"{len(tasks)} to grade, {reused} unchanged since the last run, {workers} worker(s)")
    scratch = Path(tempfile.mkdtemp(prefix="autograder-"))
    os.chmod(scratch, 0o711)
    try:
        lib = sandbox.prepare_library(scratch / "lib")
        os.chmod(scratch / "lib", 0o755)
        cfg_dict = {"root": str(root), "limits": dataclasses.asdict(cfg.limits), "lib": str(lib),
                    "scratch": str(scratch)}
        if tasks:
            ctx = mp.get_context("fork")
            with cf.ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx,
                                        initializer=_init_worker, initargs=(cfg_dict,)) as pool:
                futures = {pool.submit(grade_one, t): t for t in tasks}
                for fut in cf.as_completed(futures):
                    t = futures[fut]
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a worker died: report, keep going
                        res = _grader_error(t, f"worker failed: {type(exc).__name__}: {exc}")
                    _atomic_json(runs / f"{t['student']}.json", res)
                    results[t["student"]] = res
                    log(f"  {res['student_id']:<28} {res['score']:>5g}/{res['max_score']:g}  {res['status']:<18} "
                        f"{res['seconds']:.1f}s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    out_csv = Path(out_csv) if out_csv else runs / "grades.csv"
    rows = sorted(results.values(), key=lambda r: r["student_id"])
    tmp = out_csv.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "score", "max_score", "status", "detail", "file"])
        for r in rows:
            w.writerow([r["student_id"], f"{r['score']:g}", f"{r['max_score']:g}", r["status"], r["detail"], r["file"]])
    os.replace(tmp, out_csv)
    return Summary(rows, len(tasks), reused, time.monotonic() - t0, out_csv, mode)
