"""Settings of the grading command: where things live and the limits each submission runs under.

Paths follow ``nbgrader_config.py`` (read by nbgrader from the repository root). Limits can be
overridden by environment variables ``AUTOGRADER_<FIELD>`` (e.g. ``AUTOGRADER_CELL_TIMEOUT=10``)
or by the command's options.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .sandbox import Limits

ROOT = Path(__file__).resolve().parents[1]
GRADER_VERSION = "3"  # bump to invalidate every stored result (2: intake and nbgrader metadata rebuilt; 3: auto_score, auto_max, timestamp stored)


def state_dir() -> Path:
    return Path(os.environ.get("AUTOGRADER_STATE_DIR") or ROOT / "autograder")


def _folder(base: str, name: str, doc: str) -> property:
    """A read-only path property: folder ``name`` under the config's ``base`` (``state`` or ``root``)."""
    return property(lambda self: getattr(self, base) / name, doc=doc)


@dataclasses.dataclass
class Config:
    root: Path = ROOT
    limits: Limits = dataclasses.field(default_factory=Limits)
    workers: int = max(1, min(os.cpu_count() or 1, 8))
    scheduler: str | None = None  # a Dask scheduler's address (--scheduler): grade on that cluster (distributed.py)

    @property
    def state(self) -> Path:
        """Gradebook, submitted/autograded/feedback folders, runs: ``$AUTOGRADER_STATE_DIR`` or autograder/."""
        return state_dir()

    runs = _folder("state", "runs", "One stored result per student: runs/<assignment>/<student>.json.")
    submitted = _folder("state", "submitted", "Submissions as nbgrader keeps them: submitted/<student>/<assignment>/.")
    feedback = _folder("state", "feedback", "Feedback pages: feedback/<student>/<assignment>/.")
    release = _folder("root", "assignments", "The released (student) notebooks, as nbgrader's release folder.")
    source = _folder("root", "solutions", "The solution notebooks, as nbgrader's source folder.")


def _flag(name: str, text: str) -> bool:
    """An ``AUTOGRADER_<FIELD>`` switch: 1/true/yes/on or 0/false/no/off; anything else is a ValueError."""
    value = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
    try:
        return value[text.strip().lower()]
    except KeyError:
        raise ValueError(f"AUTOGRADER_{name.upper()}={text!r}: say 1 or 0 (true/false, yes/no, on/off)") from None


def load(**overrides) -> Config:
    limits = Limits()
    for f in dataclasses.fields(Limits):
        env = os.environ.get(f"AUTOGRADER_{f.name.upper()}")
        if env:
            setattr(limits, f.name, _flag(f.name, env) if f.type == "bool" else
                    int(float(env)) if f.type == "int" else float(env))
    for k, v in overrides.items():
        if v is not None and hasattr(limits, k):
            setattr(limits, k, v)
    cfg = Config(limits=limits)
    if overrides.get("workers"):
        cfg.workers = int(overrides["workers"])
    cfg.scheduler = overrides.get("scheduler") or None
    return cfg
