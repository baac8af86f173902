"""The complete schema of each protocol's result, checked before any comparison (judge side).

A result is reported from next to the student's code, where the helper modules can be patched
(``sys.modules["_protocol"]`` and friends). The comparison code reads it as complete, so first:
every key of the reference's result on the same case is there, nothing else is, and every value
has the expected dtype kind and shape. A rule below relaxes that only where a key, its shape or its
dtype depends on what the student's function did (it returned None, another structure, a wrong
shape, an int tensor...): then the comparison names the mistake. Missing, extra or malformed
entries fail the case; nothing falls back to a default.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

TEXT, BOOL, INT, FLOAT, NUM = "U", "b", "iu", "f", "biuf"

TAMPERED = ("something in your notebook changed how your function's result is reported (a patched or replaced "
            "helper module, e.g. through `sys.modules`). Remove that code: your function is graded on what it "
            "returns.")


@dataclass(frozen=True)
class Field:
    key: str  # a regular expression for whole keys
    kinds: str  # allowed numpy dtype kinds
    shape: tuple | str = "ref"  # a fixed shape, "ref" (the reference's, where it has the key) or "any"
    # "ref": present exactly when the reference's result has the key; else (got, want, match) -> True
    # (required), False (must be absent) or None (either way)
    when: Callable | str = "ref"


# the rules read a few entries to decide what else must be there; those entries are validated like any other
def _t(d, key) -> str:
    v = d.get(key)
    return str(v) if isinstance(v, np.ndarray) and v.dtype.kind == "U" and v.ndim == 0 else ""


def _flags(d, key) -> list:
    v = d.get(key)
    return [bool(x) for x in v.reshape(-1)] if isinstance(v, np.ndarray) and v.dtype.kind == "b" else []


def _names(d, key) -> list:
    v = d.get(key)
    return v.tolist() if isinstance(v, np.ndarray) and v.dtype.kind == "U" and v.ndim == 1 else []


def _either(got, want, m):
    return None


def _if_error(got, want, m):  # an error result carries no outputs, only what went wrong
    return None if "error_type" in got else False


def _success(got, want, m):
    return "error_type" not in got


ERROR = [Field("error_type", TEXT, (), _either),
         Field("error", TEXT, (), lambda got, want, m: "error_type" in got)]

# ------------------------------------------------------------------ plain and clip (_protocol)
# `out` exists for a tensor, an int or a float; for other types (None, a list, a numpy scalar...) it
# may or may not, and the comparison says what is wrong with the type. Its shape and dtype are the
# student's (the comparison has hints for a wrong one).
OUT = Field("out", NUM, "any", lambda got, want, m: True if _t(got, "out_type") in ("Tensor", "int", "float") else None)
PLAIN = [Field("out_type", TEXT, ()), OUT, Field("inputs_changed", TEXT, ())]
CLIP = [Field("out_type", TEXT, ()), OUT,
        Field(r"has_grad_\d+", BOOL, ()), Field(r"param_changed_\d+", BOOL, ()),
        Field(r"orig_\d+", FLOAT),  # the original gradient tensors: there when the case gave one
        # the gradient a parameter holds afterwards: there exactly when the result says it has one
        Field(r"grad_(\d+)", FLOAT, "ref", lambda got, want, m: _flags(got, f"has_grad_{m[1]}") == [True])]

# ------------------------------------------------------------------ rnn.* (_protocol_rnn)


def _leaf(got, want, m):
    """Output tensors: as the reference's when the structure (``out_type``) is the same, else the student's."""
    same = _t(got, "out_type").replace("list(", "tuple(") == _t(want, "out_type")
    return (m.string in want) if same else None


RNN = [Field("out_type", TEXT, ()), Field("inputs_changed", TEXT, ()), Field("grad_status", TEXT, ()),
       Field(r"out(\.\d+)*", NUM, "any", _leaf), Field(r"out_rg(\.\d+)*", BOOL, (), _leaf),
       # one per floating-point input when backpropagation through the student's outputs worked
       Field(r"grad\..+", FLOAT, "ref", lambda got, want, m: m.string in want and _t(got, "grad_status") == "ok")]
# a probe (one of the student's building blocks, for the hint): an error or its outputs, never gradients
RNN_PROBE = [Field("out_type", TEXT, (), _success), Field("inputs_changed", TEXT, (), _success),
             Field(r"out(\.\d+)*", NUM, "any", lambda got, want, m: None if _success(got, want, m) else False),
             Field(r"out_rg(\.\d+)*", BOOL, (), lambda got, want, m: None if _success(got, want, m) else False)]

# ------------------------------------------------------------------ train.* (_protocol_train)


def _tuple(got, want, m):
    return _t(got, "out_type") == "tuple"


def _history(got, want, m):
    return _t(got, "h_type") == "dict"


STEP = [Field("out_type", TEXT, ()), Field("loss|grad_norm|params", FLOAT, "ref", _tuple),
        Field("moved", BOOL, (), _tuple), Field("failed_step", INT, (), _if_error)]
CKPT = [Field("out_type", TEXT, ()), Field("where", TEXT, (), _if_error),
        Field("weights_only", BOOL, ()),
        Field("weights_only_error", TEXT, (), lambda got, want, m: _flags(got, "weights_only") == [False]),
        Field("step|lr_loaded", FLOAT, (), _tuple), Field("params_loaded", FLOAT, "ref", _tuple),
        Field("state_type", TEXT, (), _tuple), Field("state_parts", BOOL, "any", _tuple),
        # the state is whatever load_checkpoint returned: its tensors (``state_parts``), shapes and all
        Field(r"state\.(\d)", FLOAT, "any",
              lambda got, want, m: _tuple(got, want, m) and _flags(got, "state_parts")[int(m[1]):][:1] == [True]),
        # one step after loading: its parameters, or the error that step ran into
        Field("params_after", FLOAT, "ref", lambda got, want, m: _tuple(got, want, m) and "after_error" not in got),
        Field("after_error", TEXT, (), lambda got, want, m: None if _tuple(got, want, m) else False)]
LOOP = [Field("params", FLOAT), Field("h_type", TEXT, ()),
        # a history entry that holds something else than numbers is reported as h_<entry>_bad instead
        Field("h_(loss|grad_norm)", FLOAT, "any",
              lambda got, want, m: _history(got, want, m) and f"h_{m[1]}_bad" not in got),
        Field("h_event_(step|lr)", FLOAT, "any", lambda got, want, m: _history(got, want, m) and "h_events_bad" not in got),
        Field("h_(loss|grad_norm|events)_bad", BOOL, (), lambda got, want, m: None if _history(got, want, m) else False)]
MODEL = [Field("out_type", TEXT, (), lambda got, want, m: True),  # no reference run: a threshold is the verdict
         Field("module", TEXT, (), lambda got, want, m: _t(got, "out_type") == "Module"),
         Field("sd_keys", TEXT, "any", lambda got, want, m: _t(got, "out_type") == "Module"),
         Field(r"sd\.(.+)", FLOAT, "any", lambda got, want, m: m[1] in _names(got, "sd_keys"))]


def schema(ex):
    """``(fields, probes)``: the rules for the result of ``ex``, and ``{prefix: (fields, required)}`` for the
    results of the student's other functions it reports (probes, only ever used for a hint)."""
    p = ex.protocol
    if p.startswith("rnn."):  # every probe is reported: an error (Missing when not defined) or outputs
        return RNN, {f"probe.{q['name']}.": (RNN_PROBE, True) for q in ex.arg_names.get("probes", ())}
    if p == "train.loop":  # the notebook's train_step, when it defines one
        return LOOP, {"probe.": (STEP, None)}
    return {"plain": PLAIN, "clip": CLIP, "train.step": STEP, "train.checkpoint": CKPT,
            "train.model": MODEL}[p], {}


