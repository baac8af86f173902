"""Lecture 7, training on a GPU: every measurement the lecture shows, and its plots.

The lecture trains a character-level language model on the fortunes corpus that ships through
:mod:`course_lib.tasks`, with the practice a long GPU run needs: a device chosen once and data
moved to it batch by batch, a fused recurrent layer, global-norm clipping with the gradient norm
logged, truncated backpropagation through time with the state carried and detached, checkpoints
and recovery from NaN, and mixed precision (bf16 autocast) behind one switch.

Each experiment takes explicit sizes (defaulting to :func:`course_lib.budget.pick`) and seeds, is
deterministic given them (on one device), and returns plain numbers. The notebook plots what
they return; ``tests/test_lecture07_training.py`` asserts the same numbers at the ``ci`` budget;
``scripts/train_charlm.py`` runs :func:`train_charlm` at any budget on any device.

- :func:`device_summary`       what this machine offers (device, threads, cuDNN / oneDNN, native bf16)
- :func:`loop_vs_fused`        the hand-written LSTM loop against ``nn.LSTM``: agreement, then time
- :func:`train_charlm`         the language model: clipping, grad-norm log, TBPTT, checkpoints, samples
- :func:`nan_recovery`         a deliberately too-large learning rate: NaN, restore, lower lr, go on
- :func:`precision_compare`    fp32 against bf16 autocast on the same device, same start
- :func:`autocast_dtype`, :class:`Autocast`   the one mixed-precision switch the others use
- :func:`temperature_explorer` sliders for the sampling temperature over the model's next-char distribution

Pieces an assignment can reuse: :func:`make_charlm`, :func:`bits_per_char_reset`,
:func:`autocast_dtype`, :class:`Autocast`, and :func:`train_charlm` itself.
"""
from __future__ import annotations

import math
import statistics
import time

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .._validate import int_at_least, positive_int as _positive_int, positive_number as _positive
from .. import budget, plots, widgets
from ..models import CarryState, CharLM, count_parameters, set_forget_bias
from ..reference.sequences import run_rnn, weights_from_module
from ..tasks import load_corpus, unigram_bits_per_char
from ..train import bits_per_char, resolve_device, synchronize, timings, train

LN2 = math.log(2.0)
PROMPT = "The meaning of life is "
PRECISIONS = ("auto", "fp32", "bf16")


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------
# the device, and the one mixed-precision switch
# ---------------------------------------------------------------------------------------------
def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 in hardware (AVX512-BF16 or AMX); elsewhere it is emulated."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except Exception:  # older torch, or not an x86 CPU
        return False


_BF16_SUPPORT: dict = {}


def bf16_support(device) -> tuple[bool, str | None]:
    """Whether bf16 autocast runs an ``nn.LSTM`` forward and backward on ``device``: ``(ok, reason)``.

    Probed once per device type with a tiny LSTM (cached). Some CPUs' oneDNN builds refuse bf16 for
    the LSTM (a ``RuntimeError``); then ``ok`` is False and ``reason`` the error's first line. Used
    by :func:`autocast_dtype`, :class:`Autocast` and :func:`precision_compare` (lecture 7).
    """
    device = torch.device(device)
    key = device.type
    if key not in _BF16_SUPPORT:
        try:
            with torch.random.fork_rng(devices=[]):
                lstm = nn.LSTM(4, 4, batch_first=True).to(device)
                x = torch.zeros(1, 3, 4, device=device)
                with torch.autocast(device_type=key, dtype=torch.bfloat16):
                    out, _ = lstm(x)
                out.float().sum().backward()
            _BF16_SUPPORT[key] = (True, None)
        except RuntimeError as e:
            _BF16_SUPPORT[key] = (False, str(e).strip().splitlines()[0][:200] if str(e).strip() else repr(e))
    return _BF16_SUPPORT[key]


def autocast_dtype(device, precision: str = "auto"):
    """The autocast dtype for ``precision`` on ``device``: ``torch.bfloat16`` or ``None`` (float32).

    ``"auto"`` picks bf16 on a GPU that supports it and float32 everywhere else: a CPU without
    native bf16 only emulates it (slowly), and float32 on the CPU keeps the ci numbers the same on
    every machine. ``"bf16"`` asks for bf16 autocast on any device that runs it (see
    :func:`bf16_support`) and falls back to float32 (``None``) where the device refuses it;
    ``"fp32"`` turns it off. bf16 keeps float32's exponent range, so unlike float16 it needs no
    loss scaling. Raises ValueError for an unknown ``precision``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    device = torch.device(device)
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16 if bf16_support(device)[0] else None
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


class Autocast(nn.Module):
    """Run ``inner``'s forward pass under ``torch.autocast(device_type, dtype)``, return float32.

    The same training loop then runs in float32 or in mixed precision: only this wrapper changes.
    ``dtype=None`` is a plain pass-through. The device type is read from the input, so the wrapper
    follows the model wherever ``train`` moves it. Matrix products (the LSTM's and the read-out's)
    run in bf16, the loss is computed in float32 from the float32 logits, and the weights and
    their gradients stay float32 (autocast casts copies), so the optimizer is unchanged.
    ``reset_state`` and ``lm`` are passed through, so :func:`course_lib.train.train` and
    :func:`course_lib.train.bits_per_char` see the wrapped model as they would the inner one.
    """

    def __init__(self, inner: nn.Module, dtype=None):
        super().__init__()
        if dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(f"dtype must be None, torch.bfloat16 or torch.float16, got {dtype!r}")
        self.inner, self.dtype = inner, dtype
        self.fallback_reason = None  # set when the device refused ``dtype`` and float32 ran instead

    @property
    def lm(self):
        return getattr(self.inner, "lm", self.inner)

    def reset_state(self):
        if hasattr(self.inner, "reset_state"):
            self.inner.reset_state()

    def forward(self, *args, **kwargs):
        if self.dtype is None:
            return self.inner(*args, **kwargs)
        first = args[0] if args else next(iter(kwargs.values()))
        try:
            with torch.autocast(device_type=first.device.type, dtype=self.dtype):
                out = self.inner(*args, **kwargs)
        except RuntimeError as e:  # e.g. a CPU whose oneDNN refuses bf16 for the LSTM: run float32
            self.fallback_reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else repr(e)
            self.dtype = None
            if hasattr(self.inner, "reset_state"):
                self.inner.reset_state()  # a state half-computed in the refused dtype is dropped
            return self.inner(*args, **kwargs)
        return out.float() if isinstance(out, torch.Tensor) else out

    @property
    def measured_precision(self) -> str:
        """What this wrapper actually ran: ``"bf16"``, ``"fp16"`` or ``"fp32"`` (after a fallback)."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.dtype, "fp32")


