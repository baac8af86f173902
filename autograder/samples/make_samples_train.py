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
import json
import shutil
import sys
import tempfile
from pathlib import Path

from course_lib.exercises import REGISTRY

from .from_specs import BLANK, CORRECT
from .make_samples import drop_keys, extra_cell, files_of, fill_solution_cell, solution_code, write_notebooks

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
A4 = "04_training_with_clipping"
A = REGISTRY[A4]  # points, cells and the exercises' samples are written once, in course_lib/exercises/a4_*.py
POINTS = {s.name: s.points for s in A.specs}
TOTAL = sum(POINTS.values())
CELLS = tuple(s.answer_cell for s in A.specs)  # the solution cells' grade ids
MODEL = "charlm.pt"

CODE = {
    # works, but pickles the optimizer object: only the `weights_only` entries of the result show it
    "ckpt_pickled_optimizer": '''def save_checkpoint(path, model, optimizer, step, state):
    torch.save({"model": model.state_dict(), "optimizer": optimizer, "step": step, "state": state}, path)


def load_checkpoint(path, model, optimizer):
    ckpt = torch.load(path, weights_only=False)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"].state_dict())
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


def _from_specs():
    """The samples each spec asks for: its variants (one notebook, no model file) and its mistakes (no model
    file either, so ``load_model`` is lost too); code, samples, hints."""
    code, samples, hints, variants = {}, {}, {}, {}
    for s in A.specs:
        for k, v in enumerate(s.variants):
            code[f"{s.name}:variant{k}"] = v.code
            variants[s.answer_cell] = f"{s.name}:variant{k}"
        for m in s.mistakes:
            if m.sample:
                code[f"{s.name}:{m.sample}"] = m.code
                samples[m.sample] = (sample({s.answer_cell: f"{s.name}:{m.sample}"}),
                                     _score(*A.loses(s, m), "load_model"), "ok")
                hints[m.sample] = (s.name, m.hint)
    samples["correct_variants_no_model"] = (sample(variants), _score("load_model"), "ok")
    return code, samples, hints


SPEC_CODE, SPEC_SAMPLES, SPEC_HINTS = _from_specs()
CODE.update(SPEC_CODE)
# name -> (sample, expected score, expected status)
SAMPLES = {
    "correct": (sample(model="trained"), TOTAL, "ok"),
    "blank": (sample({k: BLANK for k in CELLS}), 0, "not_attempted"),
    "partial": (sample({"train_loop": BLANK, "load_model": BLANK}), _score("train_loop", "load_model"), "ok"),
    **SPEC_SAMPLES,
    "model_too_weak": (sample(model="untrained16", transform=_hidden16), _score("load_model"), "ok"),
    "model_pickled": (sample(model="pickled16", transform=_hidden16), _score("load_model"), "ok"),
    # the pickled checkpoint hidden: an extra cell drops `weights_only*` from the checkpoint results in the
    # sandbox (train_loop, on the same functions, is right; no model file)
    "attack_drop_keys_train": ({**sample({"checkpoints": "ckpt_pickled_optimizer"}),
                                "extra": [drop_keys("train.checkpoint", ("weights_only",))]},
                               _score("load_checkpoint", "load_model"), "tampering_detected"),
}

# sample -> (exercise, words its hint must contain)
HINTS = {
    "correct_variants_no_model": ("load_model", f"no `{MODEL}` was handed in"),
    "blank": ("train_step", "not implemented yet"),
    **SPEC_HINTS,
    "model_too_weak": ("load_model", "bits per character on the held-out text; the target is 2.8"),
    "model_pickled": ("load_model", "weights_only=True"),
    "attack_drop_keys_train": ("load_checkpoint", "incomplete result for `load_checkpoint` (missing `weights_only`)"),
}
MODELS = {"correct": "trained", "model_too_weak": "untrained16", "model_pickled": "pickled16"}


# ================================================================ building
def build(spec) -> dict:
    release = json.loads((ROOT / "assignments" / A4 / f"{A4}.ipynb").read_text())
    sol = solution_code(A4)
    nb = copy.deepcopy(release)
    for c in nb["cells"]:
        nbg = c["metadata"].get("nbgrader", {})
        gid = nbg.get("grade_id")
        if not nbg.get("solution") or gid not in spec["functions"]:
            continue
        fill_solution_cell(c, spec["functions"][gid], sol, gid, CODE)
    for k, src in enumerate(spec.get("extra", ())):  # extra cells at the end (attacks)
        nb["cells"].append(extra_cell(k, src))
    if spec["transform"]:
        spec["transform"](nb)
    return nb


def write_all(out: Path) -> None:
    write_notebooks(out, SAMPLES, f"{A4}.ipynb", build, TOTAL)


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
