"""The sample class: submissions that exercise every path of the grader (see make_samples.py)."""
