"""The GPU check of issue 18: run the tests marked ``cuda`` and measure lecture 7 on a CUDA machine.

    bash scripts/gpu_check.sh OUTDIR                      # make setup (the README's), then this script
    .venv/bin/python scripts/gpu_check.py OUTDIR [--dry-run] [--skip STEP ...] [--budget-s 450]

Steps, in order (each one's numbers, status and seconds go to ``OUTDIR/gpu_check.json``, one line each
to ``OUTDIR/summary.txt``, logs and raw files beside them; OUTDIR defaults to ``$OUT``):

- ``environment``     torch and its CUDA build, the GPU, cuDNN, bf16 support, the commit;
- ``cuda_tests``      ``pytest -m cuda`` on tests/test_cuda.py and the agreement tests (outcome of each
                      test, and the numbers they record: TF32's effect, the dtype and kernels cuDNN runs
                      under bf16 autocast, fp32 vs bf16 bits per character, ...);
- ``charlm_full``     ``scripts/train_charlm.py --budget full --device cuda``: bits per character,
                      seconds per epoch, tokens per second (lecture 7's language model);
- ``bench_cells``     ``scripts/bench_cells.py --device cuda``: reference loop vs cuDNN, ms per step;
- ``lecture07_default``, ``lecture07_full``   lecture 7 executed end to end (``coursetools.notebooks.execute``,
                      ``COURSE_DEVICE=cuda``): seconds, and every claim it records with its numbers.

``--dry-run`` needs no GPU: every step that needs CUDA is marked ``skipped`` with the reason, and the
same step runs on the CPU at the ``ci`` budget with tiny sizes instead (under ``dry_run_cpu``), so the
whole script is exercised (tests/test_gpu_check.py runs it). Without ``--dry-run`` a machine where
torch sees no GPU fails at ``environment`` and the other steps are skipped, saying so. A step that
would start after ``--budget-s`` seconds is skipped (the check is meant to end within 8 minutes).
Exit status 0 when no step failed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STEPS = ("environment", "cuda_tests", "charlm_full", "bench_cells", "lecture07_default", "lecture07_full")
CUDA_TEST_FILES = ("tests/test_cuda.py", "tests/test_reference_agreement.py", "tests/test_reference_clipping.py")
DRY_REASON = "dry run: no CUDA used; the same step ran on the CPU at the ci budget with tiny sizes (dry_run_cpu)"


def _run(cmd, log: Path, timeout: float, env=None) -> int:
    """Run ``cmd`` (a list) from the repository root, stdout and stderr to ``log``; its exit status
    (124 on timeout). ``env`` is added to this process's environment."""
    with open(log, "w", encoding="utf-8") as f:
        try:
            return subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                                  env={**os.environ, **(env or {})}).returncode
        except subprocess.TimeoutExpired:
            f.write(f"\n[gpu_check] timed out after {timeout:.0f} s\n")
            return 124


def _tail(log: Path, n=1500) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-n:]


