"""Judge-side helpers shared by assignments 2 and 3: cases with weight tuples, comparison of
structured outputs (tuples of tensors) *and of their gradients*, and hints about the autograd graph.

The student's function is called through ``_protocol_rnn`` (protocol ``"rnn.call"``); what comes
back is a dict of arrays (see that module). :func:`compare` returns ``None`` when the student's
arrays match the reference's, a hint when the difference has a name of its own (a wrong return
type, a shape, a dtype, a cut autograd graph), and ``"values"`` otherwise, so that the known
mistakes (mutants) are tried next.
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

from ._core import scalar_text, case_dtype, close, tolerances

F32, F64 = np.float32, np.float64
PROTOCOL = "rnn.call"


def normal(rng, shape, scale=1.0, dtype=F64):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def weights(rng, prefix, gates, I, H, dtype, scale=1.0):
    """``{prefix}W_ih`` (G*H, I), ``{prefix}W_hh`` (G*H, H), ``{prefix}b_ih``, ``{prefix}b_hh`` (G*H,)."""
    k = scale / np.sqrt(H)
    return {f"{prefix}W_ih": normal(rng, (gates * H, I), k * 1.5, dtype),
            f"{prefix}W_hh": normal(rng, (gates * H, H), k * 1.5, dtype),
            f"{prefix}b_ih": normal(rng, (gates * H,), 0.5, dtype),
            f"{prefix}b_hh": normal(rng, (gates * H,), 0.5, dtype)}


def weight_names(prefix=""):
    return [f"{prefix}W_ih", f"{prefix}W_hh", f"{prefix}b_ih", f"{prefix}b_hh"]


def leaves(d: dict, prefix="out") -> dict:
    """``{path: array}`` of the output tensors, ``path`` like ``""``, ``".0"``, ``".1.0"``."""
    return {k[len(prefix):]: v for k, v in d.items() if k == prefix or k.startswith(prefix + ".")}


def _type(d, key="out_type"):
    return scalar_text(d.get(key, "nothing"))


def describe_type(t: str) -> str:
    return {"NoneType": "None", "Tensor": "a tensor"}.get(t, t.replace("tuple(", "a tuple (").replace("list(", "a list ("))


def structure_problem(fn: str, got: dict, want: dict, names: dict) -> str | None:
    """A hint when the returned structure differs; ``names`` maps output paths to what they are."""
    gt, wt = _type(got), _type(want)
    if gt == wt or (gt.replace("list(", "tuple(") == wt):
        return None
    if gt == "NoneType":
        return f"`{fn}` returned None: did you forget the `return` statement?"
    what = names.get("__all__", wt)
    return f"`{fn}` must return {what}; it returned {describe_type(gt)}."


def value_problem(fn, case, got, want, names, dtype=None):
    """Shape, dtype, finiteness of each output tensor; ``"values"`` when one differs; else None."""
    dtype = dtype or case_dtype(case)
    gl, wl = leaves(got), leaves(want)
    differs = False
    for path, w in wl.items():
        g = gl.get(path)
        what = names.get(path, f"output {path.lstrip('.')}")
        if g is None:
            return f"`{fn}` did not return {what} as a tensor."
        if g.shape != w.shape:
            return f"`{fn}` returned {what} of shape {tuple(g.shape)}, but shape {tuple(w.shape)} is expected."
        if g.dtype != w.dtype:
            return (f"`{fn}` returned {what} as {g.dtype} for {w.dtype} inputs: keep the inputs' dtype "
                    "(do not create tensors with a fixed dtype or convert with .float()/.double()).")
        if not np.all(np.isfinite(g)) and np.all(np.isfinite(w)):
            return f"`{fn}` returned NaN or inf in {what} where the correct result is finite."
        if not close(g, w, dtype):
            differs = True
    return "values" if differs else None


def _nonzero(a, dtype):
    return bool(np.any(np.abs(a) > tolerances(dtype)[1] * 10))


GRAPH_CUTTERS = ("`.detach()`, `.data`, `with torch.no_grad()`, `.item()`/`.tolist()`/`.numpy()` or "
                 "`torch.tensor(...)` built from computed values")


def gradient_problem(fn, case, got, want, names, inputs=None):
    """Compare ``grad.*``: a cut graph gets its own hint; other differences give ``"values"``."""
    if scalar_text(want.get("grad_status", "")) != "ok":
        return None
    dtype = case_dtype(case)
    status = scalar_text(got.get("grad_status", ""))
    if status == "no_graph":
        return (f"`{fn}` returns the right values, but they are cut from the autograd graph: no gradient can "
                f"flow back through your function, so nothing built on it could learn. Look for {GRAPH_CUTTERS}.")
    if status.startswith("error"):
        msg = status[len("error: "):]
        if "inplace" in msg.replace("-", "").replace(" ", "").lower() or "in-place" in msg:
            return (f"`{fn}` returns the right values, but backpropagating through it fails because a tensor "
                    "autograd needs was modified in place (`+=`, `.mul_()`, `x[...] = ...` on a tensor "
                    "that is used again): compute new tensors instead.")
        return f"`{fn}` returns the right values, but backpropagating through it fails: {msg}"
    for path, rg in leaves(want, "out_rg").items():
        if bool(rg) and not bool(got[f"out_rg{path}"]):
            what = names.get(path, f"output {path.lstrip('.')}")
            return (f"{what} returned by `{fn}` has the right values but is cut from the autograd graph "
                    f"(it does not require grad): look for {GRAPH_CUTTERS}.")
    inputs = inputs or {}
    wrong = False
    for key, w in want.items():
        if not key.startswith("grad."):
            continue
        name = key[len("grad."):]
        g = got[key]  # one per input (zero where no gradient reaches it), checked before comparing (_schema)
        if _nonzero(w, dtype) and not _nonzero(g, dtype):
            return (f"`{fn}` returns the right values, but no gradient reaches {inputs.get(name, f'`{name}`')}: "
                    f"something cuts the autograd graph between it and your output. Look for {GRAPH_CUTTERS}.")
        if not close(g, w, dtype):
            wrong = True
    if wrong:
        return (f"`{fn}` returns the right values, but their gradients are not those of the formula: part of "
                f"the computation is hidden from autograd (look for {GRAPH_CUTTERS}) or replaced by a custom "
                "backward.")
    return None


def make_compare(names: dict, inputs: dict | None = None):
    """``compare(ex, case, got, want)`` for ``Exercise.compare``: structure, values, then gradients."""
    def compare(ex, case, got, want):
        p = structure_problem(ex.name, got, want, names)
        if p:
            return p
        p = value_problem(ex.name, case, got, want, names)
        if p:
            return p
        return gradient_problem(ex.name, case, got, want, names, inputs)
    return compare


def shape_error_hint(layouts: str):
    """An ``error_hint`` for matmul shape and dtype errors; ``layouts`` restates the contract."""
    def hint(case, etype, msg):
        m = msg.lower()
        if "shape" in m or "size" in m or "dimension" in m:
            return f"a matrix product or a sum has mismatched shapes. {layouts}"
        if "dtype" in m or "expected scalar type" in m or "double" in m or "float" in m:
            return "mixed dtypes: build every new tensor with the inputs' dtype (e.g. dtype=x.dtype)."
        if "can't call numpy() on tensor that requires grad" in m or "requires grad" in m:
            return ("your code converts a tensor that is part of the autograd graph to numpy: stay with "
                    "torch operations so that gradients can flow.")
        if re.search(r"not enough values to unpack|too many values to unpack|cannot unpack", m):
            return "unpacking failed: check what each argument and each call returns (a tensor or a pair)."
        return None
    return hint


# ------------------------------------------------------------------ the fallback: which output, where, how far
def _steps_where(case, g, w, dtype) -> str:
    """' (at padded steps only)' / ' (at valid steps only)' for a (B, T, ...) output of a padded case."""
    x, lengths = case.arrays.get("x"), case.arrays.get("lengths")
    if x is None or lengths is None or x.ndim != 3 or g.ndim < 2 or g.shape[:2] != x.shape[:2]:
        return ""
    T = x.shape[1]
    valid = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    if valid.all():
        return ""
    rtol, atol = tolerances(dtype)
    bad = ~np.isclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol)
    bad = bad.reshape(bad.shape[0], bad.shape[1], -1).any(-1)
    if not bad[valid].any():
        return " (at padded steps only, t >= lengths[b])"
    if not bad[~valid].any():
        return " (at valid steps only)"
    return " (at valid and padded steps)"


def describe_rnn(names: dict, inputs: dict | None = None, split: Callable | None = None):
    """An ``Exercise.describe`` for the structured outputs of assignments 2 and 3: which output (and, with
    ``split(case, path, array) -> [(words, index), ...]``, which part of it: a direction, a layer) differs,
    at which steps, and how far; the gradients (with respect to which input) when every output is right."""
    from ._core import how_far

    def describe(case, got, want):
        dtype = case_dtype(case)
        parts = []
        gl = leaves(got)
        for path, w in leaves(want).items():
            g = gl.get(path)
            if g is None or g.shape != w.shape or close(g, w, dtype):
                continue
            what = names.get(path, f"output {path.lstrip('.')}")
            pieces = (split(case, path, w) if split else None) or [("", ...)]
            for words, idx in pieces:
                if close(g[idx], w[idx], dtype):
                    continue
                parts.append(f"{what}{words} is {how_far(g[idx], w[idx], dtype, case.hidden)}"
                             f"{_steps_where(case, g[idx], w[idx], dtype)}")
        if not parts:
            for key, w in want.items():
                if key.startswith("grad.") and key in got and not close(got[key], w, dtype):
                    name = key[len("grad."):]
                    parts.append(f"its gradient with respect to {(inputs or {}).get(name, f'`{name}`')} is "
                                 f"{how_far(got[key], w, dtype, case.hidden)} (the outputs are right)")
        return "; ".join(parts[:3]) or None
    return describe
