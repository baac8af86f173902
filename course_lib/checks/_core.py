"""Checks as data: each exercise is cases, a comparison and a diagnosis.

The same :class:`Exercise` runs in two modes.

- In the student's kernel (``check_<exercise>(fn)``): the visible cases, instant feedback, an
  ``AssertionError`` with a hint when something is wrong.
- As the grading judge (``autograder``): the student's function runs in a sandboxed process on
  cases drawn from a secret seed, only arrays come back (``_protocol``), and :func:`verdict`
  compares them with ``course_lib.reference`` in the grader's own process.

A hint names the likely mistake (by matching the student's output against known wrong
implementations, the *mutants*) without giving the answer away.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import signal
import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import _protocol, _schema

KERNEL_TIME_LIMIT = 30.0  # seconds per case in the student's kernel


class CheckTimeout(Exception):
    """Raised inside a student's function when a kernel-mode check runs out of time."""


@dataclass
class Case:
    """One set of inputs, as plain arrays. ``label`` says what is special about it (no values)."""

    arrays: dict
    label: str
    hidden: bool = False
    # what kind of case it is (beyond its dtype, which :func:`case_kinds` adds): the visible cases hold
    # every kind the hidden ones hold, so that "all checks passed" in the notebook means something
    kinds: tuple = ()


@dataclass
class Mutant:
    """A known wrong implementation and the hint shown when the student's output matches it.

    A mutant of a *family* (``family(**knobs)`` built it) can be combined with another mutant of the same
    family whose knobs are different settings: when no single mistake explains a result, pairs are tried, and
    the hint names both mistakes (see :func:`combine`)."""

    fn: Callable
    hint: str
    applies: Callable | None = None  # case -> bool; None: always
    family: Callable | None = None  # (**knobs) -> fn
    knobs: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.family is None and getattr(self.fn, "family", None) is not None:
            self.family, self.knobs = self.fn.family, self.fn.knobs


def family(builder: Callable) -> Callable:
    """Decorator for a family of mutants, ``builder(**knobs) -> fn``: every fn it builds remembers its family
    and knobs, so that ``Mutant(fn, hint)`` can be paired with another mutant of the family (:func:`combine`)."""
    @functools.wraps(builder)
    def build(**knobs):
        fn = builder(**knobs)
        fn.family, fn.knobs = build, knobs
        return fn
    return build


def combine(a: Mutant, b: Mutant) -> Mutant | None:
    """The two mistakes made together: one mutant of their family with both settings; None when they are not
    of one family or set the same knob (dict-valued knobs, e.g. one activation per gate, merge when disjoint)."""
    if a.family is None or a.family is not b.family:
        return None
    knobs = dict(a.knobs)
    for k, v in b.knobs.items():
        if k not in knobs:
            knobs[k] = v
        elif isinstance(v, dict) and isinstance(knobs[k], dict) and not set(v) & set(knobs[k]):
            knobs[k] = {**knobs[k], **v}
        else:
            return None
    applies = None  # where one of the two shows (the other may show on another case only, see diagnose)
    if a.applies and b.applies:
        applies = lambda c: a.applies(c) or b.applies(c)  # noqa: E731
    return Mutant(a.family(**knobs), f"two mistakes together explain your results:\n- {a.hint}\n- {b.hint}",
                  applies)


@dataclass
class Verdict:
    passed: bool
    hint: str | None
    n_cases: int
    n_hidden: int
    failed_label: str | None = None
    failed_hidden: bool = False


@dataclass
class Exercise:
    name: str  # the function the student writes, e.g. "rnn_step"
    points: int
    protocol: str  # "plain" or "clip" (see _protocol)
    arg_names: list
    make_cases: Callable  # (rng, hidden) -> list[Case]
    reference: Callable  # () -> the reference callable (imported lazily)
    mutants: Callable  # () -> list[Mutant]
    scalar_names: list = field(default_factory=list)
    compare: Callable | None = None  # (case, got, want) -> None | (error, field)
    error_hint: Callable | None = None  # (case, etype, msg) -> str | None
    output_kind: str = "tensor"  # "tensor" or "number"
    # what each compared result entry is, for the hint when no known mistake explains a result ({key: words});
    # or a callable (case, got, want) -> str | None that describes the difference itself
    describe: object = None

    def cases(self, seed: int, hidden: bool) -> list:
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 1 if hidden else 0, sum(map(ord, self.name))])
        out = self.make_cases(rng, hidden)
        for c in out:
            c.hidden = hidden
        return out

    def call(self, fn, case: Case) -> dict:
        return _protocol.call(self.protocol, fn, case.arrays, self.arg_names, self.scalar_names)


