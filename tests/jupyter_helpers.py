"""Plumbing shared by the tests that open pages in headless Chromium or start a Jupyter server."""
from __future__ import annotations

import os
import subprocess
import time
import urllib.request

import pytest

from coursetools import browser


def require_browser():
    """Skip (fail under CI) when headless Chromium cannot run here, saying why."""
    reason = browser.unavailable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {reason}")
        pytest.skip(f"browser test skipped: {reason}")


def wait_until_serving(proc, base: str, token: str, log, what: str = "jupyter server", seconds: float = 120):
    """Return once ``base`` answers ``api/status``; raise RuntimeError with the log's tail if the
    server exits or does not answer within ``seconds``."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}api/status?token={token}", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"{what} did not answer in {seconds:g} s:\n{log.read_text()[-3000:]}")


def stop_server(proc):
    """Terminate, then kill after 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