def device_summary(device=None) -> dict:
    """What this machine offers: the device :func:`course_lib.train.pick_device` chooses (or
    ``device``), torch's version, CPU threads, whether cuDNN / oneDNN are there, the GPU's name,
    whether the CPU has native bf16, and the autocast dtype ``"auto"`` picks here."""
    device = resolve_device(device)
    dtype = autocast_dtype(device, "auto")
    return {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "onednn": bool(torch.backends.mkldnn.is_available()),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "auto_precision": "bf16" if dtype is torch.bfloat16 else "fp32",
    }


# ---------------------------------------------------------------------------------------------
# hand-written loop against the fused nn.LSTM
# ---------------------------------------------------------------------------------------------
def loop_vs_fused(batch_sizes=None, seq_len=None, input_size=64, hidden=128, repeats=None, seed=0,
                  device=None) -> dict:
    """``course_lib.reference.run_rnn`` (a Python loop over steps) against ``nn.LSTM`` with the same weights.

    For each batch size: the largest absolute difference of the outputs, of the final states and
    of the weight gradients (float32), then the median forward+backward time of each over
    ``repeats`` runs after a warm-up. The default shapes are those of the lecture's language
    model (``input_size`` 64 = its embedding, ``hidden`` 128).

    Returns ``{"batch_sizes", "loop_s", "fused_s", "ratio" (loop / fused), "max_diff_out",
    "max_diff_state", "max_diff_grad", "seq_len", "input_size", "hidden", "repeats", "device"}``
    (lists per batch size). The ratio depends on the machine and its load: it is reported, not
    asserted.
    """
    batch_sizes = budget.pick(ci=(1, 32), default=(1, 8, 32, 128)) if batch_sizes is None else batch_sizes
    batch_sizes = [_positive_int("batch_sizes", b) for b in batch_sizes]
    if not batch_sizes:
        raise ValueError("batch_sizes must list at least one batch size, got an empty list")
    seq_len = _positive_int("seq_len", budget.pick(ci=32, default=64) if seq_len is None else seq_len)
    input_size, hidden = _positive_int("input_size", input_size), _positive_int("hidden", hidden)
    repeats = _positive_int("repeats", budget.pick(ci=3, default=5, full=10) if repeats is None else repeats)
    device = resolve_device(device)

    torch.manual_seed(int_at_least("seed", seed, 0))
    lstm = nn.LSTM(input_size, hidden, batch_first=True).to(device)
    weights = weights_from_module(lstm)[0]  # the same tensors, shared
    params = list(lstm.parameters())
    out = {k: [] for k in ("loop_s", "fused_s", "ratio", "max_diff_out", "max_diff_state", "max_diff_grad")}
    for B in batch_sizes:
        g = torch.Generator().manual_seed(seed * 1000 + B)
        x = torch.randn(B, seq_len, input_size, generator=g).to(device)
        probe = torch.randn(B, seq_len, hidden, generator=g).to(device)  # a random upstream gradient

        def fused():
            o, (h, c) = lstm(x)
            return o, h[0], c[0]

        def loop():
            o, (h, c) = run_rnn(x, weights, "lstm")
            return o, h, c

        results = []
        for fn in (fused, loop):
            lstm.zero_grad(set_to_none=True)
            o, h, c = fn()
            (o * probe).sum().backward()
            results.append((o.detach(), h.detach(), c.detach(), [p.grad.detach().clone() for p in params]))
        (of, hf, cf, gf), (ol, hl, cl, gl) = results
        out["max_diff_out"].append(float((of - ol).abs().max()))
        out["max_diff_state"].append(float(max((hf - hl).abs().max(), (cf - cl).abs().max())))
        out["max_diff_grad"].append(float(max((a - b).abs().max() for a, b in zip(gf, gl))))

        def step(fn):
            def run():
                lstm.zero_grad(set_to_none=True)
                o = fn()[0]
                (o * probe).sum().backward()
            return run

        t_fused = statistics.median(timings(step(fused), repeats, device))
        t_loop = statistics.median(timings(step(loop), repeats, device))
        out["fused_s"].append(t_fused)
        out["loop_s"].append(t_loop)
        out["ratio"].append(t_loop / t_fused)
    out.update({"batch_sizes": batch_sizes, "seq_len": seq_len, "input_size": input_size, "hidden": hidden,
                "repeats": repeats, "device": str(device), "threads": torch.get_num_threads()})
    return out


