"""Mailbox benchmark: `intake poll` against the raw IMAP fetch floors, on a real Dovecot.

    python bench/bench_mailbox.py --out bench/RESULTS.md   # full: 2,000 messages, re-poll at 10,000
    python bench/bench_mailbox.py --messages 10000         # first poll of 10,000
    python bench/bench_mailbox.py --small                  # CI: 150 messages, re-poll at 500 (< 2 min)

Measured in one run, on one machine (see bench/README.md), per mailbox shape
("worst": every mail from one unit; "campaign": 40 units, each resubmitting, every mail
answered; the reply caps are lifted in the bench's config so no receipt is suppressed):
  (a) floors: the mailbox fetched with imap-tools (`fetch(mark_seen=False, bulk=100)`,
      each message parsed into a MailMessage) and with a plain imaplib
      `UID FETCH 1:* (RFC822)` (no parsing)
  (b) `intake poll` as its own process (`python -m intake.cli`'s main, through
      bench/_peak.py, with PYTHONPATH at this checkout), OCR off; b/a for both floors
  (c) messages stored per second in blocks of 1,000 (first and last block), from the
      time each mail's transaction committed
  (d) peak RSS of the poller process alone (VmHWM at its exit) and of each parser
      process (VmHWM written by the process after each request)
  (e) where the time went: per-stage sums from intake.stages (poller and parser
      processes; parser stages add up over the parser processes, which run in parallel)
then, once: a re-poll of the processed mailbox with nothing new at N and at the large
size (filled up with small mails), and arrival-to-reply latency with IDLE and polling.

Messages are generated and APPENDed one at a time: the driver never holds the mailbox.
"""

from __future__ import annotations

import argparse
import datetime as dt
import imaplib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tomli_w  # noqa: E402
from imap_tools import MailBoxUnencrypted  # noqa: E402

from intake.app import App  # noqa: E402
from intake.runs import poll_once  # noqa: E402
from intake.samples import form_workbook, mime_message, scanned_pdf  # noqa: E402
from intake.scheduler import Runner  # noqa: E402
from intake.stages import collect  # noqa: E402
from tests.support.campaigns import FORM1  # noqa: E402
from tests.support.dovecot import Dovecot  # noqa: E402
from tests.support.intake_env import DEADLINE, intake_settings, settings_as_toml  # noqa: E402
from tests.support.smtp import SmtpSink  # noqa: E402

UNITS = 40  # a call's ~40 units
TITLE = "竞赛项目汇总表（重点工程类）"
WORST_UNIT = ("济南市总工会", "jinan@example.cn")  # registered in tests.support.intake_env.UNITS
SHAPES = ("worst", "campaign")
BLOCK = 1000


def two_page_scan() -> bytes:
    from io import BytesIO

    from PIL import Image

    first = Image.open(BytesIO(_pdf_page_jpeg(scanned_pdf(seal=False))))
    last = Image.open(BytesIO(_pdf_page_jpeg(scanned_pdf(seal=True))))
    out = BytesIO()
    first.save(out, "PDF", resolution=150, save_all=True, append_images=[last])
    return out.getvalue()


def _pdf_page_jpeg(pdf: bytes) -> bytes:
    from io import BytesIO

    import pypdfium2

    page = pypdfium2.PdfDocument(pdf)[0]
    image = page.render(scale=150 / 72).to_pil().convert("RGB")
    out = BytesIO()
    image.save(out, "JPEG", quality=70)
    return out.getvalue()


def campaign_units() -> list[dict]:
    return [{"name": f"测试市第{k:02d}区总工会", "kind": "city", "emails": [f"unit{k:02d}@example.cn"], "aliases": []}
            for k in range(UNITS)]