# ------------------------------------------------------------------ comparison helpers
def tolerances(dtype) -> tuple[float, float]:
    if np.dtype(dtype) == np.float64:
        return 1e-6, 1e-9
    return 2e-4, 2e-5


def close(a, b, dtype) -> bool:
    rtol, atol = tolerances(dtype)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))


def scalar_text(x) -> str:
    """``x`` as text for a hint: a 0-d array by its item, anything else by ``str``."""
    return str(x.item()) if isinstance(x, np.ndarray) and x.ndim == 0 else str(x)


def case_dtype(case: Case):
    for v in case.arrays.values():
        if v.dtype.kind == "f":
            return v.dtype
    return np.dtype(np.float32)


def size_kinds(B, I, H, scale=1.0) -> tuple:
    """The kinds of a case of a cell or a step: a batch of one, a size of one, I = H, saturated units."""
    return tuple(k for k, on in (("a batch of one", B == 1), ("a size of one", min(I, H) == 1),
                                 ("I = H", I == H), ("saturated units", scale > 1.5)) if on)


def padding_kinds(lengths, T) -> tuple:
    """The kinds of a padded batch: every sequence full length, padding, lengths out of order."""
    lengths = [int(n) for n in lengths]
    kinds = ("every sequence full length",) if min(lengths) == T else ("padding",)
    return kinds + (("unsorted lengths",) if lengths != sorted(lengths, reverse=True) else ())


def case_kinds(case: Case) -> set:
    """The kinds of ``case``: its own (``Case.kinds``) and its floating dtype."""
    return set(case.kinds) | {np.dtype(case_dtype(case)).name}


def shapes_text(case: Case, names) -> str:
    parts = []
    for n in names:
        a = case.arrays[n]
        parts.append(f"{n} {tuple(a.shape)}" if a.ndim else f"{n}={a.item()!r}")
    return ", ".join(parts)


def default_compare(ex: Exercise, case: Case, got: dict, want: dict) -> str | None:
    """Type, shape, dtype and values of ``out``; None when they match."""
    fn = ex.name
    if "out" not in got:
        t = scalar_text(got.get("out_type", "nothing"))
        if t == "NoneType":
            return f"`{fn}` returned None: did you forget the `return` statement?"
        what = "a torch.Tensor" if ex.output_kind == "tensor" else "a number or a 0-d tensor"
        return f"`{fn}` must return {what}, it returned a {t}."
    if ex.output_kind == "tensor" and scalar_text(got.get("out_type")) != "Tensor":
        return f"`{fn}` must return a torch.Tensor, it returned a {scalar_text(got['out_type'])}."
    g, w = got["out"], want["out"]
    if g.shape != w.shape:
        if ex.output_kind == "number" and g.size == 1:
            g = g.reshape(w.shape)
        else:
            return (f"`{fn}` returned shape {tuple(g.shape)} but shape {tuple(w.shape)} is expected "
                    f"for inputs {shapes_text(case, ex.arg_names)}.")
    if ex.output_kind == "tensor" and g.dtype != w.dtype:
        return (f"`{fn}` returned {g.dtype} for {w.dtype} inputs: keep the inputs' dtype (do not "
                "create tensors with a fixed dtype or convert with .float()/.double()).")
    if not np.all(np.isfinite(g)) and np.all(np.isfinite(w)):
        return f"`{fn}` returned NaN or inf values where the correct result is finite."
    if not close(g, w, case_dtype(case)):
        return "values"
    return None