def plot_loop_vs_fused(result, ax=None, name="lecture07_loop_vs_fused"):
    """Time per forward+backward pass, per sequence in the batch, for the loop and ``nn.LSTM``."""
    import matplotlib.pyplot as plt

    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
    B = np.array(result["batch_sizes"], dtype=float)
    loop = 1e3 * np.array(result["loop_s"]) / B
    fused = 1e3 * np.array(result["fused_s"]) / B
    ax.plot(B, loop, "o-", color=plots.colour("rnn"), label="Python loop (reference.run_rnn)")
    library = "cuDNN" if "cuda" in result["device"] else "oneDNN"
    ax.plot(B, fused, "s-", color=plots.colour("lstm"), label=f"fused nn.LSTM ({library})")
    for b, lo, r in zip(B, loop, result["ratio"]):
        ax.annotate(f"{r:.1f}x", (b, lo), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("ms per sequence (forward + backward)")
    ax.set_title(f"LSTM, T = {result['seq_len']}, H = {result['hidden']}, {result['device']}, "
                 f"{result['threads']} thread(s)", fontsize=10)
    ax.legend(fontsize=8)
    if own:
        return plots.finish(fig, name, "The loop pays a fixed cost per time step (Python, one small kernel per "
                            "operation), so it loses most where each step has little work: small batches. "
                            "Numbers above the points: loop time / fused time on this machine.")
    return ax


# ---------------------------------------------------------------------------------------------
# the language model
# ---------------------------------------------------------------------------------------------
def make_charlm(vocab_size: int, hidden: int = 128, cell: str = "lstm", num_layers: int = 1,
                embed_dim: int | None = None, forget_bias: float | None = 1.0, nonlinearity: str = "tanh",
                seed: int = 0) -> CharLM:
    """A seeded :class:`course_lib.models.CharLM`; the LSTM's forget-gate bias set to ``forget_bias``.

    ``nonlinearity="relu"`` (``cell="rnn"`` only) makes an unbounded ReLU recurrence, the kind
    that overflows to inf and NaN under a step that is too large (:func:`nan_recovery`).
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    if nonlinearity == "relu" and cell != "rnn":
        raise ValueError(f"nonlinearity='relu' needs cell='rnn', got cell={cell!r}")
    torch.manual_seed(int_at_least("seed", seed, 0))
    lm = CharLM(vocab_size, hidden=hidden, cell=cell, num_layers=num_layers, embed_dim=embed_dim)
    if nonlinearity == "relu":
        # CharLM builds a tanh nn.RNN; swap in the same layer with a ReLU (forward() just calls .rnn)
        old = lm.rnn
        lm.rnn = nn.RNN(old.input_size, old.hidden_size, num_layers=old.num_layers, nonlinearity="relu",
                        batch_first=True)
    if cell == "lstm" and forget_bias is not None:
        set_forget_bias(lm.rnn, float(forget_bias))
    return lm


@torch.no_grad()
def bits_per_char_reset(model, ids, batch_size: int = 64, seq_len: int = 64) -> float:
    """Bits per character when the state is *not* carried: every chunk of ``seq_len`` starts from zero.

    Compare with :func:`course_lib.train.bits_per_char`, which carries the state from chunk to
    chunk as in training: the difference is what the context before the chunk is worth.
    """
    from ..tasks.corpus import stream_batches

    lm = getattr(model, "lm", model)
    device = next(lm.parameters()).device
    was = lm.training
    lm.eval()
    total, count = 0.0, 0
    try:
        for x, y in stream_batches(ids, batch_size, seq_len):
            logits, _ = lm(x.to(device))
            total += float(nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                                       y.to(device).reshape(-1), reduction="sum"))
            count += y.numel()
    finally:
        lm.train(was)
    return total / count / LN2


def _next_char_logits(lm, corpus, prompt):
    device = next(lm.parameters()).device
    ids = corpus.encode(prompt).to(device)
    was = lm.training
    lm.eval()
    try:
        with torch.no_grad():
            logits, _ = lm(ids[None, :])
    finally:
        lm.train(was)
    return logits[0, -1].float().cpu().numpy().astype(np.float64)


def bpc_target(level=None) -> float:
    """The validation bits per character the lecture promises at each budget (the unigram model
    of the fortunes sits at about 4.75): ``ci`` 3.2, ``default`` 2.7, ``full`` 2.3."""
    return budget.pick(ci=3.2, default=2.7, full=2.3, level=level)


def _charlm_sizes(hidden, batch_size, seq_len, epochs, lr, clip, max_chars, evals_per_epoch, sample_chars):
    """:func:`train_charlm`'s sizes, each checked: the budget's value where ``None``."""
    hidden = _positive_int("hidden", budget.pick(ci=128, default=128, full=512) if hidden is None else hidden)
    batch_size = _positive_int("batch_size", budget.pick(ci=32, default=32, full=128)
                               if batch_size is None else batch_size)
    seq_len = _positive_int("seq_len", budget.pick(ci=64, default=64, full=128) if seq_len is None else seq_len)
    epochs = _positive_int("epochs", budget.pick(ci=2, default=2, full=20) if epochs is None else epochs)
    lr = _positive("lr", budget.pick(ci=1e-2, default=1e-2, full=3e-3) if lr is None else lr)
    if clip is not None:
        clip = _positive("clip", clip)
    max_chars = budget.pick(ci=300_000, default=None, full=None) if max_chars is None else max_chars
    evals_per_epoch = _positive_int("evals_per_epoch", budget.pick(ci=2, default=4, full=4)
                                    if evals_per_epoch is None else evals_per_epoch)
    sample_chars = _positive_int("sample_chars", budget.pick(ci=120, default=300) if sample_chars is None
                                 else sample_chars)
    return hidden, batch_size, seq_len, epochs, lr, clip, max_chars, evals_per_epoch, sample_chars


def train_charlm(hidden=None, batch_size=None, seq_len=None, epochs=None, lr=None, clip=0.25, max_chars=None,
                 cell="lstm", num_layers=1, seed=0, device=None, precision="auto", evals_per_epoch=None,
                 temperatures=(0.5, 1.0, 1.5), sample_chars=None, prompt=PROMPT, checkpoint_dir=None,
                 log_every=None, progress=True) -> dict:
    """Train a character-level language model on the fortunes with :func:`course_lib.train.train`.

    - data: :func:`course_lib.tasks.load_corpus` (``max_chars`` of it; ``None`` = all 2 M
      characters); ``batch_size`` contiguous streams read ``seq_len`` characters at a time
      (``Corpus.batch_fn``), so chunk ``i + 1`` continues chunk ``i``;
    - truncated BPTT: :class:`course_lib.models.CarryState` carries the LSTM's state from one
      chunk to the next and detaches it, so the forward pass sees all the text before, and the
      gradient flows back at most ``seq_len`` steps;
    - Adam at ``lr``, global-norm clipping at ``clip`` (0.25, as AWD-LSTM, Merity et al. 2017:
      a little above the typical norm, so it catches the spikes), the gradient norm logged every step, an
      in-memory checkpoint every 100 steps (also written to ``checkpoint_dir`` when given), NaN
      recovery on;
    - ``precision``: :func:`autocast_dtype` (bf16 autocast on a GPU by default, float32 on a CPU);
    - validation bits per character (state carried) ``evals_per_epoch`` times per epoch, timed
      apart from training, so ``seconds_per_epoch`` and ``tokens_per_second`` count training only.

    Returns plain numbers: ``steps``, ``loss_bits`` (per step), ``grad_norm`` (per step, before
    clipping), ``clipped``, ``eval_steps`` / ``val_bpc`` (curve), ``final_val_bpc``,
    ``val_bpc_reset`` (the same model with the state reset every ``seq_len`` characters),
    ``unigram_bpc``, ``uniform_bpc``, ``seconds_per_epoch``, ``tokens_per_second``, ``train_seconds``,
    ``samples`` (temperature -> text, from a seeded generator), ``next_char`` (the model's
    logits after ``prompt``, for the temperature explorer), ``events`` (NaN recoveries, if any),
    the settings, and ``model`` (the trained :class:`CharLM`, for sampling more) and ``corpus``.
    """
    hidden, batch_size, seq_len, epochs, lr, clip, max_chars, evals_per_epoch, sample_chars = _charlm_sizes(
        hidden, batch_size, seq_len, epochs, lr, clip, max_chars, evals_per_epoch, sample_chars)
    bad = [t for t in temperatures if not isinstance(t, (int, float)) or t <= 0]
    if bad:
        raise ValueError(f"temperatures must be positive numbers, got {bad[0]!r}")
    seed = int_at_least("seed", seed, 0)
    device = resolve_device(device)
    dtype = autocast_dtype(device, precision)

    corpus = load_corpus("fortunes", max_chars=max_chars)
    V = len(corpus.vocab)
    lm = make_charlm(V, hidden=hidden, cell=cell, num_layers=num_layers, seed=seed)
    model = Autocast(CarryState(lm), dtype)
    per_epoch = corpus.num_batches("train", batch_size, seq_len)
    if per_epoch < 1:
        raise ValueError(f"the corpus ({corpus.train_ids.numel()} characters) is too short for "
                         f"batch_size={batch_size} and seq_len={seq_len}")
    steps = epochs * per_epoch
    eval_every = max(1, per_epoch // evals_per_epoch)

    hist, initial, train_seconds, eval_seconds = _timed_training(
        model, corpus, device, steps, eval_every, batch_size, seq_len,
        dict(lr=lr, clip=clip, checkpoint_every=100, checkpoint_dir=checkpoint_dir, seed=seed, log_every=log_every,
             progress=progress))
    final = bits_per_char(model, corpus.val_ids, batch_size=64, seq_len=256)
    reset = bits_per_char_reset(model, corpus.val_ids, batch_size=64, seq_len=seq_len)
    prefix = corpus.encode(prompt)
    samples = {float(t): corpus.decode(lm.sample(prefix, sample_chars, temperature=float(t),
                                                 generator=torch.Generator().manual_seed(seed)))
               for t in temperatures}
    eval_steps = [0] + [s for s, _ in hist.evals]
    return {
        "steps": steps, "steps_per_epoch": per_epoch, "epochs": epochs,
        "loss_bits": np.array(hist.loss, dtype=float) / LN2,
        "grad_norm": np.array(hist.grad_norm, dtype=float),
        "clipped": np.array(hist.clipped, dtype=bool),
        "clip_fraction": hist.clip_fraction,
        "eval_steps": np.array(eval_steps), "val_bpc": np.array([initial] + [v for _, v in hist.evals]),
        "final_val_bpc": final, "val_bpc_reset": reset,
        "unigram_bpc": unigram_bits_per_char(corpus), "uniform_bpc": math.log2(V),
        "train_seconds": train_seconds, "seconds_per_epoch": train_seconds / epochs,
        "tokens_per_second": steps * batch_size * seq_len / train_seconds,
        "eval_seconds": eval_seconds,
        "samples": samples, "prompt": prompt,
        "next_char": {"logits": _next_char_logits(lm, corpus, prompt), "chars": list(corpus.vocab.itos)},
        "events": list(hist.events),
        "settings": {"hidden": hidden, "batch_size": batch_size, "seq_len": seq_len, "epochs": epochs, "lr": lr,
                     "clip": clip, "cell": cell, "num_layers": num_layers, "seed": seed, "device": str(device),
                     "max_chars": max_chars, "precision": "bf16" if dtype is torch.bfloat16 else "fp32", "vocab": V,
                     "train_chars": int(corpus.train_ids.numel()), "val_chars": int(corpus.val_ids.numel()),
                     "parameters": count_parameters(lm), "threads": torch.get_num_threads()},
        "model": lm, "corpus": corpus,
    }


def _timed_training(model, corpus, device, steps, eval_every, batch_size, seq_len, train_kwargs):
    """:func:`course_lib.train.train` on the corpus with validation bits per character every
    ``eval_every`` steps, timed apart: ``(history, initial val bpc, training seconds, eval seconds)``."""
    eval_seconds = [0.0]

    def val_bpc(m):
        synchronize(device)
        t0 = time.perf_counter()
        v = bits_per_char(m, corpus.val_ids, batch_size=64, seq_len=256)
        synchronize(device)
        eval_seconds[0] += time.perf_counter() - t0
        return v

    initial = val_bpc(model.to(device))
    eval_seconds[0] = 0.0
    synchronize(device)
    t0 = time.perf_counter()
    hist = train(model, corpus.batch_fn(batch_size, seq_len), "cross_entropy", steps, device=device,
                 eval_fn=val_bpc, eval_every=eval_every, **train_kwargs)
    synchronize(device)
    return hist, initial, time.perf_counter() - t0 - eval_seconds[0], eval_seconds[0]


def _smooth(y, k):
    if k <= 1 or len(y) < k:
        return np.asarray(y, dtype=float)
    return np.convolve(y, np.ones(k) / k, mode="valid")


def plot_training(result, name="lecture07_training"):
    """Two panels sharing the step axis: training loss and validation bpc (bits per character);
    the global gradient norm before clipping (log scale) with the clipping threshold."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    steps = np.arange(1, len(result["loss_bits"]) + 1)
    k = max(1, len(steps) // 60)
    a1.plot(steps, result["loss_bits"], color=plots.colour("lstm"), alpha=0.25, lw=0.7)
    sm = _smooth(result["loss_bits"], k)
    a1.plot(steps[k - 1:], sm, color=plots.colour("lstm"), lw=1.6, label=f"train (mean of {k} steps)")
    a1.plot(result["eval_steps"][1:], result["val_bpc"][1:], "o-", color=plots.PALETTE["orange"], ms=4,
            label=f"validation: {result['final_val_bpc']:.2f} at the end ({result['val_bpc'][0]:.2f} at step 0)")
    a1.axhline(result["unigram_bpc"], color=plots.colour("bound"), ls="--", lw=1,
               label=f"unigram model: {result['unigram_bpc']:.2f}")
    for e in range(1, result["epochs"]):
        a1.axvline(e * result["steps_per_epoch"], color="grey", lw=0.6, ls=":")
        a2.axvline(e * result["steps_per_epoch"], color="grey", lw=0.6, ls=":")
    a1.set_ylim(min(result["final_val_bpc"], float(np.min(sm))) - 0.3, result["unigram_bpc"] + 1.2)
    a1.set_ylabel("bits per character")
    a1.legend(fontsize=8, loc="upper right")
    s = result["settings"]
    a1.set_title(f"{s['cell'].upper()} char model, {s['parameters']:,} parameters, {s['train_chars']:,} training "
                 f"characters, {s['device']} {s['precision']}", fontsize=10)
    g = result["grad_norm"]
    a2.plot(steps, g, color=plots.PALETTE["purple"], lw=0.6, alpha=0.5)
    a2.plot(steps[k - 1:], np.exp(_smooth(np.log(g), k)), color=plots.PALETTE["purple"], lw=1.4,
            label="||g|| before clipping")
    if s["clip"] is not None:
        a2.axhline(s["clip"], color=plots.colour("bound"), ls="--", lw=1,
                   label=f"clipping threshold τ = {s['clip']:g} "
                         f"({100 * result['clip_fraction']:.0f}% of steps clipped)")
    a2.set_yscale("log")
    from matplotlib.ticker import FormatStrFormatter

    a2.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    a2.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    a2.tick_params(axis="y", which="minor", labelsize=8)
    a2.set_xlabel("training step (dotted: epoch boundaries)")
    a2.set_ylabel("global gradient norm")
    a2.legend(fontsize=8, loc="upper right")
    return plots.finish(fig, name, "Top: the loss falls fast below the unigram line (the model has learnt which "
                        "letters follow which) and then slowly; validation tracks training, so no overfitting yet. "
                        "Bottom: the gradient norm is large early, then settles; steps above the dashed line were "
                        "rescaled to norm τ (same direction, shorter step).")


# ---------------------------------------------------------------------------------------------
# NaN recovery, live
# ---------------------------------------------------------------------------------------------
def nan_recovery(warmup_steps=None, steps=None, good_lr=3e-3, bad_lr=0.1, hidden=128, batch_size=32, seq_len=64,
                 max_chars=300_000, checkpoint_every=None, lr_decay_on_nan=0.5, clip=0.25, seed=0, device=None,
                 compare_lstm=True) -> dict:
    """A run that goes fine, then a learning rate 30x too large: NaN, restore, lower lr, carry on.

    A ReLU-recurrence char model (nothing bounds its state) trains ``warmup_steps`` at ``good_lr``.
    Then training restarts from those weights with a fresh Adam at ``bad_lr`` (a typo: ``1e-1``
    for ``3e-3``). Adam's first steps move every weight by about ``lr`` whatever the gradient,
    clipped or not, so the recurrent matrix grows, the state overflows to inf and the loss is NaN.
    :func:`course_lib.train.train` refuses that step, restores the last good checkpoint (model and
    optimizer), multiplies the learning rate by ``lr_decay_on_nan``, and goes on.

    With ``compare_lstm`` the same two phases run on the lecture's LSTM: its gates saturate, so
    the same blunder gives large but finite losses and no NaN (measured as ``lstm``).

    Returns ``{"loss_bits" (per step, NaN where refused), "lr" (per step), "applied", "events"
    (train's History events, steps counted from the start of phase 1), "warmup_steps", "steps",
    "first_nonfinite", "restored_from", "final_lr", "loss_before" (mean of the last 10 warm-up
    steps), "loss_after" (mean of the last 10 steps), "unigram_bpc", "lstm": {...}}``.
    """
    warmup_steps = _positive_int("warmup_steps", budget.pick(ci=60, default=150) if warmup_steps is None
                                 else warmup_steps)
    steps = _positive_int("steps", budget.pick(ci=60, default=150) if steps is None else steps)
    checkpoint_every = _positive_int("checkpoint_every", budget.pick(ci=20, default=25) if checkpoint_every is None
                                     else checkpoint_every)
    good_lr, bad_lr = _positive("good_lr", good_lr), _positive("bad_lr", bad_lr)
    seed = int_at_least("seed", seed, 0)
    device = resolve_device(device)
    corpus = load_corpus("fortunes", max_chars=max_chars)
    V = len(corpus.vocab)
    batches = corpus.batch_fn(batch_size, seq_len)

    def run(cell, nonlinearity, policy):
        lm = make_charlm(V, hidden=hidden, cell=cell, nonlinearity=nonlinearity, seed=seed)
        model = CarryState(lm)
        kw = dict(clip=clip, device=device, checkpoint_every=checkpoint_every, seed=seed, progress=False)
        h1 = train(model, batches, "cross_entropy", warmup_steps, lr=good_lr, **kw)
        # phase 2 continues the same streams where phase 1 stopped
        h2 = train(model, lambda s, g: batches(s + warmup_steps, g), "cross_entropy", steps, lr=bad_lr,
                   nan_policy=policy, lr_decay_on_nan=lr_decay_on_nan, **kw)
        events = [dict(e, step=e["step"] + warmup_steps,
                       **({"from_step": e["from_step"] + warmup_steps} if "from_step" in e else {}))
                  for e in h2.events]
        loss = np.array(h1.loss + [l if a else float("nan") for l, a in zip(h2.loss, h2.applied)]) / LN2
        return {"loss_bits": loss, "lr": np.array(h1.lr + h2.lr), "applied": np.array(h1.applied + h2.applied),
                "events": events, "grad_norm": np.array(h1.grad_norm + h2.grad_norm),
                "loss_before": float(np.mean(np.array(h1.loss[-10:]) / LN2)),
                "loss_after": float(np.nanmean(loss[-10:])), "final_lr": float(h2.lr[-1])}

    relu = run("rnn", "relu", "recover")
    nonfinite = [e for e in relu["events"] if e["kind"] == "nonfinite"]
    restored = [e for e in relu["events"] if e["kind"] == "restored"]
    out = dict(relu)
    out.update({"warmup_steps": warmup_steps, "steps": steps, "good_lr": good_lr, "bad_lr": bad_lr,
                "checkpoint_every": checkpoint_every, "lr_decay_on_nan": lr_decay_on_nan,
                "first_nonfinite": nonfinite[0]["step"] if nonfinite else None,
                "restored_from": [e["from_step"] for e in restored],
                "n_recoveries": len(restored), "unigram_bpc": unigram_bits_per_char(corpus), "seed": seed})
    if compare_lstm:
        lstm = run("lstm", "tanh", "recover")
        lstm["max_loss_bits"] = float(np.nanmax(lstm["loss_bits"]))
        lstm["n_nonfinite"] = sum(e["kind"] == "nonfinite" for e in lstm["events"])
        out["lstm"] = lstm
    return out


def plot_nan_recovery(result, name="lecture07_nan_recovery"):
    """Loss per step with the refused (NaN) steps and the restores marked; the learning rate below."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 5.4), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    n = len(result["loss_bits"])
    steps = np.arange(n)
    W = result["warmup_steps"]
    a1.plot(steps, result["loss_bits"], color=plots.colour("rnn"), lw=1.2, label="ReLU RNN (train loss)")
    if "lstm" in result:
        a1.plot(steps, result["lstm"]["loss_bits"], color=plots.colour("lstm"), lw=1.0, alpha=0.8, ls="--",
                label=f"LSTM, same blunder: finite (peak {result['lstm']['max_loss_bits']:.0f} bits), no NaN")
    top = max(result["unigram_bpc"] + 3.0, 8.0)
    bad = [e for e in result["events"] if e["kind"] == "nonfinite"]
    for i, e in enumerate(bad):
        a1.plot(e["step"], top * 0.96, "x", color=plots.PALETTE["vermillion"], ms=9, mew=2, clip_on=False,
                label="loss NaN or inf: step refused" if i == 0 else None)
    lines = [f"step {e['step']}: restored step {e['from_step']}, lr {lr['old']:g} -> {lr['new']:g}"
             for e, lr in zip([x for x in result["events"] if x["kind"] == "restored"],
                              [x for x in result["events"] if x["kind"] == "lr"])]
    if lines:
        a1.text(0.98, 0.93, "\n".join(lines), transform=a1.transAxes, ha="right", va="top", fontsize=8,
                bbox=dict(boxstyle="round", fc="white", ec=plots.PALETTE["vermillion"], alpha=0.9))
    a1.axvline(W, color="grey", ls=":", lw=1)
    a1.text(W, 0.3, f"  lr {result['good_lr']:g} -> {result['bad_lr']:g}", fontsize=8, color="grey")
    a1.axhline(result["unigram_bpc"], color=plots.colour("bound"), ls="--", lw=0.8, label="unigram model")
    a1.set_ylim(0, top)
    a1.set_ylabel("bits per character")
    a1.legend(fontsize=8, loc="upper left")
    a2.step(steps, result["lr"], where="post", color=plots.colour("rnn"))
    if "lstm" in result:
        a2.step(steps, result["lstm"]["lr"], where="post", color=plots.colour("lstm"), ls="--", alpha=0.8)
    a2.set_yscale("log")
    a2.set_ylabel("learning rate")
    a2.set_xlabel("training step")
    return plots.finish(fig, name, "At the dotted line the learning rate jumps 30x. The ReLU model's next "
                        "step overflows (x at the top); the loop refuses it, goes back to the last good checkpoint "
                        "(box), halves the rate (bottom) and carries on from where it was, not from scratch. "
                        "The LSTM's saturating gates keep the same blunder finite: worse, but no NaN.")


# ---------------------------------------------------------------------------------------------
# mixed precision
# ---------------------------------------------------------------------------------------------
def precision_compare(steps=None, hidden=128, batch_size=32, seq_len=64, lr=1e-2, max_chars=300_000, seed=0,
                      device=None) -> dict:
    """The same model from the same start trained ``steps`` steps in float32 and under bf16 autocast.

    Both runs use :func:`course_lib.train.train` through :class:`Autocast`; only its dtype
    differs. Returns, per precision (``"fp32"``, ``"bf16"``): ``seconds_per_step`` (training only),
    ``val_bpc`` (on the first 64k validation characters, in float32) and ``loss_bits``; plus
    ``init_logit_diff`` (the largest difference of the logits between the two precisions at the
    start, on one batch), ``speedup`` (fp32 time / bf16 time), ``bpc_gap`` (bf16 - fp32), and
    ``cpu_native_bf16``. On a CPU without native bf16 the bf16 run is emulated and slow, or
    refused by oneDNN: then ``out["bf16"]`` is ``None``, ``bf16_supported`` False and
    ``bf16_error`` says why (the numbers that need it are NaN). That is why
    ``precision="auto"`` keeps float32 on CPUs.
    """
    steps = _positive_int("steps", budget.pick(ci=60, default=200) if steps is None else steps)
    seed = int_at_least("seed", seed, 0)
    device = resolve_device(device)
    corpus = load_corpus("fortunes", max_chars=max_chars)
    V = len(corpus.vocab)
    x, _ = next(iter(corpus.batches("train", batch_size, seq_len)))
    val = corpus.val_ids[:65_537]
    ok, reason = bf16_support(device)
    out = {"bf16_error": reason}
    logits = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        if dtype is not None and not ok:  # detected up front: measure float32 only, say so
            out[name] = None
            continue
        lm = make_charlm(V, hidden=hidden, seed=seed).to(device)
        model = Autocast(CarryState(lm), dtype)
        try:
            with torch.no_grad():
                logits[name] = model(x.to(device)).float().cpu()
        except RuntimeError as e:  # e.g. a CPU whose oneDNN has no bf16 LSTM kernel
            if dtype is None:
                raise
            out[name], out["bf16_error"] = None, str(e).strip().splitlines()[0][:200]
            continue
        # warm-up outside the clock: one forward and backward (kernel plans, allocator); no step
        nn.functional.cross_entropy(model(x.to(device)).flatten(0, 1), x.to(device).flatten()).backward()
        lm.zero_grad(set_to_none=True)
        model.inner.reset_state()
        batches = corpus.batch_fn(batch_size, seq_len)
        synchronize(device)
        t0 = time.perf_counter()
        h = train(model, batches, "cross_entropy", steps, lr=lr, clip=0.25, device=device, seed=seed,
                  progress=False)
        synchronize(device)
        sec = (time.perf_counter() - t0) / steps
        out[name] = {"seconds_per_step": sec, "loss_bits": np.array(h.loss) / LN2,
                     "val_bpc": bits_per_char(lm, val, batch_size=16, seq_len=256)}
    ok = out["bf16"] is not None
    out["bf16_supported"] = ok
    out["measured"] = ["fp32", "bf16"] if ok else ["fp32"]
    out["init_logit_diff"] = float((logits["fp32"] - logits["bf16"]).abs().max()) if ok else float("nan")
    out["speedup"] = out["fp32"]["seconds_per_step"] / out["bf16"]["seconds_per_step"] if ok else float("nan")
    out["bpc_gap"] = out["bf16"]["val_bpc"] - out["fp32"]["val_bpc"] if ok else float("nan")
    out.update({"steps": steps, "device": str(device), "cpu_native_bf16": cpu_has_native_bf16(),
                "auto_precision": "bf16" if autocast_dtype(device) is torch.bfloat16 else "fp32", "seed": seed})
    return out


def plot_precision(result, name="lecture07_precision"):
    """Training loss of the float32 and the bf16-autocast runs, step by step, with their speeds.

    Where the device refused bf16 (``result["bf16_supported"]`` False) only float32 is drawn, and
    the title and caption say what was measured: no error text or NaN in the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.8, 3.6))
    k = max(1, result["steps"] // 30)
    for key, colour, ls in (("fp32", plots.colour("lstm"), "-"), ("bf16", plots.PALETTE["orange"], "--")):
        r = result[key]
        if r is None:
            continue
        y = _smooth(r["loss_bits"], k)
        ax.plot(np.arange(k, len(r["loss_bits"]) + 1), y, color=colour, ls=ls, lw=1.6,
                label=f"{key}: {1e3 * r['seconds_per_step']:.1f} ms/step, validation {r['val_bpc']:.3f} bpc")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"train loss, bits per char (mean of {k})")
    ax.legend(fontsize=8)
    if result.get("bf16_supported", result.get("bf16") is not None):
        ax.set_title(f"float32 vs bf16 autocast on {result['device']} (speed-up {result['speedup']:.2f}x "
                     f"on this machine)", fontsize=10)
        cap = ("Same start, same batches, only the autocast switch differs: the two curves lie on top of each "
               "other. bf16 keeps float32's exponent range with 8 bits of precision (7 stored), enough for the "
               "matrix products; the weights, gradients and loss stay float32.")
    else:
        ax.set_title(f"float32 only: {result['device']} refuses bf16 autocast for the LSTM", fontsize=10)
        cap = ("This device refused bf16 autocast for nn.LSTM (detected before training), so only the float32 "
               "run was measured; precision='auto' and 'bf16' fall back to float32 here. On a GPU or a CPU "
               "with bf16 support the same cell draws both runs.")
    return plots.finish(fig, name, cap)


