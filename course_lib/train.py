"""The training loop: device, gradient clipping, checkpoints and recovery from NaN.

One function, :func:`train`, does what every experiment in the course needs::

    history = train(model, batch_fn, "mse", steps=1000, lr=1e-3, clip=1.0)

Each step it

1. asks ``batch_fn(step, generator)`` for ``(inputs, targets)`` on the CPU and moves them to the
   device (``inputs`` may be a tensor, or a tuple passed as ``model(*inputs)``);
2. computes ``loss_fn(model(inputs), targets)`` and its gradient;
3. measures the global gradient norm ``||g||`` and, when ``clip`` is set, rescales
   ``g <- g * min(1, clip / ||g||)`` (same direction, shorter step);
4. if the loss or ``||g||`` is NaN or infinite, does not take the step: it goes back to the last
   good checkpoint (model *and* optimizer), multiplies the learning rate by ``lr_decay_on_nan``
   and carries on, so at most ``checkpoint_every`` steps of progress are lost;
5. otherwise takes the optimizer step and records loss, ``||g||`` (before clipping), whether it
   clipped, and the learning rate in the returned :class:`History`.

Checkpoints are kept in memory every ``checkpoint_every`` steps, and also written to
``checkpoint_dir/checkpoint.pt`` when a folder is given; ``train(..., resume=path)`` continues
from such a file exactly as if training had never stopped (same weights, optimizer state,
batch generator and random state).
"""
from __future__ import annotations

import copy
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ._validate import int_at_least

__all__ = [
    "pick_device", "resolve_device", "experiment_device", "synchronize", "timings", "train", "History", "evaluate", "save_checkpoint", "load_checkpoint",
    "mse", "cross_entropy", "accuracy", "bits_per_char", "LOSSES", "METRICS",
]

CHECKPOINT_NAME = "checkpoint.pt"
_NAN_POLICIES = ("recover", "stop", "ignore")
_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
               "rmsprop": torch.optim.RMSprop}


# ----------------------------------------------------------------------------------------------
# devices
# ----------------------------------------------------------------------------------------------
def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``prefer``, else ``$COURSE_DEVICE``, else CUDA, then MPS, then CPU.

    ``prefer`` (or the variable) is any ``torch.device`` string: ``"cpu"``, ``"cuda"``,
    ``"cuda:1"``, ``"mps"``; ``"auto"`` means choose. Asking for a device this machine does
    not have raises ``ValueError`` instead of failing later inside torch.
    """
    choice = prefer if prefer is not None else (os.environ.get("COURSE_DEVICE") or "").strip() or None
    source = "prefer" if prefer is not None else "COURSE_DEVICE"
    if choice is None or (isinstance(choice, str) and choice.lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(choice)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"{source} must be a device such as 'cpu', 'cuda' or 'mps', got {choice!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{source} asks for {choice!r} but CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"{source} asks for {choice!r} but only {torch.cuda.device_count()} CUDA devices exist")
    if dev.type == "mps" and not _mps_available():
        raise ValueError(f"{source} asks for {choice!r} but MPS is not available on this machine")
    return dev


def resolve_device(device=None) -> torch.device:
    """``device`` as a ``torch.device``: ``None`` or a string through :func:`pick_device`."""
    return pick_device(device) if device is None or isinstance(device, str) else torch.device(device)


def experiment_device(device=None):
    """An experiment's device: ``device`` when given, else the CPU at the ``ci`` and ``default``
    budgets (small models, reproducible) and :func:`pick_device` at ``full``."""
    if device is not None:
        return device
    from . import budget

    return "cpu" if budget.current() != "full" else pick_device()


def synchronize(device) -> None:
    """Wait for the queued kernels on a CUDA ``device`` (before reading a clock); no-op elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timings(fn, repeats: int, device) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn()`` after one warm-up call (allocations, oneDNN or
    cuDNN plans), each timed between two :func:`synchronize` so queued GPU work is counted."""
    import time

    fn()
    out = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        out.append(time.perf_counter() - t0)
    return out


def _to(obj, device):
    """Move a tensor, or the tensors inside a tuple / list / dict, to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj


def _call(model, inputs):
    """``model(*inputs)`` for a tuple or list, ``model(**inputs)`` for a dict, else ``model(inputs)``."""
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    if isinstance(inputs, dict):
        return model(**inputs)
    return model(inputs)


