"""Mailbox benchmark: intake against the raw IMAP fetch floor, on a real Dovecot.

    python bench/bench_mailbox.py                 # full: 2,000 messages, re-poll at 10,000
    python bench/bench_mailbox.py --small         # CI: 100 messages, re-poll at 500

Measured in one run, on one machine (see bench/README.md):
  (a) floor: the same messages fetched raw with imap-tools and nothing else
  (b) `intake poll` end to end (archive, parse, seal detection, decide, store, reply to
      files), OCR off; b/a
  (c) a re-poll of the processed mailbox at N and at the large size (must not grow)
  (d) arrival-to-reply latency with IDLE and with polling (median of 20, SMTP sink)
  (e) peak RSS of this process and of the parser worker
"""

from __future__ import annotations

import argparse
import datetime as dt
import imaplib
import platform
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imap_tools import MailBoxUnencrypted  # noqa: E402

from intake.app import App  # noqa: E402
from intake.runs import poll_once  # noqa: E402
from intake.samples import form_workbook, mime_message, scanned_pdf  # noqa: E402
from intake.scheduler import Runner  # noqa: E402
from tests.support.campaigns import FORM1  # noqa: E402
from tests.support.dovecot import Dovecot  # noqa: E402
from tests.support.intake_env import DEADLINE, intake_settings  # noqa: E402
from tests.support.smtp import SmtpSink  # noqa: E402


def two_page_scan() -> bytes:
    from io import BytesIO

    from PIL import Image

    first = Image.open(BytesIO(_pdf_page_png(scanned_pdf(seal=False))))
    last = Image.open(BytesIO(_pdf_page_png(scanned_pdf(seal=True))))
    out = BytesIO()
    first.save(out, "PDF", resolution=150, save_all=True, append_images=[last])
    return out.getvalue()


def _pdf_page_png(pdf: bytes) -> bytes:
    from io import BytesIO

    import pypdfium2

    page = pypdfium2.PdfDocument(pdf)[0]
    image = page.render(scale=150 / 72).to_pil().convert("RGB")
    out = BytesIO()
    image.save(out, "JPEG", quality=70)
    return out.getvalue()


UNITS = 40  # senders rotate over a call's ~40 units, as a real mailbox's do


def make_messages(count: int, start: int = 0) -> list[tuple[bytes, dt.datetime]]:
    workbook = form_workbook(FORM1, "竞赛项目汇总表（重点工程类）", "济南市总工会")
    scan = two_page_scan()
    out = []
    for i in range(start, start + count):
        when = DEADLINE - dt.timedelta(minutes=count - i + 10)
        sender = ("济南市总工会", "jinan@example.cn") if i % UNITS == 0 else (f"单位{i % UNITS}", f"unit{i % UNITS}@example.cn")
        raw = mime_message(sender=sender, subject=f"竞赛项目申报 第{i}号",
                           body=f"第{i}封", attachments=[("附件1.xlsx", workbook), ("盖章件.pdf", scan)], date=when)
        out.append((raw, when))
    return out


def tiny_messages(count: int, start: int) -> list[tuple[bytes, dt.datetime]]:
    """Filler for the large re-poll: real mail, no attachments (cheap to process once)."""
    when = DEADLINE - dt.timedelta(days=1)
    return [(mime_message(sender=("某人", "x@example.net"), subject=f"咨询 {i}", body="请问截止时间？",
                          attachments=[], date=when), when) for i in range(start, start + count)]


def append_all(server: Dovecot, messages: list[tuple[bytes, dt.datetime]]) -> float:
    started = time.perf_counter()
    conn = imaplib.IMAP4(server.host, server.port)
    conn.login(server.username, server.password)
    for raw, when in messages:
        conn.append("INBOX", "", imaplib.Time2Internaldate(when), raw)
    conn.logout()
    return time.perf_counter() - started


def floor_fetch(server: Dovecot) -> tuple[float, int, int]:
    started = time.perf_counter()
    count = size = 0
    with MailBoxUnencrypted(server.host, server.port).login(server.username, server.password) as mailbox:
        for message in mailbox.fetch(mark_seen=False, bulk=100):
            count += 1
            size += message.size_rfc822
    return time.perf_counter() - started, count, size


