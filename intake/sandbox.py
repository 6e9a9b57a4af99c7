"""Runs the file parsers in a worker process with a time and memory limit.

Parsing is where hostile input bites: a decompression bomb, a PDF that makes a renderer
spin, a C library that crashes. In a separate process a hang becomes a timeout and a
crash becomes an error we can report, and the poller itself never goes down. The worker
is kept between files, so the cost per file is one pipe round trip.

Workers are spawned (a fresh interpreter, not a fork): a worker inherits none of the
poller's descriptors (a held poll lock would otherwise outlive the poll in every worker)
and none of its memory (the settings hold passwords). It imports the parsers once when it
starts, so that cost is paid per worker, not per file. (The fork server would share
those imports, but its global state breaks in a process forked after it started, which
the crash tests do.) Requests and replies are plain data:
a JSON header plus the file's bytes or its path in the archive one way, a JSON report the
other, rebuilt strictly (`parsers.model.report_from_json`); nothing is unpickled.

A worker also reads whole mails (`read_mail`): it takes the mail from the archive by its
digest, parses its MIME tree, files the attachments into the archive and answers with
`intake.mailread.MailContent`, so no whole mail is ever parsed in the poller.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import importlib
import json
import logging
import multiprocessing as mp
import os
import re
import resource
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TypeVar

from config.settings import LimitsSettings, ParsingSettings
from intake import stages
from intake.archive import Archive, ArchiveError, sha256_hex
from intake.mailread import MailContent, content_from_json, content_to_json, read_mail_file
from intake.mime import SpoolError
from parsers.filetypes import detect_kind
from parsers.forms import FormSet
from parsers.model import FileReport, Problem, ProblemCode, report_from_json, report_to_json

log = logging.getLogger(__name__)

# A fresh parser process every so many requests, or sooner once it has grown past
# RECYCLE_RSS_BYTES: a C library's leak never accumulates. Not more often: a start costs
# about a second of CPU (the imports), which at 500 requests was 6 % of a first poll.
RECYCLE_AFTER = 5000
RECYCLE_RSS_BYTES = 200 * 1024 * 1024
RSS_EVERY = 16
# Imported when a worker starts, before its memory limit is measured: never per file.
PRELOAD = ["intake.mailread", "py7zr", "rarfile", "tnefparse", "parsers.dispatch", "parsers.pdf", "parsers.spreadsheet", "parsers.wordtables", "parsers.csvfile",
           "parsers.recognize", "parsers.validate"]
# A report is a few rows and problems; anything larger is not one.
MAX_REPLY_BYTES = 16 * 1024 * 1024
# Environment variables a worker has no use for (they may hold passwords).
SECRET_PREFIX = "INTAKE_"
REPORT, FAILURE = b"R", b"F"
# Faults of our archive, not of the mail: "storage", it could not be written (retried
# later, like any ArchiveError); "unarchived", the mail is missing or corrupt there.
FAILURE_REASON = re.compile(r"memory|storage|unarchived|error:[A-Za-z_][A-Za-z0-9_]{0,60}")
MAIL = "mail"  # the request kind for a whole mail; anything else is one file
CLOSE_SECONDS = 2.0  # how long close() waits for an idle worker to exit by itself
FORM_SETS_KEPT = 4  # FormSets a worker keeps built (one per configuration it has seen)
_Reply = TypeVar("_Reply")
# glibc mallopt parameters (malloc.h), and how much freed memory a worker keeps for reuse.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MALLOC_KEEP_BYTES = 64 * 1024 * 1024


def _context() -> mp.context.BaseContext:
    return mp.get_context("spawn")


def _limit_memory(memory_bytes: int) -> None:
    if memory_bytes:
        # The limit is on growth beyond the interpreter with the parsers imported.
        start = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (start + memory_bytes, start + memory_bytes))


def _tune_for_parsing() -> None:
    """A worker is one core's worth of work, and its big arrays (page images) come and go
    every request. OpenCV's own thread pool would only contend with the other workers and
    the poller, its idle threads spinning (sched_yield) between calls; glibc's malloc
    would hand each freed image back to the kernel (mmap, heap trimming) and fault the
    next one in page by page: ~3 ms of system time a mail. Kept instead: at most
    MALLOC_KEEP_BYTES above the working set, within the worker's memory limit."""
    import cv2

    cv2.setNumThreads(1)
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this interpreter runs on
    except (OSError, AttributeError):  # not glibc: its own defaults
        return
    mallopt(M_TRIM_THRESHOLD, MALLOC_KEEP_BYTES)
    mallopt(M_MMAP_THRESHOLD, MALLOC_KEEP_BYTES)