# ----------------------------------------------------------------------------------------------
# losses and metrics: (output, targets) -> scalar tensor
# ----------------------------------------------------------------------------------------------
def _split_targets(targets):
    if isinstance(targets, (tuple, list)):
        if len(targets) != 2:
            raise ValueError(f"targets must be y or (y, mask), got a sequence of {len(targets)} items")
        return targets[0], targets[1]
    return targets, None


def mse(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error. ``output`` and ``targets`` must have the same shape.

    (``(B, 1)`` against ``(B,)`` would silently broadcast to ``(B, B)``: refused here.)
    """
    if output.shape != targets.shape:
        raise ValueError(f"output and targets must have the same shape for mse, got {tuple(output.shape)} "
                         f"and {tuple(targets.shape)}")
    return torch.mean((output - targets.to(output.dtype)) ** 2)


def _flat_logits(output, targets):
    y, mask = _split_targets(targets)
    if output.dim() != y.dim() + 1 or output.shape[:-1] != y.shape:
        raise ValueError(f"logits must have shape targets.shape + (classes,), got logits {tuple(output.shape)} "
                         f"and targets {tuple(y.shape)}")
    logits, y = output.reshape(-1, output.shape[-1]), y.reshape(-1)
    if mask is not None:
        if mask.shape != targets[0].shape:
            raise ValueError(f"mask must have the targets' shape {tuple(targets[0].shape)}, got {tuple(mask.shape)}")
        keep = mask.reshape(-1).bool()
        logits, y = logits[keep], y[keep]
    return logits, y.long()


def cross_entropy(output: torch.Tensor, targets) -> torch.Tensor:
    """Mean cross-entropy in nats. ``output``: logits ``(..., C)``; ``targets``: class ids ``(...)``
    or ``(y, mask)`` to average over the valid (mask True) positions only (tagging)."""
    logits, y = _flat_logits(output, targets)
    return nn.functional.cross_entropy(logits, y)


def accuracy(output: torch.Tensor, targets) -> torch.Tensor:
    """Fraction of (valid) positions where the arg-max of the logits is the target class."""
    logits, y = _flat_logits(output, targets)
    return (logits.argmax(-1) == y).float().mean()


def bits(output: torch.Tensor, targets) -> torch.Tensor:
    """Cross-entropy in bits (per character, for a character model)."""
    return cross_entropy(output, targets) / math.log(2)


LOSSES = {"mse": mse, "cross_entropy": cross_entropy}
METRICS = {"mse": mse, "cross_entropy": cross_entropy, "accuracy": accuracy, "bits": bits}


def _resolve(fn, table, name):
    if isinstance(fn, str):
        if fn not in table:
            raise ValueError(f"{name} must be a callable or one of {tuple(table)}, got {fn!r}")
        return table[fn]
    if not callable(fn):
        raise ValueError(f"{name} must be a callable or one of {tuple(table)}, got {type(fn).__name__}")
    return fn


# ----------------------------------------------------------------------------------------------
# history
# ----------------------------------------------------------------------------------------------
@dataclass
class History:
    """What happened in :func:`train`, one entry per step (plain Python numbers).

    ``step``, ``loss``, ``grad_norm`` (global L2 norm *before* clipping), ``clipped`` (whether
    clipping shortened the step), ``lr`` (the rate used), ``applied`` (False when the step was
    refused because the loss or gradient was not finite). ``events`` lists dicts with ``step``,
    ``kind`` (``"nonfinite"``, ``"restored"``, ``"lr"``, ``"stopped"``) and details, e.g.
    ``{"step": 13, "kind": "restored", "from_step": 10}``. ``evals`` holds ``(step, value)`` pairs
    from ``eval_fn``; ``checkpoints`` the steps at which good checkpoints were taken.
    """

    step: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    clipped: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    applied: list = field(default_factory=list)
    events: list = field(default_factory=list)
    evals: list = field(default_factory=list)
    checkpoints: list = field(default_factory=list)
    stopped: bool = False

    def __len__(self) -> int:
        return len(self.step)

    def events_of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["kind"] == kind]

    @property
    def final_loss(self) -> float:
        """Mean loss of the last (up to) 10 applied steps; NaN when none was applied."""
        vals = [l for l, a in zip(self.loss, self.applied) if a][-10:]
        return sum(vals) / len(vals) if vals else float("nan")

    @property
    def clip_fraction(self) -> float:
        return sum(self.clipped) / len(self.clipped) if self.clipped else 0.0

    def as_dict(self) -> dict:
        """Plain lists and dicts (for plots, JSON, and checkpoints)."""
        return {k: copy.deepcopy(getattr(self, k)) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**{k: copy.deepcopy(v) for k, v in d.items() if k in cls.__dataclass_fields__})

    def record(self, step, loss, norm, clipped, lr, applied):
        """Append one step's entry (see the class docstring for the fields)."""
        self.step.append(step)
        self.loss.append(loss)
        self.grad_norm.append(norm)
        self.clipped.append(clipped)
        self.lr.append(lr)
        self.applied.append(applied)


# ----------------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------------
def save_checkpoint(path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, step: int = 0,
                    generator: torch.Generator | None = None, history: History | None = None, **extra) -> Path:
    """Write everything needed to resume exactly: weights, optimizer state, step, the batch
    generator's state, torch's global random state (dropout) and the history so far.
    Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "generator": generator.get_state() if generator is not None else None,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "history": history.as_dict() if history is not None else None,
        "extra": extra,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint
    return path


def load_checkpoint(path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    restore_rng: bool = True) -> dict:
    """Load weights (and optimizer state) from :func:`save_checkpoint` into ``model`` / ``optimizer``.

    With ``restore_rng`` torch's global random state is set back to the saved one. Returns the
    checkpoint dict (``step``, ``generator`` state, ``history`` dict, ``extra``).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be an existing checkpoint file, got {str(path)!r}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(ckpt["model"])
    if optimizer is not None:
        if ckpt["optimizer"] is None:
            raise ValueError(f"checkpoint {str(path)!r} has no optimizer state to load")
        optimizer.load_state_dict(ckpt["optimizer"])
    if restore_rng:
        torch.set_rng_state(ckpt["torch_rng"])
        if ckpt.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
    return ckpt


@dataclass
class _Snapshot:
    """An in-memory copy of model and optimizer state (the last good checkpoint)."""

    step: int
    model: dict
    optimizer: dict

    @classmethod
    def take(cls, step, model, optimizer):
        return cls(step, copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()))

    def restore(self, model, optimizer):
        model.load_state_dict(self.model)
        optimizer.load_state_dict(copy.deepcopy(self.optimizer))