def environment(ctx) -> dict:
    """What the machine offers; fails (not in a dry run) when torch sees no GPU, saying why."""
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda_build": torch.version.cuda,
            "cuda_available": torch.cuda.is_available(), "cpu_count": os.cpu_count()}
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                        timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["commit"] = None
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, capability=f"{p.major}.{p.minor}", gpu_memory_gib=round(p.total_memory / 2**30, 1),
                    cudnn=torch.backends.cudnn.version(), bf16_supported=torch.cuda.is_bf16_supported(),
                    cudnn_allow_tf32=torch.backends.cudnn.allow_tf32)
        return {"status": "ok", **info}
    if ctx["dry_run"]:
        return {"status": "ok", **info, "cuda": {"status": "skipped", "reason": "dry run: no GPU needed"}}
    why = (f"torch {torch.__version__} is a CPU-only build: install the CUDA build (on Linux x86_64, "
           "`.venv/bin/pip install --force-reinstall torch==2.13.0` from PyPI is one)"
           if torch.version.cuda is None else
           f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU: check the driver (nvidia-smi)")
    return {"status": "failed", "reason": why, **info}


def cuda_tests(ctx) -> dict:
    """``pytest -m cuda``: each test's outcome (and skip or failure message) and the numbers they record."""
    out = ctx["out"]
    facts, xml, log = out / "cuda_facts.jsonl", out / "cuda_tests.xml", out / "cuda_tests.log"
    facts.unlink(missing_ok=True)
    code = _run([sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "-rs",
                 f"--junitxml={xml}", *CUDA_TEST_FILES], log, timeout=480 if not ctx["dry_run"] else 120,
                env={"COURSE_GPU_FACTS": str(facts)})
    tests = {}
    if xml.exists():
        for case in ET.parse(xml).getroot().iter("testcase"):
            name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
            tests[name] = {"outcome": "passed", "seconds": float(case.get("time", 0))}
            for tag in ("failure", "error", "skipped"):
                el = case.find(tag)
                if el is not None:
                    tests[name].update(outcome={"failure": "failed"}.get(tag, tag),
                                       message=(el.get("message") or el.text or "")[:600])
    counts = {k: sum(t["outcome"] == k for t in tests.values()) for k in ("passed", "failed", "error", "skipped")}
    numbers = [json.loads(l) for l in facts.read_text().splitlines() if l.strip()] if facts.exists() else []
    res = {"exit_code": code, "counts": counts, "tests": tests, "facts": numbers, "log": log.name}
    if not tests:
        return {"status": "failed", "reason": f"pytest collected nothing (exit {code}): {_tail(log, 600)}", **res}
    if counts["failed"] or counts["error"] or code not in (0, 5):
        return {"status": "failed", "reason": f"{counts['failed'] + counts['error']} cuda test(s) failed", **res}
    if counts["skipped"]:
        reasons = sorted({t.get("message", "") for t in tests.values() if t["outcome"] == "skipped"})
        status = "skipped" if ctx["dry_run"] or not counts["passed"] else "failed"
        return {"status": status, "reason": f"{counts['skipped']} cuda test(s) skipped: " + "; ".join(reasons), **res}
    return {"status": "ok", **res}


def charlm_full(ctx) -> dict:
    """Lecture 7's language model at the full budget on CUDA (dry run: one epoch at ci on the CPU)."""
    out = ctx["out"]
    js, log = out / "charlm.json", out / "charlm.log"
    args = (["--budget", "ci", "--device", "cpu", "--epochs", "1", "--threads", "1"] if ctx["dry_run"]
            else ["--budget", "full", "--device", "cuda"])
    code = _run([sys.executable, "scripts/train_charlm.py", *args, "--json", str(js)], log,
                timeout=420 if not ctx["dry_run"] else 120)
    if not js.exists():
        return {"status": "failed", "reason": f"train_charlm.py exit {code}: {_tail(log, 800)}", "log": log.name}
    r = json.loads(js.read_text())
    keep = {k: r[k] for k in ("final_val_bpc", "val_bpc_reset", "unigram_bpc", "seconds_per_epoch",
                              "tokens_per_second", "train_seconds", "eval_seconds", "steps", "epochs",
                              "clip_fraction", "settings", "val_curve")}
    keep.update(exit_code=code, device=r["device_info"]["device"], args=args, log=log.name)
    return {"status": "ok" if code == 0 else "failed", **({} if code == 0 else {"reason": "bpc not below unigram"}),
            **keep}


def bench_cells(ctx) -> dict:
    """``scripts/bench_cells.py``: the from-scratch loop against the fused layers, ms per step."""
    out = ctx["out"]
    js, log = out / "bench_cells.json", out / "bench_cells.log"
    args = (["--device", "cpu", "--hidden", "16", "--batch", "4", "--seq", "5", "--repeats", "1"] if ctx["dry_run"]
            else ["--device", "cuda"])
    code = _run([sys.executable, "scripts/bench_cells.py", *args, "--json", str(js)], log,
                timeout=300 if not ctx["dry_run"] else 60)
    if code != 0 or not js.exists():
        return {"status": "failed", "reason": f"bench_cells.py exit {code}: {_tail(log, 800)}", "log": log.name}
    table = [l for l in log.read_text().splitlines() if l.startswith("|")]
    return {"status": "ok", "args": args, **json.loads(js.read_text()), "table": table, "log": log.name}


def _lecture07(ctx, budget: str) -> dict:
    import nbformat

    from course_lib import report
    from coursetools import notebooks

    out = ctx["out"]
    path = ROOT / "lectures" / "07_training_on_a_gpu.ipynb"
    folder = out / f"lecture07_{budget}"
    device = "cpu" if ctx["dry_run"] else "cuda"
    try:
        nb, seconds = notebooks.execute(path, budget=budget, timeout=600, output_dir=folder,
                                        extra_env={"COURSE_DEVICE": device})
    except Exception as exc:  # noqa: BLE001 - the error (failing cell) is the result
        return {"status": "failed", "reason": f"{type(exc).__name__}: {str(exc)[-1500:]}", "budget": budget}
    nbformat.write(nb, str(folder / path.name))
    claims = report.read_claims(folder)
    failing = [c["claim"] for c in claims if not c["holds"]]
    return {"status": "failed" if failing else "ok", **({"reason": f"claims not holding: {failing}"} if failing else {}),
            "budget": budget, "device": device, "seconds": seconds, "claims": claims,
            "notebook": str((folder / path.name).relative_to(out))}


def lecture07_default(ctx) -> dict:
    """Lecture 7 end to end at the default budget (dry run: at ci on the CPU)."""
    return _lecture07(ctx, "ci" if ctx["dry_run"] else "default")


def lecture07_full(ctx) -> dict:
    """Lecture 7 end to end at the full budget (dry run: nothing more; lecture07_default ran it at ci)."""
    if ctx["dry_run"]:
        return {"status": "skipped", "reason": "dry run: no CUDA; lecture 7 ran once at the ci budget on the CPU "
                                               "(lecture07_default's dry_run_cpu)"}
    return _lecture07(ctx, "full")


def summary_lines(result: dict) -> list[str]:
    """One line per step: status, seconds, the numbers that matter or the reason."""
    lines = [f"GPU check ({'DRY RUN, no CUDA' if result['dry_run'] else 'CUDA'}), {result['started']}, "
             f"{result['seconds']:.0f} s in all; JSON: gpu_check.json"]
    for name, s in result["steps"].items():
        cpu = s.get("dry_run_cpu") or {}
        r = s if s["status"] != "skipped" or not cpu else cpu
        extra = []
        if name == "environment":
            extra = [f"torch {s.get('torch')} (CUDA build {s.get('torch_cuda_build')})", f"gpu {s.get('gpu')}",
                     f"cuDNN {s.get('cudnn')}"]
        elif name == "cuda_tests" and "counts" in r:
            extra = [", ".join(f"{k} {v}" for k, v in r["counts"].items())]
        elif name == "charlm_full" and "final_val_bpc" in r:
            extra = [f"{r['final_val_bpc']:.3f} bits/char (unigram {r['unigram_bpc']:.3f})",
                     f"{r['seconds_per_epoch']:.2f} s/epoch", f"{r['tokens_per_second']:,.0f} tokens/s on {r['device']}"]
        elif name.startswith("lecture07") and "claims" in r:
            extra = [f"{r['seconds']:.0f} s at {r['budget']} on {r['device']}", f"{len(r['claims'])} claims"]
        elif name == "bench_cells" and "table" in r:
            extra = [f"{len(r['table']) - 2} rows (bench_cells.log)"]
        status = s["status"] + (f" (CPU stand-in: {cpu['status']})" if cpu else "")
        why = f" -- {s['reason']}" if s.get("reason") else ""
        lines.append(f"{name:18s} {status:28s} {s.get('seconds', 0):6.1f} s  " + "; ".join(extra) + why[:400])
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=os.environ.get("OUT"), help="output folder (default $OUT)")
    ap.add_argument("--dry-run", action="store_true", help="no CUDA: skip what needs it, run the rest on the CPU")
    ap.add_argument("--skip", nargs="*", default=[], choices=STEPS, help="steps to leave out")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="skip the steps that would start later than this (default 450, dry run 120)")
    args = ap.parse_args(argv)
    if args.dry_run:  # hide any GPU from the steps' subprocesses: a dry run is the same on every machine
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if not args.out:
        ap.error("give an output folder (or set $OUT)")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    budget_s = args.budget_s if args.budget_s is not None else (120.0 if args.dry_run else 450.0)
    ctx = {"out": out, "dry_run": args.dry_run}
    result = {"dry_run": args.dry_run, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "seconds": 0.0, "steps": {}}
    t_start = time.perf_counter()
    no_cuda = None
    for name in STEPS:
        t0 = time.perf_counter()
        if name in args.skip:
            step = {"status": "skipped", "reason": "left out with --skip"}
        elif t0 - t_start > budget_s:
            step = {"status": "skipped", "reason": f"past the time budget ({budget_s:.0f} s, --budget-s)"}
        elif no_cuda and name != "environment":
            step = {"status": "skipped", "reason": f"no CUDA: {no_cuda}"}
        else:
            try:
                step = globals()[name](ctx)
            except Exception as exc:  # noqa: BLE001 - one broken step must not hide the others
                step = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}",
                        "traceback": traceback.format_exc()[-3000:]}
            if args.dry_run and name != "environment" and step["status"] != "skipped":
                step = {"status": "skipped", "reason": DRY_REASON, "dry_run_cpu": step}
        if name == "environment" and step["status"] == "failed":
            no_cuda = step["reason"]
        step["seconds"] = time.perf_counter() - t0
        result["steps"][name] = step
        result["seconds"] = time.perf_counter() - t_start
        (out / "gpu_check.json").write_text(json.dumps(result, indent=1, default=str))  # partial results survive
        print(summary_lines(result)[-1], flush=True)
    lines = summary_lines(result)
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print(f"\nwrote {out / 'gpu_check.json'} and {out / 'summary.txt'}")
    failed = [n for n, s in result["steps"].items()
              if s["status"] == "failed" or (s.get("dry_run_cpu") or {}).get("status") == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
