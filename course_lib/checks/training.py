"""Assignment 4, training with clipping: the exercises as cases, comparisons and known mistakes.

Student signatures (the model is called ``model(x, state) -> (logits, state)``, as
:class:`course_lib.models.CharLM`; the reference is :mod:`course_lib.reference.training`):

- ``train_step(model, x, y, state, optimizer, max_norm) -> (loss, grad_norm, state)``
- ``save_checkpoint(path, model, optimizer, step, state)`` and
  ``load_checkpoint(path, model, optimizer) -> (step, state)`` (graded together, as ``load_checkpoint``)
- ``train_loop(model, batch_fn, steps, lr, max_norm, checkpoint_path, checkpoint_every=10,
  device="cpu") -> {"loss": [...], "grad_norm": [...], "events": [{"step", "lr"}, ...]}``
- ``load_model(path) -> CharLM``: the model the student trained and saved (``MODEL_FILE``, its
  ``state_dict`` only) rebuilt from the file; graded by its bits per character on held-out text.

The first three run for a handful of steps on a tiny float64 model (``_protocol_train``): the grader
replays each case with the reference and with known wrong versions in its own process. The last
one never retrains: the sandbox only loads the handed-in file (``torch.load(weights_only=True)``,
inside the student's ``load_model``) and returns its tensors as arrays; the grader rebuilds a
``CharLM`` from those arrays and measures its bits per character itself.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ._core import Case, Exercise, Mutant, scalar_text, describe_error, family

#: the file the notebook saves its trained model to (``state_dict`` only), next to the notebook
MODEL_FILE = "charlm.pt"
#: the graded threshold: bits per character of the handed-in model on the held-out text
BPC_TARGET = 2.8
#: what the check in the student's kernel accepts at the ``ci`` budget (the notebook trains 200 steps there)
CI_BPC_TARGET = 3.3
#: the held-out text: the first EVAL_CHARS characters of the fortunes' validation split
EVAL_CHARS = 65_536
#: the training budget the assignment states, in steps (never seconds: the points must not depend on the
#: student's CPU; the notebook's settings reach 2.73 bits per character at step 800, measured on a CPU)
STEP_BUDGET = 1500
#: where the notebook keeps its training checkpoint (a hint tells the student to resume from it)
CHECKPOINT_FILE = "charlm_checkpoint.pt"
MAX_MODEL_BYTES = 16 * 2**20
MAX_MODEL_PARAMS = 4_000_000

F64 = np.float64
V, E, H = 7, 4, 5  # the tiny model


# ------------------------------------------------------------------ helpers
def _tiny_weights(rng, cell: str, prefix="w.") -> dict:
    import torch

    from . import _protocol_train as P

    torch.manual_seed(int(rng.integers(0, 2**31 - 1)))
    model = P.model_class()(V, E, H, cell).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)  # larger than the default init: gradients big enough to be clipped
    return {prefix + k: v.numpy().copy() for k, v in model.state_dict().items()}


def _batches(rng, n, B=3, T=5) -> dict:
    out = {}
    for k in range(n):
        ids = rng.integers(0, V, size=(B, T + 1))
        out[f"x{k}"], out[f"y{k}"] = ids[:, :-1].astype(np.int64), ids[:, 1:].astype(np.int64)
    return out


def _near(a, b, rtol=1e-5, atol=1e-8) -> bool:
    a, b = np.asarray(a, dtype=F64), np.asarray(b, dtype=F64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))


def _finite(a) -> bool:
    return bool(np.all(np.isfinite(np.asarray(a, dtype=F64))))


# ======================================================================== train_step
def _step_case(rng, cell, opt, max_norm, n, label):
    a = {"V": np.array(V), "E": np.array(E), "H": np.array(H), "cell": np.array(0 if cell == "lstm" else 1),
         "opt": np.array(opt), "lr": np.array(0.05), "max_norm": np.array(float(max_norm)), "n_steps": np.array(n)}
    a.update(_tiny_weights(rng, cell))
    a.update(_batches(rng, n))
    kinds = (cell, ("Adam", "SGD")[opt], "clipping active" if max_norm < 1 else "no clipping")
    return Case(a, label, kinds=kinds)


def _step_cases(rng, hidden):
    if not hidden:
        return [_step_case(rng, "lstm", 1, 0.1, 3, "LSTM, SGD, 3 steps, max_norm 0.1 (clipping active)"),
                _step_case(rng, "lstm", 0, 1e3, 3, "LSTM, Adam, 3 steps, max_norm 1000 (no clipping)"),
                _step_case(rng, "gru", 0, 0.2, 3, "GRU (the state is one tensor), Adam, 3 steps, max_norm 0.2")]
    return [_step_case(rng, "gru", 1, 0.2, 4, "GRU (the state is one tensor), SGD, 4 steps, max_norm 0.2"),
            _step_case(rng, "lstm", 1, 0.05, 4, "LSTM, SGD, 4 steps, max_norm 0.05"),
            _step_case(rng, "lstm", 0, 0.1, 3, "LSTM, Adam, 3 steps, max_norm 0.1")]


def _step_ref():
    from ..reference.training import train_step

    return train_step


#: the scale a ``torch.amp.GradScaler`` starts with (``init_scale``): the factor between scaled and true gradients
SCALER_INIT = 2.0 ** 16


@family
def _step_mutant(order="zbcs", clip="norm", norm_after=False, loss_sum=False, move=True, scale=1.0,
                 unscale_late=False):
    """A training step with the given mistakes. ``order`` is the order of its operations: z
    ``optimizer.zero_grad()``, b the forward pass and ``loss.backward()``, c the clipping (what it measures is
    the reported norm), s ``optimizer.step()``; a letter left out is an operation left out (right: "zbcs").
    ``clip``: "norm" (the global norm), "per_param" or "value"; ``scale``: a GradScaler's factor on the loss,
    its gradients unscaled right after the backward pass (right) or, ``unscale_late``, only at the step."""
    def fn(model, x, y, state, optimizer, max_norm):
        import torch
        from torch import nn

        from ..reference.training import detach_state

        device = next(model.parameters()).device
        if move:
            x, y = x.to(device), y.to(device)
        params = list(model.parameters())
        out = {"norm": None, "unscaled": scale == 1.0}

        def norm_now():
            grads = [p.grad for p in params if p.grad is not None]
            return torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])) if grads else torch.zeros(())

        def unscale():
            if not out["unscaled"]:
                for p in params:
                    if p.grad is not None:
                        p.grad.mul_(1.0 / scale)
                out["unscaled"] = True

        for op in order:
            if op == "z":
                optimizer.zero_grad()
            elif op == "b":
                logits, out["state"] = model(x, detach_state(state))
                flat = logits.reshape(-1, logits.shape[-1]), y.reshape(-1)
                out["loss"] = nn.functional.cross_entropy(*flat, reduction="sum" if loss_sum else "mean")
                (out["loss"] * scale).backward()
                out["after_backward"] = norm_now()
                if not unscale_late:
                    unscale()
            elif op == "c":
                out["norm"] = norm_now()
                grads = [p for p in params if p.grad is not None]
                if clip == "per_param":
                    for p in grads:
                        torch.nn.utils.clip_grad_norm_([p], max_norm)
                elif clip == "value":
                    torch.nn.utils.clip_grad_value_(grads, max_norm)
                else:
                    torch.nn.utils.clip_grad_norm_(grads, max_norm)
                if norm_after:
                    out["norm"] = norm_now()
            elif op == "s":
                unscale()
                optimizer.step()
        norm = out["norm"] if out["norm"] is not None else out["after_backward"]
        return float(out["loss"].detach()), float(norm), detach_state(out["state"])
    return fn


AFTER_STEP_HINT = ("the step uses the unclipped gradients: clipping after `optimizer.step()` (or not at all) changes "
                   "nothing. Rescale the gradients to norm `max_norm` between `loss.backward()` and "
                   "`optimizer.step()`.")
NO_ZERO_GRAD_HINT = ("the gradients accumulate from step to step: clear them (`optimizer.zero_grad()`) before each "
                     "`loss.backward()`.")
# where the operations of a step are out of order: (order, hint); right: zero_grad, backward, clip, step
STEP_ORDERS = [
    ("zbsc", AFTER_STEP_HINT),
    ("bcs", NO_ZERO_GRAD_HINT),
    ("zcbs", "you clip between `optimizer.zero_grad()` and `loss.backward()`: there are no gradients yet at that "
             "point, so the norm you report is 0 and the step uses the unclipped gradients. Clip after "
             "`loss.backward()`, just before `optimizer.step()`."),
    ("cbs", "you clip before `loss.backward()` (and never clear the gradients): the clipping and the norm you "
            "report see the previous step's gradients, and this step's gradients reach `optimizer.step()` "
            "unclipped. Clear the gradients first, then backward, clip, step."),
    ("czbs", "you clip before `optimizer.zero_grad()` and the backward pass: the clipping and the norm you report "
             "see the previous step's gradients (none at the first step), and this step's gradients reach "
             "`optimizer.step()` unclipped. Clip after `loss.backward()`, just before `optimizer.step()`."),
    ("bczs", "`optimizer.zero_grad()` comes after `loss.backward()`, before `optimizer.step()`: it clears the "
             "gradients the step needs, so the parameters never move. Clear them before the backward pass."),
    ("bzcs", "`optimizer.zero_grad()` comes after `loss.backward()`, before clipping and `optimizer.step()`: it "
             "clears the gradients, so the norm you report is 0 and the parameters never move. Clear them before "
             "the backward pass."),
]
SCALER_HINT = ("you clip before `scaler.unscale_(optimizer)`: the gradients are still multiplied by the GradScaler's "
               "scale (65536 at the start), so the norm you report is that many times too large, and `max_norm` "
               "is applied to the scaled gradients (the step is clipped far too hard). Call "
               "`scaler.unscale_(optimizer)` right after `scaler.scale(loss).backward()`, then clip, then "
               "`scaler.step(optimizer)` and `scaler.update()`.")


def _step_mutants():
    S = _step_mutant
    ms = [Mutant(S(order=order), hint) for order, hint in STEP_ORDERS[:1]]
    ms += [
        Mutant(S(clip="per_param"), "each parameter is clipped by its own norm: clip by the global norm "
               "over all gradients together (one call on all of `model.parameters()`), so the step keeps its "
               "direction."),
        Mutant(S(clip="value"), "you clipped element-wise (each entry to [-max_norm, max_norm]): that "
               "changes the step's direction. Clip by the global norm instead."),
        Mutant(S(norm_after=True), "you report the gradient norm after clipping (it is never above "
               "max_norm): log the norm measured before clipping, which is what shows the spikes. "
               "`clip_grad_norm` returns it."),
    ]
    ms += [Mutant(S(order=order), hint) for order, hint in STEP_ORDERS[1:]]
    ms += [
        Mutant(S(loss_sum=True), "your loss is the sum over positions: use the mean cross-entropy over "
               "all B * T positions (`F.cross_entropy`'s default)."),
        Mutant(S(scale=SCALER_INIT, unscale_late=True), SCALER_HINT),
        # alone, a batch left where it is gets its own hint (_step_compare); this one is for pairs with it
        Mutant(S(move=False), NOT_MOVED_HINT),
    ]
    return ms


STEP_DESCRIBE = {"grad_norm": "the gradient norm it returns (one per step)", "loss": "the loss it returns",
                 "params": "the parameters after the steps"}


NOT_MOVED_HINT = ("`train_step` does not move the batch to the model's device: on a GPU the model's weights are "
                  "there and `x`, `y` are still on the CPU, and the forward pass fails. Move both, e.g. "
                  "`x = x.to(next(model.parameters()).device)`.")


def _step_compare(ex, case, got, want):
    fn = ex.name
    t = scalar_text(got.get("out_type", "nothing"))
    if t != "tuple":
        if t == "NoneType":
            return f"`{fn}` returned None: return `(loss, grad_norm, state)`."
        return f"`{fn}` must return the tuple `(loss, grad_norm, state)` (loss and grad_norm as numbers); it returned {t}."
    if not _finite(got["params"]) and _finite(want["params"]):
        return f"after `{fn}` the parameters hold NaN or inf where the correct steps keep them finite."
    for key in ("loss", "grad_norm", "params"):
        if not _near(got[key], want[key]):
            return "values"
    if bool(got["moved"]) != bool(want["moved"]):
        return NOT_MOVED_HINT
    return None


def _step_error_hint(case, etype, msg):
    m = msg.lower()
    if "backward through the graph a second time" in m or "already been freed" in m or "inplace operation" in m:
        return ("the carried state still hangs on the previous step's graph, so this step's backward pass "
                "runs into it. Cut it off with `.detach()` (each tensor of the `(h, c)` tuple) before it "
                "enters the model, or before you return it.")
    if "tuple" in m and "detach" in m:
        return "an LSTM's state is a tuple `(h, c)`: detach each of its tensors (a GRU's state is one tensor)."
    if "expected" in m and "device" in m:
        return "a tensor is on another device than the model: move the batch to the model's device."
    return None


TRAIN_STEP = dict(cases=_step_cases, reference=_step_ref, families=_step_mutants, check=dict(
    compare=_step_compare, error_hint=_step_error_hint, output_kind="number", describe=STEP_DESCRIBE))


# ======================================================================== save / load_checkpoint
def _ckpt_case(rng, cell, step, label):
    a = {"V": np.array(V), "E": np.array(E), "H": np.array(H), "cell": np.array(0 if cell == "lstm" else 1),
         "opt": np.array(0), "lr": np.array(0.03), "max_norm": np.array(1.0), "step": np.array(step)}
    a.update(_tiny_weights(rng, cell))
    a.update(_tiny_weights(rng, cell, prefix="w2."))
    a.update(_batches(rng, 3))
    return Case(a, label, kinds=(cell,))


def _ckpt_cases(rng, hidden):
    if not hidden:
        return [_ckpt_case(rng, "lstm", 20, "LSTM and Adam after 2 steps, saved at step 20"),
                _ckpt_case(rng, "gru", 5, "GRU (the state is one tensor) and Adam, saved at step 5")]
    return [_ckpt_case(rng, "gru", 7, "GRU (the state is one tensor) and Adam, saved at step 7"),
            _ckpt_case(rng, "lstm", 130, "LSTM and Adam, saved at step 130")]


def _ckpt_ref():
    from ..reference.training import load_checkpoint

    return load_checkpoint


def _ckpt_compare(ex, case, got, want):
    if not bool(got["weights_only"]):  # the result's schema is checked first (_schema)
        return ("your checkpoint cannot be read with `torch.load(path, weights_only=True)`: save only "
                "`state_dict()`s, tensors and numbers (not the model or optimizer objects). Loading pickled "
                f"objects can run arbitrary code. ({scalar_text(got['weights_only_error'])[:120]})")
    t = scalar_text(got.get("out_type", "nothing"))
    if t != "tuple":
        return f"`load_checkpoint` must return `(step, state)`; it returned {t}."
    if not _near(got["step"], want["step"]):
        return "`load_checkpoint` does not return the step that was saved: store the step in the checkpoint."
    if not _near(got["params_loaded"], want["params_loaded"], 0, 0):
        return ("after `load_checkpoint` the model does not hold the saved weights: save `model.state_dict()` "
                "and load it with `model.load_state_dict(...)`.")
    gs = {k: v for k, v in got.items() if k.startswith("state.")}
    ws = {k: v for k, v in want.items() if k.startswith("state.")}
    if set(gs) != set(ws) or not all(_near(gs[k], ws[k], 0, 0) for k in ws):
        return ("`load_checkpoint` does not return the carried hidden state that was saved (an LSTM's `(h, c)`): "
                "without it a resumed run starts from a blank memory and differs from one that never stopped.")
    if not _near(got["lr_loaded"], want["lr_loaded"]) or "params_after" not in got \
            or not _near(got["params_after"], want["params_after"]):
        return ("the model's weights come back, but the optimizer's state does not (Adam's running averages, "
                "step count and learning rate): save `optimizer.state_dict()` and load it with "
                "`optimizer.load_state_dict(...)`, or the resumed run takes different steps.")
    return None


def _ckpt_error_hint(case, etype, msg):
    m = msg.lower()
    if "weights_only" in m or "unpickl" in m:
        return ("`torch.load(..., weights_only=True)` refused the file: save only `state_dict()`s, tensors and "
                "numbers, not whole objects.")
    if etype == "Missing":
        return "define both `save_checkpoint` and `load_checkpoint` (the grader calls them together)."
    return None


LOAD_CHECKPOINT = dict(cases=_ckpt_cases, reference=_ckpt_ref, check=dict(
    compare=_ckpt_compare, error_hint=_ckpt_error_hint, output_kind="number"))


# ======================================================================== train_loop
KINDS = {0: "plain", 1: "resume", 2: "nan"}


def _loop_case(rng, kind, cell, label, steps=12, every=4, stop=8, poison=6):
    a = {"V": np.array(V), "E": np.array(E), "H": np.array(H), "cell": np.array(0 if cell == "lstm" else 1),
         "lr": np.array(0.03), "max_norm": np.array(0.5), "kind": np.array(kind), "steps": np.array(steps),
         "every": np.array(every), "n_batches": np.array(steps), "stop": np.array(stop),
         "poison": np.array(poison if kind == 2 else -1), "opt": np.array(1)}
    a.update(_tiny_weights(rng, cell))
    if kind == 1:
        a.update(_tiny_weights(rng, cell, prefix="w2."))
    a.update(_batches(rng, steps))
    early = kind == 2 and poison < every
    return Case(a, label, kinds=(cell, KINDS[kind], *(("a NaN before the first periodic checkpoint",) if early else ())))


def _loop_cases(rng, hidden):
    if not hidden:
        return [_loop_case(rng, 0, "lstm", "12 steps from scratch, a checkpoint every 4"),
                _loop_case(rng, 1, "gru", "GRU, resume: stopped after 8 of 14 steps, resumed into a new model object",
                           steps=14),
                _loop_case(rng, 2, "lstm", "a NaN at step 6, a checkpoint every 4"),
                _loop_case(rng, 2, "gru", "GRU, a NaN at step 1 (before the first periodic checkpoint)", steps=6,
                           every=3, poison=1)]
    return [_loop_case(rng, 0, "gru", "GRU, 10 steps, a checkpoint every 3", steps=10, every=3),
            _loop_case(rng, 1, "gru", "GRU, resume after 6 of 11 steps, a checkpoint every 3", steps=11, every=3,
                       stop=6),
            _loop_case(rng, 2, "lstm", "a NaN at step 9, a checkpoint every 5", steps=13, every=5, poison=9),
            _loop_case(rng, 2, "gru", "GRU, a NaN at step 2 (before the first periodic checkpoint)", steps=8,
                       every=4, poison=2)]


def _loop_ref():
    from ..reference.training import train_loop

    return train_loop


@family
def _loop_mutant(resume="full", periodic=True, saved_step="next", nan="restore"):
    """The reference loop with the given mistakes. ``resume``: "full" (weights, optimizer, step, state; right),
    "ignored", "model only", "from zero" or "no state"; ``periodic``: a checkpoint every ``checkpoint_every``
    steps; ``saved_step``: the step a periodic checkpoint records, "next" (step + 1, right) or "this" (step);
    ``nan``: "restore" (weights and optimizer, lr halved; right), "skip only", "model only" or "same lr"."""
    from ..reference import training as R

    def restore_model(model, path):
        import torch

        ck = torch.load(path, weights_only=True)
        model.load_state_dict(ck["model"])
        return ck["step"], ck["state"]

    def fn(model, batch_fn, steps, lr, max_norm, checkpoint_path, checkpoint_every=10, device="cpu"):
        import torch

        model.to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        history = {"loss": [], "grad_norm": [], "events": []}
        start, state = 0, None
        if os.path.exists(checkpoint_path) and resume != "ignored":
            load = restore_model if resume == "model only" else lambda m, p: R.load_checkpoint(p, m, optimizer)
            start, state = load(model, checkpoint_path)
            start = 0 if resume == "from zero" else start
            state = None if resume == "no state" else state
        else:
            R.save_checkpoint(checkpoint_path, model, optimizer, 0, state)
        for step in range(start, steps):
            x, y = batch_fn(step)
            loss, norm, state = R.train_step(model, x, y, state, optimizer, max_norm)
            history["loss"].append(loss)
            history["grad_norm"].append(norm)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                lr_now = optimizer.param_groups[0]["lr"]
                new = lr_now if nan == "same lr" else lr_now * 0.5
                if nan == "model only":
                    _, state = restore_model(model, checkpoint_path)
                elif nan != "skip only":
                    _, state = R.load_checkpoint(checkpoint_path, model, optimizer)
                for g in optimizer.param_groups:
                    g["lr"] = new
                history["events"].append({"step": step, "lr": new})
            elif (step + 1) % checkpoint_every == 0 and periodic:
                R.save_checkpoint(checkpoint_path, model, optimizer, step + (saved_step == "next"), state)
        return history
    return fn


def _k(*kinds):
    return lambda case: int(case.arrays["kind"]) in kinds


def _loop_mutants():
    L = _loop_mutant
    return [
        Mutant(L(resume="ignored"), "the second run started from scratch instead of resuming: when "
               "`checkpoint_path` exists, load it (weights, optimizer, step, state) and continue from its step.",
               _k(1)),
        Mutant(L(resume="model only"), "on resume you restore the weights but not the optimizer's "
               "state: Adam restarts with empty running averages, so the resumed run diverges from the one "
               "that never stopped. Restore the optimizer too.", _k(1)),
        Mutant(L(resume="from zero"), "on resume you start again at step 0 instead of the saved "
               "step: the resumed run repeats steps it had already taken.", _k(1)),
        Mutant(L(resume="no state"), "on resume you drop the saved hidden state: continue from the "
               "state `load_checkpoint` returns.", _k(1)),
        Mutant(L(periodic=False), "checkpoints are not saved every `checkpoint_every` steps (only at "
               "the start): save one after every `checkpoint_every`-th step whose loss was finite.", _k(1, 2)),
        Mutant(L(saved_step="this"), "a periodic checkpoint records the step just taken (`step`) instead of the "
               "next one to take (`step + 1`): a run resumed from it repeats that step.", _k(1)),
        Mutant(L(nan="skip only"), "after a NaN you skip the step but keep the weights it produced: "
               "go back to the last checkpoint (`load_checkpoint`), since the NaN step has already broken them.",
               _k(2)),
        Mutant(L(nan="model only"), "after a NaN you restore the weights but not the optimizer: its "
               "running averages are NaN now and poison every later step. Restore both.", _k(2)),
        Mutant(L(nan="same lr"), "after a NaN the learning rate is not lowered: set it to half the "
               "rate in use. Note that `load_checkpoint` restores the optimizer's old learning rate, so lower it "
               "after restoring.", _k(2)),
    ]


def _loop_compare(ex, case, got, want):
    fn = ex.name
    t = scalar_text(got.get("h_type", "nothing"))
    if t != "dict":
        return (f"`{fn}` must return the history as a dict `{{'loss': [...], 'grad_norm': [...], 'events': [...]}}`; "
                f"it returned {'None' if t == 'NoneType' else t}.")
    for key in ("h_loss_bad", "h_grad_norm_bad", "h_events_bad"):
        if key in got:
            return (f"`{fn}`'s history must hold numbers in 'loss' and 'grad_norm' and, in 'events', one dict "
                    "`{'step': step, 'lr': new_lr}` per NaN recovery.")
    kind = int(case.arrays["kind"])
    same = _near(got["params"], want["params"], 1e-4, 1e-7)
    hist_ok = True
    for key in ("h_loss", "h_grad_norm"):  # there, as numbers: the result's schema is checked first (_schema)
        g, w = got[key], want[key]
        if not _near(g[np.isfinite(g)], w[np.isfinite(w)], 1e-4, 1e-7):
            hist_ok = False
    if same and hist_ok and kind == 2:
        if not _near(got["h_event_step"], want["h_event_step"]) or not _near(got["h_event_lr"], want["h_event_lr"]):
            return (f"`{fn}` recovers, but its history does not record it: append `{{'step': step, 'lr': new_lr}}` "
                    "to `history['events']` for each recovery.")
    if same and hist_ok:
        return None
    probe_ok = "probe.params" in got and _near(got["probe.params"], want.get("probe.params"), 1e-5, 1e-8) \
        and _near(got["probe.loss"], want["probe.loss"]) and _near(got["probe.grad_norm"], want["probe.grad_norm"])
    if "probe.params" in got and "probe.params" in want and not probe_ok:
        return (f"`{fn}` is built on your `train_step`, which does not give the right steps yet: fix it first "
                "(see its check).")
    caught = "h_event_step" in got and len(got["h_event_step"]) > 0
    if kind == 2 and not caught and not _finite(got["params"]) and _finite(want["params"]):
        return (f"the NaN was not caught: `{fn}` kept going with NaN weights. After each step, check that the loss "
                "and the gradient norm are finite (`math.isfinite`); if not, restore the last checkpoint and halve "
                "the learning rate.")
    if same and not hist_ok and len(got["h_loss"]) == len(want["h_loss"]):
        return (f"`{fn}` trains correctly, but its history is off: one loss and one gradient norm (before "
                "clipping, as `train_step` returns them) per step, in order.")
    return "values"


def _loop_error_hint(case, etype, msg):
    m = msg.lower()
    if etype in ("FileNotFoundError",) or "no such file" in m:
        return ("a checkpoint file was read before one was written: when `checkpoint_path` does not exist, save "
                "a checkpoint at step 0 first (a NaN in the first steps needs something to go back to).")
    if "backward through the graph a second time" in m:
        return "the carried state is not detached between steps (see `train_step`)."
    return None


TRAIN_LOOP = dict(cases=_loop_cases, reference=_loop_ref, families=_loop_mutants, check=dict(
    compare=_loop_compare, error_hint=_loop_error_hint, output_kind="number"))


# ======================================================================== load_model (the trained model)
def model_file_arrays(folder) -> dict:
    """``{"file": uint8 bytes, "file_name": ...}`` of ``folder/MODEL_FILE`` when it is there (a regular
    file, not a link, at most ``MAX_MODEL_BYTES``); ``{}`` otherwise. Read as bytes, never unpickled."""
    if folder is None:
        return {}
    p = Path(folder) / MODEL_FILE
    try:
        if p.is_symlink() or not p.is_file() or p.stat().st_size > MAX_MODEL_BYTES:
            return {}
        data = p.read_bytes()
    except OSError:
        return {}
    return {"file": np.frombuffer(data, dtype=np.uint8).copy(), "file_name": np.array(MODEL_FILE)}


def _model_cases(rng, hidden):
    return [] if hidden else [Case({"target": np.array(BPC_TARGET)}, f"your {MODEL_FILE} on held-out text")]


_EVAL = {}


def heldout_ids():
    """The held-out text: the first ``EVAL_CHARS`` (+1) ids of the fortunes' validation split, and the vocabulary size."""
    if "ids" not in _EVAL:
        from ..tasks import load_corpus

        corpus = load_corpus("fortunes")
        _EVAL["ids"], _EVAL["V"] = corpus.val_ids[: EVAL_CHARS + 1].clone(), len(corpus.vocab)
    return _EVAL["ids"], _EVAL["V"]