def describe_error(fn: str, etype: str, msg: str) -> str:
    if etype == "NotImplementedError":
        return f"`{fn}` is not implemented yet: replace `raise NotImplementedError()` with your code."
    if etype == "Missing":
        return (f"`{fn}` is not defined in your notebook: keep the cell that defines it, with the "
                "same function name, and make sure the cell runs without errors.")
    if etype == "NotCallable":
        return f"`{fn}` is not a function: {msg}"
    if etype == "TimeLimit":
        return f"`{fn}` did not finish within the time limit: look for an endless loop or very slow code."
    if etype == "Crash":
        return f"`{fn}` crashed the Python process ({msg})."
    if etype == "MemoryError":
        return f"`{fn}` ran out of memory."
    return f"`{fn}` raised {etype}: {msg}"


def check_case(ex: Exercise, case: Case, got: dict, want: dict, others: Callable = lambda: ()) -> str | None:
    """None when the student's arrays match the reference's for this case, else a hint. ``others()``: the other
    cases whose values differ, as ``(case, got)``, asked for only when a diagnosis needs them."""
    malformed = _schema.problem(ex, got, want)  # first: the comparisons below read a complete result
    if malformed:
        return malformed
    if "error_type" in got:
        etype, msg = scalar_text(got["error_type"]), scalar_text(got.get("error", ""))
        specific = ex.error_hint(case, etype, msg) if ex.error_hint else None
        base = describe_error(ex.name, etype, msg)
        return base if not specific else f"{base}\nHint: {specific}"
    try:
        problem = (ex.compare or default_compare)(ex, case, got, want)
    except Exception:  # results that are not what any real function returns (e.g. forged ones)
        return (f"the grader could not read what `{ex.name}` returned: it is not what the exercise "
                "asks for (check the return type and shape).")
    if problem is None:
        key = _schema.nonfinite(ex, got, want)  # a net under the comparisons, which name the usual cases
        if key:
            return f"`{ex.name}` gave NaN or inf (in `{key}`) where the correct result is finite."
        changed = scalar_text(got["inputs_changed"]) if "inputs_changed" in want else ""
        if changed:
            return (f"`{ex.name}` changed its input(s) {changed} in place: compute new tensors "
                    "instead of modifying the arguments.")
        return None
    if problem != "values":
        return problem
    return diagnose(ex, case, got, want, others())


def _values_match(ex: Exercise, m: Mutant, case: Case, got: dict) -> bool:
    """A quick first test for protocols that also compute gradients: the outputs alone, without them (about
    twenty times faster; the full comparison follows when they match)."""
    spec = ex.arg_names
    if not (isinstance(spec, dict) and spec.get("grad")):
        return True
    mo = _protocol.call(ex.protocol, m.fn, case.arrays, {**spec, "grad": False, "probes": []}, ex.scalar_names)
    outs = {k for k in mo if k == "out" or k.startswith("out.")}
    return bool(outs) and outs == {k for k in got if k == "out" or k.startswith("out.")} \
        and all(np.shape(got[k]) == np.shape(mo[k]) and close(got[k], mo[k], case_dtype(case)) for k in outs)


def _explains(ex: Exercise, m: Mutant, case: Case, got: dict) -> bool:
    if m.applies is not None and not m.applies(case):
        return False
    try:
        if not _values_match(ex, m, case, got):
            return False
    except Exception:
        return False
    try:
        mo = ex.call(m.fn, case)
    except Exception:  # a mutant that cannot run on this case says nothing
        return False
    if "error_type" in mo:
        return False
    try:
        return (ex.compare or default_compare)(ex, case, got, mo) is None
    except Exception:
        return False


def diagnose(ex: Exercise, case: Case, got: dict, want: dict, others: list = ()) -> str:
    """The hint for values that differ: a known mistake, two known mistakes together, or where and how far
    the values are off (:func:`describe_difference`).

    ``others``: ``(case, got)`` of the other cases whose values differ too. A mistake (or a pair) that explains
    them all is named first, so that a second mistake which shows on another case only (gamma on a case with
    gamma = 1, padding on a full-length case) is named as well; then one that explains this case alone."""
    ms = ex.mutants()
    pairs = [both for k, a in enumerate(ms) for b in ms[k + 1:] for both in (combine(a, b),) if both is not None]
    if others:
        for m in (*ms, *pairs):
            if _explains(ex, m, case, got) and all(_explains(ex, m, c, g) for c, g in others):
                return m.hint
    for m in (*ms, *pairs):
        if _explains(ex, m, case, got):
            return m.hint
    where = describe_difference(ex, case, got, want)
    return (f"`{ex.name}` returns values that differ from the expected ones on a case with {case.label}"
            f"{': ' + where if where else ''}. None of the usual mistakes explains them: re-derive that part "
            "step by step.")


