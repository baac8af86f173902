"""How the checks of assignment 4 (training with clipping) call a student's functions: a few steps of a
tiny language model, in the student's kernel or, while grading, in the sandbox.

Like ``_protocol.py`` (which loads this file for every protocol named ``"train.*"``), it imports nothing
from ``course_lib`` and speaks plain arrays only. The case arrays hold the tiny model's weights and the
batches; what comes back is what the student's code did with them: the losses and gradient norms it
reported, the parameters it ended with, whether it moved the batch to the model's device, what it
saved and loaded. Nothing here is trusted: the grader replays the same case with the reference (and
with known wrong versions, for the hint) in its own process and compares the arrays.

Protocols:

- ``train.step``: ``train_step(model, x, y, state, optimizer, max_norm)`` for ``n_steps`` steps, the
  state it returns fed back in;
- ``train.checkpoint``: the notebook's ``save_checkpoint`` (found next to ``load_checkpoint``) writes a
  trained model + Adam + state, ``load_checkpoint`` reads it into a different model and a fresh Adam,
  then both take the same step;
- ``train.loop``: ``train_loop(...)`` on a fresh checkpoint path; ``kind`` 1 interrupts it and resumes
  into a model with other weights; ``kind`` 2 poisons one step (its logits are NaN);
- ``train.model``: ``load_model(path)`` on the model file the student handed in (bytes in the case),
  its ``state_dict`` returned as arrays for the grader to evaluate.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

MAX_TEXT = 400
CELLS = ("lstm", "gru")


def _text(s) -> np.ndarray:
    s = str(s)
    return np.array(s[:MAX_TEXT] + "..." if len(s) > MAX_TEXT else s)


def _error(exc, prefix="") -> dict:
    return {prefix + "error_type": _text(type(exc).__name__), prefix + "error": _text(exc)}


# ------------------------------------------------------------------ the tiny model
def model_class():
    from torch import nn

    class TinyLM(nn.Module):
        """``course_lib.models.CharLM``'s layout (embedding, rnn, head) at toy size, float64.

        ``poison_next()`` makes the next forward pass return NaN logits (a step that blows up)."""

        def __init__(self, V, E, H, cell):
            super().__init__()
            self.embedding = nn.Embedding(V, E)
            self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(E, H, batch_first=True)
            self.head = nn.Linear(H, V)
            self._poison = False

        def poison_next(self):
            self._poison = True

        def forward(self, x, state=None):
            out, state = self.rnn(self.embedding(x), state)
            logits = self.head(out)
            if self._poison:
                self._poison = False
                logits = logits * float("nan")
            return logits, state

    return TinyLM


def make_model(case, prefix="w."):
    import torch

    V, E, H = (int(case[k]) for k in ("V", "E", "H"))
    model = model_class()(V, E, H, CELLS[int(case["cell"])]).double()
    sd = {k[len(prefix):]: torch.from_numpy(np.array(v, copy=True)) for k, v in case.items() if k.startswith(prefix)}
    model.load_state_dict(sd)
    return model


def flat_params(model) -> np.ndarray:
    return np.concatenate([p.detach().cpu().double().reshape(-1).numpy() for p in model.parameters()])


def _state_arrays(state, key, res):
    import torch

    if state is None:
        res[key + "_type"] = _text("NoneType")
        res[key + "_parts"] = np.zeros(0, dtype=bool)
        return
    parts = state if isinstance(state, (tuple, list)) else (state,)
    res[key + "_type"] = _text(type(state).__name__)
    res[key + "_parts"] = np.array([isinstance(s, torch.Tensor) for s in parts[:4]], dtype=bool)  # which follow
    for i, s in enumerate(parts[:4]):
        if isinstance(s, torch.Tensor):
            res[f"{key}.{i}"] = s.detach().cpu().double().numpy().copy()


# ------------------------------------------------------------------ a batch that reports being moved
def _probe_class():
    import torch

    class Batch(torch.Tensor):
        """A CPU tensor that says it lives on the ``meta`` device (so that code which moves it only when
        the devices differ does move it) and records every move: ``.to(device)``, ``.cuda()``,
        ``torch.as_tensor(..., device=...)``. Every result is a plain tensor."""

        moved = None

        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = getattr(func, "__name__", "")
            if name == "__get__" and getattr(func, "__self__", None) is torch.Tensor.device:
                return torch.device("meta")
            if name in ("to", "cuda", "as_tensor", "tensor", "_to_copy", "copy_") and args:
                dev = [a for a in list(args[1:]) + list(kwargs.values())
                       if isinstance(a, (torch.device, str, int)) and not isinstance(a, bool)
                       or isinstance(a, torch.Tensor)]
                if name == "cuda" or dev or "device" in kwargs:
                    for a in args:
                        if isinstance(a, Batch) and a.moved is not None:
                            a.moved[0] = True
            with torch._C.DisableTorchFunctionSubclass():
                out = func(*args, **kwargs)
            return out.as_subclass(torch.Tensor) if isinstance(out, Batch) else out

    return Batch


_BATCH = []


def batch(case, key, flags):
    """The case's array ``key`` as a (B, T) int64 :class:`Batch`; ``flags[0]`` turns True when moved."""
    import torch

    if not _BATCH:
        _BATCH.append(_probe_class())
    t = torch.from_numpy(np.array(case[key], dtype=np.int64)).as_subclass(_BATCH[0])
    t.moved = flags
    return t


