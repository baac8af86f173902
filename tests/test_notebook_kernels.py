"""`coursetools.notebooks.execute` leaves no kernel behind, after success and after an error."""
import os
import time

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from coursetools import notebooks


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _record_pids(folder):
    # the kernel writes its own pid and a child's: both must be gone when execute returns
    return (f"import os, subprocess\n"
            f"child = subprocess.Popen(['sleep', '300'])\n"
            f"open({str(folder / 'pids')!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')")


def _pids(folder):
    return [int(p) for p in (folder / "pids").read_text().split()]


def _gone(pids, within=5.0):
    deadline = time.monotonic() + within  # the kernel is reaped by execute; its child by init
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(_alive(p) for p in pids)


def test_execute_shuts_its_kernel_down(tmp_path):
    path = _notebook(tmp_path / "ok.ipynb", _record_pids(tmp_path), "print('done')")
    nb, seconds = notebooks.execute(path, timeout=60)
    assert nb.cells[1].outputs[0]["text"].strip() == "done"
    pids = _pids(tmp_path)
    assert pids[0] != os.getpid()
    assert _gone(pids), f"kernel (or its child) still running after execute returned: {pids}"


def test_execute_shuts_its_kernel_down_after_an_error(tmp_path):
    path = _notebook(tmp_path / "bad.ipynb", _record_pids(tmp_path), "raise ValueError('boom')")
    with pytest.raises(CellExecutionError, match="boom"):
        notebooks.execute(path, timeout=60)
    assert _gone(_pids(tmp_path)), "kernel still running after execute raised"
