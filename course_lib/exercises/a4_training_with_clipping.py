"""Assignment 4, training with clipping (lecture 7): one spec per exercise.

``train_step``, ``load_checkpoint`` and ``train_loop`` are written as specs throughout: their known mistakes
(as student code, with the hint each must get and the sample it becomes) and correct code written
differently; the judge's pieces and parametrised families stay code in ``course_lib/checks/training.py``.
``load_model`` is graded on a file the student hands in (no reference run): its judge is that module's
``FileExercise``, and its samples (a model too weak, a pickled model) stay in
``autograder/samples/make_samples_train.py``, which makes the model files.
"""
from __future__ import annotations

from ..checks import training as T
from ..reference import training as R
from ._spec import Assignment, Call, Mistake, Spec, Variant, answer_source

DIFFERENT = "correct_variants_no_model"  # the sample that holds every variant (and hands in no model file)

# the student's code, written the usual way with one thing changed (the samples and the tests use these)
STEP_HEAD = "def train_step(model, x, y, state, optimizer, max_norm):\n"


def step_code(move="x, y = x.to(device), y.to(device)", zero="optimizer.zero_grad()",
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


def loop_code(resume=None, check_nan=True):
    """The course's answer, ``train_loop`` in ``course_lib/reference/training.py``, as the student writes it
    (without its docstring), with one thing changed: ``resume``, the lines that take the place of its resume
    from the checkpoint; ``check_nan=False``, its NaN recovery left out (saving a checkpoint is then an ``if``)."""
    lines = answer_source(R.train_loop).splitlines()
    if resume is not None:
        lines[lines.index("        start, state = load_checkpoint(checkpoint_path, model, optimizer)")] = "        " + resume
    if not check_nan:
        first = lines.index("        if not (math.isfinite(loss) and math.isfinite(grad_norm)):")
        last = lines.index("        elif (step + 1) % checkpoint_every == 0:")
        lines[first:last + 1] = ["        if (step + 1) % checkpoint_every == 0:"]
    return "\n".join(lines)


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


TRAIN_STEP = Spec(
    "train_step", 3, "train_step(model, x, y, state, optimizer, max_norm) -> (loss, grad_norm, state)",
    "One step of truncated BPTT with global-norm clipping -> (loss, grad_norm before clipping, state).",
    "moves the batch to the model's device, detaches the carried state, mean cross-entropy, clears "
    "gradients, backpropagates, clips by the global norm, steps; `grad_norm` is measured before clipping.",
    call=Call("train.step", []), **T.TRAIN_STEP,
    mistakes=(
        Mistake(step_code(clip="optimizer.step()\n"
                               "    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)"),
                "clipping after `optimizer.step()`", "mistake_clip_after_step"),
        Mistake(step_code(clip="norms = [torch.nn.utils.clip_grad_norm_([p], max_norm) for p in model.parameters()]\n"
                               "    grad_norm = torch.sqrt(sum(n ** 2 for n in norms))\n    optimizer.step()"),
                "clipped by its own norm", "mistake_clip_per_parameter"),
        Mistake(step_code(zero="pass"), "gradients accumulate", "mistake_no_zero_grad"),
        # published: clipped between zero_grad() and backward(), when there are no gradients yet (norm 0)
        Mistake(step_code(zero="optimizer.zero_grad()\n"
                               "    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)",
                          clip="optimizer.step()"),
                "clip between `optimizer.zero_grad()` and `loss.backward()`", "mistake_clip_before_backward"),
        # published: mixed precision (lecture 7) with the clipping before unscale_ (norms 65536 times too large)
        Mistake("scaler = torch.amp.GradScaler(\"cpu\")  # mixed precision, as in lecture 7\n\n\n"
                + step_code(clip="grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)\n"
                                 "    scaler.unscale_(optimizer)\n    scaler.step(optimizer)\n    scaler.update()"
                            ).replace("    loss.backward()", "    scaler.scale(loss).backward()"),
                "you clip before `scaler.unscale_(optimizer)`", "mistake_scaler_clip_before_unscale"),
        Mistake(step_code(clip="torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)\n"
                               "    grad_norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))\n"
                               "    optimizer.step()"),
                "norm after clipping", "mistake_norm_after_clip"),
        Mistake(step_code(detach=False), "`.detach()`", "mistake_no_detach"),
        # on the CPU the loop's steps are right all the same: only train_step's own check sees the batch stay put
        Mistake(step_code(move="model.to(device)"), "does not move the batch", "mistake_batch_not_moved",
                fails=("train_step",)),
    ),
    variants=(Variant(CLIP_OWN, DIFFERENT),))

LOAD_CHECKPOINT = Spec(
    "load_checkpoint", 2, "load_checkpoint(path, model, optimizer) -> (step, state)",
    "Load a checkpoint from `path` into `model` and `optimizer` -> (step, state).",
    "with `save_checkpoint(path, model, optimizer, step, state)` in the same cell: the file must load "
    "with `torch.load(weights_only=True)`.", cell="checkpoints",
    call=Call("train.checkpoint", []), **T.LOAD_CHECKPOINT,
    mistakes=(
        Mistake('''def save_checkpoint(path, model, optimizer, step, state):
    torch.save({"model": model.state_dict(), "step": step, "state": state}, path)


def load_checkpoint(path, model, optimizer):
    ckpt = torch.load(path, weights_only=True)
    model.load_state_dict(ckpt["model"])
    return ckpt["step"], ckpt["state"]''',
                "optimizer's state does not", 'mistake_checkpoint_no_optimizer'),
    ),
    variants=(Variant(CKPT_VARIANT, DIFFERENT),))

TRAIN_LOOP = Spec(
    "train_loop", 4, 'train_loop(model, batch_fn, steps, lr, max_norm, checkpoint_path, checkpoint_every=10, '
    'device="cpu") -> history',
    "Train up to `steps` steps with clipping, checkpoints, resume and NaN recovery -> history.",
    '`history` is `{"loss", "grad_norm", "events"}`; Adam; resumes from `checkpoint_path` when it exists; '
    "on a NaN or inf loss or norm restores the last checkpoint, halves the learning rate, records the "
    "event, goes on.", uses=("train_step", "load_checkpoint"),
    call=Call("train.loop", []), **T.TRAIN_LOOP,
    mistakes=(
        Mistake(loop_code(resume='ckpt = torch.load(checkpoint_path, weights_only=True)\n'
                                             '        model.load_state_dict(ckpt["model"])\n'
                                             '        start, state = ckpt["step"], ckpt["state"]'),
                "not the optimizer's state", 'mistake_resume_weights_only'),
        Mistake(loop_code(check_nan=False),
                'the NaN was not caught', 'mistake_nan_not_detected'),
    ),
    variants=(Variant(LOOP_VARIANT, DIFFERENT),))

LOAD_MODEL = Spec(
    "load_model", 3, "load_model(path) -> model",
    "The trained CharLM, rebuilt from the state_dict saved at `path`.",
    "returns a `CharLM`, with `charlm.pt` (a state_dict) handed in next to the notebook; graded threshold "
    "2.8 bits per character on held-out text, trained within 1500 steps (a step budget, the same on any machine; "
    "the settings given reach 2.73 at step 800); the notebook keeps `charlm_checkpoint.pt`, so running its "
    "training cell again resumes.", hidden_tests=False,
    exercise_object=T.LOAD_MODEL)

ASSIGNMENT = Assignment(
    "04_training_with_clipping", [TRAIN_STEP, LOAD_CHECKPOINT, TRAIN_LOOP, LOAD_MODEL],
    about="the model is called `model(x, state) -> (logits, state)` like `course_lib.models.CharLM`, `state` is "
          "`None` at the start",
    topic="training with clipping", ungraded="resume and NaN recovery, a language model under 2.8 bits/char",
    warm=("torch._dynamo",))  # its notebook and the judge's calls train with torch.optim