def charlm_from_arrays(sd: dict):
    """A :class:`course_lib.models.CharLM` holding the tensors ``sd`` (its ``state_dict`` as numpy arrays).

    The architecture is read off the shapes; raises ``ValueError`` with a student-facing reason when
    they are not a CharLM's."""
    import torch

    from ..models import CharLM

    need = ("embedding.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0", "head.weight", "head.bias")
    if any(k not in sd for k in need):
        raise ValueError("it is not a course_lib `CharLM` (its state_dict has no " +
                         ", ".join(k for k in need if k not in sd) + "): build it with `make_charlm`")
    Vs, Es = sd["embedding.weight"].shape
    G, Hs = sd["rnn.weight_hh_l0"].shape
    cell = {4: "lstm", 3: "gru", 1: "rnn"}.get(G // max(Hs, 1))
    layers = sum(1 for k in sd if k.startswith("rnn.weight_hh_l") and not k.endswith("_reverse"))
    if cell is None or G % max(Hs, 1):
        raise ValueError(f"its recurrent weights have an unexpected shape {tuple(sd['rnn.weight_hh_l0'].shape)}")
    if sum(v.size for v in sd.values()) > MAX_MODEL_PARAMS or layers > 4:
        raise ValueError(f"it is too large to evaluate here (at most {MAX_MODEL_PARAMS:,} parameters, 4 layers)")
    lm = CharLM(int(Vs), hidden=int(Hs), cell=cell, num_layers=layers, embed_dim=int(Es))
    try:
        lm.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in sd.items()})
    except RuntimeError as exc:
        raise ValueError(f"its tensors do not fit a CharLM ({str(exc).splitlines()[0][:160]})") from None
    return lm


