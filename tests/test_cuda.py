"""The GPU path (issue 18): training, checkpoints, bf16 autocast, assignment 4 and grading on CUDA.

Every test here is marked ``cuda`` and skips, saying why, on a machine without a GPU (``conftest.py``);
``scripts/gpu_check.sh`` runs them on one. The agreement of every reference function with ``torch.nn``
on CUDA lives beside its CPU twin (``test_reference_agreement.py``, ``test_reference_clipping.py``,
parametrised by device). Numbers worth keeping go to the ``facts`` fixture: ``scripts/gpu_check.py``
collects them (``$COURSE_GPU_FACTS``, JSON lines) into its JSON file.
"""
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from course_lib import tasks
from coursetools import notebooks
from course_lib.experiments import gpu_training as G
from course_lib.models import CarryState, CharLM
from course_lib.reference import training as R
from course_lib.train import bits_per_char, cross_entropy, load_checkpoint, save_checkpoint, train
from test_train import linear, params_of, regression_batches

pytestmark = pytest.mark.cuda
ROOT = Path(__file__).resolve().parents[1]
A4 = "04_training_with_clipping"


@pytest.fixture
def facts(request):
    """A dict the test fills with numbers; appended to ``$COURSE_GPU_FACTS`` (when set) as one JSON line."""
    out = {}
    yield out
    path = os.environ.get("COURSE_GPU_FACTS")
    if path and out:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"test": request.node.name, **out}, default=str) + "\n")


# ------------------------------------------------------------------ what cuDNN runs
def test_cudnn_lstm_float32_with_and_without_tf32(facts):
    """cuDNN's LSTM in float32: how far TF32 (on by default) and strict float32 are from a float64 run."""
    torch.manual_seed(0)
    m = nn.LSTM(64, 128, batch_first=True)
    x = torch.randn(16, 50, 64)
    exact = m.double()(x.double())[0]
    m = m.float().cuda()
    diffs = {}
    for tf32 in (True, False):
        old = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = tf32
        try:
            diffs[tf32] = float((m(x.cuda())[0].double().cpu() - exact).abs().max())
        finally:
            torch.backends.cudnn.allow_tf32 = old
    facts.update(tf32_default=torch.backends.cudnn.allow_tf32, max_diff_tf32=diffs[True],
                 max_diff_strict_fp32=diffs[False], gpu=torch.cuda.get_device_name())
    assert diffs[False] <= 1e-5 and diffs[True] <= 1e-2


