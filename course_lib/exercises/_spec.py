"""What an exercise is, written once: :class:`Spec`, with its :class:`Call`, :class:`Mistake` and :class:`Variant`.

A spec is plain Python data plus a few functions (its cases, its reference, its parametrised mistake
families). Everything else an exercise needs is made from it: the ``check_<name>`` function
(:meth:`Spec.exercise`), the notebook's stub and locked test cell (``sync.py``), the sample notebooks with
their expected scores (``autograder/samples``), the mistake and variant tests (``tests/test_exercises.py``)
and the README's contract section (``readme.py``).
"""
from __future__ import annotations

import ast
import functools
import inspect
import re
import types
from dataclasses import dataclass, field
from typing import Callable

from ..checks import _schema
from ..checks._core import Exercise, Mutant


@dataclass(frozen=True)
class Call:
    """How the judge calls the student's function, and the complete result it must send back.

    ``protocol`` names the calling convention (``"plain"``, ``"clip"``, ``"rnn.call"``, ``"train.*"``; see
    ``course_lib/checks/_protocol*.py``, which run beside the student's code); ``args`` is that protocol's
    argument spec (for ``rnn.call`` a dict ``{"args": [...], "grad": bool, "probes": [...]}``); ``scalars``
    names the case arrays passed as Python scalars. :meth:`schema` is the complete result schema the
    judge validates before comparing anything (``course_lib/checks/_schema.py``)."""

    protocol: str
    args: object
    scalars: tuple = ()

    def schema(self):
        """``(fields, probes)``: every entry the result must (or may) hold, by the rules of ``_schema``."""
        return _schema.schema(types.SimpleNamespace(protocol=self.protocol, arg_names=self.args))


@dataclass(frozen=True)
class Mistake:
    """A known mistake, written once as the student would write it (the whole ``def``).

    ``hint``: the words the check's hint must contain for it (a test asserts they do). ``sample``: the
    name of the sample notebook it becomes in the assignment's sample class (None: a test only).
    ``mutant=True``: the diagnosis also tries this code as a known wrong implementation, and ``hint`` is
    then the whole hint it gives (mistakes recognised by a parametrised family leave it False). ``fails``:
    the exercises its sample loses (default: this one and every exercise that ``uses`` it)."""

    code: str
    hint: str
    sample: str | None = None
    mutant: bool = False
    fails: tuple | None = None


@dataclass(frozen=True)
class Variant:
    """Correct code written differently (loops, einsum, float64 inside, ...): it must pass, hidden cases too.
    ``sample``: the sample notebook it goes into (several variants may share one)."""

    code: str
    sample: str | None = None


def def_line(signature: str) -> str:
    """``"f(a, b=1) -> y"`` -> ``"def f(a, b=1):"``."""
    return f"def {signature.split(' -> ')[0].strip()}:"


