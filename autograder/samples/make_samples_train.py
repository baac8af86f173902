"""Write the sample class of assignment 4 (training with clipping).

    python -m autograder.samples.make_samples_train [--check] [--models]

Each sample is the release notebook with its solution cells filled in (the correct code from
``solutions/``, correct code written differently, one common mistake written the way a student would
write it, or nothing) and, where the sample hands one in, a model file ``charlm.pt`` next to it.
``expected.csv`` lists the exact score and status the grading command must give each one;
``tests/test_grading_train.py`` checks both.

The notebooks and ``expected.csv`` are rewritten every time (``--check`` exits 1 when the committed
ones differ). The model files are made only with ``--models``: ``correct/charlm.pt`` is a trained
LSTM (about a minute of training on one CPU thread; stored in float16 to keep the repository lean,
240 kB), the others are tiny untrained models; ``--check`` only checks that they are there.
"""
from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

from course_lib.exercises import REGISTRY

from .make_samples import _solution_code, drop_keys, dumps, files_of

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
A4 = "04_training_with_clipping"
POINTS = {s.name: s.points for s in REGISTRY[A4].specs}  # written once, in course_lib/exercises
TOTAL = sum(POINTS.values())
CELLS = tuple(s.answer_cell for s in REGISTRY[A4].specs)  # the solution cells' grade ids
CORRECT, BLANK = "correct", "blank"
MODEL = "charlm.pt"

STEP_HEAD = "def train_step(model, x, y, state, optimizer, max_norm):\n"


def _step(move="x, y = x.to(device), y.to(device)", zero="optimizer.zero_grad()",
          clip="grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)\n    optimizer.step()",
          detach=True, ret="return loss.item(), float(grad_norm), state"):
    det = ("    if state is not None:\n        state = tuple(s.detach() for s in state) if isinstance(state, tuple) "
           "else state.detach()\n") if detach else ""
    return STEP_HEAD + f"""    device = next(model.parameters()).device
    {move}
{det}    {zero}
    logits, state = model(x, state)
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    {clip}
    {ret}"""


CLIP_OWN = '''def clip_grad_norm(parameters, max_norm):
    """Assignment 1's clip_grad_norm: scale all gradients in place by min(1, max_norm / ||g||)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((g ** 2).sum() for g in grads))
    scale = min(1.0, max_norm / (float(total) + 1e-6))
    for g in grads:
        g.mul_(scale)
    return total


def train_step(model, x, y, state, optimizer, max_norm):
    params = list(model.parameters())
    dev = params[0].device
    if x.device != dev:
        x = x.to(dev)
    if y.device != dev:
        y = y.to(dev)
    model.zero_grad(set_to_none=True)
    logits, new_state = model(x, state)
    logp = torch.log_softmax(logits, dim=-1)
    loss = -logp.gather(-1, y.unsqueeze(-1)).mean()
    loss.backward()
    norm = clip_grad_norm(params, max_norm)
    optimizer.step()
    if isinstance(new_state, tuple):
        new_state = tuple(s.detach() for s in new_state)
    else:
        new_state = new_state.detach()
    return float(loss.detach()), norm.item(), new_state'''

CKPT_VARIANT = '''def save_checkpoint(path, model, optimizer, step, state):
    payload = {"weights": model.state_dict(), "adam": optimizer.state_dict(), "step": torch.tensor(step)}
    if state is not None:
        payload["hidden"] = list(state) if isinstance(state, tuple) else [state]
        payload["is_tuple"] = isinstance(state, tuple)
    torch.save(payload, path)


def load_checkpoint(path, model, optimizer):
    payload = torch.load(path, weights_only=True)
    model.load_state_dict(payload["weights"])
    optimizer.load_state_dict(payload["adam"])
    state = None
    if "hidden" in payload:
        state = tuple(payload["hidden"]) if payload["is_tuple"] else payload["hidden"][0]
    return int(payload["step"]), state'''

LOOP_HEAD = ("def train_loop(model, batch_fn, steps, lr, max_norm, checkpoint_path, checkpoint_every=10, "
             "device=\"cpu\"):\n")


def _loop(resume="start, state = load_checkpoint(checkpoint_path, model, optimizer)", check_nan=True):
    nan = """        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            new_lr = optimizer.param_groups[0]["lr"] / 2
            _, state = load_checkpoint(checkpoint_path, model, optimizer)
            for group in optimizer.param_groups:
                group["lr"] = new_lr
            history["events"].append({"step": step, "lr": new_lr})
        elif (step + 1) % checkpoint_every == 0:""" if check_nan else \
        """        if (step + 1) % checkpoint_every == 0:"""
    return LOOP_HEAD + f"""    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = {{"loss": [], "grad_norm": [], "events": []}}
    if os.path.exists(checkpoint_path):
        {resume}
    else:
        start, state = 0, None
        save_checkpoint(checkpoint_path, model, optimizer, 0, state)
    for step in range(start, steps):
        x, y = batch_fn(step)
        loss, grad_norm, state = train_step(model, x, y, state, optimizer, max_norm)
        history["loss"].append(loss)
        history["grad_norm"].append(grad_norm)
{nan}
            save_checkpoint(checkpoint_path, model, optimizer, step + 1, state)
    return history"""


