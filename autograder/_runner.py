"""The sandbox side of grading: runs one student's cells, then calls their functions, on request.

This file runs *inside* the sandbox (an unprivileged process with no network and no view of the
course repository), next to untrusted code that can patch anything in this process. So nothing
it says is trusted: the grader drives every step itself, times each one on its own clock,
counts every byte, validates every reply, and computes the verdict in its own process.

It talks to the grader over two inherited pipes, never through files (``argv``: the request fd,
the reply fd, the folder holding ``course_lib``). A message is a frame: a 4-byte length and a
JSON header, then an 8-byte length and a body (arrays, :func:`pack`, or nothing).

  grader -> runner   {"op": "cell", "index", "source", "cpu", "wall",      run one cell; its figures
                      "figures": "draw" | "name"}                          captions, and PNGs if "draw"
                     {"op": "call", "exercise", "case", "protocol", ...}    call a function on
                                                                            the arrays in the body
                     {"op": "exit"}
  runner -> grader   {"op": "hello"} once the interpreter and its imports are ready, then one
                     reply per request: {"op": "cell"|"call", ...} with arrays in the body.

What the student's code prints goes straight to this process's stdout and stderr, pipes that the
grader drains and caps itself.
"""
import ast
import io
import json
import os
import re
import signal
import struct
import sys
import traceback

MAIN_PID = os.getpid()


class CellTimeout(BaseException):
    """Raised in a cell or call past its time limit (not an Exception: `except Exception` misses it)."""


def _alarm(signum, frame):
    raise CellTimeout()


# ------------------------------------------------------------------ the channel
def _read_exact(fd, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("the grader closed the channel")
        buf += chunk
    return bytes(buf)


def recv(fd):
    (hlen,) = struct.unpack(">I", _read_exact(fd, 4))
    header = json.loads(_read_exact(fd, hlen))
    (blen,) = struct.unpack(">Q", _read_exact(fd, 8))
    return header, _read_exact(fd, blen)


def send(fd, header, arrays=None):
    body = pack(arrays) if arrays is not None else b""
    head = json.dumps(header).encode()
    view = memoryview(struct.pack(">I", len(head)) + head + struct.pack(">Q", len(body)) + body)
    while view:
        view = view[os.write(fd, view):]


def pack(arrays):
    """``arrays`` (name -> array-like) as one body: a 4-byte length, a JSON table ``[[name, dtype, shape],
    ...]`` (numpy's dtype string, e.g. ``"<f8"``), then each array's bytes in C order, one after another.
    An object array cannot be sent (ValueError)."""
    import numpy as np

    table, parts = [], []
    for k, v in arrays.items():
        a = np.asarray(v)  # (tobytes gives C order whatever the layout; ascontiguousarray would make a 0-d 1-d)
        if a.dtype.hasobject or a.dtype.fields is not None:
            raise ValueError(f"{k}: an array of objects or records cannot be sent")
        table.append([str(k), a.dtype.str, list(a.shape)])
        parts.append(a.tobytes())
    head = json.dumps(table).encode()
    return b"".join([struct.pack(">I", len(head)), head, *parts])


_DTYPE = re.compile(r"[<>|=][a-zA-Z][0-9]{1,9}(\[[a-zA-Z]{1,4}\])?")  # what numpy's dtype.str gives a plain type


def unpack(body, kinds="biufU", max_arrays=10_000, max_size=10_000_000):
    """The arrays of a :func:`pack` body (own, writable copies), read without trusting it: ValueError when
    it is not one (a bad table, a dtype that is not a plain type, sizes past its end, bytes left over);
    an array of a kind not in ``kinds``, of more than ``max_size`` elements or with a name over 200
    characters is left out."""
    import numpy as np

    (n,) = struct.unpack(">I", body[:4])
    if n > 1 << 20:
        raise ValueError("table too long")
    table, pos, out = json.loads(bytes(body[4:4 + n])), 4 + n, {}
    if not isinstance(table, list) or len(table) > max_arrays:
        raise ValueError("not a table of arrays")
    for entry in table:
        name, dtype, shape = _entry(entry)
        count = 1
        for d in shape:
            count *= d
        nbytes = count * dtype.itemsize
        if pos + nbytes > len(body):
            raise ValueError("an array runs past the end")
        if dtype.kind in kinds and count <= max_size and len(name) <= 200 and dtype.itemsize:
            out[name] = np.frombuffer(body, dtype, count, pos).reshape(shape).copy()
        pos += nbytes
    if pos != len(body):
        raise ValueError("bytes after the last array")
    return out


def _entry(entry):
    """(name, dtype, shape) of one table entry, or ValueError."""
    import numpy as np

    if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str) and isinstance(entry[1], str)
            and isinstance(entry[2], list) and len(entry[2]) <= 32
            and all(type(d) is int and 0 <= d < 2**40 for d in entry[2])):
        raise ValueError("not an array entry")
    if not _DTYPE.fullmatch(entry[1]):
        raise ValueError("not a plain dtype")
    dtype = np.dtype(entry[1])
    if dtype.fields is not None or dtype.subdtype is not None or dtype.hasobject:
        raise ValueError("not a plain dtype")
    return entry[0], dtype, tuple(entry[2])