def test_bf16_autocast_lstm_dtype_and_kernels(facts):
    """Lecture 7's caveat, measured: under bf16 autocast, which dtype the cuDNN LSTM returns and which
    kernels run (profiler names), and the lecture's float32 vs bf16 comparison on this GPU."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    lm = CharLM(80, hidden=128).cuda()
    x = torch.randint(0, 80, (32, 64), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        emb = lm.embedding(x)
        out, (h, c) = lm.rnn(emb)
        logits = lm.head(out)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(lm(x)[0].flatten(0, 1).float(), x.flatten())
        loss.backward()
        torch.cuda.synchronize()
    kernels = sorted({e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA})
    rnn_kernels = [k for k in kernels if any(w in k.lower() for w in ("rnn", "lstm", "cudnn", "elemwise"))]
    facts.update(embedding_dtype=str(emb.dtype), lstm_output_dtype=str(out.dtype), lstm_state_dtype=str(h.dtype),
                 logits_dtype=str(logits.dtype), cudnn_version=torch.backends.cudnn.version(),
                 rnn_kernels=rnn_kernels[:40], n_kernels=len(kernels), kernels=kernels[:80])
    assert out.dtype in (torch.float16, torch.bfloat16)  # the LSTM does run in a 16-bit type
    assert math.isfinite(float(loss)) and kernels
    prec = G.precision_compare(steps=60, device="cuda")
    facts.update(fp32_val_bpc=prec["fp32"]["val_bpc"], bf16_val_bpc=prec["bf16"]["val_bpc"],
                 bpc_gap=prec["bpc_gap"], bf16_speedup=prec["speedup"], auto_precision=prec["auto_precision"],
                 fp32_ms_per_step=1e3 * prec["fp32"]["seconds_per_step"],
                 bf16_ms_per_step=1e3 * prec["bf16"]["seconds_per_step"])
    assert prec["bf16_supported"] and abs(prec["bpc_gap"]) < 0.1


# ------------------------------------------------------------------ course_lib.train on CUDA
def test_train_on_cuda_clips_checkpoints_and_recovers_from_nan(tmp_path, facts):
    """As test_train.py's NaN and clipping tests, on CUDA, and the same losses as on the CPU."""
    runs = {}
    for dev in ("cpu", "cuda"):
        model = linear()
        h = train(model, regression_batches(nan_at=13), "mse", steps=80, lr=0.05, optimizer="sgd", clip=5.0,
                  checkpoint_every=5, checkpoint_dir=tmp_path / dev, device=dev, progress=False)
        runs[dev] = (model, h)
    model, h = runs["cuda"]
    assert next(model.parameters()).device.type == "cuda"
    [bad], [restored], [lr] = h.events_of("nonfinite"), h.events_of("restored"), h.events_of("lr")
    assert bad["step"] == 13 and restored["from_step"] == 10 and lr["new"] == pytest.approx(0.025)
    assert h.clipped[0] and not h.stopped and torch.isfinite(params_of(model)).all()
    assert h.final_loss < 0.05 * h.loss[0]
    cpu_loss, cuda_loss = runs["cpu"][1].loss, h.loss
    finite = [(a, b) for a, b in zip(cpu_loss, cuda_loss) if math.isfinite(a)]
    rel = max(abs(a - b) / max(abs(a), 1e-12) for a, b in finite)
    facts.update(max_rel_loss_diff_cpu_vs_cuda=rel, events=[e["kind"] for e in h.events])
    assert rel < 1e-3


def test_exact_resume_on_cuda(tmp_path):
    kwargs = dict(lr=0.01, checkpoint_every=4, progress=False, seed=3, device="cuda")
    full = train(linear(), regression_batches(), "mse", steps=20, **kwargs)
    first = train(linear(), regression_batches(), "mse", steps=10, checkpoint_dir=tmp_path, **kwargs)
    assert first.loss == full.loss[:10]
    resumed = train(linear(seed=7), regression_batches(), "mse", steps=20, resume=tmp_path / "checkpoint.pt",
                    **kwargs)
    assert resumed.loss == full.loss


def test_checkpoints_saved_on_cuda_load_on_cpu_and_back(tmp_path):
    # course_lib.train's checkpoints (weights, Adam state, random states)
    model = linear().cuda()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(2, 4, device="cuda")).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "gpu.pt", model, opt, step=3)
    cpu_model = linear(seed=5)
    cpu_opt = torch.optim.Adam(cpu_model.parameters(), lr=0.1)
    assert load_checkpoint(path, cpu_model, cpu_opt)["step"] == 3
    assert torch.equal(params_of(cpu_model), params_of(model).cpu())
    assert cpu_opt.state_dict()["state"][0]["exp_avg"].device.type == "cpu"
    back = save_checkpoint(tmp_path / "cpu.pt", cpu_model, cpu_opt, step=4)
    gpu_model = linear(seed=6).cuda()
    gpu_opt = torch.optim.Adam(gpu_model.parameters(), lr=0.1)
    load_checkpoint(back, gpu_model, gpu_opt)
    assert torch.equal(params_of(gpu_model), params_of(model))
    assert gpu_opt.state_dict()["state"][0]["exp_avg"].device.type == "cuda"
    # assignment 4's checkpoints (reference solution): carried LSTM state included, weights_only
    lm = CharLM(30, hidden=16).cuda()
    opt = torch.optim.Adam(lm.parameters(), lr=0.01)
    x = torch.randint(0, 30, (4, 8))
    _, _, state = R.train_step(lm, x, x, None, opt, 1.0)
    assert state[0].device.type == "cuda"
    R.save_checkpoint(tmp_path / "a4.pt", lm, opt, 1, state)
    torch.load(tmp_path / "a4.pt", weights_only=True, map_location="cpu")
    lm_cpu = CharLM(30, hidden=16)
    step, state_cpu = R.load_checkpoint(tmp_path / "a4.pt", lm_cpu, torch.optim.Adam(lm_cpu.parameters()))
    assert step == 1 and state_cpu[0].device.type == "cpu" and torch.equal(state_cpu[0], state[0].cpu())


