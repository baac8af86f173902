"""Self-study scaffolding (course_lib/selfstudy): every lecture ends with questions its notebook
answers through the checker, has predict-then-run prompts and a reference list that matches what it
cites; the checker accepts right answers written in several ways, explains wrong ones without giving
the answer, and shows nothing before an attempt; the glossary's terms are the lectures' terms."""
import json
import re

import pytest

from course_lib import selfstudy as S
from coursetools import notebooks

LECTURES = {p.stem: p for p in notebooks.lecture_paths()}


def _cells(stem):
    return json.loads(LECTURES[stem].read_text(encoding="utf-8"))["cells"]


def _markdown(stem):
    return "\n".join("".join(c["source"]) for c in _cells(stem) if c["cell_type"] == "markdown")


def test_every_lecture_has_questions_references_and_glossary_terms():
    assert set(S.QUESTIONS) == set(LECTURES) == set(S.LECTURE_REFERENCES)
    assert all(3 <= len(qs) <= 5 for qs in S.QUESTIONS.values())
    assert {lecture for _, lecture in S.GLOSSARY.values()} == set(LECTURES)


@pytest.mark.parametrize("stem", sorted(LECTURES))
def test_lecture_ends_with_its_questions_unanswered_and_its_references(stem):
    code = ["".join(c["source"]) for c in _cells(stem) if c["cell_type"] == "code"]
    n = len(S.QUESTIONS[stem])
    checks = [s for s in code if f'selfstudy.check("{stem}", answers)' in s]
    assert len(checks) == 1, f"{stem}: one cell must check the answers"
    answers = re.search(r"answers = (\{[^}]*\})", checks[0]).group(1)
    assert eval(answers) == {k: None for k in range(1, n + 1)}  # committed unanswered, one slot per question
    assert any(f'selfstudy.show_questions("{stem}")' in s for s in code)
    assert code[-1].strip() == f'selfstudy.references("{stem}");'  # the lecture ends with its references


@pytest.mark.parametrize("stem", sorted(LECTURES))
def test_predict_then_run_comes_right_before_an_experiment(stem):
    cells = _cells(stem)
    prompts = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
               and "".join(c["source"]).startswith("**Predict, then run.**")]
    assert len(prompts) >= 2, f"{stem}: {len(prompts)} predict-then-run prompts"
    assert all(cells[i + 1]["cell_type"] == "code" for i in prompts)


CITATION = re.compile(r"\b([A-Z][a-z]+)(?: et al\.|,? (?:[A-Z][a-z]+,? )*and [A-Z][a-z]+)?,? \(?((?:19|20)\d\d)\)?")


@pytest.mark.parametrize("stem", sorted(LECTURES))
def test_references_are_what_the_lecture_cites(stem):
    text = re.sub(r"\s+", " ", _markdown(stem))
    refs = [S.REFERENCES[k] for k in S.LECTURE_REFERENCES[stem]]
    for r in refs:  # every listed paper is cited in the text, by its first author (or its team) and year
        assert r.cited_as in text and str(r.year) in text, f"{stem} lists {r.cited_as} {r.year} but does not cite it"
    listed = {(r.cited_as.split()[-1] if " " in r.cited_as else r.cited_as, r.year) for r in refs}
    surnames = {r.cited_as for r in S.REFERENCES.values()}
    for name, year in CITATION.findall(text):  # every author-year citation of a known author is listed
        if name in surnames:
            assert (name, int(year)) in listed or any(n == name and y == int(year) for n, y in listed), \
                f"{stem} cites {name} ({year}) without listing it"


@pytest.mark.parametrize("term", sorted(S.GLOSSARY))
def test_glossary_term_appears_in_its_lecture(term):
    _, stem = S.GLOSSARY[term]
    text = re.sub(r"\s+", " ", _markdown(stem)).lower()
    assert term.lower() in text, f"glossary term {term!r} is not in {stem}"


def test_glossary_page_lists_every_term_with_a_link_to_its_lecture():
    page = S.glossary_markdown()
    for term, (_, stem) in S.GLOSSARY.items():
        assert f"**{term}**" in page and f"{{doc}}`lectures/{stem}`" in page


def _right_forms(q):
    if q.numeric:
        return [q.answer, str(q.answer), q.answer * (1 + q.rel_tol / 2)]  # a string, a rounding
    return [q.answer, q.answer.upper(), f"({q.answer})", f" {q.answer} "]


@pytest.mark.parametrize("stem", sorted(S.QUESTIONS))
def test_checker_accepts_right_answers_however_written(stem, capsys):
    qs = S.QUESTIONS[stem]
    for form in range(3):
        status = S.check(stem, {n: _right_forms(q)[form] for n, q in enumerate(qs, 1)})
        assert set(status.values()) == {"right"}
    out = capsys.readouterr().out
    assert all(q.explanation in out for q in qs) and f"{len(qs)} of {len(qs)} right" in out


@pytest.mark.parametrize("stem", sorted(S.QUESTIONS))
def test_wrong_answers_get_a_hint_never_the_answer(stem, capsys):
    for n, q in enumerate(S.QUESTIONS[stem], 1):
        wrong = list(q.hints) if not q.numeric else [w for w, _ in q.mistakes] + [q.answer * 3 + 1]
        assert wrong, f"{stem} question {n}: no common mistake has a hint"
        for w in wrong:
            capsys.readouterr()
            assert S.check(stem, {n: w})[n] == "not yet"
            out = capsys.readouterr().out
            line = out.splitlines()[n - 1]
            assert q.explanation not in out
            if q.numeric:
                assert dict(q.mistakes).get(w, q.hint) in line
            else:
                assert q.hints[w] in line and q.choices[q.answer] not in line
        if not q.numeric:  # every wrong choice has its own hint
            assert set(q.hints) == set(q.choices) - {q.answer}


def test_nothing_is_explained_before_an_attempt(capsys):
    for stem, qs in S.QUESTIONS.items():
        status = S.check(stem, {n: None for n in range(1, len(qs) + 1)})
        out = capsys.readouterr().out
        assert set(status.values()) == {"not answered yet"}
        assert not any(q.explanation in out for q in qs) and f"0 of {len(qs)} right" in out
        S.show_questions(stem)
        shown = capsys.readouterr().out
        assert all(q.text in shown for q in qs) and not any(q.explanation in shown for q in qs)


def test_bad_answers_and_bad_calls_are_named(capsys):
    assert S.check("03", {1: "z", 3: "half"}) == {1: "not understood", 2: "not answered yet",
                                                  3: "not understood", 4: "not answered yet"}
    assert "letters a, b, c, d" in capsys.readouterr().out
    with pytest.raises(ValueError, match="questions 1 to 4"):
        S.check("03_lstm", {9: "a"})
    with pytest.raises(ValueError, match="unknown lecture"):
        S.check("99", {})
    with pytest.raises(TypeError, match="dict"):
        S.check("03_lstm", ["a", "b"])


def test_references_show_authors_year_and_venue(capsys):
    refs = S.references(4)
    out = capsys.readouterr().out
    assert [r.cited_as for r in refs] == ["Cho", "Chung", "Jozefowicz", "Greff", "Madsen"]
    assert "Andreas Madsen (2019). *Visualizing memorization in RNNs*. Distill." in out