def _rule(fields, key):
    for f in fields:
        m = re.fullmatch(f.key, key)
        if m:
            return f, m
    return None, None


def _problem(fields, got: dict, want: dict):
    """``(kind, key, detail)`` for the first entry of ``got`` that breaks the rules, else None."""
    fields = ERROR + fields
    for key, v in got.items():
        f, _ = _rule(fields, key)
        if f is None:
            return "unexpected", key, ""
        if not isinstance(v, np.ndarray) or v.dtype.kind not in f.kinds:
            return "malformed", key, f"dtype {getattr(v, 'dtype', type(v).__name__)}"
        shape = want[key].shape if f.shape == "ref" and key in want else f.shape
        if isinstance(shape, tuple) and v.shape != shape:
            return "malformed", key, f"shape {v.shape} where {shape} is expected"
    error = "error_type" in got
    literal = {f.key for f in fields if re.escape(f.key) == f.key}
    missing, unexpected = [], []
    for key in sorted(set(want) | set(got) | literal | _announced(got)):
        f, m = _rule(fields, key)
        if f is None or (error and f not in ERROR):
            continue  # an error result fails whatever else it holds; only its own entries are needed
        need = (key in want) if f.when == "ref" else f.when(got, want, m)
        if need is True and key not in got:
            missing.append(key)
        if need is False and key in got:
            unexpected.append(key)
    if missing:  # first: a missing entry can make others look unexpected
        return "missing", missing[0], ""
    return ("unexpected", unexpected[0], "") if unexpected else None


