"""How a check calls an exercise function, in the student's kernel or in the grading sandbox.

This module is the only part of ``course_lib.checks`` that runs next to student code while
grading, so it imports nothing from ``course_lib`` (the sandbox has no ``course_lib.reference``)
and speaks plain arrays only: a case is a dict of numpy arrays, and what comes back is a dict
of numpy arrays (numbers, booleans, or unicode strings for error messages and type names).
The verdict is computed elsewhere, from these arrays alone.
"""
from __future__ import annotations

import numpy as np

MAX_TEXT = 400  # characters kept from an error message or a type name


def _text(s) -> np.ndarray:
    s = str(s)
    if len(s) > MAX_TEXT:
        s = s[:MAX_TEXT] + "..."
    return np.array(s)


def _tensor(a: np.ndarray):
    import torch

    return torch.from_numpy(np.array(a, copy=True))


def _encode(value) -> dict:
    """What a function returned, as arrays: ``out`` (when it is numeric) and ``out_type``."""
    import torch

    res = {"out_type": _text(type(value).__name__)}
    try:
        if isinstance(value, torch.Tensor):
            t = value.detach().to("cpu")
            if t.is_complex() or t.dtype == torch.bfloat16:
                t = t.to(torch.float64)
            res["out"] = t.numpy().copy()
        elif isinstance(value, (bool, int, float)) and not isinstance(value, bool):
            res["out"] = np.asarray(value, dtype=np.float64)
        elif isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
            res["out"] = np.array(value, copy=True)
            res["out_type"] = _text("ndarray")
    except Exception as exc:  # a tensor subclass that misbehaves: report its type only
        res["out_type"] = _text(f"{type(value).__name__} ({type(exc).__name__})")
        res.pop("out", None)
    return res


def _error(exc: BaseException) -> dict:
    return {"error_type": _text(type(exc).__name__), "error": _text(exc)}


def _distance(a, b) -> float:
    """How far tensor ``a`` is from ``b``, relative to ``b`` (inf when the shapes differ), by plain numpy
    arithmetic: the student's code may have replaced ``torch.allclose`` and friends."""
    if tuple(a.shape) != tuple(b.shape):
        return float("inf")
    x, y = np.array(a.detach().cpu().numpy(), dtype=np.float64), np.array(b.numpy(), dtype=np.float64)
    return float(np.max(np.abs(x - y) / (1e-5 + 1e-4 * np.abs(y)), initial=0.0))


def _nearest(pairs) -> int | None:
    """The index of the nearest of ``pairs`` (``[(a, b), ...]`` for each candidate), when it is close (to
    float32 rounding): several steps may hold nearly the same state, so the nearest, not the first, is taken."""
    d = [max(_distance(a, b) for a, b in cand) for cand in pairs]
    k = int(np.argmin(d)) if d else None
    return k if k is not None and d[k] <= 1.0 else None


def _grader_pieces(case: dict, originals: dict) -> dict:
    """Stand-ins for the student's earlier functions, answering from the grader's own values in the case.

    An exercise built on earlier ones (``gradient_norms`` on ``rnn_step`` and ``step_jacobian``) is graded
    with the grader's pieces, so that a mistake in an earlier exercise is charged once, there. The case
    carries the grader's states ``pieces.hs`` (T+1, H) and step Jacobians ``pieces.J`` (T, H, H); a
    stand-in answers a call whose inputs (states and the case's own weights) are those of step t, and hands
    any other call (a transposed or swapped weight, another shape) to the student's
    own function (so nothing here computes an answer: it looks one up)."""
    import torch

    x, hs, Js = (torch.from_numpy(np.array(case[k])) for k in ("x", "pieces.hs", "pieces.J"))
    W = {k: torch.from_numpy(np.array(case[k])) for k in ("W_xh", "W_hh", "b")}

    def same(got, want) -> bool:  # the case's own weight, not a transposed or swapped one
        return isinstance(got, torch.Tensor) and got.shape == want.shape and _distance(got, want) <= 1.0

    def step_jacobian(h_next, W_hh, *rest):
        if isinstance(h_next, torch.Tensor) and h_next.ndim == 1 and not rest and same(W_hh, W["W_hh"]) \
                and h_next.shape == hs.shape[1:]:
            t = _nearest([[(h_next, hs[t])] for t in range(1, hs.shape[0])])
            if t is not None:
                return Js[t].to(h_next.dtype).clone()
        return originals["step_jacobian"](h_next, W_hh, *rest)

    def rnn_step(xt, h, *weights, **named):
        rest = ("W_xh", "W_hh", "b")[len(weights):]
        weights_all = weights + tuple(named[k] for k in rest if k in named)  # a call may name the weights
        if isinstance(xt, torch.Tensor) and isinstance(h, torch.Tensor) and xt.ndim == h.ndim and xt.ndim in (1, 2) \
                and xt.shape[:-1] == h.shape[:-1] and xt.shape[-1] == x.shape[-1] and h.shape[-1] == hs.shape[-1] \
                and len(weights_all) == 3 and len(named) == len(rest) \
                and all(same(w, W[k]) for w, k in zip(weights_all, ("W_xh", "W_hh", "b"))):
            rows = [_nearest([[(xr, x[t]), (hr, hs[t])] for t in range(x.shape[0])])
                    for xr, hr in zip(xt.reshape(-1, xt.shape[-1]), h.reshape(-1, h.shape[-1]))]
            if rows and None not in rows:
                return torch.stack([hs[t + 1].to(h.dtype) for t in rows]).reshape(h.shape).clone()
        return originals["rnn_step"](xt, h, *weights, **named)

    return {"rnn_step": rnn_step, "step_jacobian": step_jacobian}


