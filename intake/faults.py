"""Crash points for the crash-consistency tests.

`checkpoint("archive")` does nothing unless the environment names that point:
INTAKE_CRASH_AT=archive:3 makes the process SIGKILL itself the third time it passes
"archive". The tests use it to stop `intake poll` at exact places (fetch, archive,
record, parse, commit, send, move) and then prove a clean rerun loses and repeats nothing.
"""

from __future__ import annotations

import os
import signal

_TARGET = os.environ.get("INTAKE_CRASH_AT", "")
_POINT, _, _NTH = _TARGET.partition(":")
_seen = 0


def checkpoint(name: str) -> None:
    global _seen  # noqa: PLW0603 - one counter per process is the point
    if name != _POINT:
        return
    _seen += 1
    if _seen == int(_NTH or 1):
        os.kill(os.getpid(), signal.SIGKILL)