def evaluate_arrays(sd: dict) -> float:
    """Bits per character on the held-out text of the model whose state_dict is ``sd`` (arrays)."""
    import torch

    from ..train import bits_per_char

    ids, vocab = heldout_ids()
    lm = charlm_from_arrays(sd)
    if lm.vocab_size != vocab:
        raise ValueError(f"its vocabulary has {lm.vocab_size} characters, the fortunes' has {vocab}: use "
                         "`len(corpus.vocab)` of `load_corpus('fortunes')` (the whole corpus, no max_chars)")
    with torch.no_grad():
        return bits_per_char(lm, ids, batch_size=64, seq_len=256)


def _model_compare(ex, case, got, want):
    t = scalar_text(got.get("out_type", "nothing"))
    if t != "Module":
        return (f"`load_model` must return the trained model (a `CharLM`); it returned "
                f"{'None' if t == 'NoneType' else t}.")
    sd = {k[3:]: v for k, v in got.items() if k.startswith("sd.")}
    try:
        bpc = evaluate_arrays(sd)
    except ValueError as exc:
        return f"the model `load_model` returned cannot be evaluated: {exc}."
    if not math.isfinite(bpc) or bpc > float(case.arrays["target"]):
        return (f"your saved model reaches {bpc:.3f} bits per character on the held-out text; the target is "
                f"{float(case.arrays['target']):g}. Run the training cell again: it resumes from the checkpoint it "
                f"keeps (`{CHECKPOINT_FILE}`) and trains on, up to {STEP_BUDGET} steps; if the budget is spent, check "
                "the learning rate and clipping. Then hand in the new `charlm.pt`.")
    return None