def flush_streams():
    for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            s.flush()
        except BaseException:
            pass


# ------------------------------------------------------------------ limits inside (the grader's are the real ones)
def start_timers(cpu, wall):
    signal.signal(signal.SIGPROF, _alarm)
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_PROF, cpu)
    signal.setitimer(signal.ITIMER_REAL, wall)


def stop_timers():
    signal.setitimer(signal.ITIMER_PROF, 0)
    signal.setitimer(signal.ITIMER_REAL, 0)


# ------------------------------------------------------------------ cells
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
    return "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(type(exc), exc))


def run_cell(src, idx, ns, cpu, wall, max_chars=20_000):
    result = {"error_type": "", "error": "", "result": ""}
    start_timers(cpu, wall)
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
        result["error_type"], result["error"] = "CellTimeout", "the cell ran past its time limit"
    except BaseException as exc:  # noqa: BLE001 - the student's exception is data here
        try:
            result["error_type"], result["error"] = type(exc).__name__, student_traceback(exc)[-max_chars:]
        except BaseException:
            result["error_type"], result["error"] = "Error", "unprintable exception"
    finally:
        stop_timers()
    if os.getpid() != MAIN_PID:  # a forked child never reports anything
        os._exit(0)
    return result


def figures(draw=True, max_figs=6):
    """The open figures (at most ``max_figs``), then closed: each as (its PNG, its caption), or (None, its
    caption) when ``draw`` is false. The caption is ``course_alt`` (``course_lib.plots.finish``), "" for a
    student's own figure. A figure that ``plots.finish`` laid out (its caption inside it) is drawn as it is;
    any other with a tight bounding box, as a notebook shows it (a second draw finds what lies outside it)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    out = []
    try:
        for num in plt.get_fignums()[:max_figs]:
            fig, png = plt.figure(num), None
            alt = getattr(fig, "course_alt", "")
            if draw:
                buf = io.BytesIO()
                fig.savefig(buf, format="png", dpi=72, bbox_inches=None if hasattr(fig, "course_alt") else "tight")
                png = buf.getvalue()
            out.append((png, alt if isinstance(alt, str) else ""))
        plt.close("all")
    except BaseException:
        pass
    return out


def draw_nothing():
    """Figures at grading time when they are not drawn: matplotlib's ``template`` backend, whose canvas
    draws nothing (``plots.finish`` then measures no text and leaves the layout to a draw that never comes)."""
    import matplotlib

    if matplotlib.get_backend() != "template":
        matplotlib.use("template")


# ------------------------------------------------------------------ calls
def call(protocol_mod, ns, req, body):
    import numpy as np

    name = req["exercise"]
    fn = ns.get(name)
    if fn is None:
        return {"error_type": np.array("Missing"), "error": np.array("")}
    if not callable(fn):
        return {"error_type": np.array("NotCallable"), "error": np.array(f"`{name}` is a {type(fn).__name__}")}
    case = unpack(body)
    start_timers(req["cpu"], req["wall"])
    try:
        got = protocol_mod.call(req["protocol"], fn, case, req["arg_names"], req["scalar_names"])
    except CellTimeout:
        got = {"error_type": np.array("TimeLimit"), "error": np.array("")}
    except BaseException as exc:  # noqa: BLE001
        got = {"error_type": np.array(type(exc).__name__), "error": np.array(str(exc)[:400])}
    finally:
        stop_timers()
    if os.getpid() != MAIN_PID:
        os._exit(0)
    return got


# ------------------------------------------------------------------ main
# what a notebook's code imports on first use, imported here once: IPython by course_lib.plots.finish
# (40 ms), the library's own modules, the protocol helpers; plus what the grader names per assignment
WARM_IMPORTS = ("course_lib", "course_lib.budget", "course_lib.plots", "course_lib.models", "course_lib.tasks",
                "course_lib.train", "course_lib.checks", "IPython")
# figures at grading time: laid out at the dpi they are saved at (one renderer measures the text for
# the layout and for the tight bounding box), glyphs not hinted (a third of the cost of measuring text)
FIGURE_RC = {"figure.dpi": 72, "text.hinting": "no_hinting"}


def setup(course_dir, imports=()):
    """The grader's own setup, before any student code: imports that students' cells repeat are
    paid here, where the grader does not charge them to the student's clock. ``imports``: more
    modules to import (names; one that fails to import is skipped)."""
    import gc

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy  # noqa: F401
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, course_dir)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import _protocol  # noqa: E402  (the copy next to this file)

    sys.path.remove(here)
    for name in ("_protocol_rnn", "_protocol_train"):
        _protocol._extension(name)
    for mod in (*WARM_IMPORTS, *imports):
        try:
            __import__(mod)
        except Exception:
            pass
    matplotlib.rcParams.update(FIGURE_RC)
    warm_figure(plt)
    import matplotlib.backends.backend_template  # noqa: F401  (draw_nothing's backend)
    gc.collect()
    gc.freeze()  # all of the above stays out of every collection: never walked again (nor, after a fork, copied)
    return _protocol


def warm_figure(plt):
    """Draw one figure as a course notebook does (axes, a log scale, a legend, a caption, tight
    layout, a PNG with a tight bounding box): fonts, mathtext and the PNG writer load now."""
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.semilogy([1, 2, 3], [1e-3, 1e-1, 1e1], "o-", label="a")
    ax.set_xlabel("x")
    ax.legend()
    fig.text(0.01, -0.02, "a caption", ha="left", va="top", fontsize=9, style="italic")
    fig.tight_layout()
    fig.savefig(io.BytesIO(), format="png", dpi=72, bbox_inches="tight")
    plt.close(fig)


def main(req_fd, rep_fd, course_dir, *imports):
    """A cold runner: its own start-up, then the requests."""
    os.chdir(os.environ.get("HOME", "/"))
    setup(course_dir, imports)
    return serve(req_fd, rep_fd, course_dir)


def serve(req_fd, rep_fd, course_dir):
    """Say hello, then answer the grader's requests until it says exit or closes the channel. A warm
    child (autograder/_zygote.py) calls this directly: its parent ran :func:`setup` once for all."""
    os.chdir(os.environ.get("HOME", "/"))
    protocol_mod = sys.modules["_protocol"]
    sys.argv = ["notebook"]
    ns = {"__name__": "__main__", "__builtins__": __builtins__}
    flush_streams()
    send(rep_fd, {"op": "hello"})
    while True:
        try:
            req, body = recv(req_fd)
        except (EOFError, OSError, ValueError):
            return 0
        op = req.get("op")
        if op == "cell":
            draw = req.get("figures") == "draw"
            if not draw:
                draw_nothing()
            r = run_cell(req["source"], req["index"], ns, req["cpu"], req["wall"])
            arrays = {k: _text(v) for k, v in r.items()}
            for j, (png, caption) in enumerate(figures(draw)):
                arrays[f"figname/{j}"] = _text(caption)
                if png is not None:
                    arrays[f"fig/{j}"] = _bytes(png)
            flush_streams()  # everything the cell printed is in the pipe before the reply
            send(rep_fd, {"op": "cell", "index": req["index"]}, arrays)
        elif op == "call":
            got = call(protocol_mod, ns, req, body)
            flush_streams()
            send(rep_fd, {"op": "call", "exercise": req["exercise"], "case": req["case"]}, got)
        else:
            return 0


def _text(s):
    import numpy as np

    return np.array(str(s))


def _bytes(b):
    import numpy as np

    return np.frombuffer(b, dtype=np.uint8)


if __name__ == "__main__":
    code = main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], *sys.argv[4:])
    flush_streams()
    os._exit(code)