# ---------------------------------------------------------------------------------------------
# temperature
# ---------------------------------------------------------------------------------------------
def temperature_distribution(logits, temperature, top=12) -> dict:
    """softmax(logits / temperature): the ``top`` most likely ids by the model (temperature 1),
    their probabilities at ``temperature``, and the entropy in bits (0 = greedy)."""
    logits = np.asarray(logits, dtype=np.float64)
    order = np.argsort(-logits)[:top]
    if temperature <= 0:
        p = np.zeros_like(logits)
        p[order[0]] = 1.0
    else:
        z = logits / temperature
        p = np.exp(z - z.max())
        p /= p.sum()
    nz = p[p > 0]
    return {"ids": order, "probs": p[order], "entropy_bits": float(-(nz * np.log2(nz)).sum())}


def _show_char(c):
    return {" ": "␣", "\n": "⏎", "\t": "⇥"}.get(c, c)


def draw_temperature(ax, result, temperature=1.0):
    """Bar chart of the next-character distribution after the prompt at ``temperature``."""
    d = temperature_distribution(result["next_char"]["logits"], temperature)
    chars = [_show_char(result["next_char"]["chars"][i]) for i in d["ids"]]
    ax.bar(range(len(chars)), d["probs"], color=plots.colour("lstm"))
    ax.set_xticks(range(len(chars)))
    ax.set_xticklabels(chars, fontsize=10, family="monospace")
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability of the next character")
    ax.text(0.98, 0.95, f"entropy {d['entropy_bits']:.2f} bits", transform=ax.transAxes, ha="right", va="top",
            fontsize=9)
    return ax


