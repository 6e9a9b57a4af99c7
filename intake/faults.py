"""Crash points for the crash-consistency tests.

`checkpoint("archive")` does nothing unless the environment names that point:
INTAKE_CRASH_AT=archive:3 makes the process SIGKILL itself the third time it passes
"archive". The tests use it to stop `intake poll` at exact places (fetch, archive,
record, parse, commit, send, move) and then prove a clean rerun loses and repeats nothing.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

POINTS = ("fetch", "archive", "record", "parse", "commit", "send", "move")
_passed: Counter[str] = Counter()


def checkpoint(name: str) -> None:
    target = os.environ.get("INTAKE_CRASH_AT")
    if not target:
        return
    point, _, nth = target.partition(":")
    if name != point:
        return
    _passed[name] += 1
    if _passed[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
