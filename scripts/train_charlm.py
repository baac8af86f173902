"""Train lecture 7's character-level language model and print what a GPU run is judged by.

    .venv/bin/python scripts/train_charlm.py [--budget full] [--device auto] [--precision auto]
                                             [--epochs N] [--threads 1] [--json out.json]

Same code as the lecture (``course_lib.experiments.gpu_training.train_charlm``); the budget picks
the sizes (``ci``: 300k characters, H = 128, 2 epochs, seconds on a CPU; ``default``: the whole
corpus, 2 epochs, about a minute on a CPU; ``full``: the whole corpus, H = 512, batch 128,
sequence 128, 20 epochs, lr 3e-3, meant for a GPU). Prints the device, time per epoch (training only,
validation excluded), tokens per second, and validation bits per character against the unigram
model, then a sample. Exit status 0 when the run ended with a finite loss below the unigram model.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib import budget  # noqa: E402
from course_lib.train import pick_device  # noqa: E402
from course_lib.experiments import gpu_training as G  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", default="full", choices=budget.LEVELS)
    ap.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    ap.add_argument("--precision", default="auto", choices=G.PRECISIONS,
                    help="auto: bf16 autocast on a GPU that has it, float32 elsewhere")
    ap.add_argument("--epochs", type=int, default=None, help="override the budget's number of epochs")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-dir", default=None, help="also write checkpoints here")
    ap.add_argument("--json", default=None, help="write the numbers to this file")
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    budget.set_budget(args.budget)
    device = pick_device(args.device)

    info = G.device_summary(device)
    print(f"device {info['device']}" + (f" ({info['gpu']}, cuDNN {info['cudnn']})" if info["gpu"] else "")
          + f", torch {info['torch']}, {info['threads']} CPU thread(s), budget {args.budget}", flush=True)
    r = G.train_charlm(epochs=args.epochs, device=device, precision=args.precision, seed=args.seed,
                       checkpoint_dir=args.checkpoint_dir, log_every=None)
    s = r["settings"]
    print(f"model {s['cell'].upper()} H={s['hidden']} ({s['parameters']:,} parameters), precision {s['precision']}, "
          f"batch {s['batch_size']} x {s['seq_len']} characters, lr {s['lr']:g}, clip {s['clip']}")
    print(f"data {s['train_chars']:,} training / {s['val_chars']:,} validation characters, "
          f"{r['steps_per_epoch']} steps per epoch, {r['epochs']} epochs")
    print(f"time per epoch      {r['seconds_per_epoch']:.2f} s  (training only; validation took "
          f"{r['eval_seconds']:.1f} s in all)")
    print(f"tokens per second   {r['tokens_per_second']:,.0f}")
    print(f"validation bpc      {r['final_val_bpc']:.3f}  (unigram {r['unigram_bpc']:.3f}, uniform "
          f"{r['uniform_bpc']:.3f}; state reset every {s['seq_len']} chars: {r['val_bpc_reset']:.3f})")
    recoveries = sum(e["kind"] == "restored" for e in r["events"])
    print(f"clipped steps       {100 * r['clip_fraction']:.1f}%   NaN recoveries {recoveries}")
    print(f"sample (T=0.5)      {r['samples'][0.5][:200]!r}")
    if args.json:
        keep = {k: r[k] for k in ("steps", "steps_per_epoch", "epochs", "final_val_bpc", "val_bpc_reset",
                                  "unigram_bpc", "uniform_bpc", "seconds_per_epoch", "tokens_per_second",
                                  "train_seconds", "eval_seconds", "clip_fraction", "settings", "samples")}
        keep["device_info"] = info
        keep["val_curve"] = [[int(a), float(b)] for a, b in zip(r["eval_steps"], r["val_bpc"])]
        Path(args.json).write_text(json.dumps(keep, indent=1, default=str))
    ok = math.isfinite(r["final_val_bpc"]) and r["final_val_bpc"] < r["unigram_bpc"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
