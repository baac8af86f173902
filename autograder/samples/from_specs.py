"""A sample class made from an assignment's specs (``course_lib/exercises``): the correct notebook, the
blank one, one notebook per group of correct variants and one per mistake that says ``sample=...``,
each with its exact expected score, and the words its hint must contain.

The result has the form ``make_samples_rnn.py`` builds notebooks from: ``samples`` ``{name: (spec, score,
status)}`` where ``spec["functions"]`` maps each answer cell's grade id to ``"correct"``, ``"blank"`` or a
key of ``code``; ``hints`` ``{name: (exercise, words)}``.
"""
from __future__ import annotations

from dataclasses import dataclass

CORRECT, BLANK = "correct", "blank"


@dataclass
class SampleClass:
    points: dict
    samples: dict
    code: dict
    hints: dict


def sample_class(a, others: tuple = (), answer: str | None = None) -> SampleClass:
    """The samples of assignment ``a`` (``course_lib.exercises.Assignment``). ``others``: answer cells that
    are no exercise of their own (the building blocks pasted from an earlier assignment), correct in every
    sample but the blank one; ``answer``: the written answer the samples give, if the assignment has one."""
    points = {s.name: s.points for s in a.specs}
    total = sum(points.values())
    cells = [*others, *(s.answer_cell for s in a.specs)]

    def notebook(**chosen):
        return {"functions": {**{c: CORRECT for c in cells}, **chosen}, "answer": answer}

    samples = {"correct": (notebook(), total, "ok"),
               "blank": ({"functions": {c: BLANK for c in cells}, "answer": None}, 0, "not_attempted")}
    code, hints, groups = {}, {"blank": (a.specs[0].name, "not implemented yet")}, {}
    for s in a.specs:
        for k, v in enumerate(s.variants):
            if v.sample:
                code[f"{s.name}:variant{k}"] = v.code
                groups.setdefault(v.sample, {})[s.answer_cell] = f"{s.name}:variant{k}"
        for m in s.mistakes:
            if m.sample:
                code[f"{s.name}:{m.sample}"] = m.code
                failed = a.loses(s, m)
                samples[m.sample] = (notebook(**{s.answer_cell: f"{s.name}:{m.sample}"}),
                                     total - sum(points[f] for f in failed), "ok")
                hints[m.sample] = (s.name, m.hint)
    for name, chosen in groups.items():
        samples[name] = (notebook(**chosen), total, "ok")
    return SampleClass(points, samples, code, hints)
