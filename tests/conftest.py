"""Test-wide settings: one torch thread, the ``ci`` budget, a headless matplotlib; ``cuda`` tests skip
without a GPU."""
import os

os.environ.setdefault("COURSE_BUDGET", "ci")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_and_budget():
    from course_lib import budget

    torch.manual_seed(0)
    with budget.use_budget("ci"):
        yield


CUDA_SKIP_REASON = ("needs a CUDA GPU: torch.cuda.is_available() is False here (a GPU check is run with "
                    "`bash scripts/gpu_check.sh OUTDIR` on a machine that has one)")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip with :data:`CUDA_SKIP_REASON` on a machine without a GPU (never pass)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=CUDA_SKIP_REASON)
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
