"""Run the intake CLI in this process and write, at exit, its peak RSS (VmHWM, MB), its
own CPU seconds and its main thread's, as three numbers on one line to a file.

    python bench/_peak.py PEAK_FILE [intake arguments...]
"""

from __future__ import annotations

import atexit
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _write_peak(target: Path) -> None:
    status = Path("/proc/self/status").read_text()
    own = resource.getrusage(resource.RUSAGE_SELF)
    # atexit runs in the main thread: thread_time is the main thread's (the serial stage).
    target.write_text(f"{int(status.split('VmHWM:')[1].split()[0]) / 1024} {own.ru_utime + own.ru_stime} {time.thread_time()}")


if __name__ == "__main__":
    target = Path(sys.argv[1])
    atexit.register(_write_peak, target)
    sys.argv = ["intake", *sys.argv[2:]]
    from intake import stages
    from intake.cli import main
    from notifications.outbox import Outbox

    Outbox.send_pending = stages.timing("reply send")(Outbox.send_pending)  # the bench's breakdown only

    main()
