"""How the checks of assignments 2 and 3 call a student's function: structured arguments and outputs,
gradients, in-place changes. Runs in the student's kernel and, while grading, in the sandbox.

Like ``_protocol.py`` (which loads this file for every protocol named ``"rnn.*"``), it imports nothing
from ``course_lib`` and speaks plain arrays only. Nothing it returns is trusted: the verdict is
computed in the grader's process from these arrays.

An exercise's ``arg_names`` is a *spec* (a JSON-able dict)::

    {"args": [ARG, ...], "grad": bool, "probes": [{"name": "lstm_cell", "args": [ARG, ...]}, ...]}

where an ``ARG`` is

- ``"x"``: the case array ``x`` as a tensor (a Python scalar when ``"x"`` is in ``scalar_names``);
  with ``"grad": true`` every floating-point input is a leaf that requires grad, passed as a copy
  (so changes made in place show up and autograd still reaches the leaf);
- a list of ARGs: a tuple of them (``["h", "c"]`` is the LSTM state, ``["W_ih", "W_hh", "b_ih", "b_hh"]``
  a weight tuple, a list of such lists the weights of a stack);
- ``"@lstm"`` / ``"@gru"`` / ``"@cell"`` (the one the case's ``cell`` names): a correct cell function of
  the protocol's own (so ``run_rnn`` is graded apart from the student's cells); ``"@f"``: the scalar
  function ``f(x) = sum(f_A * tanh(x @ f_B))``;
- ``{"present": name, "then": ARG, "else": ARG}``: ``then`` when the case has an array ``name``;
- ``{"layers": "w{k}_", "count": "n", "each": ["W_ih", ...]}``: a tuple of ``n`` weight tuples.

What comes back (all numpy): ``out_type`` (the structure, e.g. ``"tuple(Tensor,Tensor)"``), one
``out.<path>`` array per tensor in it (``out.0``, ``out.1.0``, ...), ``out_rg.<path>`` (whether that
tensor is attached to the autograd graph), ``inputs_changed``; with gradients, ``grad_status``
(``ok``, ``no_graph`` or ``error: ...``) and ``grad.<input>`` for every floating-point input (zero
where the output does not depend on it), for the loss ``sum_k <out_k, v_k>`` with fixed random ``v_k``. A probe calls another function of the
student's notebook (found in ``fn.__globals__``) on its own arguments and returns
``probe.<name>.out...`` the same way, so a hint can say which of the student's building blocks is off.
"""
from __future__ import annotations

import numpy as np

MAX_TEXT = 400


def _text(s) -> np.ndarray:
    s = str(s)
    return np.array(s[:MAX_TEXT] + "..." if len(s) > MAX_TEXT else s)


# ------------------------------------------------------------------ the protocol's own cells
def lstm(x, state, W_ih, W_hh, b_ih, b_hh):
    import torch

    h, c = state
    i, f, g, o = (x @ W_ih.t() + b_ih + h @ W_hh.t() + b_hh).chunk(4, 1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_next), c_next


