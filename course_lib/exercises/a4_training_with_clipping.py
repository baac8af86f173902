"""Assignment 4, training with clipping (lecture 7): its exercises as specs.

Not yet moved into the spec form: the judge's pieces (cases, mistakes) are still the ``Exercise`` objects of
``course_lib/checks/training.py``, and the sample class is ``autograder/samples/make_samples_train.py``.
The signature, docstring, points and contract below are the only place they are written.
"""
from __future__ import annotations

from ..checks import training as T
from ._spec import Assignment, Spec

ASSIGNMENT = Assignment(
    "04_training_with_clipping",
    "Assignment 4 (`04_training_with_clipping`; the model is called `model(x, state) -> (logits, state)` like "
    "`course_lib.models.CharLM`, `state` is `None` at the start):", [
        Spec("train_step", 3, "train_step(model, x, y, state, optimizer, max_norm) -> (loss, grad_norm, state)",
             "One step of truncated BPTT with global-norm clipping -> (loss, grad_norm before clipping, state).",
             "moves the batch to the model's device, detaches the carried state, mean cross-entropy, clears "
             "gradients, backpropagates, clips by the global norm, steps; `grad_norm` is measured before clipping.",
             exercise_object=T.TRAIN_STEP),
        Spec("load_checkpoint", 2, "load_checkpoint(path, model, optimizer) -> (step, state)",
             "Load a checkpoint from `path` into `model` and `optimizer` -> (step, state).",
             "with `save_checkpoint(path, model, optimizer, step, state)` in the same cell: the file must load "
             "with `torch.load(weights_only=True)`.", cell="checkpoints", exercise_object=T.LOAD_CHECKPOINT),
        Spec("train_loop", 4, 'train_loop(model, batch_fn, steps, lr, max_norm, checkpoint_path, checkpoint_every=10, '
             'device="cpu") -> history',
             "Train up to `steps` steps with clipping, checkpoints, resume and NaN recovery -> history.",
             '`history` is `{"loss", "grad_norm", "events"}`; Adam; resumes from `checkpoint_path` when it exists; '
             "on a NaN or inf loss or norm restores the last checkpoint, halves the learning rate, records the "
             "event, goes on.", exercise_object=T.TRAIN_LOOP),
        Spec("load_model", 3, "load_model(path) -> model",
             "The trained CharLM, rebuilt from the state_dict saved at `path`.",
             "returns a `CharLM`, with `charlm.pt` (a state_dict) handed in next to the notebook; graded threshold "
             "2.8 bits per character on held-out text, trained within 120 s on a CPU.", hidden_tests=False,
             exercise_object=T.LOAD_MODEL),
    ], topic="training with clipping", ungraded="resume and NaN recovery, a language model under 2.8 bits/char")