# ----------------------------------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------------------------------
def _check_positive(name, value, *, allow_none=False, upper=None):
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok or (upper is not None and value > upper):
        rng = f"in (0, {upper}]" if upper is not None else "> 0"
        extra = " or None" if allow_none else ""
        raise ValueError(f"{name} must be a finite number {rng}{extra}, got {value!r}")


def _show_progress(progress: bool) -> bool:
    if not progress or os.environ.get("CI"):
        return False
    from . import budget

    return budget.current() != "ci"


def train(
    model: nn.Module,
    batch_fn: Callable,
    loss_fn: Callable | str,
    steps: int,
    *,
    lr: float = 1e-3,
    optimizer: str = "adam",
    optimizer_kwargs: dict | None = None,
    clip: float | None = 1.0,
    device=None,
    checkpoint_every: int = 100,
    checkpoint_dir=None,
    log_every: int | None = None,
    progress: bool = True,
    nan_policy: str = "recover",
    lr_decay_on_nan: float = 0.5,
    max_recoveries: int = 10,
    seed: int = 0,
    eval_fn: Callable | None = None,
    eval_every: int | None = None,
    resume=None,
    amp: bool = False,
) -> History:
    """Train ``model`` for ``steps`` steps and return the :class:`History`.

    Parameters
    ----------
    model : any ``nn.Module``; moved to ``device``. It is trained in place.
    batch_fn : ``batch_fn(step, generator) -> (inputs, targets)`` with CPU tensors. Use the
        ``torch.Generator`` it receives for any randomness, so a run is reproducible and resumable
        (``course_lib.tasks.fresh_batches`` does). ``inputs`` may be a tuple (``model(*inputs)``).
    loss_fn : ``loss_fn(output, targets) -> scalar tensor``, or ``"mse"`` / ``"cross_entropy"``.
    steps : total number of steps (when resuming, training continues up to this total).
    lr, optimizer, optimizer_kwargs : the optimizer (``"adam"``, ``"adamw"``, ``"sgd"``,
        ``"rmsprop"``), its learning rate and other settings. On resume the optimizer's state,
        learning rate included, comes from the checkpoint instead.
    clip : global-norm threshold ``tau`` (``torch.nn.utils.clip_grad_norm_``); ``None`` never clips
        (the norm is still measured and recorded).
    device : a device or string; ``None`` uses :func:`pick_device`.
    checkpoint_every : steps between good checkpoints (kept in memory, and written to
        ``checkpoint_dir/checkpoint.pt`` when ``checkpoint_dir`` is given; also at the end).
    log_every : print a line every ``log_every`` steps (``None``: no lines).
    progress : show a tqdm bar (never under ``CI`` or at the ``ci`` budget).
    nan_policy : what to do when the loss or gradient norm is NaN or infinite:
        ``"recover"`` restore the last good checkpoint, multiply the learning rate by
        ``lr_decay_on_nan`` and go on (after ``max_recoveries`` recoveries, stop);
        ``"stop"`` refuse the step and stop; ``"ignore"`` take the step anyway (to watch a run
        break).
    seed : seeds the generator handed to ``batch_fn``. The global torch RNG (dropout, model init)
        is left alone on a fresh start; seed it yourself before building the model.
    eval_fn, eval_every : ``eval_fn(model) -> float`` called every ``eval_every`` steps (in
        ``torch.no_grad`` and eval mode), stored in ``history.evals``.
    resume : a checkpoint file from an earlier run (``checkpoint_dir/checkpoint.pt``): weights,
        optimizer, step, generator, global random state and history are restored, and the losses
        that follow are exactly those an uninterrupted run would have produced. (A hidden state
        carried between steps by ``models.CarryState`` is not saved: it restarts from zero.)

    amp : mixed precision: run the forward pass and the loss under ``torch.autocast`` in
        bfloat16 (weights, gradients and optimizer state stay float32; bfloat16 has float32's
        exponent range, so no loss scaling is needed). Pays off on a GPU.

    A model with a ``reset_state()`` method (``models.CarryState``) has it called after a restore.
    """
    settings = _Settings.checked(
        model, batch_fn, loss_fn, steps, lr=lr, optimizer=optimizer, clip=clip, checkpoint_every=checkpoint_every,
        log_every=log_every, nan_policy=nan_policy, lr_decay_on_nan=lr_decay_on_nan, max_recoveries=max_recoveries,
        seed=seed, eval_fn=eval_fn, eval_every=eval_every, amp=amp)
    run = _Run.begin(model, batch_fn, settings, optimizer_kwargs, device, resume, checkpoint_dir, progress)
    try:
        for step in range(run.start, settings.steps):
            if not run.one_step(step):
                break
    finally:
        if run.bar is not None:
            run.bar.close()
    history = run.history
    if not history.stopped and run.ckpt_path is not None and (not history.checkpoints or history.checkpoints[-1] != settings.steps):
        run.save(settings.steps)
    return history


