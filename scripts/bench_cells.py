"""Time per step of the tanh RNN, the LSTM and the GRU: fused PyTorch layers and from-scratch loops.

    .venv/bin/python scripts/bench_cells.py [--threads 1] [--repeats 7] [--hidden 64 128 256 512]
                                            [--batch 64] [--seq 50] [--input 64] [--device cpu cuda]
                                            [--json out.json]

Forward + backward time of one batch divided by the sequence length (ms per step), median of
``--repeats`` runs after a warm-up, measured by ``course_lib.experiments.gru.time_per_step`` (the
function lecture 4 calls). Runs on the CPU, and on CUDA too when a GPU is present (``--device``
picks). Prints a Markdown table with GRU/LSTM ratios. Speed depends on the machine and its load:
say which machine and how loaded it was when you quote these numbers. ``--json`` also writes
the measurements (one ``time_per_step`` result per device) to a file (``scripts/gpu_check.py`` reads it).
"""
from __future__ import annotations

import argparse
import json
import os

import torch

from course_lib.experiments.gru import CELLS, time_per_step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 128, 256, 512])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=50)
    ap.add_argument("--input", type=int, default=64)
    ap.add_argument("--device", nargs="+", default=None,
                    help="devices to time (default: cpu, and cuda when available)")
    ap.add_argument("--no-loop", action="store_true", help="time the fused layers only")
    ap.add_argument("--json", default=None, help="also write the measurements to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    impls = ("fused",) if args.no_loop else ("fused", "loop")
    try:
        load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "n/a"
    print(f"torch {torch.__version__}, {args.threads} thread(s), load average {load}, "
          f"batch {args.batch}, T {args.seq}, input {args.input}, median of {args.repeats}\n")
    print("| device | implementation | H | " + " | ".join(f"{c.upper()} ms/step" for c in CELLS)
          + " | GRU / LSTM |")
    print("|---|---|---|" + "---|" * len(CELLS) + "---|")
    results = []
    for dev in devices:
        r = time_per_step(hidden=args.hidden, batch=args.batch, T=args.seq, input_size=args.input,
                          repeats=args.repeats, device=dev, implementations=impls)
        results.append(r)
        for impl in impls:
            ms = r["ms_per_step"][impl]
            for j, H in enumerate(r["hidden"]):
                cells = " | ".join(f"{ms[c][j]:.4g}" for c in CELLS)
                print(f"| {r['device_name']} | {'nn.' if impl == 'fused' else 'loop'} | {H} | {cells} | "
                      f"{ms['gru'][j] / ms['lstm'][j]:.2f} |")
    if args.json:
        meta = {"torch": torch.__version__, "threads": args.threads, "load_average": load, "batch": args.batch,
                "seq": args.seq, "input": args.input, "repeats": args.repeats}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"settings": meta, "results": results}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