def _model_error_hint(case, etype, msg):
    m = msg.lower()
    if etype == "NoModelFile":
        return (f"no `{MODEL_FILE}` was handed in next to your notebook: run the training cell (it saves the model) "
                f"and hand in `{MODEL_FILE}` together with the notebook, in the same folder.")
    if "weights_only" in m or "unpickl" in m:
        return (f"`{MODEL_FILE}` cannot be read with `torch.load(..., weights_only=True)`: save the model's "
                "`state_dict()` only, not the model object.")
    if "state_dict" in m or "size mismatch" in m or "missing key" in m or "unexpected key" in m:
        return ("the saved tensors do not fit the model `load_model` builds: build it with the same settings "
                "(hidden size, cell, layers) as the model you trained.")
    return None


@dataclass
class FileExercise(Exercise):
    """An exercise graded on a file the student hands in next to the notebook (``attach``), not on inputs
    the grader draws. The judge adds ``attach(folder)``'s arrays to each case; there is no reference run."""

    attach: Callable | None = None
    # () -> None: what judging the file needs that is the same for every student (assignment 4: the held-out
    # text), loaded by a grading worker before its first submission (autograder/judge.py warm_up)
    prepare: Callable | None = None

    def call(self, fn, case: Case) -> dict:
        """Call ``fn`` on ``case``; the missing reference answers with an ``out_type`` of ``"reference"``."""
        if fn is _no_reference:
            return {"out_type": np.array("reference")}
        return super().call(fn, case)