LOOP_VARIANT = LOOP_HEAD + '''    model = model.to(torch.device(device))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = dict(loss=[], grad_norm=[], events=[])
    step, state = 0, None
    if Path(checkpoint_path).is_file():
        step, state = load_checkpoint(checkpoint_path, model, opt)
    else:
        save_checkpoint(checkpoint_path, model, opt, step, state)
    while step < steps:
        loss, norm, state = train_step(model, *batch_fn(step), state, opt, max_norm)
        history["loss"].append(loss)
        history["grad_norm"].append(norm)
        if math.isnan(loss) or math.isinf(loss) or not math.isfinite(norm):
            lowered = 0.5 * opt.param_groups[0]["lr"]
            _, state = load_checkpoint(checkpoint_path, model, opt)
            opt.param_groups[0]["lr"] = lowered
            history["events"].append(dict(step=step, lr=lowered, kind="nan"))
        elif (step + 1) % checkpoint_every == 0:
            save_checkpoint(checkpoint_path, model, opt, step + 1, state)
        step += 1
    return history'''

CODE = {
    "step_variant": CLIP_OWN,
    "step_clip_after_step": _step(clip="optimizer.step()\n    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)"),
    "step_clip_per_parameter": _step(clip="norms = [torch.nn.utils.clip_grad_norm_([p], max_norm) for p in model.parameters()]\n"
                                          "    grad_norm = torch.sqrt(sum(n ** 2 for n in norms))\n    optimizer.step()"),
    "step_no_zero_grad": _step(zero="pass"),
    # published: clipped between zero_grad() and backward(), when there are no gradients yet (norm 0)
    "step_clip_before_backward": _step(zero="optimizer.zero_grad()\n"
                                            "    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)",
                                       clip="optimizer.step()"),
    # published: mixed precision (lecture 7) with the clipping before unscale_ (norms 65536 times too large)
    "step_scaler_clip_before_unscale": "scaler = torch.amp.GradScaler(\"cpu\")  # mixed precision, as in lecture 7\n\n\n"
                                       + _step(clip="grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)\n"
                                                    "    scaler.unscale_(optimizer)\n    scaler.step(optimizer)\n"
                                                    "    scaler.update()").replace(
                                           "    loss.backward()", "    scaler.scale(loss).backward()"),
    "step_norm_after_clip": _step(clip="torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)\n"
                                       "    grad_norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))\n"
                                       "    optimizer.step()"),
    "step_no_detach": _step(detach=False),
    "step_batch_not_moved": _step(move="model.to(device)"),
    "ckpt_variant": CKPT_VARIANT,
    "loop_variant": LOOP_VARIANT,
    "loop_resume_weights_only": _loop(resume='ckpt = torch.load(checkpoint_path, weights_only=True)\n'
                                             '        model.load_state_dict(ckpt["model"])\n'
                                             '        start, state = ckpt["step"], ckpt["state"]'),
    "loop_nan_not_detected": _loop(check_nan=False),
    # works, but pickles the optimizer object: only the `weights_only` entries of the result show it
    "ckpt_pickled_optimizer": '''def save_checkpoint(path, model, optimizer, step, state):
    torch.save({"model": model.state_dict(), "optimizer": optimizer, "step": step, "state": state}, path)


def load_checkpoint(path, model, optimizer):
    ckpt = torch.load(path, weights_only=False)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"].state_dict())
    return ckpt["step"], ckpt["state"]''',
    "ckpt_no_optimizer": '''def save_checkpoint(path, model, optimizer, step, state):
    torch.save({"model": model.state_dict(), "step": step, "state": state}, path)


def load_checkpoint(path, model, optimizer):
    ckpt = torch.load(path, weights_only=True)
    model.load_state_dict(ckpt["model"])
    return ckpt["step"], ckpt["state"]''',
}


def _hidden16(nb):
    """The training cell with a 16-unit model (the size of the small model files)."""
    for c in nb["cells"]:
        src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        if "HIDDEN, LR, MAX_NORM, BATCH, SEQ = 128," in src:
            c["source"] = src.replace("HIDDEN, LR, MAX_NORM, BATCH, SEQ = 128,", "HIDDEN, LR, MAX_NORM, BATCH, SEQ = 16,")


