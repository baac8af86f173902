"""Intake (issues 17 and 13): a student id keeps the letters of the student's name (any alphabet, NFC), so two
names that differ only there stay two students, and two long names sharing their first 64 characters too; an
answer cell split in two in JupyterLab (both halves keep the grade id) is graded normally with a note, not
taken for tampering; a control character in a file name never reaches grades.csv as it is; a notebook
without cell ids is read quietly."""
import copy
import csv
import json
import warnings

import nbformat
import pytest

from autograder import pipeline
from test_intake import RELEASE, cell, release


def test_student_ids_keep_non_ascii_letters():
    assert pipeline.student_id("Müller.ipynb") == "Müller"
    assert pipeline.student_id("Mu\u0308ller.ipynb") == "Müller"  # a macOS (NFD) file name: the same student
    assert pipeline.student_id("José García") == "José_García"
    assert pipeline.student_id("Łukasz Żółć.ipynb") == "Łukasz_Żółć"
    assert len({pipeline.student_id(n) for n in ("Müller.ipynb", "Muller.ipynb", "Mueller.ipynb")}) == 3
    assert pipeline.student_id("=HYPERLINK(1).ipynb") == "HYPERLINK_1"  # what was stripped still is
    assert pipeline.student_id("../..") == "student"


def _split(nb, gid):
    i = nb.cells.index(cell(nb, gid))
    half = copy.deepcopy(nb.cells[i])
    half.source = "# the second half of the answer"
    half["id"] = "split-half"
    nb.cells.insert(i + 1, half)
    return i


def test_a_split_answer_cell_is_not_tampering():
    nb = release()
    i = _split(nb, "rnn_step")
    r = pipeline.rebuild_nbgrader_metadata(nb, release())
    assert r == {"restored": [], "removed": [], "duplicated": [], "split": ["rnn_step"]}
    assert nb.cells[i].metadata["nbgrader"]["grade_id"] == "rnn_step" and nb.cells[i + 1].metadata == {}


def test_a_copy_elsewhere_or_of_a_test_cell_is_still_a_duplicate():
    nb = release()
    nb.cells.append(copy.deepcopy(cell(nb, "rnn_step")))  # not next to it
    assert pipeline.rebuild_nbgrader_metadata(nb, release())["duplicated"] == ["rnn_step"]
    nb = release()
    _split(nb, "test_rnn_step")
    r = pipeline.rebuild_nbgrader_metadata(nb, release())
    assert r["duplicated"] == ["test_rnn_step"] and "split" not in r


# ------------------------------------------------------------------ long names, control characters, cell ids
def test_long_names_sharing_a_beginning_get_two_stable_ids(tmp_path):
    """Ids are cut at 64 characters: two names sharing their first 64 get a hash of the whole name at the
    end (before: the same id, and the command stopped with a collision)."""
    common = "Maximiliane_Alexandra_von_und_zu_Hohenberg-Schwarzenstein_Lichtenfels_"
    for tail in ("Anna", "Berta"):
        (tmp_path / f"{common}{tail}.ipynb").write_text("{}")
    found = pipeline.discover(tmp_path, ["01_gradient_flow"])
    ids = sorted(f.student for f in found)
    assert len(set(ids)) == 2 and all(len(i) == pipeline.ID_MAX for i in ids), ids
    assert all(i.startswith(common[:50]) for i in ids)  # still readable as the name it came from
    assert ids == sorted(f.student for f in pipeline.discover(tmp_path, ["01_gradient_flow"]))  # stable
    assert pipeline.student_id(f"{common}Anna.ipynb") in ids  # `--student` with the whole name finds it
    assert pipeline._slug(ids[0]) == ids[0]  # ... and with the id from grades.csv
    assert pipeline.student_id("a" * 64) == "a" * 64  # up to 64 characters: the name itself


def test_control_characters_in_a_file_name_never_reach_grades_csv(tmp_path):
    """A newline (or an escape, a right-to-left override) in a submitted file name: grades.csv keeps one
    line per student and shows the name with the character escaped, so it can still be found."""
    name = "bad\nname\x1b\u202e.ipynb"
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / name).write_text("{}")
    (f,) = pipeline.discover(tmp_path / "class", ["01_gradient_flow"])
    assert f.student == "bad_name" and f.rel == name
    row = {k: 0.0 for k in pipeline.CSV_COLUMNS} | {"student_id": f.student, "status": "malformed", "file": f.rel,
                                                   "detail": "first\nsecond", "timestamp": "",
                                                   "needs_manual_grading": False}
    out = tmp_path / "grades.csv"
    pipeline.write_grades_csv(out, [row])
    text = out.read_text()
    assert len(text.splitlines()) == 2 and "\x1b" not in text and "\u202e" not in text
    with open(out, newline="") as fh:
        (got,) = list(csv.DictReader(fh))
    assert got["file"] == "bad\\nname\\x1b\\u202e.ipynb" and got["detail"] == "first\\nsecond"


def _without_ids(minor: int) -> bytes:
    data = json.loads(RELEASE.read_text())
    data["nbformat_minor"] = minor
    for c in data["cells"]:
        c.pop("id", None)
    return json.dumps(data).encode()