@dataclass(frozen=True)
class _Settings:
    """:func:`train`'s arguments, checked (each bad one raises ``ValueError`` naming it)."""

    loss_fn: Callable
    steps: int
    lr: float
    optimizer: str
    clip: float | None
    checkpoint_every: int
    log_every: int | None
    nan_policy: str
    lr_decay_on_nan: float
    max_recoveries: int
    seed: int
    eval_fn: Callable | None
    eval_every: int | None
    amp: bool

    @classmethod
    def checked(cls, model, batch_fn, loss_fn, steps, *, lr, optimizer, clip, checkpoint_every, log_every,
                nan_policy, lr_decay_on_nan, max_recoveries, seed, eval_fn, eval_every, amp) -> "_Settings":
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(batch_fn):
            raise ValueError(f"batch_fn must be callable as batch_fn(step, generator), got {type(batch_fn).__name__}")
        _check_positive("lr", lr)
        if optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {tuple(_OPTIMIZERS)}, got {optimizer!r}")
        _check_positive("clip", clip, allow_none=True)
        if nan_policy not in _NAN_POLICIES:
            raise ValueError(f"nan_policy must be one of {_NAN_POLICIES}, got {nan_policy!r}")
        _check_positive("lr_decay_on_nan", lr_decay_on_nan, upper=1.0)
        if not isinstance(amp, bool):
            raise ValueError(f"amp must be True or False, got {amp!r}")
        if eval_fn is not None:
            if not callable(eval_fn):
                raise ValueError(f"eval_fn must be callable as eval_fn(model), got {type(eval_fn).__name__}")
            eval_every = int_at_least("eval_every", eval_every, 1)
        return cls(
            loss_fn=_resolve(loss_fn, LOSSES, "loss_fn"), steps=int_at_least("steps", steps, 1), lr=lr,
            optimizer=optimizer, clip=clip, checkpoint_every=int_at_least("checkpoint_every", checkpoint_every, 1),
            log_every=None if log_every is None else int_at_least("log_every", log_every, 1), nan_policy=nan_policy,
            lr_decay_on_nan=lr_decay_on_nan, max_recoveries=int_at_least("max_recoveries", max_recoveries, 0),
            seed=int_at_least("seed", seed, 0), eval_fn=eval_fn, eval_every=eval_every, amp=amp)