def latency(server: Dovecot, root: Path, *, idle: bool, samples: int) -> list[float]:
    sink = SmtpSink().start()
    settings = intake_settings(
        root, dovecot=server,
        mailbox={"idle": idle, "poll_seconds": 5, "folder": "Latency" + ("Idle" if idle else "Poll")},
        # One sender writes every sample: lift the per-recipient loop-guard cap.
        smtp={"mode": "send", "host": "127.0.0.1", "port": sink.port, "security": "none",
              "daily_cap_per_recipient": 1000},
    )
    conn = server.client()
    conn.create(settings.mailbox.folder)
    conn.logout()
    app = App(settings)
    runner = Runner(app)
    thread = threading.Thread(target=runner.watch, daemon=True)
    thread.start()
    results = []
    try:
        for i in range(samples):
            raw, _ = make_messages(1, start=100_000 + i + (0 if idle else 1000))[0]
            started = time.perf_counter()
            server.append(raw, dt.datetime.now(dt.UTC), folder=settings.mailbox.folder)
            sink.wait_for(i + 1, timeout=60)
            results.append(time.perf_counter() - started)
    finally:
        runner.stop_event.set()
        thread.join(30)
        app.close()
        sink.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="CI size: 100 messages, re-poll at 500")
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--large", type=int, default=None, help="mailbox size for the second re-poll")
    parser.add_argument("--latency-samples", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the results table here (Markdown)")
    args = parser.parse_args()
    n = args.messages or (100 if args.small else 2000)
    large = args.large or (500 if args.small else 10_000)
    lat_n = args.latency_samples or (5 if args.small else 20)

    root = Path(tempfile.mkdtemp(prefix="intake-bench-"))
    server = Dovecot().start()
    rows = _Rows()
    try:
        messages = make_messages(n)
        mb = sum(len(r) for r, _ in messages) / n / 1024
        append_s = append_all(server, messages)
        rows.append(("mailbox", f"{n} messages of ~{mb:.0f} KB (xlsx + 2-page scanned PDF); APPEND {append_s:.1f} s"))

        floor_s, count, size = floor_fetch(server)
        rows.append(("(a) raw fetch floor", f"{floor_s:.2f} s, {count / floor_s:.0f} msg/s, {size / floor_s / 1e6:.0f} MB/s"))

        settings = intake_settings(root, dovecot=server, smtp={"mode": "file"})
        with App(settings) as app:
            started = time.perf_counter()
            report = poll_once(app)
            poll_s = time.perf_counter() - started
            rows.append(("(b) intake poll, OCR off", f"{poll_s:.2f} s, {report.new / poll_s:.0f} msg/s; b/a = {poll_s / floor_s:.1f}"))

            repoll_n = _best_repoll(app)
            append_all(server, tiny_messages(large - n, start=n))
            poll_once(app)
            repoll_large = _best_repoll(app)
            rows.append(("(c) re-poll, nothing new", f"{repoll_n * 1000:.0f} ms at {n} messages; {repoll_large * 1000:.0f} ms at {large}"))
            worker_rss = _worker_peak_kb()

        idle = latency(server, root / "idle", idle=True, samples=lat_n)
        polled = latency(server, root / "poll", idle=False, samples=lat_n)
        rows.append(("(d) arrival to reply at the SMTP sink", f"IDLE median {statistics.median(idle):.2f} s (max {max(idle):.2f}); "
                     f"polling every 5 s median {statistics.median(polled):.2f} s (max {max(polled):.2f}); {lat_n} messages each"))
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append(("(e) peak RSS", f"poller {rss_mb:.0f} MB; parser worker {worker_rss / 1024:.0f} MB"))
    finally:
        server.cleanup()

    table = _table(rows)
    print(table)
    if args.out:
        args.out.write_text(table + "\n", encoding="utf-8")


def _best_repoll(app: App, tries: int = 3) -> float:
    """The fastest of a few re-polls (the first after a big poll also pays a WAL checkpoint)."""
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        report = poll_once(app)
        times.append(time.perf_counter() - started)
        assert report.seen == 0
    return min(times)


class _Rows(list):
    """Results, printed as they come so a long run shows progress."""

    def append(self, row: tuple[str, str]) -> None:
        print(f"{row[0]}: {row[1]}", flush=True)
        super().append(row)


def _worker_peak_kb() -> float:
    """Peak resident size (VmHWM) of the parser processes: the children running now."""
    import psutil

    peaks = [0.0]
    for child in psutil.Process().children(recursive=True):
        try:
            if "dovecot" in " ".join(child.cmdline()):
                continue
            status = Path(f"/proc/{child.pid}/status").read_text()
        except (OSError, psutil.Error):
            continue  # gone, or a zombie (a parser restarted after a time-out)
        peaks += [float(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")]
    return max(peaks)


def _table(rows: list[tuple[str, str]]) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    import os

    head = [f"Machine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, "
            f"{dt.datetime.now(dt.UTC):%Y-%m-%d}", "", "| measure | result |", "| --- | --- |"]
    return "\n".join(head + [f"| {a} | {b} |" for a, b in rows])


if __name__ == "__main__":
    main()
