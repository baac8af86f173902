"""Public docstrings of course_lib.reference say which lecture uses the function, its source, and its errors.

The public API is what ``course_lib.reference`` exports (``__all__``) plus assignment 4's answers
(``course_lib.reference.training.__all__``). Each docstring names a lecture ("lecture 3"), a source (a
paper as "Author year", e.g. "Hochreiter and Schmidhuber 1997", or PyTorch's documentation), and
what happens on bad input (what it raises, or that errors propagate / arguments are not checked).
"""
import inspect
import re

import pytest

import course_lib.reference as reference
from course_lib.reference import training

LECTURE = re.compile(r"\b[Ll]ecture [1-7]\b")
SOURCE = re.compile(r"\bSource: .*?([A-Z][a-z]+( et al\.| and [A-Z][a-z]+)? (19|20)\d\d|PyTorch's)", re.S)
ERRORS = re.compile(r"\b(Raises|raises|propagate|not checked|No checks)\b")

API = {**{n: getattr(reference, n) for n in reference.__all__}, **{f"training.{n}": getattr(training, n) for n in training.__all__}}
CALLABLE = sorted(n for n, o in API.items() if callable(o))


def test_the_api_is_the_one_the_lectures_use():
    assert {"lstm_cell", "gru_cell", "clip_grad_norm", "highway", "training.train_loop"} <= set(CALLABLE)


@pytest.mark.parametrize("name", CALLABLE)
def test_public_docstring_names_a_lecture_a_source_and_its_errors(name):
    doc = inspect.getdoc(API[name]) or ""
    assert LECTURE.search(doc), f"{name}: say which lecture uses it ('Used by lecture N ...')"
    assert SOURCE.search(doc), f"{name}: give its source ('Source: Author year', or PyTorch's documentation)"
    assert ERRORS.search(doc), f"{name}: say what it raises on bad input (or that errors propagate)"


def test_the_patterns_reject_a_docstring_without_them():
    bare = "One LSTM step. Returns (h, c)."
    assert not LECTURE.search(bare) and not SOURCE.search(bare) and not ERRORS.search(bare)
    cited = "Source: Gers et al. 2000. Used by lecture 3. Raises ValueError."
    assert LECTURE.search(cited) and SOURCE.search(cited) and ERRORS.search(cited)