@dataclass
class _Run:
    """One run of :func:`train`: the model, its optimizer and the loop's state between steps."""

    model: nn.Module
    batch_fn: Callable
    s: _Settings
    device: torch.device
    params: list
    opt: torch.optim.Optimizer
    generator: torch.Generator
    history: History
    start: int
    good: _Snapshot
    ckpt_path: Path | None
    bar: object = None
    recoveries: int = 0

    @classmethod
    def begin(cls, model, batch_fn, s: _Settings, optimizer_kwargs, device, resume, checkpoint_dir, progress):
        """Model on its device, a fresh optimizer and generator, or both as a checkpoint left them."""
        device = resolve_device(device)
        model.to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("model has no trainable parameters")
        opt = _OPTIMIZERS[s.optimizer](params, lr=s.lr, **(optimizer_kwargs or {}))
        generator = torch.Generator().manual_seed(s.seed)
        history, start = History(), 0
        if resume is not None:
            ckpt = load_checkpoint(resume, model, opt)
            start = ckpt["step"]
            if ckpt["generator"] is not None:
                generator.set_state(ckpt["generator"])
            if ckpt["history"] is not None:
                history = History.from_dict(ckpt["history"])
            if start >= s.steps:
                raise ValueError(f"steps must exceed the checkpoint's step {start} to resume, got {s.steps}")
        if not history.checkpoints or history.checkpoints[-1] != start:
            history.checkpoints.append(start)
        bar = None
        if _show_progress(progress):
            from tqdm.auto import tqdm

            bar = tqdm(total=s.steps, initial=start, desc="train", leave=False)
        ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
        return cls(model, batch_fn, s, device, params, opt, generator, history, start,
                   _Snapshot.take(start, model, opt), ckpt_path, bar)

    def say(self, text):
        if self.bar is not None:
            self.bar.write(text)
        elif self.s.log_every is not None:
            print(text, file=sys.stdout)

    def save(self, done):
        if self.ckpt_path is not None:
            save_checkpoint(self.ckpt_path, self.model, self.opt, step=done, generator=self.generator,
                            history=self.history)

    def gradient(self, step):
        """Steps 1-3 of the module docstring: the batch on the device, the loss and its gradient, the
        global norm (clipped when ``clip`` is set). Returns ``(loss, norm)`` as floats."""
        self.model.train()
        inputs, targets = self.batch_fn(step, self.generator)
        inputs, targets = _to(inputs, self.device), _to(targets, self.device)
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.s.amp):
            loss = self.s.loss_fn(_call(self.model, inputs), targets)
        loss.float().backward()
        # the global norm before clipping; with clip=None it is only measured (scale stays 1)
        clip = self.s.clip if self.s.clip is not None else float("inf")
        norm = float(torch.nn.utils.clip_grad_norm_(self.params, clip))
        return float(loss.detach()), norm

    def one_step(self, step) -> bool:
        """One step (1-5 of the module docstring), then checkpoint, evaluate, log. False: stop."""
        lr_now = self.opt.param_groups[0]["lr"]
        loss_value, norm = self.gradient(step)
        finite = math.isfinite(loss_value) and math.isfinite(norm)
        history = self.history
        if not finite:
            history.events.append({"step": step, "kind": "nonfinite", "loss": loss_value, "grad_norm": norm})
        if finite or self.s.nan_policy == "ignore":  # "ignore": take the step anyway, but say so
            self.opt.step()
            history.record(step, loss_value, norm, bool(self.s.clip is not None and finite and norm > self.s.clip),
                           lr_now, True)
        else:
            history.record(step, loss_value, norm, False, lr_now, False)
            self.say(f"step {step}: loss {loss_value}, grad norm {norm}: not finite")
            if not self.recover(step, lr_now):
                return False
        self.after(step + 1, finite, f"loss {loss_value:.4g}, grad norm {norm:.3g}, lr {lr_now:.3g}")
        return True

    def recover(self, step, lr_now) -> bool:
        """Step 4: back to the last good checkpoint with a smaller learning rate; False: stop instead."""
        s, history = self.s, self.history
        if s.nan_policy == "stop" or self.recoveries >= s.max_recoveries:
            why = "nan_policy='stop'" if s.nan_policy == "stop" else f"{self.recoveries} recoveries already"
            history.events.append({"step": step, "kind": "stopped", "reason": why})
            history.stopped = True
            self.say(f"step {step}: stopped ({why})")
            return False
        self.recoveries += 1
        self.good.restore(self.model, self.opt)
        new_lr = lr_now * s.lr_decay_on_nan
        for group in self.opt.param_groups:
            group["lr"] = new_lr
        if hasattr(self.model, "reset_state"):
            self.model.reset_state()
        history.events.append({"step": step, "kind": "restored", "from_step": self.good.step})
        history.events.append({"step": step, "kind": "lr", "old": lr_now, "new": new_lr})
        self.say(f"step {step}: restored the checkpoint of step {self.good.step}, lr {lr_now:g} -> {new_lr:g}")
        return True

    def after(self, done, finite, line):
        """After step ``done``: a good checkpoint, an evaluation, a log line, as their intervals say."""
        s = self.s
        if finite and done % s.checkpoint_every == 0:
            self.good = _Snapshot.take(done, self.model, self.opt)
            self.history.checkpoints.append(done)
            self.save(done)
        if s.eval_fn is not None and done % s.eval_every == 0:
            self.history.evals.append((done, _evaluate_fn(self.model, s.eval_fn)))
        if s.log_every is not None and done % s.log_every == 0:
            if self.bar is not None:
                self.bar.set_postfix_str(f"step {done}: {line}")
            else:
                print(f"step {done}: {line}", file=sys.stdout)
        if self.bar is not None:
            self.bar.update(1)