def _serve(conn: Connection, memory_bytes: int, idle_poll_seconds: float = 1.0) -> None:
    for module in PRELOAD:
        importlib.import_module(module)
    from parsers.dispatch import parse_file

    _tune_for_parsing()
    _limit_memory(memory_bytes)
    for key in [k for k in os.environ if k.startswith(SECRET_PREFIX)]:
        del os.environ[key]
    supervisor = os.getppid()
    while True:
        # Notice the orphaning ourselves (a parent killed with SIGKILL) rather than rely
        # on EOF alone.
        if not conn.poll(idle_poll_seconds):
            if os.getppid() != supervisor:
                return
            continue
        try:
            header = json.loads(conn.recv_bytes())
            data = None if header.get("kind") == MAIL or header["path"] else conn.recv_bytes()
        except EOFError:
            return
        limits = LimitsSettings.model_validate(header["limits"])
        parsing = ParsingSettings.model_validate(header["parsing"])
        try:
            if header.get("kind") == MAIL:
                with stages.timed("MIME read + attachments filed (parser)"):
                    reply = REPORT + content_to_json(_read_archived_mail(header, limits))
            else:
                started = stages.clock()
                data = data if data is not None else Path(header["path"]).read_bytes()
                report = parse_file(data, header["name"], limits=limits, parsing=parsing,
                                    forms=_form_set(header["forms"]), parent=header["parent"])
                reply = REPORT + report_to_json(report)
                stages.add(f"parse {report.kind.value} (parser)", stages.clock() - started)
        except ArchiveError:
            reply = FAILURE + b"storage"
        except _Unarchived:
            reply = FAILURE + b"unarchived"
        except MemoryError:
            reply = FAILURE + b"memory"
        except Exception as err:  # noqa: BLE001 - parse_file should not raise; if it does, say so
            reply = FAILURE + f"error:{type(err).__name__}".encode()
        del data
        stages.flush_soon()  # before the reply: a worker may be killed once it has answered
        conn.send_bytes(reply)


_FORM_SETS: dict[str, FormSet] = {}


