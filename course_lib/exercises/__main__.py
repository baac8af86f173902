"""``python -m course_lib.exercises``: write what the specs decide (run from the repository root).

    python -m course_lib.exercises sync [ASSIGNMENT ...]   # solution notebooks' stubs, test cells, points
    python -m course_lib.exercises readme                  # README.md's contract section
    python -m course_lib.exercises check                   # exit 1 when a notebook or the README disagrees

After ``sync``: ``python -m autograder release ASSIGNMENT`` (the student's release) and the sample
generators (``python -m autograder.samples.make_samples_rnn``, ...). ``make exercises`` runs all of it.
"""
from __future__ import annotations

import argparse
import sys

from . import REGISTRY, readme, sync


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m course_lib.exercises", description=__doc__.splitlines()[0])
    ap.add_argument("cmd", choices=["sync", "readme", "check"])
    ap.add_argument("assignments", nargs="*", help="default: every assignment")
    args = ap.parse_args(argv)
    chosen = [REGISTRY[a] for a in args.assignments] if args.assignments else list(REGISTRY.values())
    if args.cmd == "sync":
        for a in chosen:
            print(f"{a.folder}: {'rewritten' if sync.write(a) else 'up to date'}")
        return 0
    if args.cmd == "readme":
        print("README.md: " + ("rewritten" if readme.write(REGISTRY) else "up to date"))
        return 0
    bad = [p for a in chosen for p in sync.problems(a)]
    text = (readme.ROOT / "README.md").read_text()
    if readme.rewritten(text, REGISTRY) != text:
        bad.append("README.md: the contract section differs from the specs (python -m course_lib.exercises readme)")
    print("\n".join(bad) or "notebooks and README agree with the specs")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