def sample(functions=None, model=None, transform=None):
    f = {k: CORRECT for k in CELLS}
    f.update(functions or {})
    return {"functions": f, "model": model, "transform": transform}


def _score(*failed):
    return TOTAL - sum(POINTS[k] for k in set(failed))


STEP_BREAKS = ("train_step", "train_loop", "load_model")  # train_loop is built on train_step; no model file
# name -> (sample, expected score, expected status)
SAMPLES = {
    "correct": (sample(model="trained"), TOTAL, "ok"),
    "correct_variants_no_model": (sample({"train_step": "step_variant", "checkpoints": "ckpt_variant",
                                          "train_loop": "loop_variant"}), _score("load_model"), "ok"),
    "blank": (sample({k: BLANK for k in CELLS}), 0, "not_attempted"),
    "partial": (sample({"train_loop": BLANK, "load_model": BLANK}), _score("train_loop", "load_model"), "ok"),
    "mistake_clip_after_step": (sample({"train_step": "step_clip_after_step"}), _score(*STEP_BREAKS), "ok"),
    "mistake_clip_per_parameter": (sample({"train_step": "step_clip_per_parameter"}), _score(*STEP_BREAKS), "ok"),
    "mistake_no_zero_grad": (sample({"train_step": "step_no_zero_grad"}), _score(*STEP_BREAKS), "ok"),
    "mistake_norm_after_clip": (sample({"train_step": "step_norm_after_clip"}), _score(*STEP_BREAKS), "ok"),
    "mistake_clip_before_backward": (sample({"train_step": "step_clip_before_backward"}), _score(*STEP_BREAKS), "ok"),
    "mistake_scaler_clip_before_unscale": (sample({"train_step": "step_scaler_clip_before_unscale"}),
                                           _score(*STEP_BREAKS), "ok"),
    "mistake_no_detach": (sample({"train_step": "step_no_detach"}), _score(*STEP_BREAKS), "ok"),
    # on the CPU the loop's steps are right all the same: only train_step's own check sees the batch stay put
    "mistake_batch_not_moved": (sample({"train_step": "step_batch_not_moved"}), _score("train_step", "load_model"),
                                "ok"),
    "mistake_checkpoint_no_optimizer": (sample({"checkpoints": "ckpt_no_optimizer"}),
                                        _score("load_checkpoint", "train_loop", "load_model"), "ok"),
    "mistake_resume_weights_only": (sample({"train_loop": "loop_resume_weights_only"}),
                                    _score("train_loop", "load_model"), "ok"),
    "mistake_nan_not_detected": (sample({"train_loop": "loop_nan_not_detected"}),
                                 _score("train_loop", "load_model"), "ok"),
    "model_too_weak": (sample(model="untrained16", transform=_hidden16), _score("load_model"), "ok"),
    "model_pickled": (sample(model="pickled16", transform=_hidden16), _score("load_model"), "ok"),
    # the pickled checkpoint hidden: an extra cell drops `weights_only*` from the checkpoint results in the
    # sandbox (train_loop, on the same functions, is right; no model file)
    "attack_drop_keys_train": ({**sample({"checkpoints": "ckpt_pickled_optimizer"}),
                                "extra": [drop_keys("train.checkpoint", ("weights_only",))]},
                               _score("load_checkpoint", "load_model"), "ok"),
}

# sample -> (exercise, words its hint must contain)
HINTS = {
    "correct_variants_no_model": ("load_model", f"no `{MODEL}` was handed in"),
    "blank": ("train_step", "not implemented yet"),
    "mistake_clip_after_step": ("train_step", "clipping after `optimizer.step()`"),
    "mistake_clip_per_parameter": ("train_step", "clipped by its own norm"),
    "mistake_no_zero_grad": ("train_step", "gradients accumulate"),
    "mistake_norm_after_clip": ("train_step", "norm after clipping"),
    "mistake_clip_before_backward": ("train_step", "clip between `optimizer.zero_grad()` and `loss.backward()`"),
    "mistake_scaler_clip_before_unscale": ("train_step", "you clip before `scaler.unscale_(optimizer)`"),
    "mistake_no_detach": ("train_step", "`.detach()`"),
    "mistake_batch_not_moved": ("train_step", "does not move the batch"),
    "mistake_checkpoint_no_optimizer": ("load_checkpoint", "optimizer's state does not"),
    "mistake_resume_weights_only": ("train_loop", "not the optimizer's state"),
    "mistake_nan_not_detected": ("train_loop", "the NaN was not caught"),
    "model_too_weak": ("load_model", "bits per character on the held-out text; the target is 2.8"),
    "model_pickled": ("load_model", "weights_only=True"),
    "attack_drop_keys_train": ("load_checkpoint", "incomplete result for `load_checkpoint` (missing `weights_only`)"),
}
MODELS = {"correct": "trained", "model_too_weak": "untrained16", "model_pickled": "pickled16"}


