"""The sandbox side of grading: runs one student's code cells, then calls their functions.

This file runs *inside* the sandbox (an unprivileged process with no network and no view of the
course repository), next to untrusted code. Nothing it reports is trusted: it only writes plain
arrays (``np.savez``), and the grader loads them with ``allow_pickle=False`` and computes the
verdict itself. It needs the standard library, numpy, torch and ``_protocol.py`` next to it.

Files in its directory (``/sandbox`` inside the sandbox):
  job.json      written by the grader: cells to run, cells/exercises to skip, limits
  progress      appended by this runner: one line per step ("cell 3", "ready", "exercise rnn_step", "done")
  inputs.npz    written by the grader only after "ready": the judge's cases
  cells.npz     written here after the cells ran: per-cell stdout, stderr, error, figures
  judge.npz     written here at the end: per-exercise, per-case outputs
"""
import ast
import io
import json
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
MAIN_PID = os.getpid()


class CellTimeout(BaseException):
    """Raised in a cell that runs past its time limit (not an Exception: `except Exception` misses it)."""


def _alarm(signum, frame):
    raise CellTimeout()


def progress(line):
    if os.getpid() != MAIN_PID:
        os._exit(0)
    with open(os.path.join(HERE, "progress"), "a") as f:
        f.write(line + "\n")


class Capped(io.TextIOBase):
    """A text stream that keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, limit):
        self.limit, self.parts, self.kept, self.total = limit, [], 0, 0

    def writable(self):
        return True

    def write(self, s):
        s = str(s)
        self.total += len(s)
        if self.kept < self.limit:
            piece = s[: self.limit - self.kept]
            self.parts.append(piece)
            self.kept += len(piece)
        return len(s)

    def flush(self):
        pass

    def text(self):
        out = "".join(self.parts)
        if self.total > self.kept:
            out += f"\n[output truncated: {self.total} characters, the first {self.kept} shown]\n"
        return out


def strip_magics(src):
    lines = []
    for line in src.splitlines():
        s = line.lstrip()
        if s.startswith(("%", "!")):
            lines.append(line[: len(line) - len(s)] + "pass  # IPython magic or shell command skipped")
        else:
            lines.append(line)
    return "\n".join(lines)


def student_traceback(exc):
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell")]
    lines = traceback.format_list(frames)
    return "".join(lines) + "".join(traceback.format_exception_only(type(exc), exc))


def run_cell(src, idx, ns, timeout, max_chars):
    out, err = Capped(max_chars), Capped(max_chars)
    result = {"stdout": "", "stderr": "", "error_type": "", "error": "", "result": ""}
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        tree = ast.parse(strip_magics(src), filename=f"<cell {idx}>")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr) and not src.rstrip().endswith(";"):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, f"<cell {idx}>", "exec"), ns)
        if last is not None:
            value = eval(compile(last, f"<cell {idx}>", "eval"), ns)
            if value is not None:
                result["result"] = repr(value)[:max_chars]
    except CellTimeout:
        result["error_type"], result["error"] = "CellTimeout", f"the cell ran longer than {timeout:g} s"
    except BaseException as exc:  # noqa: BLE001 - the student's exception is data here
        try:
            result["error_type"], result["error"] = type(exc).__name__, student_traceback(exc)[-max_chars:]
        except BaseException:
            result["error_type"], result["error"] = "Error", "unprintable exception"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdout, sys.stderr = old
    if os.getpid() != MAIN_PID:  # a forked child never reports anything
        os._exit(0)
    result["stdout"], result["stderr"] = out.text(), err.text()
    result["truncated"] = out.total > out.kept or err.total > err.kept
    return result


def figures(max_figs=6, max_bytes=2_000_000):
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    pngs = []
    try:
        for num in plt.get_fignums()[:max_figs]:
            buf = io.BytesIO()
            plt.figure(num).savefig(buf, format="png", dpi=72, bbox_inches="tight")
            if buf.tell() <= max_bytes:
                pngs.append(buf.getvalue())
        plt.close("all")
    except BaseException:
        pass
    return pngs


def main():
    import numpy as np

    os.chdir(HERE)
    with open(os.path.join(HERE, "job.json")) as f:
        job = json.load(f)
    sys.path.insert(0, HERE)
    import _protocol  # noqa: E402  (the copy next to this file)

    sys.path.remove(HERE)
    sys.argv = ["notebook"]
    ns = {"__name__": "__main__", "__builtins__": __builtins__}
    cells = {}
    skip = set(job["skip_cells"])
    for cell in job["cells"]:
        idx = cell["index"]
        if idx in skip:
            continue
        progress(f"cell {idx}")
        r = run_cell(cell["source"], idx, ns, job["cell_timeout"], job["max_output_chars"])
        for key in ("stdout", "stderr", "error_type", "error", "result"):
            cells[f"cell/{idx}/{key}"] = np.array(r[key])
        cells[f"cell/{idx}/truncated"] = np.array(bool(r["truncated"]))
        for j, png in enumerate(figures()):
            cells[f"cell/{idx}/fig/{j}"] = np.frombuffer(png, dtype=np.uint8)
    sys.stdout = Capped(0)  # nothing the student's functions print from here on is kept
    sys.stderr = Capped(0)
    np.savez(os.path.join(HERE, "cells.tmp.npz"), **cells)
    os.replace(os.path.join(HERE, "cells.tmp.npz"), os.path.join(HERE, "cells.npz"))

    progress("ready")
    inputs_path = os.path.join(HERE, "inputs.npz")
    deadline = time.monotonic() + 60
    while not os.path.exists(inputs_path):
        if time.monotonic() > deadline:
            return 3
        time.sleep(0.01)
    with np.load(inputs_path, allow_pickle=False) as z:
        inputs = {k: z[k] for k in z.files}
    results = {}
    for ex in job["exercises"]:
        name = ex["name"]
        if name in job["skip_exercises"]:
            continue
        progress(f"exercise {name}")
        fn = ns.get(name)
        timed_out = False
        for i in range(ex["n_cases"]):
            key = f"{name}/{i}/"
            if timed_out:  # one case past the limit is enough: do not wait for every case
                got = {"error_type": np.array("TimeLimit"), "error": np.array("")}
            elif fn is None:
                got = {"error_type": np.array("Missing"), "error": np.array("")}
            elif not callable(fn):
                got = {"error_type": np.array("NotCallable"),
                       "error": np.array(f"`{name}` is a {type(fn).__name__}")}
            else:
                case = {k[len(key):]: v for k, v in inputs.items() if k.startswith(key)}
                signal.signal(signal.SIGALRM, _alarm)
                signal.setitimer(signal.ITIMER_REAL, job["call_timeout"])
                try:
                    got = _protocol.call(ex["protocol"], fn, case, ex["arg_names"], ex["scalar_names"])
                except CellTimeout:
                    got = {"error_type": np.array("TimeLimit"), "error": np.array("")}
                except BaseException as exc:  # noqa: BLE001
                    got = {"error_type": np.array(type(exc).__name__), "error": np.array(str(exc)[:400])}
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                if os.getpid() != MAIN_PID:
                    os._exit(0)
                timed_out = str(got.get("error_type", "")) == "TimeLimit"
            for k, v in got.items():
                results[key + k] = v
    progress("done")
    np.savez(os.path.join(HERE, "judge.tmp.npz"), **results)
    os.replace(os.path.join(HERE, "judge.tmp.npz"), os.path.join(HERE, "judge.npz"))
    progress("written")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
