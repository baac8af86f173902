"""The gradebook's database: sqlite (the default, one machine) or PostgreSQL (a large class, many machines).

``NBGRADER_DB_URL`` (read by ``nbgrader_config.py``) chooses it, e.g.
``postgresql+psycopg://grader:secret@db.example.org/fancy_rnns`` (psycopg 3 through SQLAlchemy, as nbgrader
itself connects). The locks the grading command takes follow the database:

- sqlite: files under the state dir (one machine): ``.gradebook.lock`` around every write;
- PostgreSQL: advisory locks in the server, so they hold across machines: a transaction-level lock per
  (assignment, student) around that student's bookkeeping (different students in parallel), a session
  lock per assignment for a whole grading run, and one around creating the schema.

Every engine made here uses ``NullPool`` (a connection lives as long as its lock and is closed with it);
nbgrader's own ``Gradebook`` disposes of its engine when closed.
"""
from __future__ import annotations

import contextlib
import fcntl
import time
from pathlib import Path

CONNECT_TIMEOUT = 5  # seconds to reach the database before the command gives up, saying why


def db_url() -> str:
    """The gradebook's URL as nbgrader sees it (``nbgrader_config.py``: ``$NBGRADER_DB_URL`` or the sqlite file)."""
    from traitlets.config.loader import PyFileConfigLoader

    from . import config

    return PyFileConfigLoader("nbgrader_config.py", path=str(config.ROOT)).load_config().CourseDirectory.db_url


def alembic_head() -> str:
    """The revision nbgrader stamps a new gradebook with: the first head of nbgrader's own migrations
    (``nbgrader/alembic``), as ``alembic heads`` prints it. ``nbgrader.api.get_alembic_version`` ran that
    command in a subprocess (a whole interpreter, about 2 s) every time a gradebook was created; this reads
    the same migration scripts in-process. Installed in its place by ``autograder.nbgrader_plugin``."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    cfg = Config()
    cfg.set_main_option("script_location", ALEMBIC_DIR)
    script = ScriptDirectory.from_config(cfg)
    return script.get_revisions(script.get_heads())[0].revision


def is_postgres(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def shown(url: str) -> str:
    """``url`` without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def engine(url: str):
    """A SQLAlchemy engine without a pool (each connection is closed when released) and a connect timeout."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT})


class DatabaseDown(RuntimeError):
    """The gradebook's database cannot be reached: the message says which (no password) and why."""


def _down(url: str, exc: Exception) -> DatabaseDown:
    why = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return DatabaseDown(f"cannot reach the gradebook database {shown(url)} (NBGRADER_DB_URL) within "
                        f"{CONNECT_TIMEOUT} s: {why[0] if why else type(exc).__name__}. Start the database server "
                        "or fix the URL; nothing was graded or written")


@contextlib.contextmanager
def connection(url: str):
    """A connection of its own to ``url`` inside a transaction (committed on success).
    Raises :class:`DatabaseDown` when the server cannot be reached."""
    import sqlalchemy.exc

    eng = engine(url)
    try:
        try:
            conn = eng.connect()
        except sqlalchemy.exc.OperationalError as exc:
            raise _down(url, exc) from None
        with conn, conn.begin():
            yield conn
    finally:
        eng.dispose()


def check(url: str) -> None:
    """For a command about to grade: raise ``SystemExit`` (the message of :class:`DatabaseDown`) unless a
    PostgreSQL ``url`` answers within :data:`CONNECT_TIMEOUT` seconds (sqlite: nothing to check)."""
    if is_postgres(url):
        from sqlalchemy import text

        try:
            with connection(url) as conn:
                conn.execute(text("SELECT 1"))
        except DatabaseDown as exc:
            raise SystemExit(str(exc)) from None


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive ``flock`` on ``path`` (created) for the block: one process of this machine at a time."""
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _xact_lock(conn, key: str) -> None:
    from sqlalchemy import text

    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})


@contextlib.contextmanager
def bookkeeping_lock(url: str, assignment: str, student: str, lock_file: Path):
    """Held around one student's nbgrader bookkeeping (autograde, the gradebook's scores).

    PostgreSQL: a transaction-level advisory lock on (assignment, student), on a connection of its own,
    so two machines never write the same student's rows at once and other students go on in parallel.
    sqlite: the host-wide ``lock_file``. Raises :class:`DatabaseDown` when PostgreSQL cannot be reached."""
    if not is_postgres(url):
        with file_lock(lock_file):
            yield
        return
    with connection(url) as conn:
        _xact_lock(conn, f"autograder:student:{assignment}:{student}")
        yield


@contextlib.contextmanager
def schema_lock(url: str, lock_file: Path):
    """Held while the gradebook's schema, course and assignment rows are created (one creator at a time,
    on any machine with PostgreSQL). Raises :class:`DatabaseDown` when PostgreSQL cannot be reached."""
    with file_lock(lock_file):
        if not is_postgres(url):
            yield
            return
        with connection(url) as conn:
            _xact_lock(conn, "autograder:schema")
            yield


@contextlib.contextmanager
def run_lock(url: str, assignment: str, wait: float, log=print, poll: float = 0.5):
    """Held for a whole grading run of ``assignment`` when the gradebook is PostgreSQL: a session advisory
    lock, so two grading commands on two machines never grade one class at once (with sqlite the run's
    file lock is enough: nothing here). A second run waits at most ``wait`` seconds, saying so, then
    raises ``SystemExit``, as it does when the server cannot be reached."""
    if not is_postgres(url):
        yield
        return
    check(url)
    from sqlalchemy import text

    key = f"autograder:run:{assignment}"
    with connection(url) as conn:
        def take():
            return conn.execute(text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": key}).scalar()

        if not take():
            log(f"another grading run of {assignment} holds its lock in the gradebook database {shown(url)}: "
                f"waiting for it to finish (at most {wait:g} s)")
            deadline = time.monotonic() + wait
            while not take():
                if time.monotonic() >= deadline:
                    raise SystemExit(f"another grading run of {assignment} (on this or another machine) is still in "
                                     f"progress after {wait:g} s (advisory lock in {shown(url)}): nothing was graded; "
                                     "run again when it has finished")
                time.sleep(poll)
            log(f"the other grading run of {assignment} has finished: grading now")
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": key})