class Generator:
    """Submission-like mail, built one at a time (the workbooks and the scan once)."""

    def __init__(self, shape: str) -> None:
        self.shape = shape
        self.scan = two_page_scan()
        if shape == "worst":
            self.senders = [WORST_UNIT]
        else:
            self.senders = [(u["name"], u["emails"][0]) for u in campaign_units()]
        self.workbooks = {name: form_workbook(FORM1, TITLE, name) for name, _ in self.senders}

    def message(self, i: int, count: int) -> tuple[bytes, dt.datetime]:
        when = DEADLINE - dt.timedelta(minutes=count - i + 10)
        # Campaign: unit i % 40, so each unit resubmits every 40 mails (count / 40 times).
        name, address = self.senders[i % len(self.senders)]
        raw = mime_message(sender=(name, address), subject=f"{name}竞赛项目申报 第{i}号", body=f"第{i}封\n{name}",
                           attachments=[("附件1.xlsx", self.workbooks[name]), ("盖章件.pdf", self.scan)], date=when)
        return raw, when

    def messages(self, count: int) -> Iterator[tuple[bytes, dt.datetime]]:
        for i in range(count):
            yield self.message(i, count)


def tiny_messages(count: int, start: int) -> Iterator[tuple[bytes, dt.datetime]]:
    """Filler for the large re-poll: real mail, no attachments (cheap to process once)."""
    when = DEADLINE - dt.timedelta(days=1)
    for i in range(start, start + count):
        yield mime_message(sender=("某人", "x@example.net"), subject=f"咨询 {i}", body="请问截止时间？",
                           attachments=[], date=when), when


def append_all(server: Dovecot, messages: Iterator[tuple[bytes, dt.datetime]]) -> tuple[float, int, int]:
    """APPEND as generated; (seconds, count, bytes)."""
    started = time.perf_counter()
    count = size = 0
    conn = server.client()
    for raw, when in messages:
        conn.append("INBOX", "", imaplib.Time2Internaldate(when), raw)
        count, size = count + 1, size + len(raw)
    conn.logout()
    return time.perf_counter() - started, count, size


def floor_imap_tools(server: Dovecot) -> tuple[float, int]:
    started = time.perf_counter()
    count = 0
    with MailBoxUnencrypted(server.host, server.port).login(server.username, server.password) as mailbox:
        for _message in mailbox.fetch(mark_seen=False, bulk=100):
            count += 1
    return time.perf_counter() - started, count


def floor_raw(server: Dovecot) -> tuple[float, int, int]:
    """A plain `UID FETCH 1:* (RFC822)`: the server's and the socket's cost, no parsing."""
    conn = server.client()
    conn.select("INBOX", readonly=True)
    started = time.perf_counter()
    typ, data = conn.uid("FETCH", "1:*", "(RFC822)")
    seconds = time.perf_counter() - started
    assert typ == "OK", data
    literals = [item[1] for item in data if isinstance(item, tuple)]
    count, size = len(literals), sum(map(len, literals))
    del data, literals
    conn.logout()
    return seconds, count, size


def bench_settings(root: Path, server: Dovecot, shape: str, count: int):  # noqa: ANN201 - config.settings.Settings
    caps = {"daily_cap_per_recipient": count + 1000, "hourly_cap_per_domain": count + 1000,
            "hourly_cap_total": count + 1000}
    extra = {"units": campaign_units()} if shape == "campaign" else {}
    return intake_settings(root, dovecot=server, smtp={"mode": "file", **caps},
                           parsing={"ocr": False, "seal_detection": True}, **extra)


def vm_hwm_mb(pid: int) -> float:
    try:
        found = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return 0.0
    return int(found.group(1)) / 1024 if found else 0.0