def call_plain(fn, case: dict, arg_names: list, scalar_names: list) -> dict:
    """``fn(*args)`` on tensors made from the case; returns the output and whether inputs changed.

    When the case carries the grader's own pieces (``pieces.*``), the student's earlier functions that
    ``fn`` calls by name are replaced by :func:`_grader_pieces`'s stand-ins for the call."""
    namespace = getattr(fn, "__globals__", None)
    if "pieces.hs" not in case or not isinstance(namespace, dict):
        return _call_plain(fn, case, arg_names, scalar_names)
    own = {k: namespace[k] for k in ("rnn_step", "step_jacobian") if callable(namespace.get(k))}
    stand_ins = _grader_pieces(case, own)
    try:
        namespace.update({k: stand_ins[k] for k in own})
        return _call_plain(fn, case, arg_names, scalar_names)
    finally:
        namespace.update(own)


def _call_plain(fn, case: dict, arg_names: list, scalar_names: list) -> dict:
    import torch

    args, originals = [], {}
    for name in arg_names:
        a = case[name]
        if name in scalar_names:
            args.append(a.item())
        else:
            t = _tensor(a)
            originals[name] = t.clone()
            args.append(t)
    try:
        value = fn(*args)
    except Exception as exc:
        return _error(exc)
    res = _encode(value)
    changed = [n for n, t in zip(arg_names, args) if n in originals
               and not (t.shape == originals[n].shape and torch.equal(t, originals[n]))]
    res["inputs_changed"] = _text(",".join(changed))
    return res


def call_clip(fn, case: dict) -> dict:
    """``fn(parameters, max_norm)`` on parameters whose gradients come from the case.

    Returns the total norm it returned, every gradient the parameters hold afterwards
    (``grad_k``), and the original gradient tensors afterwards (``orig_k``: in-place scaling
    shows up there, reassigning ``p.grad`` does not).
    """
    import torch

    k = int(case["n_params"])
    params, origs = [], []
    for i in range(k):
        p = torch.zeros(case[f"shape_{i}"].astype(np.int64).tolist(),
                        dtype=torch.from_numpy(case[f"g_{i}"][:0]).dtype, requires_grad=True)
        if bool(case[f"has_grad_{i}"]):
            p.grad = _tensor(case[f"g_{i}"]).reshape(p.shape)
        origs.append(p.grad)
        params.append(p)
    arg = (p for p in params) if bool(case["as_generator"]) else params
    try:
        value = fn(arg, float(case["max_norm"]))
    except Exception as exc:
        return _error(exc)
    res = _encode(value)
    for i, (p, g) in enumerate(zip(params, origs)):
        res[f"has_grad_{i}"] = np.array(p.grad is not None)
        if p.grad is not None and isinstance(p.grad, torch.Tensor):
            res[f"grad_{i}"] = p.grad.detach().reshape(-1).numpy().copy()
        if g is not None:
            res[f"orig_{i}"] = g.detach().reshape(-1).numpy().copy()
        res[f"param_changed_{i}"] = np.array(bool(p.detach().abs().sum() != 0))
    return res


def call(protocol: str, fn, case: dict, arg_names: list, scalar_names: list) -> dict:
    if protocol == "plain":
        return call_plain(fn, case, arg_names, scalar_names)
    if protocol == "clip":
        return call_clip(fn, case)
    if protocol.startswith("rnn."):  # assignments 2 and 3: structured arguments, gradients
        return _extension("_protocol_rnn").call(protocol, fn, case, arg_names, scalar_names)
    if protocol.startswith("train."):  # assignment 4: a few training steps of a tiny model, a model file
        return _extension("_protocol_train").call(protocol, fn, case, arg_names, scalar_names)
    raise ValueError(f"unknown protocol {protocol!r}")


def _extension(name: str):
    """A protocol module next to this file (``_protocol_<x>.py``), loaded by path: this file runs
    both as ``course_lib.checks._protocol`` and, in the sandbox, as a top-level ``_protocol``."""
    import importlib.util
    import os
    import sys

    mod = sys.modules.get(name)
    if mod is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod
    return mod
