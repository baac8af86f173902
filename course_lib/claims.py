"""Measured claims as data: one object for the notebook, the tests and the main job's report.

Every sentence a lecture states as measured is a :class:`Claim`: the sentence, the measured value,
the comparison and threshold that make it true, the seeds it rests on, and whether it holds. The
experiment modules (``course_lib/experiments/*.py``) build them from their results with the
``claims_*`` functions; the lecture notebooks show them with :func:`show` (which also records them
for the main job through :func:`course_lib.report.record_claim`); the tests assert
``all(c.holds for c in ...)`` on the very same objects, so no threshold is typed twice.

Two kinds:

- ``"claim"``: counted. A ``[DOES NOT HOLD]`` fails the notebook's test (tests/test_notebooks.py)
  and makes the main job exit non-zero, naming the claim on its last line.
- ``"illustration"``: true by construction (a ratio of 1 at distance 0, the cosine of a rescaled
  vector, a timing on this machine). Shown with its numbers, never counted.

Used by every lecture (1 to 7). Example::

    c = Claim.every("LSTM solves adding at T = 50 in every seed", nmse_per_seed, "<", 0.1, seeds=(0, 1, 2))
    c.holds, c.value      # True, the worst seed's nMSE
    show([c], "Lecture 3")
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

__all__ = ["Claim", "show", "failed", "from_dict", "format_value", "to_plain", "OPS"]

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
KINDS = ("claim", "illustration")


def to_plain(v):
    """Plain Python numbers and strings for JSON (numpy scalars become floats, tuples lists)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return [to_plain(u) for u in (v.tolist() if isinstance(v, np.ndarray) else v)]
    return v if v is None else str(v)


def format_value(v) -> str:
    """A recorded value as claims print it: 3 significant figures, scientific notation outside [1e-3, 1e5)."""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if v == 0 or not math.isfinite(v):
            return str(v)
        return f"{v:.3g}" if 1e-3 <= abs(v) < 1e5 else f"{v:.2e}"
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(format_value(u) for u in v) + ")"
    return str(v)


