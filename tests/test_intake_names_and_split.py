"""Intake (issue 17): a student id keeps the letters of the student's name (any alphabet, NFC), so two
names that differ only there stay two students; an answer cell split in two in JupyterLab (both halves keep
the grade id) is graded normally with a note, not taken for tampering."""
import copy


from autograder import pipeline
from test_intake import cell, release


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