def test_char_lm_trains_on_cuda(facts):
    """test_train.py's char-LM test on CUDA, with bf16 autocast (train's ``amp``) as well."""
    corpus = tasks.load_corpus("fortunes", max_chars=30_000)
    for amp in (False, True):
        torch.manual_seed(0)
        lm = CharLM(len(corpus.vocab), hidden=48)
        t0 = time.perf_counter()
        train(CarryState(lm), corpus.batch_fn(16, 32), lambda out, y: cross_entropy(out, y), steps=80, lr=0.01,
              progress=False, device="cuda", amp=amp, clip=0.25)
        torch.cuda.synchronize()
        after = bits_per_char(lm, corpus.val_ids, 8, 32, max_batches=5)
        facts[f"bpc_amp_{amp}"], facts[f"seconds_amp_{amp}"] = after, time.perf_counter() - t0
        assert next(lm.parameters()).dtype == torch.float32
        assert after < tasks.unigram_bits_per_char(corpus), (amp, after)


# ------------------------------------------------------------------ assignment 4 and grading
@pytest.mark.slow
def test_assignment4_solution_trains_on_cuda(tmp_path, facts):
    """The solution notebook at the ci budget with ``COURSE_DEVICE=cuda``: it trains there and its checks pass."""
    shutil.copy(ROOT / "solutions" / A4 / f"{A4}.ipynb", tmp_path)
    nb, seconds = notebooks.execute(tmp_path / f"{A4}.ipynb", budget="ci", timeout=300,
                                    extra_env={"COURSE_DEVICE": "cuda"})
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream")
    facts.update(seconds=seconds, saved_line=[l for l in text.splitlines() if l.startswith("saved ")])
    assert " on cuda" in text, "the solution did not train on the GPU"
    assert text.count("checks passed") >= 6 and "load_model: your model reaches" in text


@pytest.mark.slow
def test_grading_with_course_device_cuda_says_cpu_only_and_grades(tmp_path, facts):
    """``COURSE_DEVICE=cuda python -m autograder grade``: says grading is CPU-only, and grades a solution
    whose ``charlm.pt`` holds CUDA tensors (saved straight from a GPU model) with full marks."""
    from autograder import __main__ as cli
    from autograder.samples import make_samples_train as samples

    subs = tmp_path / "subs" / "gpu_student"
    subs.mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / A4 / f"{A4}.ipynb", subs)
    sd = torch.load(ROOT / "autograder" / "samples" / A4 / "correct" / "charlm.pt", weights_only=True)
    torch.save({k: v.cuda() for k, v in sd.items()}, subs / "charlm.pt")
    env = dict(os.environ, COURSE_DEVICE="cuda", AUTOGRADER_STATE_DIR=str(tmp_path / "state"),
               AUTOGRADER_SECRET="gpu-check")
    env.pop("NBGRADER_DB_URL", None)
    out_csv = tmp_path / "grades.csv"
    r = subprocess.run([sys.executable, "-m", "autograder", "grade", A4, str(subs.parent), "--workers", "1",
                        "--out", str(out_csv)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout + r.stderr
    assert cli.CPU_ONLY.format(device="cuda") in r.stdout
    [row] = list(csv.DictReader(out_csv.open()))
    facts.update(score=row["score"], status=row["status"], detail=row["detail"][:300])
    assert (float(row["score"]), row["status"]) == (float(samples.TOTAL), "ok"), row