def _announced(got) -> set:
    """Keys a result says it holds (a gradient, the state's tensors, the model's tensors): they must follow."""
    return ({f"grad_{k[len('has_grad_'):]}" for k in got if k.startswith("has_grad_") and _flags(got, k) == [True]}
            | {f"state.{i}" for i, tensor in enumerate(_flags(got, "state_parts")) if tensor}
            | {f"sd.{n}" for n in _names(got, "sd_keys")})


def _split(d: dict, prefix: str):
    inside = {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}
    return inside, {k: v for k, v in d.items() if not k.startswith(prefix)}


def problem(ex, got: dict, want: dict) -> str | None:
    """A hint when ``got`` is not a complete, well-formed result for ``ex``; None when it is."""
    fields, probes = schema(ex)
    parts = [(p, rules, required) for p, (rules, required) in probes.items()] + [("", fields, True)]
    try:
        for prefix, rules, required in parts:  # each probe's entries, then the rest
            sub, got = _split(got, prefix)
            wsub, want = _split(want, prefix)
            bad = _problem(rules, sub, wsub) if sub or required else None
            if bad:
                kind, key, detail = bad
                what = {"missing": f"an incomplete result for `{ex.name}` (missing `{prefix}{key}`)",
                        "unexpected": f"an unexpected entry `{prefix}{key}` in the result for `{ex.name}`",
                        "malformed": f"a malformed result for `{ex.name}` (`{prefix}{key}` has {detail})"}[kind]
                return f"the grader received {what}: {TAMPERED}"
    except Exception:  # noqa: BLE001 - an entry the rules read is itself unreadable
        return f"the grader received a malformed result for `{ex.name}`: {TAMPERED}"
    return None


def _in(key, probes):
    return any(key.startswith(p) for p in probes)


def nonfinite(ex, got: dict, want: dict) -> str | None:
    """The first graded entry that holds NaN or inf where the reference's is finite (probes excluded)."""
    _, probes = schema(ex)
    for key, w in want.items():
        g = got.get(key)
        if g is None or _in(key, probes) or w.dtype.kind not in "fc" or g.dtype.kind not in "fc":
            continue
        if np.all(np.isfinite(w)) and not np.all(np.isfinite(g)):
            return key
    return None