def make_optimizer(case, model, lr=None):
    import torch

    lr = float(case["lr"]) if lr is None else lr
    if int(case.get("opt", np.array(0))) == 1:
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.5)
    return torch.optim.Adam(model.parameters(), lr=lr)


def _correct_step(model, x, y, state, optimizer, max_norm):
    """The protocol's own training step (used around the student's checkpoint functions)."""
    import torch

    optimizer.zero_grad()
    if state is not None:
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
    logits, state = model(x, state)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return float(loss.detach()), state


def _number(v):
    import torch

    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return float(v.detach().cpu())
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    raise TypeError(type(v).__name__)


# ------------------------------------------------------------------ train.step
def call_step(fn, case, prefix="") -> dict:
    import torch

    model = make_model(case)
    opt = make_optimizer(case, model)
    n, max_norm = int(case["n_steps"]), float(case["max_norm"])
    state, losses, norms, moved = None, [], [], []
    res = {}
    for k in range(n):
        fx, fy = [False], [False]
        x, y = batch(case, f"x{k}", fx), batch(case, f"y{k}", fy)
        try:
            with torch.enable_grad():
                out = fn(model, x, y, state, opt, max_norm)
        except Exception as exc:  # noqa: BLE001 - the student's exception is data here
            res.update(_error(exc, prefix))
            res[prefix + "failed_step"] = np.array(k)
            return res
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            res[prefix + "out_type"] = _text(type(out).__name__ + (f" of {len(out)}" if isinstance(out, (tuple, list)) else ""))
            return res
        try:
            losses.append(_number(out[0]))
            norms.append(_number(out[1]))
        except TypeError as exc:
            res[prefix + "out_type"] = _text(f"tuple with a {exc} where a number belongs")
            return res
        state = out[2]
        moved.append(fx[0] and fy[0])
    res[prefix + "out_type"] = _text("tuple")
    res[prefix + "loss"] = np.array(losses)
    res[prefix + "grad_norm"] = np.array(norms)
    res[prefix + "params"] = flat_params(model)
    res[prefix + "moved"] = np.array(all(moved))
    return res


# ------------------------------------------------------------------ train.checkpoint
def call_checkpoint(fn, case) -> dict:
    import torch

    save = getattr(fn, "__globals__", {}).get("save_checkpoint")
    if save is None or not callable(save):
        return {"error_type": _text("Missing"), "error": _text("save_checkpoint is not defined")}
    max_norm = float(case["max_norm"])
    a = make_model(case)
    opt_a = make_optimizer(case, a)
    state = None
    for k in range(2):
        _, state = _correct_step(a, torch.from_numpy(case[f"x{k}"]), torch.from_numpy(case[f"y{k}"]), state, opt_a,
                                 max_norm)
    d = tempfile.mkdtemp(prefix="ckpt-", dir=os.getcwd() if os.access(os.getcwd(), os.W_OK) else None)
    path = os.path.join(d, "checkpoint.pt")
    res = {}
    try:
        try:
            save(path, a, opt_a, int(case["step"]), state)
        except Exception as exc:  # noqa: BLE001
            res.update(_error(exc))
            res["where"] = _text("save_checkpoint")
            return res
        if not os.path.exists(path):
            return {"error_type": _text("NoFile"), "error": _text("save_checkpoint wrote no file at `path`")}
        _probe_weights_only(path, res)
        return _load_and_continue(fn, path, case, max_norm, res)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _probe_weights_only(path, res) -> None:
    """Whether the file loads with ``torch.load(weights_only=True)`` (no pickled code)."""
    import torch

    try:
        torch.load(path, weights_only=True)
        res["weights_only"] = np.array(True)
    except Exception as exc:  # noqa: BLE001
        res["weights_only"] = np.array(False)
        res["weights_only_error"] = _text(exc)


