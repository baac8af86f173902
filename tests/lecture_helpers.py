"""One experiment result per test module, computed at the ``ci`` budget: the fixtures the lecture tests share."""
import pytest

from course_lib import budget


def ci_result(experiment, *args, **kwargs):
    """A module-scoped fixture whose value is ``experiment(*args, **kwargs)``, run once at the ``ci`` budget.

    A module fixture is set up before conftest's per-test ``ci`` budget is in force, so it sets the budget
    itself (whatever ``$COURSE_BUDGET`` says). Use as ``norms = ci_result(V.gradient_norms, nonlinearity="tanh")``:
    the module attribute's name is the fixture's name."""
    @pytest.fixture(scope="module")
    def fixture():
        with budget.use_budget("ci"):
            return experiment(*args, **kwargs)
    return fixture
