"""Peak memory of `intake poll` with large mail, on a real Dovecot.

    python bench/memory_bench.py              # both scenarios
    python bench/memory_bench.py --only 60mb  # one of: 60mb, zips

Scenarios (each in a fresh mailbox and database):
  60mb  one mail of ~57 MB (two ~21 MB attachments, base64), just under max_message_bytes
  zips  ten mails of ~15 MB, each one zip of three ~3.6 MB incompressible members

`intake poll` runs as its own process (`python -m intake.cli`, as the `intake` script
does); its peak RSS is VmHWM read at exit (bench/_peak.py), the parser processes' by
sampling VmHWM of every descendant every 20 ms until the poll ends (not while a
child is still the poller between fork and exec) and from their own reports.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import tomli_w

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intake.samples import mime_message  # noqa: E402
from intake.stages import collect  # noqa: E402
from tests.support.dovecot import Dovecot  # noqa: E402
from tests.support.hostile import zip_of  # noqa: E402
from tests.support.intake_env import DEADLINE, intake_settings, settings_as_toml  # noqa: E402

MB = 1024 * 1024
SENDER = ("济南市总工会", "jinan@example.cn")


def _pdf_like(size: int) -> bytes:
    return b"%PDF-1.4\n" + os.urandom(size)


def mail_of_60mb() -> list[bytes]:
    files = [(f"扫描件{n}.pdf", _pdf_like(21 * MB + MB // 2)) for n in range(2)]
    return [mime_message(sender=SENDER, subject="大邮件", body="请查收。", attachments=files, date=DEADLINE)]


def ten_zipped_mails() -> list[bytes]:
    out = []
    for n in range(10):
        members = {f"材料{n}-{m}.pdf": _pdf_like(3 * MB + 600 * 1024) for m in range(3)}
        out.append(mime_message(sender=SENDER, subject=f"压缩包 {n}", body="请查收。",
                                attachments=[(f"材料{n}.zip", zip_of(members))], date=DEADLINE))
    return out


SCENARIOS = {"60mb": mail_of_60mb, "zips": ten_zipped_mails}


def vm_hwm_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    found = re.search(r"VmHWM:\s+(\d+) kB", status)  # absent once the process is a zombie
    return int(found.group(1)) / 1024 if found else 0.0


def run_poll(config: Path, peak_file: Path) -> tuple[float, dict[int, float], float]:
    """(poller peak MB, {parser pid: peak MB}, seconds). The poll runs this checkout's
    code (PYTHONPATH); each parser process also writes its own VmHWM after every request
    (intake.stages), which catches a peak between two samples."""
    started = time.monotonic()
    stages_dir = peak_file.parent / "stages"
    stages_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "INTAKE_STAGES": str(stages_dir)}
    poll = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_peak.py"), str(peak_file),
                             "--config", str(config), "poll"], cwd=ROOT, env=env)
    me = psutil.Process(poll.pid)
    others: dict[int, float] = {}
    while poll.poll() is None:
        try:
            mine = me.cmdline()
            for child in me.children(recursive=True):
                # A child caught between fork and exec still is the poller (its VmHWM too).
                if child.cmdline() != mine:
                    others[child.pid] = max(others.get(child.pid, 0.0), vm_hwm_mb(child.pid))
        except psutil.Error:
            pass
        time.sleep(0.02)  # sampling interval, not synchronisation
    if poll.returncode != 0:
        raise SystemExit(f"intake poll failed ({poll.returncode})")
    for pid, mb in collect(stages_dir)[2].items():
        if pid != poll.pid:
            others[pid] = max(others.get(pid, 0.0), mb)
    return float(peak_file.read_text().split()[0]), others, time.monotonic() - started  # RSS MB, then CPU figures


def scenario(name: str, server: Dovecot, work: Path) -> str:
    mails = SCENARIOS[name]()
    sizes = [len(m) / MB for m in mails]
    mailbox = server.add_user(f"mem-{uuid.uuid4().hex[:8]}@example.org")
    for raw in mails:
        mailbox.append(raw)
    del mails
    folder = work / name
    folder.mkdir()
    settings = intake_settings(folder, dovecot=mailbox, parsing={"seal_detection": False})
    config = folder / "intake.toml"
    config.write_text(tomli_w.dumps(settings_as_toml(settings)), encoding="utf-8")
    poller, others, seconds = run_poll(config, folder / "peak")
    listed = ", ".join(f"{mb:.0f}" for mb in sorted(others.values(), reverse=True)) or "none"
    return (f"| {name} | {len(sizes)} × {max(sizes):.1f} MB | {poller:.0f} MB | {listed} | {seconds:.1f} s |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=sorted(SCENARIOS))
    args = parser.parse_args()
    rows = ["| scenario | mail | poller peak RSS | peak RSS of its other processes (parsers; 15 MB: resource tracker) | poll time |",
            "| --- | --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory(prefix="intake-mem-") as tmp:
        server = Dovecot().start()
        try:
            for name in [args.only] if args.only else list(SCENARIOS):
                rows.append(scenario(name, server, Path(tmp)))
                print(rows[-1], flush=True)
        finally:
            server.cleanup()
    print("\n".join(rows))


if __name__ == "__main__":
    main()