@dataclass
class Spec:
    """One exercise. ``signature``: ``name(args) -> what it returns``, exactly the notebook's ``def``;
    ``doc``: the stub's one-line docstring; ``contract``: the README's text about it (markdown, one
    paragraph); ``cases(rng, hidden) -> [Case]``; ``reference() -> callable``; ``families() -> [Mutant]``:
    the parametrised mistakes kept as code; ``uses``: the exercises of the same assignment it is built on;
    ``solution``: the answer's body when the notebook's answer cell is written from the spec (else the
    notebook keeps its own); ``cell``: the grade id of the answer cell when it is not ``name``;
    ``namespace() -> dict``: what a mistake's code may call besides torch (the building blocks);
    ``check``: the judge's own pieces (compare, describe, error_hint, output_kind) for ``Exercise``."""

    name: str
    points: int
    signature: str
    doc: str
    contract: str
    call: Call | None = None
    cases: Callable | None = None
    reference: Callable | None = None
    families: Callable = lambda: []
    mistakes: tuple = ()
    variants: tuple = ()
    uses: tuple = ()
    solution: str | None = None
    cell: str | None = None
    hidden_tests: bool = True
    namespace: Callable = dict
    check: dict = field(default_factory=dict)
    exercise_object: Exercise | None = None  # an exercise not yet written as a spec: its checks object as is

    def __post_init__(self):
        if not re.fullmatch(rf"{self.name}\(.*\) -> .+", self.signature):
            raise ValueError(f"{self.name}: signature must read '{self.name}(...) -> ...', got {self.signature!r}")

    @property
    def answer_cell(self) -> str:
        return self.cell or self.name

    @functools.cached_property
    def exercise(self) -> Exercise:
        """The judge's object (``course_lib.checks._core.Exercise``) made from this spec."""
        if self.exercise_object is not None:
            return self.exercise_object
        return Exercise(self.name, self.points, self.call.protocol, self.call.args, self.cases, self.reference,
                        self._mutants, scalar_names=list(self.call.scalars), **self.check)

    def _mutants(self) -> list:
        """The parametrised families first (their hints fired before), then the mistakes written as code."""
        out = list(self.families())
        for m in self.mistakes:
            if m.mutant:
                out.append(Mutant(compile_function(m.code, self.name, self.namespace()), m.hint))
        return out


def answer_source(fn: Callable) -> str:
    """``fn``'s source without its docstring: a reference function as the student's answer reads."""
    src = inspect.getsource(fn)
    doc = ast.parse(src).body[0].body[0]
    if not (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)):
        raise ValueError(f"{fn.__qualname__} has no docstring to leave out")
    lines = src.splitlines()
    return "\n".join(lines[:doc.lineno - 1] + lines[doc.end_lineno:])


def compile_function(code: str, name: str, namespace: dict | None = None):
    """The function ``name`` defined by ``code`` (student code), in a namespace with torch and ``namespace``."""
    import math

    import torch

    ns = {"torch": torch, "math": math, "F": torch.nn.functional, **(namespace or {})}
    exec(compile(code, f"<{name}>", "exec"), ns)  # noqa: S102 - the course's own code, not a student's
    return ns[name]


@dataclass
class Assignment:
    """An assignment: its folder name (``NN_name``), its specs in order and the README's words about it.
    ``about``: what the README's heading line says after the folder name; ``manual``: graded-by-hand cells
    ``{grade_id: points}`` (no spec: a person grades them)."""

    folder: str
    specs: list
    about: str = ""
    notes: tuple = ()  # README bullets after the exercises (a written answer, a handed-in file)
    manual: dict = field(default_factory=dict)
    topic: str = ""  # the README's learning path: the assignment in a few words
    ungraded: str = ""  # and what it asks besides its exercises
    # modules its notebooks import on first use that the grader's sandbox imports before the first cell
    # (once per grading worker, in its warm parent: autograder/_zygote.py), e.g. torch._dynamo, which the
    # first torch.optim optimizer imports (0.8 s of every submission otherwise)
    warm: tuple = ()

    @property
    def title(self) -> str:
        """The README's heading line: ``Assignment N (`NN_name`; about):``."""
        about = f"; {self.about}" if self.about else ""
        return f"Assignment {int(self.folder.split('_')[0])} (`{self.folder}`{about}):"

    @property
    def by_name(self) -> dict:
        return {s.name: s for s in self.specs}

    def loses(self, spec: Spec, mistake: Mistake) -> set:
        """The exercises a sample with ``mistake`` in ``spec``'s answer loses: its ``fails``, else the exercise and
        every exercise built on it."""
        return set(mistake.fails) if mistake.fails is not None else self.dependents(spec.name)

    def dependents(self, name: str) -> set:
        """``name`` and every exercise built on it, directly or not."""
        out, grew = {name}, True
        while grew:
            grew = False
            for s in self.specs:
                if s.name not in out and out & set(s.uses):
                    out.add(s.name)
                    grew = True
        return out
