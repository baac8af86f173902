"""Test-wide settings: one torch thread, the ``ci`` budget, a headless matplotlib."""
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