def _form_set(text: str) -> FormSet:
    """The FormSet a request's JSON describes, built once per distinct JSON: the same set
    comes with every file, and the recognisers' caches are keyed by the FormSet itself."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    found = _FORM_SETS.get(digest)
    if found is None:
        if len(_FORM_SETS) >= FORM_SETS_KEPT:
            _FORM_SETS.clear()
        found = _FORM_SETS[digest] = FormSet.from_json(json.loads(text))
    return found


class _Unarchived(Exception):
    """The mail to read is missing from the archive or does not match its digest."""


def _read_archived_mail(header: dict, limits: LimitsSettings) -> MailContent:
    """The mail read from its archive file in chunks, never whole in memory (issue 14)."""
    archive = Archive(Path(header["archive"]))
    try:
        handle = archive.path("mail", header["digest"]).open("rb")
    except OSError as err:
        raise _Unarchived from err
    with handle:
        try:
            intact = hashlib.file_digest(handle, "sha256").hexdigest() == header["digest"]
        except OSError as err:
            raise _Unarchived from err
        if not intact:
            raise _Unarchived
        handle.seek(0)
        try:
            return read_mail_file(handle, limits, functools.partial(archive.store, "files"))
        except SpoolError as err:  # our disk, not the mail: retried later like the archive's
            raise ArchiveError(err.errno, str(err)) from err


class ParseWorker:
    def __init__(self, limits: LimitsSettings, parsing: ParsingSettings, forms: FormSet, memory_mb: int = 3072,
                 idle_poll_seconds: float = 1.0) -> None:
        """`forms`: every form in play (config.campaigns.Campaigns.forms), sent as JSON text
        with each request; the worker builds it once per distinct text."""
        self.limits = limits
        self.parsing = parsing
        self.forms = forms
        self.memory_bytes = memory_mb * 1024 * 1024
        self.idle_poll_seconds = idle_poll_seconds
        self._settings = {"limits": limits.model_dump(mode="json"), "parsing": parsing.model_dump(mode="json"),
                          "forms": json.dumps(forms.to_json(), ensure_ascii=False, sort_keys=True)}
        self._process: mp.process.BaseProcess | None = None
        self._served = 0
        self._conn: Connection | None = None

    def _start(self) -> None:
        context = _context()
        parent_conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child_conn, self.memory_bytes, self.idle_poll_seconds), daemon=True
        )
        self._process.start()
        self._served = 0
        child_conn.close()
        self._conn = parent_conn

    def start(self) -> None:
        """Start the process unless it is running: it imports the parsers (about a second)
        while the caller goes on, e.g. fetching the mail it will be asked to read."""
        if self._process is None or not self._process.is_alive():
            self._kill()
            self._start()

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(5)
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def close(self) -> None:
        """Let the process end by itself (it returns at the pipe's EOF, its exit handlers
        run), and kill it if it has not within CLOSE_SECONDS."""
        self.release()
        self.wait_closed()

    def release(self) -> None:
        """Tell the process to end (EOF on its pipe) without waiting for it: workers told
        together end together (an exit takes ~0.1 s: interpreter teardown, exit handlers)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def wait_closed(self) -> None:
        """After release(): wait up to CLOSE_SECONDS for the process to end, then kill it."""
        if self._process is not None and self._conn is None:
            self._process.join(CLOSE_SECONDS)
        self._kill()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.is_alive() else None

    def parse(self, data: bytes, name: str, parent: str | None = None, *, seconds: float | None = None,
              timeout_problem: Problem | None = None) -> FileReport:
        """Parse these bytes. `seconds` (default: seconds_per_file) bounds the time; when it
        runs out, `timeout_problem` (default: the per-file timeout) is what gets recorded."""
        return self._parse(data, name, parent, seconds, timeout_problem)

    def parse_path(self, path: Path, name: str, parent: str | None = None, *, seconds: float | None = None,
                   timeout_problem: Problem | None = None) -> FileReport:
        """Parse a file on disk (an archived attachment): the worker reads it, so its bytes
        never pass through this process."""
        return self._parse(path, name, parent, seconds, timeout_problem)

    def _parse(self, source: bytes | Path, name: str, parent: str | None, seconds: float | None,
               timeout_problem: Problem | None) -> FileReport:
        seconds = self.limits.seconds_per_file if seconds is None else seconds
        path = str(source) if isinstance(source, Path) else None
        request = {"name": name, "parent": parent, "path": path}
        payload = None if path is not None else source
        reply = self._ask_twice(request, payload, seconds, name, report_from_json)
        if isinstance(reply, FileReport):
            return reply
        data = source.read_bytes() if isinstance(source, Path) else source
        if reply == "timeout" and timeout_problem is not None:
            return _report_with(data, name, parent, timeout_problem)
        return _failed_report(data, name, parent, reply, self.limits)

    def read_mail(self, archive: Path, digest: str, *, seconds: float) -> MailContent:
        """Parse the archived mail `digest` in the worker (which files its attachments into
        the archive at `archive`). A mail the worker cannot read within `seconds` or its
        memory limit comes back as content with only a problem; a failing archive raises
        ArchiveError (not the mail's fault: the caller retries later), a mail missing or
        corrupt in the archive OSError (the message is quarantined, as any such fault)."""
        request = {"kind": MAIL, "archive": str(archive), "digest": digest}
        reply = self._ask_twice(request, None, seconds, f"mail {digest[:12]}", content_from_json)
        if isinstance(reply, MailContent):
            return reply
        if reply == "storage":
            raise ArchiveError(errno.EIO, f"解析进程无法写入存档 {archive}")
        if reply == "unarchived":
            raise OSError(f"archive file {digest} is missing or corrupt")
        return MailContent(problems=[_mail_problem(reply, seconds)])

    def _ask_twice(self, request: dict, payload: bytes | None, seconds: float, label: str,
                   decode: Callable[[bytes], _Reply]) -> _Reply | str:
        reply = self._ask(request, payload, seconds, label, decode)
        if reply == "crash":
            # A worker can die of something that is not this input's fault (a leak built up
            # over thousands of files): a fresh one gets one more try before we blame it.
            reply = self._ask(request, payload, seconds, label, decode)
        return reply

    def _worn_out(self) -> bool:
        if self._served >= RECYCLE_AFTER:
            return True
        # Its size is read every RSS_EVERY requests: reading /proc costs what a small reply does.
        return self._served % RSS_EVERY == 0 and _resident_bytes(self._process.pid) > RECYCLE_RSS_BYTES

    def _ask(self, request: dict, payload: bytes | None, seconds: float, label: str,
             decode: Callable[[bytes], _Reply]) -> _Reply | str:
        if self._process is not None and self._worn_out():
            self.close()  # it ends by itself, its exit handlers run; killed only if it does not
        # Not asked whether it is alive (a waitpid each time, three a mail): one that died
        # idle fails the send or the read below, and _ask_twice gives a fresh one the file.
        if self._process is None:
            self._start()
        assert self._conn is not None  # for the type checker: _start sets it
        self._served += 1
        try:
            self._conn.send_bytes(json.dumps({**request, **self._settings}).encode())
            if payload is not None:
                self._conn.send_bytes(payload)
            if self._conn.poll(max(seconds, 0.0)):
                return _read_reply(self._conn.recv_bytes(MAX_REPLY_BYTES), decode)
            log.warning("parsing %s took longer than %.1fs; worker restarted", label, seconds)
            self._kill()
            return "timeout"
        except (EOFError, OSError, BrokenPipeError):
            # OSError also covers a reply over MAX_REPLY_BYTES: the worker is not trusted again.
            log.warning("parser worker died on %s; restarted", label)
            self._kill()
            return "crash"
        except ValueError:  # pydantic's ValidationError included
            log.warning("parser worker sent a malformed reply for %s; restarted", label)
            self._kill()
            return "error:malformed"


