"""Run the intake CLI in this process and write its peak RSS (VmHWM, MB) to a file at exit.

    python bench/_peak.py PEAK_FILE [intake arguments...]
"""

from __future__ import annotations

import atexit
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _write_peak(target: Path) -> None:
    status = Path("/proc/self/status").read_text()
    target.write_text(str(int(status.split("VmHWM:")[1].split()[0]) / 1024))


if __name__ == "__main__":
    target = Path(sys.argv[1])
    atexit.register(_write_peak, target)
    sys.argv = ["intake", *sys.argv[2:]]
    from intake import stages
    from intake.cli import main
    from notifications.outbox import Outbox

    Outbox.send_pending = stages.timing("reply send")(Outbox.send_pending)  # the bench's breakdown only

    main()
