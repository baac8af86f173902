"""Checks for the assignments: ``check_<exercise>(student_function)``.

Each returns ``None`` when the function is right and raises ``AssertionError`` with a hint that
names the likely mistake when it is not. In a notebook they run the *visible* cases in your own
kernel. At grading time the same cases, comparison and diagnosis run as a judge outside your
kernel, on inputs drawn at grading time (see ``autograder/``).
"""
from __future__ import annotations

from ._core import Exercise, Verdict, run_check, verdict  # noqa: F401
from .gradflow import EXERCISES as GRADFLOW
from .lstm_gru import EXERCISES as LSTM_GRU
from .deep_bidir import EXERCISES as DEEP_BIDIR
from .training import EXERCISES as TRAINING
from .training import check_load_model  # noqa: F401 (reads the model file the notebook saved)

ASSIGNMENTS = {"01_gradient_flow": GRADFLOW, "02_lstm_gru_cells": LSTM_GRU, "03_deep_bidirectional": DEEP_BIDIR,
               "04_training_with_clipping": TRAINING}


def _checker(ex):
    def check(fn, *, hidden: bool = False, seed: int | None = None) -> None:
        run_check(ex, fn, hidden=hidden, seed=seed)

    check.__name__ = f"check_{ex.name}"
    check.__doc__ = (f"Check your ``{ex.name}``: None when right, AssertionError with a hint when "
                     f"not. ``hidden=True`` adds hidden-style cases (more shapes, float64, edge cases).")
    return check


check_rnn_step = _checker(GRADFLOW["rnn_step"])
check_step_jacobian = _checker(GRADFLOW["step_jacobian"])
check_gradient_norms = _checker(GRADFLOW["gradient_norms"])
check_spectral_bound = _checker(GRADFLOW["spectral_bound"])
check_clip_grad_norm = _checker(GRADFLOW["clip_grad_norm"])
check_lstm_cell = _checker(LSTM_GRU["lstm_cell"])
check_gru_cell = _checker(LSTM_GRU["gru_cell"])
check_run_rnn = _checker(LSTM_GRU["run_rnn"])
check_numerical_gradient = _checker(LSTM_GRU["numerical_gradient"])
check_reverse_padded = _checker(DEEP_BIDIR["reverse_padded"])
check_bidirectional_rnn = _checker(DEEP_BIDIR["bidirectional_rnn"])
check_stacked_rnn = _checker(DEEP_BIDIR["stacked_rnn"])
check_train_step = _checker(TRAINING["train_step"])
check_load_checkpoint = _checker(TRAINING["load_checkpoint"])
check_train_loop = _checker(TRAINING["train_loop"])

__all__ = ["check_rnn_step", "check_step_jacobian", "check_gradient_norms", "check_spectral_bound",
           "check_clip_grad_norm", "check_lstm_cell", "check_gru_cell", "check_run_rnn",
           "check_numerical_gradient", "check_reverse_padded", "check_bidirectional_rnn", "check_stacked_rnn",
           "check_train_step", "check_load_checkpoint", "check_train_loop", "check_load_model", "ASSIGNMENTS"]