def _no_reference(*args):  # the verdict needs a reference output; this exercise compares with a threshold
    return None


LOAD_MODEL = FileExercise("load_model", 3, "train.model", [], _model_cases, lambda: _no_reference, lambda: [],
                          compare=_model_compare, error_hint=_model_error_hint, output_kind="number",
                          attach=model_file_arrays, prepare=heldout_ids)


def check_load_model(fn, *, hidden: bool = False, seed=None, folder=".") -> None:
    """Kernel mode: load ``MODEL_FILE`` from ``folder`` with your ``load_model`` and measure it on the
    held-out text, as the grader will. ``None`` when it reaches ``BPC_TARGET``; ``AssertionError`` with a
    hint when not."""
    from ._core import check_case

    if not callable(fn):
        raise AssertionError(describe_error("load_model", "NotCallable", f"got a {type(fn).__name__}"))
    from .. import budget

    case = LOAD_MODEL.cases(0, hidden=False)[0]
    case.arrays["target"] = np.array(budget.pick(ci=CI_BPC_TARGET, default=BPC_TARGET, full=BPC_TARGET))
    case.arrays.update(model_file_arrays(folder))
    got = LOAD_MODEL.call(fn, case)
    hint = check_case(LOAD_MODEL, case, got, {})
    if hint:
        raise AssertionError(f"{hint}\n(on {case.label})")
    sd = {k[3:]: v for k, v in got.items() if k.startswith("sd.")}
    print(f"load_model: your model reaches {evaluate_arrays(sd):.3f} bits per character on the held-out text "
          f"(target {float(case.arrays['target']):g}): check passed.")