@dataclass
class Claim:
    """One measured sentence and whether it held.

    Fields: ``name`` (the sentence, as the lecture states it), ``holds`` (bool), ``value`` (the
    number compared: for a per-seed claim the worst seed's), ``op`` (``"<"``, ``"<="``, ``">"``,
    ``">="``, ``"between"`` or ``None`` for a compound condition), ``threshold`` (a float, or
    ``(low, high)`` for ``"between"``), ``seeds`` (what it rests on), ``numbers`` (the other
    measured numbers, shown and recorded), ``kind`` (``"claim"`` or ``"illustration"``).

    For compatibility with the dicts the experiments returned before, ``c["claim"]``,
    ``c["holds"]`` and ``c["numbers"]`` work, and ``c[key]`` reads ``numbers[key]``.
    """

    name: str
    holds: bool
    value: Any = None
    op: str | None = None
    threshold: Any = None
    seeds: tuple = ()
    numbers: dict = field(default_factory=dict)
    kind: str = "claim"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.op is not None and self.op not in OPS and self.op != "between":
            raise ValueError(f"op must be one of {sorted(OPS) + ['between']} or None, got {self.op!r}")
        self.holds = bool(self.holds)
        self.seeds = tuple(int(s) for s in self.seeds)

    # ---- constructors ------------------------------------------------------------------------
    @classmethod
    def compare(cls, name: str, value, op: str, threshold, seeds=(), **numbers) -> "Claim":
        """``value op threshold`` (one number, e.g. a median over seeds). Raises ValueError on a bad ``op``."""
        if op not in OPS:
            raise ValueError(f"op must be one of {sorted(OPS)}, got {op!r}")
        value = float(value)
        holds = math.isfinite(value) and OPS[op](value, float(threshold))
        return cls(name, holds, value, op, float(threshold), tuple(seeds), numbers)

    @classmethod
    def every(cls, name: str, values, op: str, threshold, seeds=(), **numbers) -> "Claim":
        """``values[i] op threshold`` for every ``i`` (one value per seed); ``value`` is the worst one.

        A non-finite value fails. Raises ValueError for an empty ``values`` or a bad ``op``.
        """
        if op not in OPS:
            raise ValueError(f"op must be one of {sorted(OPS)}, got {op!r}")
        v = np.asarray(values, dtype=float).reshape(-1)
        if v.size == 0:
            raise ValueError(f"{name!r}: values must not be empty")
        worst = float(v.max() if op in ("<", "<=") else v.min())
        holds = bool(np.all(np.isfinite(v)) and np.all(OPS[op](v, float(threshold))))
        numbers = {"per_seed": [float(u) for u in v], **numbers}
        return cls(name, holds, worst, op, float(threshold), tuple(seeds), numbers)

    @classmethod
    def between(cls, name: str, values, low, high, seeds=(), **numbers) -> "Claim":
        """Two-sided: ``low < values[i] < high`` for every ``i``; ``value`` is the one farthest out."""
        v = np.asarray(values, dtype=float).reshape(-1)
        if v.size == 0:
            raise ValueError(f"{name!r}: values must not be empty")
        if not low < high:
            raise ValueError(f"low must be below high, got {low!r}, {high!r}")
        mid = (low + high) / 2
        worst = float(v[np.argmax(np.abs(v - mid))])
        holds = bool(np.all(np.isfinite(v)) and np.all((v > low) & (v < high)))
        if v.size > 1:
            numbers = {"per_seed": [float(u) for u in v], **numbers}
        return cls(name, holds, worst, "between", (float(low), float(high)), tuple(seeds), numbers)

    @classmethod
    def fact(cls, name: str, holds: bool, seeds=(), **numbers) -> "Claim":
        """A compound condition computed by the caller (several comparisons at once)."""
        return cls(name, bool(holds), None, None, None, tuple(seeds), numbers)

    @classmethod
    def illustration(cls, name: str, **numbers) -> "Claim":
        """True by construction or not a claim (a timing here): shown, recorded, never counted."""
        seeds = numbers.pop("seeds", ())
        return cls(name, True, None, None, None, tuple(seeds) if isinstance(seeds, (list, tuple)) else (seeds,),
                   numbers, kind="illustration")

    # ---- reading -----------------------------------------------------------------------------
    @property
    def counted(self) -> bool:
        return self.kind == "claim"

    def verdict(self) -> str:
        if not self.counted:
            return "illustration"
        return "holds" if self.holds else "DOES NOT HOLD"

    def test_text(self) -> str:
        """The comparison in words: ``worst seed 0.031 < 0.1``."""
        if self.op is None:
            return ""
        if self.op == "between":
            lo, hi = self.threshold
            return f"{format_value(self.value)} in ({format_value(lo)}, {format_value(hi)})"
        return f"{format_value(self.value)} {self.op} {format_value(self.threshold)}"

    def __str__(self) -> str:
        parts = [self.test_text()] if self.op else []
        if self.seeds:
            parts.append(f"seeds {list(self.seeds)}")
        parts += [f"{k} = {format_value(to_plain(v))}" for k, v in self.numbers.items()]
        return f"[{self.verdict()}] {self.name}" + (f"\n    {', '.join(parts)}" if parts else "")

    def as_record(self) -> dict:
        """A JSON-ready dict (what ``report.record_claim`` writes to claims.jsonl)."""
        return {"claim": self.name, "holds": self.holds, "kind": self.kind, "value": to_plain(self.value),
                "op": self.op, "threshold": to_plain(self.threshold), "seeds": list(self.seeds),
                **{k: to_plain(v) for k, v in self.numbers.items()}}

    # ---- dict compatibility (experiments returned dicts before this module) -------------------
    def __getitem__(self, key):
        if key == "claim":
            return self.name
        if key == "holds":
            return self.holds
        if key == "numbers":
            return self.numbers
        return self.numbers[key]


def from_dict(d) -> Claim:
    """A :class:`Claim` from an older dict: ``{"claim", "holds", "numbers": {...}}`` or ``{"claim", "holds", **numbers}``."""
    if isinstance(d, Claim):
        return d
    numbers = dict(d["numbers"]) if "numbers" in d else {k: v for k, v in d.items() if k not in ("claim", "holds")}
    seeds = numbers.pop("seeds", ())
    if isinstance(seeds, str):  # "[0, 1, 2]" or "(0, 1, 2)", as some experiments recorded them
        try:
            seeds = tuple(int(u) for u in seeds.strip("[]() ").split(",") if u.strip())
        except ValueError:
            numbers["seeds_text"] = seeds
            seeds = ()
    elif not isinstance(seeds, (list, tuple)):
        seeds = (seeds,)
    return Claim.fact(d["claim"], d["holds"], seeds=seeds, **numbers)


def show(claims: Iterable, section: str, record: bool = True) -> list[Claim]:
    """Print each claim with its verdict and numbers, and record it for the main job's report.

    ``claims``: :class:`Claim` objects (or older dicts, converted with :func:`from_dict`);
    ``section``: e.g. ``"Lecture 3"``. Returns the claims, so a notebook cell ends with it silently
    (``show(...);``) and a test can assert on the result.
    """
    from . import report

    out = [from_dict(c) for c in claims]
    for c in out:
        if record:
            report.record_claim(c, section)
        print(c)
    return out


def failed(claims: Iterable) -> list[Claim]:
    """The counted claims that did not hold (illustrations are never failures)."""
    return [c for c in (from_dict(c) for c in claims) if c.counted and not c.holds]