# ------------------------------------------------------------------ the fallback: where and how far
def _round(x: float, digits: int = 1) -> str:
    return f"{float(f'{x:.{digits}g}'):g}"


def how_far(g, w, dtype, hidden: bool) -> str:
    """How far ``g`` is from ``w`` in words: a constant factor when there is one, else the largest absolute
    error (one significant digit: it says how far, and gives no expected value away)."""
    g, w = np.asarray(g, dtype=np.float64).ravel(), np.asarray(w, dtype=np.float64).ravel()
    rtol, atol = tolerances(dtype)
    ok = np.isfinite(g) & np.isfinite(w)
    big = ok & (np.abs(w) > 100 * atol)
    if big.any() and ok.all():
        r = float(np.mean(g[big] / w[big]))
        if r != 0 and abs(r - 1) > 1e-3 and np.allclose(g, r * w, rtol=1e-3, atol=atol * abs(r)):
            return f"about {_round(r, 2)} times the expected values (a constant factor)"
    err = np.max(np.abs(g[ok] - w[ok])) if ok.any() else float("nan")
    if hidden:
        return f"off by up to about {_round(err)}"
    return f"off by up to {_round(err, 2)} (largest absolute error)"


def describe_difference(ex: Exercise, case: Case, got: dict, want: dict) -> str | None:
    """Which compared entries differ and how far (``ex.describe``: their names, or a callable)."""
    if callable(ex.describe):
        try:
            return ex.describe(case, got, want)
        except Exception:  # a description is a courtesy: never fail a verdict over it
            return None
    names = ex.describe or {"out": "the result"}
    dtype = case_dtype(case)
    parts = []
    for key, what in names.items():
        if key not in got or key not in want:
            continue
        try:
            g, w = np.asarray(got[key]), np.asarray(want[key])
            if g.shape != w.shape or g.dtype.kind not in "fiub" or close(g, w, dtype):
                continue
            parts.append(f"{what} is {how_far(g, w, dtype, case.hidden)}")
        except Exception:
            continue
    return "; ".join(parts[:3]) or None


_VISIBLE: dict = {}  # (ids of the exercise and its reference factory, SHA-256 of a visible case's arrays) -> (them, the result)
_VISIBLE_MAX = 512


