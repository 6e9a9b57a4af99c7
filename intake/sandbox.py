"""Runs the file parsers in a worker process with a time and memory limit.

Parsing is where hostile input bites: a decompression bomb, a PDF that makes a renderer
spin, a C library that crashes. In a separate process a hang becomes a timeout and a
crash becomes an error we can report, and the poller itself never goes down. The worker
is kept between files (forked once, after the parsers are imported) so the cost per file
is one pipe round trip.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import resource
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from config.settings import LimitsSettings, ParsingSettings
from intake.archive import sha256_hex
from parsers.filetypes import detect_kind
from parsers.model import FileReport, Problem, ProblemCode

log = logging.getLogger(__name__)

# A fresh parser process every so many files: C libraries' leaks never accumulate.
RECYCLE_AFTER = 500


def _serve(conn: Connection, memory_bytes: int) -> None:
    from parsers.dispatch import parse_file

    if memory_bytes:
        # The limit is on growth: a fork starts with its parent's whole address space,
        # which in a long-lived process (or a test run) may already be large.
        start = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (start + memory_bytes, start + memory_bytes))
    parent = os.getppid()
    while True:
        # Forked siblings hold copies of each other's pipe ends, so a parent killed with
        # SIGKILL may never produce EOF here: notice the orphaning ourselves.
        if not conn.poll(1.0):
            if os.getppid() != parent:
                return
            continue
        try:
            request = conn.recv()
        except EOFError:
            return
        data, name, limits, parsing, parent = request
        try:
            report: Any = parse_file(data, name, limits=limits, parsing=parsing, parent=parent)
        except MemoryError:
            report = "memory"
        except Exception as err:  # noqa: BLE001 - parse_file should not raise; if it does, say so
            report = f"error:{type(err).__name__}"
        conn.send(report)


class ParseWorker:
    def __init__(self, limits: LimitsSettings, parsing: ParsingSettings, memory_mb: int = 3072) -> None:
        self.limits = limits
        self.parsing = parsing
        self.memory_bytes = memory_mb * 1024 * 1024
        self._process: mp.process.BaseProcess | None = None
        self._served = 0
        self._conn: Connection | None = None

    def _start(self) -> None:
        import parsers.dispatch  # noqa: F401 - import once in the parent so every fork is warm

        context = mp.get_context("fork")
        parent_conn, child_conn = context.Pipe()
        self._process = context.Process(target=_serve, args=(child_conn, self.memory_bytes), daemon=True)
        self._process.start()
        self._served = 0
        child_conn.close()
        self._conn = parent_conn

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(5)
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def close(self) -> None:
        self._kill()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.is_alive() else None

    def parse(self, data: bytes, name: str, parent: str | None = None) -> FileReport:
        reply = self._ask(data, name, parent)
        if reply == "crash":
            # A worker can die of something that is not this file's fault (a leak built up
            # over thousands of files): a fresh one gets one more try before we blame it.
            reply = self._ask(data, name, parent)
        if isinstance(reply, FileReport):
            return reply
        return _failed_report(data, name, parent, reply, self.limits)

    def _ask(self, data: bytes, name: str, parent: str | None) -> FileReport | str:
        if self._process is None or not self._process.is_alive() or self._served >= RECYCLE_AFTER:
            self._kill()
            self._start()
        assert self._conn is not None  # for the type checker: _start sets it
        self._served += 1
        try:
            self._conn.send((data, name, self.limits, self.parsing, parent))
            if self._conn.poll(self.limits.seconds_per_file):
                return self._conn.recv()
            log.warning("parsing %s took longer than %ss; worker restarted", name, self.limits.seconds_per_file)
            self._kill()
            return "timeout"
        except (EOFError, OSError, BrokenPipeError):
            log.warning("parser worker died on %s; restarted", name)
            self._kill()
            return "crash"


def _failed_report(data: bytes, name: str, parent: str | None, reason: str, limits: LimitsSettings) -> FileReport:
    if reason == "timeout":
        problem = Problem(ProblemCode.TOO_LARGE, f"《{name}》处理超时（超过 {limits.seconds_per_file:g} 秒），文件可能过大或结构异常，请检查后重新发送。", name)
    elif reason in ("memory", "crash"):
        problem = Problem(ProblemCode.UNSAFE_FILE, f"《{name}》处理时占用资源异常，已停止读取，请检查文件后重新发送。", name)
    else:
        problem = Problem(ProblemCode.UNREADABLE_FILE, f"《{name}》无法读取（{reason}），请另存为 xlsx 后重新发送。", name)
    return FileReport(
        name=name, kind=detect_kind(data, name), sha256=sha256_hex(data), size=len(data), problems=[problem], parent=parent
    )