def run_poll(config: Path, work: Path) -> dict:
    """`intake poll` as its own process; its timings, stage sums and peaks."""
    import psutil

    stages_dir = work / "stages"
    stages_dir.mkdir()
    peak_file = work / "poller-peak"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "INTAKE_STAGES": str(stages_dir)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started_wall, started = time.time(), time.perf_counter()
    poll = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_peak.py"), str(peak_file),
                             "--config", str(config), "poll"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sampled: dict[int, float] = {}
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.extend(poll.stdout), daemon=True)
    reader.start()
    me = psutil.Process(poll.pid)
    while poll.poll() is None:
        try:
            for child in me.children(recursive=True):
                sampled[child.pid] = max(sampled.get(child.pid, 0.0), vm_hwm_mb(child.pid))
        except psutil.Error:
            pass
        time.sleep(0.25)  # sampling interval (the parser processes also report their own peak)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the poller and its reaped parser processes
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    reader.join(10)
    if poll.returncode != 0:
        sys.stdout.write(b"".join(output[-50:]).decode(errors="replace"))
        raise SystemExit(f"intake poll failed ({poll.returncode})")
    totals, events, peaks = collect(stages_dir, main_pid=poll.pid)
    poller_peak, poller_cpu, main_cpu = map(float, peak_file.read_text().split())
    parsers = {pid: max(mb, sampled.get(pid, 0.0)) for pid, mb in peaks.items() if pid != poll.pid}
    return {"seconds": seconds, "cpu": cpu, "poller_cpu": poller_cpu, "main_cpu": main_cpu, "started": started_wall, "stages": totals, "stored": events.get("stored", []),
            "poller_mb": poller_peak, "parser_mb": sorted(parsers.values(), reverse=True),
            "summary": b"".join(output).decode(errors="replace").strip().splitlines()[-1:]}


def block_rates(times: list[float], block: int) -> list[float]:
    """Messages stored per second in consecutive blocks of `block` (the last may be short),
    each from the commit that ended the previous block (the first from the first commit)."""
    rates = []
    for start in range(0, len(times), block):
        end = min(start + block, len(times)) - 1
        since = times[start - 1] if start else times[0]
        done = end - start + (1 if start else 0)
        if times[end] > since and done > 0:
            rates.append(done / (times[end] - since))
    return rates


STAGE_ORDER = [
    "fetch", "archive write+fsync", "MIME headers (poller)", "MIME read + attachments filed (parser)",
    "parse xlsx (parser)", "parse pdf (parser)", "seal (parser)", "read+parse, wall per mail (poller threads)",
    "wait for a parsed mail (poller)", "store (decide, settle, reply queue, commit)", "settle", "reply queue", "commit", "reply send",
]


def breakdown(stages: dict[str, dict[str, float]], messages: int) -> list[str]:
    names = [n for n in STAGE_ORDER if n in stages] + sorted(n for n in stages if n not in STAGE_ORDER)
    lines = ["| stage | process | total s | calls | ms per call | ms per message |", "| --- | --- | --- | --- | --- | --- |"]
    for name in names:
        for where, spent in sorted(stages[name]["by"].items(), key=lambda item: item[0] != "poller"):
            s, c = spent["seconds"], int(spent["count"])
            lines.append(f"| {name} | {where} | {s:.2f} | {c} | {s / max(c, 1) * 1000:.2f} | {s / max(messages, 1) * 1000:.2f} |")
    return lines