# ================================================================ building
def build(spec) -> dict:
    release = json.loads((ROOT / "assignments" / A4 / f"{A4}.ipynb").read_text())
    sol = _solution_code(A4)
    nb = copy.deepcopy(release)
    for c in nb["cells"]:
        nbg = c["metadata"].get("nbgrader", {})
        gid = nbg.get("grade_id")
        if not nbg.get("solution") or gid not in spec["functions"]:
            continue
        how = spec["functions"][gid]
        if how == CORRECT:
            c["source"] = sol[gid]
        elif how != BLANK:
            c["source"] = CODE[how]
    for k, src in enumerate(spec.get("extra", ())):  # extra cells at the end (attacks)
        nb["cells"].append({"cell_type": "code", "execution_count": None, "id": f"extra-{k}", "metadata": {},
                            "outputs": [], "source": src.strip("\n")})
    if spec["transform"]:
        spec["transform"](nb)
    return nb


def write_all(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (spec, score, status) in SAMPLES.items():
        folder = out / name
        folder.mkdir(exist_ok=True)
        (folder / f"{A4}.ipynb").write_text(dumps(build(spec)), encoding="utf-8")
        rows.append((name, score, status))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["student_id", "score", "max_score", "status"])
    for name, score, status in sorted(rows):
        w.writerow([name, score, TOTAL, status])
    (out / "expected.csv").write_text(buf.getvalue(), encoding="utf-8")


def make_model(kind: str, path: Path) -> None:
    """Write the model file of a sample: ``trained`` (the solution's settings, trained with the reference loop
    until 2.75 bits on the held-out text, float16), ``untrained16`` (a 16-unit model as initialised) or
    ``pickled16`` (the same, saved as a whole pickled object: what ``weights_only=True`` refuses)."""
    import torch

    from course_lib.checks.training import EVAL_CHARS
    from course_lib.experiments.gpu_training import make_charlm
    from course_lib.reference.training import train_loop
    from course_lib.tasks import load_corpus
    from course_lib.train import bits_per_char

    torch.set_num_threads(1)
    corpus = load_corpus("fortunes")
    V = len(corpus.vocab)
    if kind == "untrained16":
        torch.save(make_charlm(V, hidden=16, seed=0).state_dict(), path)
        return
    if kind == "pickled16":
        torch.save(make_charlm(V, hidden=16, seed=0), path)
        return
    lm = make_charlm(V, hidden=128, seed=0)
    chunks = list(corpus.batches("train", 32, 64))
    heldout = corpus.val_ids[: EVAL_CHARS + 1]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, done, bpc = str(Path(tmp) / "ckpt.pt"), 0, float("inf")
        while bpc > 2.75 and done < 2000:
            done += 100
            train_loop(lm, lambda s: chunks[s % len(chunks)], done, 1e-2, 0.25, ckpt, checkpoint_every=50)
            bpc = bits_per_char(lm, heldout, batch_size=64, seq_len=256)
            print(f"  {done} steps: {bpc:.3f} bits per character", flush=True)
    torch.save({k: v.half() for k, v in lm.state_dict().items()}, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when the committed samples are stale")
    ap.add_argument("--models", action="store_true", help="also (re)make the model files (about a minute)")
    args = ap.parse_args(argv)
    target = HERE / A4
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            write_all(Path(tmp))
            new = files_of(Path(tmp))
            old = {k: v for k, v in (files_of(target) if target.exists() else {}).items() if not k.endswith(".pt")}
        stale = sorted(k for k in set(new) | set(old) if new.get(k) != old.get(k))
        stale += [f"{s}/{MODEL} (missing: run with --models)" for s in MODELS if not (target / s / MODEL).is_file()]
        if stale:
            print("stale samples (run python -m autograder.samples.make_samples_train):", *stale, sep="\n  ")
            return 1
        print("samples are up to date")
        return 0
    models = {s: (target / s / MODEL).read_bytes() for s in MODELS if (target / s / MODEL).is_file()}
    if target.exists():
        shutil.rmtree(target)
    write_all(target)
    for s, kind in MODELS.items():
        if args.models or s not in models:
            print(f"making {s}/{MODEL} ({kind})", flush=True)
            make_model(kind, target / s / MODEL)
        else:
            (target / s / MODEL).write_bytes(models[s])
    print(f"wrote {len(SAMPLES)} samples to {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
