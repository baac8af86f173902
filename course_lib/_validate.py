"""Argument checks shared by every public function.

Each raises ``ValueError`` naming the argument, what was expected and what was given, so a
wrong shape reads as a sentence instead of a matmul traceback deep inside torch.
"""
from __future__ import annotations

import operator

import torch


def tensor(name: str, value, *, ndim: int | tuple[int, ...] | None = None, floating: bool = True):
    """Check that ``value`` is a tensor (optionally of ``ndim`` dims and a floating dtype)."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None:
        dims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.dim() not in dims:
            want = " or ".join(f"{d}-D" for d in dims)
            raise ValueError(f"{name} must be {want}, got shape {tuple(value.shape)}")
    if floating and not value.is_floating_point():
        raise ValueError(f"{name} must have a floating dtype (float32 or float64), got {value.dtype}")
    return value


def shape(name: str, value, expected: tuple) -> torch.Tensor:
    """Check ``value.shape`` against ``expected``; ``None`` entries match any size."""
    tensor(name, value, ndim=len(expected))
    actual = tuple(value.shape)
    if any(e is not None and e != a for e, a in zip(expected, actual)):
        pretty = str(tuple("?" if e is None else e for e in expected)).replace("'?'", "?")
        raise ValueError(f"{name} must have shape {pretty}, got {actual}")
    return value


def shapes(expected: dict) -> None:
    """Check several tensors at once: ``expected`` maps each argument's name to ``(value, shape)``.

    Each is checked with :func:`shape` (a ``None`` value, an optional argument left out, is skipped),
    then all of them with :func:`same_dtype_device`, in the order given (the first is the one the
    others are compared with).
    """
    for name, (value, want) in expected.items():
        if value is not None:
            shape(name, value, want)
    same_dtype_device(**{name: value for name, (value, _) in expected.items()})


def same_dtype_device(**tensors) -> None:
    """All tensors share one dtype and one device (mixing them fails late and obscurely)."""
    items = [(k, v) for k, v in tensors.items() if v is not None]
    if not items:
        return
    name0, ref = items[0]
    for name, t in items[1:]:
        if t.dtype != ref.dtype:
            raise ValueError(f"{name} has dtype {t.dtype} but {name0} has {ref.dtype}; use one dtype")
        if t.device != ref.device:
            raise ValueError(f"{name} is on {t.device} but {name0} is on {ref.device}; use one device")


def lengths(name: str, value, batch: int, max_len: int) -> torch.Tensor:
    """Per-sequence lengths: 1-D integer, ``batch`` entries, each in ``[1, max_len]``."""
    if not isinstance(value, torch.Tensor):
        value = torch.as_tensor(value)
    if value.dim() != 1 or value.shape[0] != batch:
        raise ValueError(f"{name} must have shape ({batch},), got {tuple(value.shape)}")
    if value.is_floating_point() or value.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor, got {value.dtype}")
    if batch and (int(value.min()) < 1 or int(value.max()) > max_len):
        raise ValueError(f"{name} must lie in [1, {max_len}], got min {int(value.min())} max {int(value.max())}")
    return value.to("cpu", torch.long)


def int_at_least(name: str, value, minimum: int) -> int:
    """``value`` must be an integer (Python or numpy, not a bool) ``>= minimum``; returns an ``int``."""
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def positive(name: str, value) -> None:
    if not (isinstance(value, (int, float)) and value > 0) or value != value:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def positive_int(name: str, value) -> int:
    """An integer >= 1 (not a bool); returned as ``int``."""
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def positive_number(name: str, value) -> float:
    """A finite number > 0 (not a bool); returned as ``float``."""
    import math

    import numpy as np

    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return float(value)


def seed_list(name: str, seeds) -> list[int]:
    """A count (``3`` means seeds 0, 1, 2) or a non-empty list of non-negative seeds."""
    import numpy as np

    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = range(int(seeds))
    seeds = [int(s) for s in seeds]
    if not seeds or any(s < 0 for s in seeds):
        raise ValueError(f"{name} must be a count or a non-empty list of non-negative seeds, got {seeds!r}")
    return seeds


def int_list(name: str, values, minimum: int = 1) -> list[int]:
    """A non-empty list of integers >= ``minimum`` (a single integer is a list of one)."""
    import numpy as np

    values = [int(v) for v in np.atleast_1d(values)]
    if not values or any(v < minimum for v in values):
        raise ValueError(f"{name} must be a non-empty list of integers >= {minimum}, got {values!r}")
    return values