def _evaluate_fn(model, fn) -> float:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return float(fn(model))
    finally:
        model.train(was)


# ----------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------
def evaluate(model: nn.Module, batch, metric: Callable | str = "accuracy", device=None) -> float:
    """``metric(model(inputs), targets)`` on one ``batch = (inputs, targets)``, without gradients,
    in eval mode (dropout off), as a float.

    ``metric`` is a callable or one of ``"accuracy"``, ``"mse"``, ``"cross_entropy"``, ``"bits"``.
    ``TaskData.as_batch()`` gives a suitable batch. ``device`` defaults to the model's.
    """
    metric = _resolve(metric, METRICS, "metric")
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError(f"batch must be a pair (inputs, targets), got {type(batch).__name__}")
    if device is None:
        device = next(model.parameters()).device
    inputs, targets = _to(batch[0], device), _to(batch[1], device)
    return _evaluate_fn(model, lambda m: metric(_call(m, inputs), targets))


def bits_per_char(model: nn.Module, ids: torch.Tensor, batch_size: int = 16, seq_len: int = 128,
                  max_batches: int | None = None) -> float:
    """Bits per character of a :class:`course_lib.models.CharLM` on an id stream (e.g. ``corpus.val_ids``).

    The stream is cut into ``batch_size`` contiguous rows read ``seq_len`` characters at a time,
    carrying the state between chunks (as in training), so each character is predicted from all
    the text before it in its row. ``max_batches`` caps the work for quick estimates.
    """
    from .tasks.corpus import stream_batches

    lm = getattr(model, "lm", model)  # unwrap CarryState
    if max_batches is not None:
        max_batches = int_at_least("max_batches", max_batches, 1)
    device = next(lm.parameters()).device
    was = lm.training
    lm.eval()
    total, count, state = 0.0, 0, None
    try:
        with torch.no_grad():
            for i, (x, y) in enumerate(stream_batches(ids, batch_size, seq_len)):
                if max_batches is not None and i >= max_batches:
                    break
                logits, state = lm(x.to(device), state)
                total += float(nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), y.to(device).reshape(-1), reduction="sum"))
                count += y.numel()
    finally:
        lm.train(was)
    return total / count / math.log(2)