def gru(x, h, W_ih, W_hh, b_ih, b_hh):
    import torch

    xr, xz, xn = (x @ W_ih.t() + b_ih).chunk(3, 1)
    hr, hz, hn = (h @ W_hh.t() + b_hh).chunk(3, 1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    return (1 - z) * torch.tanh(xn + r * hn) + z * h


def _f(case):
    import torch

    A, B = torch.from_numpy(np.array(case["f_A"])), torch.from_numpy(np.array(case["f_B"]))

    def f(x):
        return (A * torch.tanh(x @ B)).sum()
    return f


# ------------------------------------------------------------------ arguments
def _build(spec, case, scalar_names, grad, leaves, originals, passed):
    import torch

    if isinstance(spec, list):
        return tuple(_build(s, case, scalar_names, grad, leaves, originals, passed) for s in spec)
    if isinstance(spec, dict) and "present" in spec:  # {"present": name, "then": ARG, "else": ARG}
        return _build(spec["then"] if spec["present"] in case else spec["else"], case, scalar_names, grad,
                      leaves, originals, passed)
    if isinstance(spec, dict) and "layers" in spec:  # {"layers": "w{k}_", "count": name, "each": [names]}
        n = int(case[spec["count"]])
        return tuple(_build([spec["layers"].format(k=k) + e for e in spec["each"]], case, scalar_names, grad,
                            leaves, originals, passed) for k in range(n))
    if spec == "@cell":  # the protocol's own cell named by the case's "cell" entry
        return lstm if str(case["cell"]) == "lstm" else gru
    if spec == "@lstm":
        return lstm
    if spec == "@gru":
        return gru
    if spec == "@f":
        return _f(case)
    a = case[spec]
    if spec in scalar_names:
        return a.item()
    t = torch.from_numpy(np.array(a, copy=True))
    if t.is_floating_point():
        originals[spec] = t.clone()
        if grad:
            t.requires_grad_(True)
            leaves[spec] = t
            t = t.clone()  # a non-leaf copy: in-place changes are allowed, seen, and differentiable
        passed[spec] = t
    return t


# ------------------------------------------------------------------ outputs
def _flatten(value, path, out, tensors):
    """Structure string of ``value``; tensors go to ``out`` (numpy) and ``tensors`` (torch)."""
    import torch

    if isinstance(value, torch.Tensor):
        try:
            t = value.detach().to("cpu")
            if t.is_complex() or t.dtype == torch.bfloat16:
                t = t.to(torch.float64)
            out[f"out{path}"] = t.numpy().copy()
            out[f"out_rg{path}"] = np.array(bool(value.requires_grad))
            tensors.append(value)
        except Exception as exc:  # a tensor subclass that misbehaves
            return f"{type(value).__name__} ({type(exc).__name__})"
        return "Tensor"
    if isinstance(value, (tuple, list)) and len(value) <= 8:
        parts = [_flatten(v, f"{path}.{k}", out, tensors) for k, v in enumerate(value)]
        return f"{type(value).__name__}({','.join(parts)})"
    return type(value).__name__


def _cotangent(k, t):
    import torch

    g = torch.Generator().manual_seed(1000 + k)
    return torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype)


def _gradients(tensors, leaves) -> dict:
    import torch

    res = {}
    loss, k = None, 0
    for t in tensors:
        if t.is_floating_point():
            if t.requires_grad:
                term = (t * _cotangent(k, t)).sum()
                loss = term if loss is None else loss + term
            k += 1
    if loss is None:
        res["grad_status"] = _text("no_graph")
        return res
    names = list(leaves)
    try:
        grads = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
    except Exception as exc:
        res["grad_status"] = _text(f"error: {type(exc).__name__}: {exc}")
        return res
    res["grad_status"] = _text("ok")
    for n, g in zip(names, grads):  # an input the output does not depend on: a zero gradient
        res[f"grad.{n}"] = (g if g is not None else torch.zeros_like(leaves[n])).detach().numpy().copy()
    return res


def _run(fn, args_spec, case, scalar_names, grad, prefix="") -> dict:
    import torch

    leaves, originals, passed = {}, {}, {}
    args = [_build(s, case, scalar_names, grad, leaves, originals, passed) for s in args_spec]
    try:
        with torch.enable_grad():
            value = fn(*args)
    except Exception as exc:
        return {f"{prefix}error_type": _text(type(exc).__name__), f"{prefix}error": _text(exc)}
    res, tensors = {}, []
    res["out_type"] = _text(_flatten(value, "", res, tensors))
    changed = [n for n, t in passed.items()
               if not (t.shape == originals[n].shape and torch.equal(t.detach(), originals[n]))]
    res["inputs_changed"] = _text(",".join(changed))
    if grad:
        res.update(_gradients(tensors, leaves))
    return {prefix + k: v for k, v in res.items()}


def call(protocol: str, fn, case: dict, arg_names, scalar_names: list) -> dict:
    spec = arg_names
    res = _run(fn, spec["args"], case, scalar_names, bool(spec.get("grad")))
    for probe in spec.get("probes", ()):
        other = getattr(fn, "__globals__", {}).get(probe["name"])
        key = f"probe.{probe['name']}."
        if other is None or not callable(other):
            res.update({key + "error_type": _text("Missing"), key + "error": _text("")})
            continue
        try:
            res.update(_run(other, probe["args"], case, scalar_names, False, prefix=key))
        except Exception as exc:  # noqa: BLE001 - a probe only ever adds a hint
            res.update({key + "error_type": _text(type(exc).__name__), key + "error": _text(exc)})
    return res
