"""Executing the course's notebooks: used by the main job and by the tests.

One function, :func:`execute`, runs a notebook in a fresh kernel at a given budget and returns
the executed notebook, so the tests and the main job execute lectures the same way.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lecture_paths() -> list[Path]:
    """The lecture notebooks in course order (their file names start with the lecture number)."""
    return sorted((ROOT / "lectures").glob("[0-9][0-9]_*.ipynb"))


def execute(path, budget="ci", timeout=600, output_dir=None, extra_env=None):
    """Run ``path`` top to bottom at ``budget`` and return ``(notebook, seconds)``.

    With ``output_dir``, the claims the notebook shows are appended to ``output_dir/claims.jsonl``,
    each tagged with the notebook's stem (see :mod:`course_lib.report`).

    Raises ``nbclient.exceptions.CellExecutionError`` naming the failing cell.
    """
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(str(path), as_version=4)
    env_backup = dict(os.environ)
    os.environ["COURSE_BUDGET"] = budget
    os.environ["COURSE_NOTEBOOK"] = Path(path).stem  # report.record_claim tags each claim with it
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    if output_dir is not None:
        os.environ["COURSE_OUTPUT_DIR"] = str(output_dir)
    os.environ.update(extra_env or {})
    # IPC sockets in a private folder, not TCP ports: two kernels started at the same moment (the
    # test workers, a JupyterLab beside the main job) can race for the same free TCP port, and a
    # message that reaches the wrong kernel leaves the client waiting for ever.
    sockets = tempfile.mkdtemp(prefix="course-kernel-")
    km = client = None
    try:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel"))
        client = NotebookClient(nb, km=km, timeout=timeout,
                                resources={"metadata": {"path": str(Path(path).parent)}})
        t0 = time.perf_counter()
        client.execute()
        return nb, time.perf_counter() - t0
    finally:
        # nbclient shuts down only a kernel manager it created itself: stop this kernel now (also
        # after an error), or each executed notebook leaves a ~450 MB kernel until this process exits
        if km is not None:
            _shutdown(km, client)
        os.environ.clear()
        os.environ.update(env_backup)
        shutil.rmtree(sockets, ignore_errors=True)


def _shutdown(km, client=None) -> None:
    """Stop the client's channels and kill the kernel (its whole process group), waiting for it."""
    try:
        if client is not None and getattr(client, "kc", None) is not None:
            client.kc.stop_channels()
    except Exception:  # noqa: BLE001
        pass
    try:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    except Exception:  # noqa: BLE001 - never hide the notebook's own error behind a cleanup failure
        try:
            km.cleanup_resources()
        except Exception:  # noqa: BLE001
            pass
