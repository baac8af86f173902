"""Forward+backward time of the reference LSTM against nn.LSTM, as ratios measured in one run.

    .venv/bin/python scripts/bench_lstm.py [--threads 1] [--repeats 5] [--device cpu]

Prints a Markdown table (the README quotes it). Medians of ``--repeats`` runs after a warm-up.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn

from course_lib import reference as ref

SIZES = [(32, 50, 64, 128), (64, 200, 128, 256)]  # (batch, seq, input, hidden)


def timed(fn, repeats, device):
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, {args.threads} thread(s), median of {args.repeats}")
    print("| B | T | I | H | nn.LSTM fwd+bwd (ms) | reference fwd+bwd (ms) | ratio |")
    print("|---|---|---|---|---|---|---|")
    for B, T, I, H in SIZES:
        torch.manual_seed(0)
        lstm = nn.LSTM(I, H, batch_first=True).to(device)
        w = ref.weights_from_module(lstm)[0]
        x = torch.randn(B, T, I, device=device)

        def torch_step():
            out, _ = lstm(x)
            out.sum().backward()

        def ref_step():
            out, _ = ref.run_rnn(x, w, "lstm")
            out.sum().backward()

        t_torch = timed(torch_step, args.repeats, device)
        t_ref = timed(ref_step, args.repeats, device)
        print(f"| {B} | {T} | {I} | {H} | {1e3 * t_torch:.1f} | {1e3 * t_ref:.1f} | {t_ref / t_torch:.2f}x |")


if __name__ == "__main__":
    main()