def test_a_notebook_without_cell_ids_is_read_without_warnings():
    """Notebooks saved without cell ids (nbformat 4.4, or 4.5 written by a script) are normal input: ids are
    filled in on intake (stable, ``cell-<index>``), nothing is reported as repaired and nbformat does not
    warn (``MissingIDFieldWarning`` once per worker in the grading command's output, before)."""
    for minor in (4, 5):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            nb, repaired = pipeline.parse_submission(_without_ids(minor))
        assert [str(w.message)[:60] for w in seen] == [] and repaired == []
        assert [c.id for c in nb.cells] == [f"cell-{i}" for i in range(len(nb.cells))]
        assert nb.nbformat_minor >= 5 and pipeline.parse_submission(_without_ids(minor))[0] == nb
    # ids that are there but broken are still repaired, and said so
    data = json.loads(_without_ids(5))
    data["cells"][0]["id"] = "not a valid id!"
    assert pipeline.parse_submission(json.dumps(data).encode())[1] == ["cell ids"]



def test_a_repeated_cell_id_is_renamed_the_same_way_every_time_and_said_so():
    """Two cells with one id (a copied cell): renamed on intake, stably, without nbformat's warning
    (``DuplicateCellId``, which renamed it at random into the grading command's output) and reported."""
    data = json.loads(_without_ids(5))
    for c in data["cells"]:
        c["id"] = "same"
    raw = json.dumps(data).encode()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        nb, repaired = pipeline.parse_submission(raw)
    assert [str(w.message)[:60] for w in seen] == [] and repaired == ["cell ids"]
    assert nb.cells[0].id == "same" and len({c.id for c in nb.cells}) == len(nb.cells)
    assert pipeline.parse_submission(raw)[0] == nb

def test_invalid_or_repeated_non_string_cell_ids_are_renamed_quietly_and_odd_cells_are_malformed(caplog):
    """Ids that are not strings (a number repeated, null, a list, a dict) or not valid ids are renamed on
    intake like a repeated one: no ``DuplicateCellId`` warning at random, no schema error logged into the
    grading command's output, no TypeError on an unhashable id. Cells that are not objects, or a notebook
    that is not an object, are ``ValueError`` (malformed), not another exception."""
    import logging

    for ids in ([7, 7, 7], [None, None, 1], [[1], {"a": 1}, "ok"], ["a b", "", "x" * 100]):
        data = json.loads(_without_ids(3))
        for c, i in zip(data["cells"], ids):
            c["id"] = i
        raw = json.dumps(data).encode()
        caplog.clear()
        with warnings.catch_warnings(record=True) as seen, caplog.at_level(logging.WARNING):
            warnings.simplefilter("always")
            nb, repaired = pipeline.parse_submission(raw)
        assert [str(w.message)[:60] for w in seen] == [] and not caplog.records and repaired == ["cell ids"], ids
        assert [c.id for c in nb.cells[:3]] == [i if i == "ok" else f"cell-{k}" for k, i in enumerate(ids)]
        assert pipeline.parse_submission(raw)[0] == nb
    base = json.loads(_without_ids(2))
    for bad in ([base["cells"][0], 5], {"a": base["cells"][0]}, "cells", [[1]]):
        with pytest.raises(ValueError):
            pipeline.parse_submission(json.dumps(dict(base, cells=bad)).encode())
    for bad in ([base], dict(base, cells=[dict(base["cells"][0], metadata=5)])):
        with pytest.raises(ValueError):
            pipeline.parse_submission(json.dumps(bad).encode())


def test_a_lone_surrogate_anywhere_is_mended_on_intake_and_said_so():
    """A ``\\ud800`` escape without its pair (in a code cell, markdown, an output, a metadata key or value) is
    U+FFFD once read: the notebook can be written again (it failed nbgrader's write: a grader_error on every
    run); a pair stays one letter, a literal backslash-u stays text, and neither is called a repair."""
    data = json.loads(_without_ids(5))
    data["cells"][0]["source"] = "s = 'SURR'"
    data["metadata"]["kernelspec"] = {"name": "python3", "display_name": "SURRx", "language": "python"}
    data["metadata"]["SURR"] = ["SURR"]
    nb, repaired = pipeline.parse_submission(json.dumps(data).replace("SURR", "\\udfff").encode())
    assert repaired == ["lone surrogates"] and nb.cells[0].source == "s = '\ufffd'"
    assert nb.metadata["\ufffd"] == ["\ufffd"] and nb.metadata.kernelspec.display_name == "\ufffdx"
    nbformat.writes(nb).encode("utf-8")
    data["cells"][0]["source"] = "pair \U0001F600, literal \\ud800"
    del data["metadata"]["SURR"], data["metadata"]["kernelspec"]
    nb, repaired = pipeline.parse_submission(json.dumps(data).encode())
    assert repaired == [] and nb.cells[0].source == "pair \U0001F600, literal \\ud800"

def test_four_byte_letters_keep_ids_under_the_file_name_limit():
    """63 four-byte letters are 252 bytes: the id is cut by bytes too, so runs/<a>/<id>.json.tmp fits."""
    from autograder import pipeline

    name = "\U0001d400" * 63
    sid = pipeline.student_id(name + ".ipynb")
    assert len((sid + ".json.tmp").encode("utf-8")) <= 255
    assert sid != pipeline.student_id("\U0001d400" * 62 + "b.ipynb")


def test_an_undecodable_byte_or_line_separator_in_a_file_name_is_escaped_in_grades_csv(tmp_path):
    """A lone surrogate (an undecodable byte) or U+2028 in a file name: grades.csv is still written, one line a row."""
    import csv

    from autograder import pipeline

    row = {k: "" for k in pipeline.CSV_COLUMNS}
    row.update(student="s", file="a\udc80b\u2028c.ipynb", detail="ok")
    out = tmp_path / "grades.csv"
    pipeline.write_grades_csv(out, [row])
    text = out.read_text(encoding="utf-8")
    assert len(text.splitlines()) == 2 and "\\udc80" in text and "\\u2028" in text
    assert list(csv.DictReader(text.splitlines()))[0]["file"] == "a\\udc80b\\u2028c.ipynb"