def shape_run(server: Dovecot, shape: str, count: int, work: Path, rows: _Rows) -> dict:
    mailbox = server.add_user(f"bench-{shape}-{uuid.uuid4().hex[:8]}@example.org")
    generator = Generator(shape)
    append_s, appended, size = append_all(mailbox, generator.messages(count))
    kb = size / max(appended, 1) / 1024
    rows.append((f"{shape}: mailbox", f"{appended} messages of ~{kb:.0f} KB (xlsx + 2-page scanned PDF), "
                 f"{len(generator.senders)} sending unit(s); APPEND {append_s:.1f} s"))
    tools_before, tools_n = floor_imap_tools(mailbox)
    raw_before, raw_n, raw_size = floor_raw(mailbox)
    assert tools_n == raw_n == appended, (tools_n, raw_n, appended)
    folder = work / shape
    folder.mkdir()
    settings = bench_settings(folder, mailbox, shape, count)
    config = folder / "intake.toml"
    config.write_text(tomli_w.dumps(settings_as_toml(settings)), encoding="utf-8")
    result = run_poll(config, folder)
    # The floors again once the poll is done (it changes nothing on the server): a floor is
    # what the machine can do, so the faster of the two counts, whatever disturbed the other.
    tools_s, raw_s = min(tools_before, floor_imap_tools(mailbox)[0]), min(raw_before, floor_raw(mailbox)[0])
    rows.append((f"{shape}: (a) floors (the faster of a fetch before and one after the poll)",
                 f"imap-tools fetch {tools_s:.2f} s ({tools_n / tools_s:.0f} msg/s); "
                 f"plain UID FETCH 1:* {raw_s:.2f} s ({raw_n / raw_s:.0f} msg/s, {raw_size / raw_s / 1e6:.0f} MB/s)"))
    poll_s = result["seconds"]
    stored = result["stored"]
    replies = len(list((folder / "outbox").rglob("*.eml"))) if (folder / "outbox").exists() else 0
    rows.append((f"{shape}: (b) intake poll (own process), OCR off",
                 f"{poll_s:.1f} s ({result['cpu']:.0f} CPU s: poller {result['poller_cpu']:.0f}, of which its main thread "
                 f"{result['main_cpu']:.0f}; parser processes {result['cpu'] - result['poller_cpu']:.0f}), {appended / poll_s:.0f} msg/s; b/a = {poll_s / tools_s:.1f} (imap-tools floor), "
                 f"{poll_s / raw_s:.0f} (plain FETCH); {len(stored)} stored, {replies} replies written"))
    block = BLOCK if appended >= 2 * BLOCK else max(50, appended // 4)  # first and last 1,000 from 2,000 up
    rates = block_rates(stored, block)
    if rates:
        rows.append((f"{shape}: (c) stored per second, blocks of {block}",
                     f"first {rates[0]:.1f}, last {rates[-1]:.1f} ({rates[-1] / rates[0] * 100:.0f} % of first); "
                     f"all: {', '.join(f'{r:.0f}' for r in rates)}"))
    if stored:
        first, last = min(stored) - result["started"], max(stored) - result["started"]
        rows.append((f"{shape}: (c) timeline of the poll",
                     f"first mail stored at {first:.1f} s (start-up, connection, first fetch and parse), last at "
                     f"{last:.1f} s; the process ended at {poll_s:.1f} s (replies written, parser processes closed)"))
    parsers = ", ".join(f"{mb:.0f}" for mb in result["parser_mb"]) or "none reported"
    rows.append((f"{shape}: (d) peak RSS", f"poller {result['poller_mb']:.0f} MB; parser processes {parsers} MB"))
    result["breakdown"] = breakdown(result["stages"], appended)
    result.update(shape=shape, count=appended, tools_s=tools_s, raw_s=raw_s, mailbox=mailbox, root=folder)
    print("\n".join(result["breakdown"]), flush=True)
    return result


def repoll(mailbox: Dovecot, root: Path, count: int, large: int, rows: _Rows) -> None:
    """Re-polls with nothing new, in this process (no interpreter start-up in the figure)."""
    settings = intake_settings(root, dovecot=mailbox, smtp={"mode": "file"})
    with App(settings) as app:
        at_n = _best_repoll(app)
        if large > count:
            append_all(mailbox, tiny_messages(large - count, start=count))
            poll_once(app)
        at_large = _best_repoll(app)
    rows.append(("re-poll, nothing new", f"{at_n * 1000:.0f} ms at {count} messages; {at_large * 1000:.0f} ms at {max(large, count)}"))


def latency(server: Dovecot, root: Path, *, idle: bool, samples: int) -> list[float]:
    sink = SmtpSink().start()
    mailbox = server.add_user(f"latency-{uuid.uuid4().hex[:8]}@example.org")
    settings = intake_settings(
        root, dovecot=mailbox,
        mailbox={"idle": idle, "poll_seconds": 5},
        # One sender writes every sample: lift the per-recipient loop-guard cap.
        smtp={"mode": "send", "host": "127.0.0.1", "port": sink.port, "security": "none",
              "daily_cap_per_recipient": 1000},
    )
    app = App(settings)
    runner = Runner(app)
    thread = threading.Thread(target=runner.watch, daemon=True)
    thread.start()
    generator = Generator("worst")
    results = []
    try:
        for i in range(samples):
            raw, _ = generator.message(100_000 + i, 100_000 + samples)
            started = time.perf_counter()
            mailbox.append(raw, dt.datetime.now(dt.UTC))
            sink.wait_for(i + 1, timeout=60)
            results.append(time.perf_counter() - started)
    finally:
        runner.stop_event.set()
        thread.join(30)
        app.close()
        sink.stop()
    return results


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


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")), 0)
    try:
        dovecot = subprocess.run([shutil.which("dovecot") or "dovecot", "--version"], capture_output=True,
                                 text=True, timeout=10).stdout.strip().split()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        dovecot = "?"
    load = os.getloadavg()
    return (f"Machine: {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), {cpu}, {mem / 1024 / 1024:.1f} GiB RAM, "
            f"{platform.platform(terse=True)}, Python {platform.python_version()}, Dovecot {dovecot} on loopback; "
            f"load average at the end {load[0]:.2f} / {load[1]:.2f}; {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")


def report(args: argparse.Namespace, rows: _Rows, results: list[dict]) -> str:
    shown = [a for a, before in zip(sys.argv[1:], ["", *sys.argv[1:]]) if a not in ("--json",) and before != "--json"]
    lines = ["# Mailbox benchmark results", "", "Generated by `python bench/bench_mailbox.py "
             + " ".join(shown) + "` (do not edit by hand).", "", machine(), "",
             "Messages: an .xlsx form + a 2-page scanned PDF (JPEG pages) with a red seal; seal detection on, OCR off.",
             "Shapes: **worst** (every mail from one unit) and **campaign** (40 units, each resubmitting; the reply caps",
             "are lifted in the bench's config so every mail is answered). The poll runs as its own `intake poll`",
             "process; RSS is that process's own VmHWM (and each parser process's).", "",
             "| measure | result |", "| --- | --- |"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    for result in results:
        lines += ["", f"## Where the time went: {result['shape']}, {result['count']} messages, poll {result['seconds']:.1f} s", "",
                  "Sums over the run from `intake.stages`; parser stages add up over the parser processes, which",
                  "run in parallel with each other and with the poller (so the column does not add up to the poll).", ""]
        lines += result["breakdown"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="CI size: 150 messages, re-poll at 500, 3 latency samples")
    parser.add_argument("--messages", type=int, default=None, help="first-poll size (default 2,000)")
    parser.add_argument("--large", type=int, default=None, help="mailbox size for the second re-poll (default 10,000)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="worst, campaign or both (comma-separated)")
    parser.add_argument("--latency-samples", type=int, default=None, help="0 skips the latency measure")
    parser.add_argument("--out", type=Path, default=None, help="write the results (Markdown) here")
    parser.add_argument("--json", type=Path, default=None, help="write the raw results (JSON) here")
    args = parser.parse_args()
    n = args.messages or (150 if args.small else 2000)
    large = max(args.large or (500 if args.small else 10_000), n)
    lat_n = args.latency_samples if args.latency_samples is not None else (3 if args.small else 20)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    assert set(shapes) <= set(SHAPES), shapes

    work = Path(tempfile.mkdtemp(prefix="intake-bench-"))
    server = Dovecot().start()
    rows = _Rows()
    results = []
    try:
        for shape in shapes:
            results.append(shape_run(server, shape, n, work, rows))
        first = results[0]
        repoll(first["mailbox"], first["root"], n, large, rows)
        if lat_n:
            idle = latency(server, work / "idle", idle=True, samples=lat_n)
            polled = latency(server, work / "poll", idle=False, samples=lat_n)
            rows.append(("arrival to reply at the SMTP sink", f"IDLE median {statistics.median(idle):.2f} s (max {max(idle):.2f}); "
                         f"polling every 5 s median {statistics.median(polled):.2f} s (max {max(polled):.2f}); {lat_n} messages each"))
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    text = report(args, rows, results)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    if args.json:
        keep = ("shape", "count", "seconds", "cpu", "poller_cpu", "main_cpu", "tools_s", "raw_s", "stages", "poller_mb", "parser_mb")
        args.json.write_text(json.dumps([{k: r[k] for k in keep} | {"rates": block_rates(r["stored"], BLOCK)}
                                         for r in results], indent=1))


if __name__ == "__main__":
    main()