def _digest(arrays: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(repr((k, a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def reference_result(ex: Exercise, ref, case: Case) -> dict:
    """The reference's result on ``case`` (dict of arrays). A visible case's is computed once per process
    and remembered (keyed by the SHA-256 of the case's arrays, so only the very same inputs hit): the
    visible cases are the same for every student, and a reference is deterministic; a hidden case's
    (drawn per student) is computed every time. Raises RuntimeError when the reference fails (a student
    is never blamed for it). A case of an exercise graded on a file the student hands in (``attach``) carries
    that file: it is never remembered (student bytes are no key for what the next student gets). ``ref`` is
    what ``ex.reference()`` returned (remembered results are keyed on that factory)."""
    # Keyed on the factory ``ex.reference``, not on ``ref``: several factories build a new closure per call.
    key = None if case.hidden or getattr(ex, "attach", None) else (id(ex), id(ex.reference), _digest(case.arrays))
    got = _VISIBLE.get(key, (None, None))[1] if key else None
    if got is None:
        got = ex.call(ref, case)
        if "error_type" in got:
            raise RuntimeError(f"reference {ex.name} failed on {case.label}: {scalar_text(got['error'])}")
        if key:
            if len(_VISIBLE) >= _VISIBLE_MAX:
                _VISIBLE.pop(next(iter(_VISIBLE)))
            _VISIBLE[key] = ((ex, ex.reference), got)  # (both kept alive: their ids are not reused while remembered)
    return {k: np.array(v, copy=True) for k, v in got.items()}


def verdict(ex: Exercise, cases: list, outputs: list) -> Verdict:
    """Compare the student's outputs (one dict of arrays per case) with the reference's."""
    ref = ex.reference()
    n_hidden = sum(c.hidden for c in cases)
    if len(outputs) != len(cases):  # one result per case, or cases would pass unseen (a grader error)
        raise RuntimeError(f"{ex.name}: {len(outputs)} results for {len(cases)} cases")
    wants = {}

    def want_of(k):
        if k not in wants:
            wants[k] = reference_result(ex, ref, cases[k])
        return wants[k]

    def problems_after(k):
        """The comparison's verdict on each later case: "values" or a specific hint (None: right)."""
        out = []
        for j in range(k + 1, len(cases)):
            got, want = outputs[j], want_of(j)
            try:
                if "error_type" in got and not _schema.problem(ex, got, want):
                    out.append((cases[j], got, check_case(ex, cases[j], got, want), want))
                elif not _schema.problem(ex, got, want):
                    out.append((cases[j], got, (ex.compare or default_compare)(ex, cases[j], got, want), want))
            except Exception:  # an output no comparison can read says nothing about the mistake
                continue
        return out

    for k, (case, got) in enumerate(zip(cases, outputs)):
        later, diagnosed = [], []

        def others():
            diagnosed.append(True)
            later.extend(problems_after(k))
            return [(c, g) for c, g, p, _ in later if p == "values"]

        hint = check_case(ex, case, got, want_of(k), others)
        if hint:
            also = _also(ex, hint, later if diagnosed else problems_after(k), bool(diagnosed))
            return Verdict(False, hint + also, len(cases), n_hidden, case.label, case.hidden)
    return Verdict(True, None, len(cases), n_hidden)


def _also(ex: Exercise, hint: str, later: list, diagnosed: bool) -> str:
    """A second mistake that shows on a later case only (a zero norm, parameters given as a generator, gradients
    below max_norm): named too, after the first; a later case whose values differ is diagnosed only when the
    first hint came from a special comparison (a diagnosis already looked at every case)."""
    for case, got, problem, want in later:
        if problem == "values" and not diagnosed:
            problem = diagnose(ex, case, got, want)
            if "None of the usual mistakes" in problem:
                continue
        if problem and problem != "values" and problem not in hint:
            return f"\nAlso, on another case ({case.label}): {problem}"
    return ""


# ------------------------------------------------------------------ kernel mode
@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise TimeoutError after ``seconds`` (main thread on POSIX only; otherwise no limit)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def handler(signum, frame):
        raise CheckTimeout("time limit")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_check(ex: Exercise, fn, *, hidden: bool = False, seed: int | None = None) -> None:
    """Kernel mode: run ``fn`` on the visible cases (and hidden-style ones when asked)."""
    if not callable(fn):
        raise AssertionError(describe_error(ex.name, "NotCallable", f"got a {type(fn).__name__}"))
    cases = ex.cases(0, hidden=False)
    if hidden:
        cases += ex.cases(np.random.SeedSequence().entropy if seed is None else seed, hidden=True)
    outputs = []
    for case in cases:
        with _time_limit(KERNEL_TIME_LIMIT):
            got = ex.call(fn, case)
        if scalar_text(got.get("error_type", "")) == "CheckTimeout":
            got = {"error_type": np.array("TimeLimit"), "error": np.array("")}
        outputs.append(got)
        if scalar_text(got.get("error_type", "")) in ("TimeLimit", "Crash", "MemoryError"):
            break  # the other cases would take as long; an ordinary error still lets them run (and be named)
    v = verdict(ex, cases[: len(outputs)], outputs)
    if not v.passed:
        where = "a hidden-style case" if v.failed_hidden else "a visible case"
        raise AssertionError(f"{v.hint}\n(on {where}: {v.failed_label})")
    print(f"{ex.name}: all {len(cases)} checks passed.")
