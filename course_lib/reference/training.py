"""Assignment 4's answers: one training step, checkpoints, and the loop with clipping and NaN recovery.

The student-sized version of :func:`course_lib.train.train`, on a character language model that is
called as ``model(x, state) -> (logits, state)`` (:class:`course_lib.models.CharLM`). The contract
(also in the assignment notebook):

- ``train_step(model, x, y, state, optimizer, max_norm) -> (loss, grad_norm, state)``: moves ``x`` and
  ``y`` to the model's device, runs the model from ``state`` cut off from the previous step's graph,
  mean cross-entropy over all positions (nats), clears old gradients, backpropagates, clips the
  *global* norm to ``max_norm``, takes the optimizer step. Returns the loss (a float), the global
  gradient norm measured *before* clipping (a float) and the new state (detached or not).
- ``save_checkpoint(path, model, optimizer, step, state)``: one file with the model's and the
  optimizer's ``state_dict``, the step and the carried state, loadable with
  ``torch.load(path, weights_only=True)``.
- ``load_checkpoint(path, model, optimizer) -> (step, state)``: the reverse, in place.
- ``train_loop(model, batch_fn, steps, lr, max_norm, checkpoint_path, checkpoint_every=10,
  device="cpu") -> history``: Adam at ``lr``; ``batch_fn(step) -> (x, y)``; resumes when
  ``checkpoint_path`` exists (from its step, with its optimizer and state), otherwise saves a
  checkpoint at step 0; after every ``checkpoint_every``-th finite step saves a checkpoint; on a
  non-finite loss or gradient norm restores the last checkpoint (model, optimizer, state), sets the
  learning rate to half the one in use and carries on with the next batch. ``history`` is
  ``{"loss": [...], "grad_norm": [...], "events": [{"step": s, "lr": new_lr}, ...]}``, one loss and
  norm per step run (NaN steps included), one event per recovery.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import nn

from .clipping import clip_grad_norm

__all__ = ["detach_state", "train_step", "save_checkpoint", "load_checkpoint", "train_loop"]


def detach_state(state):
    """The carried state cut off from the graph (``None``, a tensor, or a tuple of tensors).

    Returns the same structure, each tensor detached (no copy of the data); anything else raises
    ``AttributeError`` (it has no ``detach``).
    Source: Williams and Peng 1990 (truncated backpropagation through time); PyTorch's ``Tensor.detach``
    documentation.
    Used by lecture 7 (carried state) and assignment 4's answers.
    """
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def train_step(model, x, y, state, optimizer, max_norm):
    """One step of truncated BPTT with global-norm clipping (see the module docstring).

    x, y (B, T) integer tokens; ``state`` as the model returns it -> ``(loss in nats, grad_norm before
    clipping, state)``. Errors from the model or the optimizer propagate.
    Source: Pascanu et al. 2013 (global-norm clipping); Williams and Peng 1990 (truncated BPTT).
    Lecture 7 trains the same way (:func:`course_lib.train.train`); the answer to assignment 4's
    ``train_step``.
    """
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    optimizer.zero_grad()
    logits, state = model(x, detach_state(state))
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    grad_norm = clip_grad_norm(model.parameters(), max_norm)
    optimizer.step()
    return loss.item(), float(grad_norm), detach_state(state)


def save_checkpoint(path, model, optimizer, step, state):
    """Write model, optimizer, step and carried state to ``path`` (one file).

    ``step`` an int; the file is written through a temporary file and a rename. Errors from ``torch.save`` (a
    missing folder, a full disk) propagate.
    Source: PyTorch's "Saving and loading models" tutorial (``state_dict`` of model and optimizer).
    Lecture 7 checkpoints the same way; the answer to assignment 4's ``save_checkpoint``.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": int(step),
                "state": detach_state(state)}, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind


def load_checkpoint(path, model, optimizer):
    """Read a checkpoint of :func:`save_checkpoint` into ``model`` and ``optimizer``.

    Returns ``(step, state)``; model and optimizer are loaded in place. Raises what
    ``torch.load(weights_only=True)`` raises on a missing or foreign file.
    Source: PyTorch's "Saving and loading models" tutorial; ``torch.load`` documentation (``weights_only``).
    Lecture 7 resumes the same way; the answer to assignment 4's ``load_checkpoint``.
    """
    ckpt = torch.load(path, weights_only=True, map_location=next(model.parameters()).device)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    return ckpt["step"], ckpt["state"]


def train_loop(model, batch_fn, steps, lr, max_norm, checkpoint_path, checkpoint_every=10, device="cpu"):
    """Train with clipping, checkpoints and NaN recovery (see the module docstring).

    ``batch_fn(step) -> (x, y)`` on the CPU; returns the history dict described in the module docstring.
    Errors from ``batch_fn`` or the model propagate.
    Source: Pascanu et al. 2013 (clipping); the recovery rule of :func:`course_lib.train.train`.
    Lecture 7's loop in small; the answer to assignment 4's ``train_loop``.
    """
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = {"loss": [], "grad_norm": [], "events": []}
    if os.path.exists(checkpoint_path):
        start, state = load_checkpoint(checkpoint_path, model, optimizer)
    else:
        start, state = 0, None
        save_checkpoint(checkpoint_path, model, optimizer, 0, state)
    for step in range(start, steps):
        x, y = batch_fn(step)
        loss, grad_norm, state = train_step(model, x, y, state, optimizer, max_norm)
        history["loss"].append(loss)
        history["grad_norm"].append(grad_norm)
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            new_lr = optimizer.param_groups[0]["lr"] / 2
            _, state = load_checkpoint(checkpoint_path, model, optimizer)
            for group in optimizer.param_groups:
                group["lr"] = new_lr
            history["events"].append({"step": step, "lr": new_lr})
        elif (step + 1) % checkpoint_every == 0:
            save_checkpoint(checkpoint_path, model, optimizer, step + 1, state)
    return history