def _resident_bytes(pid: int | None) -> int:
    """A process's resident set (Linux /proc); 0 where it cannot be read."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def _read_reply(reply: bytes, decode: Callable[[bytes], _Reply] = report_from_json) -> _Reply | str:
    """A reply, or one of the failure reasons a worker may give; anything else is malformed."""
    if reply.startswith(REPORT):
        return decode(reply[1:])
    reason = reply[1:].decode("ascii", "replace")
    if reply.startswith(FAILURE) and FAILURE_REASON.fullmatch(reason):
        return reason
    raise ValueError("malformed reply")


def _mail_problem(reason: str, seconds: float) -> Problem:
    """Why a mail's attachments were not read, when its parse failed in the worker."""
    if reason == "timeout":
        return Problem(ProblemCode.TOO_LARGE, f"邮件读取超时（超过 {seconds:g} 秒），附件未读取，请分开发送或精简后重新发送。")
    if reason == "memory":
        return Problem(ProblemCode.TOO_LARGE, "邮件过大或结构异常，读取时占用内存超过上限，附件未读取，请分开发送或精简后重新发送。")
    detail = "读取进程异常退出" if reason == "crash" else reason
    return Problem(ProblemCode.UNREADABLE_FILE, f"邮件结构异常，无法读取（{detail}），附件未读取；请直接附上文件重新发送。")


def _report_with(data: bytes, name: str, parent: str | None, problem: Problem) -> FileReport:
    return FileReport(
        name=name, kind=detect_kind(data, name), sha256=sha256_hex(data), size=len(data), problems=[problem], parent=parent
    )


def _failed_report(data: bytes, name: str, parent: str | None, reason: str, limits: LimitsSettings) -> FileReport:
    if reason == "timeout":
        problem = Problem(ProblemCode.TOO_LARGE, f"《{name}》处理超时（超过 {limits.seconds_per_file:g} 秒），文件可能过大或结构异常，请检查后重新发送。", name)
    elif reason in ("memory", "crash"):
        problem = Problem(ProblemCode.UNSAFE_FILE, f"《{name}》处理时占用资源异常，已停止读取，请检查文件后重新发送。", name)
    else:
        problem = Problem(ProblemCode.UNREADABLE_FILE, f"《{name}》无法读取（{reason}），请另存为 xlsx 后重新发送。", name)
    return _report_with(data, name, parent, problem)
