"""The grader's state moved into a test's temporary folder: one helper for the tests that grade or export."""
from pathlib import Path


def isolate_state(mp, state: Path, secret: str | None = "ci-secret") -> None:
    """Point ``AUTOGRADER_STATE_DIR`` at ``state`` (gradebook, runs, feedback go there), set
    ``AUTOGRADER_SECRET`` (unless ``secret`` is None) and drop ``NBGRADER_DB_URL`` (the gradebook is the state's
    own SQLite file), through the pytest ``MonkeyPatch`` ``mp``, which undoes it."""
    mp.setenv("AUTOGRADER_STATE_DIR", str(state))
    if secret is not None:
        mp.setenv("AUTOGRADER_SECRET", secret)
    mp.delenv("NBGRADER_DB_URL", raising=False)