def _load_and_continue(fn, path, case, max_norm, res) -> dict:
    """``load_checkpoint`` into a different model and a fresh Adam, then one more correct step from there."""
    import torch

    b = make_model(case, prefix="w2.")
    opt_b = make_optimizer(case, b, lr=float(case["lr"]) * 7.0)
    try:
        out = fn(path, b, opt_b)
    except Exception as exc:  # noqa: BLE001
        res.update(_error(exc))
        res["where"] = _text("load_checkpoint")
        return res
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        res["out_type"] = _text(type(out).__name__)
        return res
    res["out_type"] = _text("tuple")
    try:
        res["step"] = np.array(_number(out[0]))
    except TypeError:
        res["step"] = np.array(np.nan)
    _state_arrays(out[1], "state", res)
    res["params_loaded"] = flat_params(b)
    res["lr_loaded"] = np.array(float(opt_b.param_groups[0]["lr"]))
    st = out[1]
    if isinstance(st, list):
        st = tuple(st)
    try:
        _correct_step(b, torch.from_numpy(case["x2"]), torch.from_numpy(case["y2"]), st, opt_b, max_norm)
        res["params_after"] = flat_params(b)
    except Exception as exc:  # noqa: BLE001
        res["after_error"] = _text(f"{type(exc).__name__}: {exc}")
    return res


# ------------------------------------------------------------------ train.loop
def _batch_fn(case, model, flags):
    n_batches = int(case["n_batches"])
    poison = int(case.get("poison", np.array(-1)))

    def batch_fn(step):
        step = int(step)
        if step == poison:
            model.poison_next()
        k = step % n_batches
        return batch(case, f"x{k}", flags), batch(case, f"y{k}", flags)
    return batch_fn


def _history(h, key, res):
    if not isinstance(h, dict):
        res[key + "type"] = _text(type(h).__name__)
        return
    res[key + "type"] = _text("dict")
    for name in ("loss", "grad_norm"):
        try:
            res[key + name] = np.array([_number(v) for v in h.get(name, [])], dtype=np.float64)
        except Exception:  # noqa: BLE001
            res[key + name + "_bad"] = np.array(True)
    steps, lrs = [], []
    try:
        for e in h.get("events", []):
            steps.append(float(e["step"]))
            lrs.append(float(e["lr"]))
        res[key + "event_step"] = np.array(steps, dtype=np.float64)
        res[key + "event_lr"] = np.array(lrs, dtype=np.float64)
    except Exception:  # noqa: BLE001
        res[key + "events_bad"] = np.array(True)


def call_loop(fn, case) -> dict:
    import torch

    kind = int(case["kind"])
    args = (float(case["lr"]), float(case["max_norm"]))
    every, steps = int(case["every"]), int(case["steps"])
    d = tempfile.mkdtemp(prefix="loop-", dir=os.getcwd() if os.access(os.getcwd(), os.W_OK) else None)
    res, flags = {}, [False]
    try:
        path = os.path.join(d, "checkpoint.pt")
        model = make_model(case)
        try:
            with torch.enable_grad():
                if kind == 1:  # interrupted after `stop` steps, then resumed into another model object
                    fn(model, _batch_fn(case, model, flags), int(case["stop"]), *args, path, every, "cpu")
                    model = make_model(case, prefix="w2.")
                h = fn(model, _batch_fn(case, model, flags), steps, *args, path, every, "cpu")
        except Exception as exc:  # noqa: BLE001
            res.update(_error(exc))
            return res
        _history(h, "h_", res)
        res["params"] = flat_params(model)
        step_fn = getattr(fn, "__globals__", {}).get("train_step")
        if step_fn is not None and callable(step_fn):  # the piece it is built on, for the hint
            sub = {k: v for k, v in case.items()}
            sub["n_steps"] = np.array(2)
            res.update(call_step(step_fn, sub, prefix="probe."))
        return res
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------ train.model
MAX_MODEL_BYTES = 16 * 2**20


def call_model(fn, case) -> dict:
    import torch

    if "file" not in case:
        return {"error_type": _text("NoModelFile"), "error": _text("")}
    d = tempfile.mkdtemp(prefix="model-", dir=os.getcwd() if os.access(os.getcwd(), os.W_OK) else None)
    try:
        path = os.path.join(d, str(case["file_name"]))
        with open(path, "wb") as f:
            f.write(np.asarray(case["file"], dtype=np.uint8).tobytes())
        try:
            model = fn(path)
        except Exception as exc:  # noqa: BLE001
            return _error(exc)
        if not isinstance(model, torch.nn.Module):
            return {"out_type": _text(type(model).__name__)}
        lm = getattr(model, "lm", model)  # a CarryState or Autocast wrapper: its language model
        lm = getattr(lm, "lm", lm)
        res = {"out_type": _text("Module"), "module": _text(type(lm).__name__)}
        for k, v in lm.state_dict().items():
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                res["sd." + k] = v.detach().cpu().float().numpy().copy()
        res["sd_keys"] = np.array([k[3:] for k in res if k.startswith("sd.")], dtype=str)  # which came back
        return res
    finally:
        shutil.rmtree(d, ignore_errors=True)


def call(protocol: str, fn, case: dict, arg_names, scalar_names) -> dict:
    if protocol == "train.step":
        return call_step(fn, case)
    if protocol == "train.checkpoint":
        return call_checkpoint(fn, case)
    if protocol == "train.loop":
        return call_loop(fn, case)
    if protocol == "train.model":
        return call_model(fn, case)
    raise ValueError(f"unknown protocol {protocol!r}")
