"""Self-study scaffolding for every lecture: "check your understanding", references, a glossary.

- :func:`show_questions` prints a lecture's questions (:data:`questions.QUESTIONS`);
  :func:`check` reads the reader's answers and says, per question, *right* with the explanation,
  *not yet* with a hint specific to that wrong answer (never the right answer), or *not answered
  yet*; nothing is explained before an attempt.
- :func:`references` shows the papers a lecture cites, with authors, year and venue
  (:data:`references.REFERENCES`, written once).
- :func:`glossary_markdown` is the glossary page of the static site (coursetools/site.py).

Used by the last cells of every lecture (``lectures/0N_*.ipynb``); tests: tests/test_selfstudy.py.
Example::

    selfstudy.show_questions("03_lstm")
    selfstudy.check("03_lstm", {1: "b", 2: None, 3: 0.5, 4: "a"})
"""
from __future__ import annotations

import math

from .glossary import GLOSSARY
from .questions import QUESTIONS, Question
from .references import LECTURE_REFERENCES, REFERENCES, Ref

__all__ = ["show_questions", "check", "references", "glossary_markdown", "QUESTIONS", "REFERENCES",
           "LECTURE_REFERENCES", "GLOSSARY", "Question", "Ref"]

RIGHT, WRONG, UNANSWERED, INVALID = "right", "not yet", "not answered yet", "not understood"


def _lecture(lecture: str) -> str:
    """The lecture's notebook stem from the stem itself or its number (``"03"``, ``3``)."""
    key = str(lecture)
    hits = [k for k in QUESTIONS if k == key or k.split("_")[0] == key.zfill(2)]
    if len(hits) != 1:
        raise ValueError(f"unknown lecture {lecture!r}: use one of {sorted(QUESTIONS)} or its number")
    return hits[0]


def _display_markdown(text: str) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(text))
            return
    except ImportError:
        pass
    print(text)


def show_questions(lecture) -> None:
    """Print the lecture's questions, numbered from 1, each choice with its letter."""
    lines = []
    for n, q in enumerate(QUESTIONS[_lecture(lecture)], 1):
        lines.append(f"**{n}.** {q.text}")
        lines += [f"- ({k}) {v}" for k, v in q.choices.items()]
        lines.append("")
    _display_markdown("\n".join(lines))


def _judge(q: Question, given) -> tuple[str, str]:
    """(status, feedback) for one answer; feedback never names the right answer unless it was given."""
    if given is None or (isinstance(given, str) and not given.strip()):
        return UNANSWERED, "write your answer in `answers` and run the cell again."
    if q.numeric:
        try:
            value = float(given)
        except (TypeError, ValueError):
            return INVALID, f"this question wants a number; got {given!r}."
        if not math.isfinite(value):
            return INVALID, f"this question wants a finite number; got {given!r}."
        if math.isclose(value, float(q.answer), rel_tol=q.rel_tol, abs_tol=1e-12):
            return RIGHT, q.explanation
        for wrong, why in q.mistakes:
            if math.isclose(value, float(wrong), rel_tol=q.rel_tol, abs_tol=1e-12):
                return WRONG, why
        return WRONG, q.hint
    letter = str(given).strip().strip("()").lower()
    if letter not in q.choices:
        return INVALID, f"answer with one of the letters {', '.join(q.choices)}; got {given!r}."
    if letter == q.answer:
        return RIGHT, q.explanation
    return WRONG, q.hints.get(letter, q.hint)


def check(lecture, answers: dict) -> dict:
    """Check a reader's ``answers`` ({question number: a letter or a number, or None}) for ``lecture``.

    Prints one line per question and a tally; returns {number: status} with status one of
    ``"right"``, ``"not yet"``, ``"not answered yet"``, ``"not understood"`` (an answer of the wrong
    kind). Raises ValueError for an unknown lecture or a question number it does not have, and
    TypeError when ``answers`` is not a dict.
    """
    qs = QUESTIONS[_lecture(lecture)]
    if not isinstance(answers, dict):
        raise TypeError(f"answers must be a dict {{question number: answer}}, got {type(answers).__name__}")
    unknown = [k for k in answers if not (isinstance(k, int) and 1 <= k <= len(qs))]
    if unknown:
        raise ValueError(f"this lecture has questions 1 to {len(qs)}; unknown: {unknown}")
    status = {}
    for n, q in enumerate(qs, 1):
        status[n], feedback = _judge(q, answers.get(n))
        print(f"{n}. {status[n]}: {feedback}")
    print(f"{sum(s == RIGHT for s in status.values())} of {len(qs)} right.")
    return status


def references(lecture) -> list[Ref]:
    """Show the papers ``lecture`` cites (authors, year, title, venue), in order of citation; returns them."""
    refs = [REFERENCES[k] for k in LECTURE_REFERENCES[_lecture(lecture)]]
    _display_markdown("\n".join(f"- {r.markdown()}" for r in refs))
    return refs


def glossary_markdown() -> str:
    """The site's glossary page (MyST markdown): every term, alphabetically, with its definition and
    the lecture that introduces it."""
    lines = ["# Glossary", "", "The course's terms, each with the lecture that introduces it.", ""]
    for term in sorted(GLOSSARY, key=str.lower):
        definition, lecture = GLOSSARY[term]
        lines.append(f"- **{term}**: {definition} ({{doc}}`lectures/{lecture}`)")
    return "\n".join(lines)