def temperature_explorer(result, temperatures=(0.3, 1.0, 2.0), name="lecture07_temperature"):
    """Static panels at ``temperatures`` and (in a live kernel) a temperature slider."""
    def draw(ax, temperature):
        draw_temperature(ax, result, temperature)

    return widgets.explorer(draw, {"temperature": (0.05, 3.0, 0.05)},
                            [{"temperature": float(t)} for t in temperatures],
                            title=f"next character after {result['prompt']!r}", name=name,
                            caption="Dividing the logits by the temperature sharpens the distribution below 1 "
                                    "(towards always taking the favourite) and flattens it above 1 (towards "
                                    "uniform over the vocabulary): the same model, tamer or wilder text.")


# ---------------------------------------------------------------------------------------------
# the lecture's claims (the notebook shows them, the tests and the main job assert the same objects)
# ---------------------------------------------------------------------------------------------
def claims_loop_vs_fused(speed: dict) -> list:
    """Lecture 7: the hand-written loop and ``nn.LSTM`` agree (float32 rounding); the time ratios are
    this machine's and shown as an illustration, never counted."""
    from ..claims import Claim

    return [
        Claim.compare("the hand-written LSTM loop and nn.LSTM compute the same outputs (largest difference, float32)",
                      max(speed["max_diff_out"]), "<", 1e-5, (0,)),
        Claim.compare("... and the same weight gradients (largest difference, float32)",
                      max(speed["max_diff_grad"]), "<", 1e-3, (0,)),
        Claim.illustration(f"loop / nn.LSTM time on {speed['device']} with {speed['threads']} thread(s), measured "
                           f"here (varies by machine and load)",
                           **{f"ratio_B{B}": r for B, r in zip(speed["batch_sizes"], speed["ratio"])}),
    ]


