"""The README's contract section, generated from the specs between two markers (a test checks it)."""
from __future__ import annotations

import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BEGIN = "<!-- BEGIN contract: generated from course_lib/exercises by python -m course_lib.exercises readme -->"
END = "<!-- END contract -->"
TABLE_BEGIN = "<!-- BEGIN assignments: generated from course_lib/exercises -->"
TABLE_END = "<!-- END assignments -->"
INTRO = ("Exercises are plain functions on tensors, batch first (`x` (B, I); `h`, `c` (B, H)), in PyTorch's own "
         "weight layouts, float32 or float64; they must stay differentiable (the checks compare gradients too) "
         "and must not modify their inputs in place. Each has a check, `course_lib.checks.check_<exercise>`, "
         "that returns `None` when the function is right and raises `AssertionError` with a hint when not.")


def section(registry) -> str:
    """The markdown between the markers: the intro, then one bullet per exercise, assignment by assignment."""
    parts = [_wrap(INTRO)]
    for a in registry.values():
        lines = [_wrap(a.title)]
        lines += [_wrap(f"- `{s.signature}` ({s.points} points): {s.contract}", "  ") for s in a.specs]
        lines += [_wrap(f"- {n}", "  ") for n in a.notes]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _wrap(text: str, indent: str = "") -> str:
    return textwrap.fill(text, 110, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def table(registry) -> str:
    """The learning path's table of assignments: each one's exercises by name."""
    rows = ["| # | assignment (`assignments/`) | exercises |", "|---|---|---|"]
    for k, a in enumerate(registry.values(), 1):
        names = ", ".join([f"`{s.name}`" for s in a.specs] + ([a.ungraded] if a.ungraded else []))
        rows.append(f"| {k} | {a.topic} | {names} |")
    return "\n".join(rows)


def _between(text: str, begin: str, end: str, body: str) -> str:
    head, sep, rest = text.partition(begin)
    if not sep or end not in rest:
        raise ValueError(f"README.md lacks the markers {begin!r} ... {end!r}")
    return head + begin + "\n" + body + "\n" + end + rest.partition(end)[2]


def rewritten(text: str, registry) -> str:
    """``text`` (the README) with the generated parts (the assignments table, the contract) replaced."""
    text = _between(text, TABLE_BEGIN, TABLE_END, table(registry))
    return _between(text, BEGIN, END, section(registry))


def write(registry, path: Path = ROOT / "README.md") -> bool:
    old = path.read_text()
    new = rewritten(old, registry)
    if new != old:
        path.write_text(new)
    return new != old