def charlm_seeds(first_run: dict | None = None, seeds=None, device=None, **sizes) -> dict:
    """The lecture's language model trained on several seeds, for claims that rest on more than one.

    ``seeds``: default :func:`course_lib.budget.pick` ``(0, 1, 2)`` at every budget (about 7 s a
    seed at ``ci``, 50 s at ``default`` on a 2-core CPU); ``first_run``: a :func:`train_charlm`
    result already trained on one of them (its seed is not trained again; the sizes are taken from
    its settings so every seed trains the same model). ``sizes``: further :func:`train_charlm`
    arguments. Returns ``seeds``, ``final_val_bpc`` and ``val_bpc_reset`` (one per seed, in order),
    ``unigram_bpc``, ``settings`` (the first run's) and ``runs`` (seed -> its :func:`train_charlm` result). Raises ValueError for an empty ``seeds``.
    Used by lecture 7 and tests/test_lecture07_training.py.
    """
    seeds = tuple(budget.pick(ci=(0, 1, 2), default=(0, 1, 2)) if seeds is None else seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    runs = {}
    if first_run is not None:
        s = first_run["settings"]
        runs[s["seed"]] = first_run
        sizes = {**{k: s[k] for k in ("hidden", "batch_size", "seq_len", "epochs", "lr", "clip", "cell",
                                      "num_layers", "max_chars")}, **sizes}
        device = s["device"] if device is None else device
        sizes.setdefault("precision", "bf16" if s["precision"] == "bf16" else "fp32")
    for seed in tqdm([u for u in seeds if u not in runs], desc="more seeds", unit="seed"):
        runs[seed] = train_charlm(seed=seed, device=device, sample_chars=1, temperatures=(1.0,),
                                  evals_per_epoch=1, progress=False, **sizes)
    return {"seeds": seeds, "final_val_bpc": [runs[u]["final_val_bpc"] for u in seeds],
            "val_bpc_reset": [runs[u]["val_bpc_reset"] for u in seeds],
            "unigram_bpc": runs[seeds[0]]["unigram_bpc"], "settings": runs[seeds[0]]["settings"], "runs": runs}


def claims_charlm(over_seeds: dict, target: float, context_gain: float = 0.03) -> list:
    """Lecture 7: on every seed of :func:`charlm_seeds` the char LSTM reaches ``target`` bits per
    character, which the unigram model cannot, and carrying the state across chunks lowers the
    validation bpc by more than ``context_gain`` bits per character (a margin, so float differences
    between CPUs cannot flip it). ``value`` is the worst seed's."""
    from ..claims import Claim

    seeds = over_seeds["seeds"]
    bpc = np.asarray(over_seeds["final_val_bpc"], dtype=float)
    gain = np.asarray(over_seeds["val_bpc_reset"], dtype=float) - bpc
    return [
        Claim.every(f"the char LSTM reaches validation bpc below {target} (this budget's target) on every seed",
                    bpc, "<", target, seeds, device=over_seeds["settings"]["device"],
                    margin=float(target - bpc.max())),
        Claim.compare(f"the unigram model cannot reach {target} bpc (its bpc)", over_seeds["unigram_bpc"], ">",
                      target),
        Claim.every(f"carrying the state across chunks lowers validation bpc by more than {context_gain} "
                    f"(reset minus carried, bits per char) on every seed", gain, ">", context_gain, seeds,
                    carried=[float(u) for u in bpc], reset=[float(u) for u in over_seeds["val_bpc_reset"]]),
    ]


def claims_charlm_timing(run: dict) -> list:
    """Lecture 7: time per epoch and throughput of one run, on this machine (an illustration)."""
    from ..claims import Claim

    return [Claim.illustration("time per epoch and throughput on this machine",
                               seconds_per_epoch=run["seconds_per_epoch"], tokens_per_second=run["tokens_per_second"])]


def claims_nan_recovery(nan_run: dict) -> list:
    """Lecture 7: the too-large learning rate is detected, the checkpoint restored, the rate lowered, training
    goes on past the unigram loss; the LSTM stays finite under the same blunder."""
    from ..claims import Claim

    seed = (nan_run["seed"],)
    return [
        Claim.fact("too-large lr on a ReLU RNN: a non-finite step is detected, a checkpoint from after the warm-up is "
                   "restored and the lr lowered", nan_run["n_recoveries"] >= 1
                   and all(f >= nan_run["warmup_steps"] for f in nan_run["restored_from"]), seed,
                   recoveries=nan_run["n_recoveries"], final_lr=nan_run["final_lr"]),
        Claim.compare("... and training goes on below the unigram loss (loss at the end, bits)", nan_run["loss_after"],
                      "<", nan_run["unigram_bpc"], seed),
        Claim.compare("the LSTM under the same blunder stays finite (non-finite steps)", nan_run["lstm"]["n_nonfinite"],
                      "<=", 0, seed, lstm_peak_bits=nan_run["lstm"]["max_loss_bits"]),
    ]


def claims_precision(prec: dict, tolerance: float = 0.05) -> list:
    """Lecture 7: where bf16 runs, bf16 autocast reaches float32's validation bpc within ``tolerance``
    either way; where the device refuses it, what was measured (float32 only) is shown, not counted."""
    from ..claims import Claim

    if not prec["bf16_supported"]:
        return [Claim.illustration(f"bf16 autocast is refused on {prec['device']}: float32 only was measured "
                                   f"('auto' and 'bf16' fall back to it)", reason=prec["bf16_error"],
                                   fp32_bpc=prec["fp32"]["val_bpc"])]
    return [
        Claim.between(f"bf16 autocast reaches the same validation bpc as float32 on {prec['device']} "
                      f"(bf16 minus fp32, within {tolerance})", [prec["bpc_gap"]], -tolerance, tolerance,
                      (prec["seed"],), fp32=prec["fp32"]["val_bpc"], bf16=prec["bf16"]["val_bpc"]),
        Claim.illustration("bf16 / fp32 speed-up on this machine", speedup=prec["speedup"],
                           native_bf16=prec["cpu_native_bf16"]),
    ]
