"""The services one run of intake works with, built once from the settings."""

from __future__ import annotations

import logging
import os
import queue
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from config.settings import Settings
from intake.archive import Archive
from intake.deadline import effective_settings
from intake.mailread import MailContent
from intake.registry import UnitRegistry
from intake.sandbox import ParseWorker
from parsers.model import FileReport, Problem
from storage.db import Database

log = logging.getLogger(__name__)

# Address space a parser process may grow by, beyond the interpreter with the parsers
# loaded: a whole mail's MIME tree costs up to ~8 times the mail (intake.mailread).
WORKER_MEMORY_MB = 3072


class App:
    def __init__(self, settings: Settings, *, database: Database | None = None) -> None:
        self.file_settings = settings
        self.settings = settings
        self.db = database or Database(settings.database_url)
        self.archive = Archive(settings.resolve(settings.storage.path))
        self.registry = UnitRegistry.from_settings(settings.units)
        self.refresh_settings()

    def refresh_settings(self) -> Settings:
        """Apply what staff changed in the database (the deadline) over the file's values;
        a long-running process calls this before each job."""
        with self.db.session() as session:
            self.settings = effective_settings(self.file_settings, session)
        return self.settings

    @cached_property
    def _workers(self) -> queue.Queue[ParseWorker]:
        # OCR costs seconds a page: it never runs here, on the reply path (see intake/ocr.py).
        parsing = self.settings.parsing.model_copy(update={"ocr": False})
        idle: queue.Queue[ParseWorker] = queue.Queue()
        for _ in range(self.parse_slots):
            idle.put(ParseWorker(self.settings.limits, parsing, self.settings.campaign_set.forms,
                                 memory_mb=WORKER_MEMORY_MB))
        return idle

    @cached_property
    def ocr_worker(self) -> ParseWorker:
        return ParseWorker(self.settings.limits, self.settings.parsing, self.settings.campaign_set.forms,
                           memory_mb=WORKER_MEMORY_MB)

    @property
    def parse_slots(self) -> int:
        return self.settings.parsing.workers or min(2, os.cpu_count() or 1)

    @cached_property
    def parse_pool(self) -> ThreadPoolExecutor:
        """Threads that each drive one parser process, so attachments of the next messages
        are read while this one is stored."""
        return ThreadPoolExecutor(self.parse_slots, thread_name_prefix="parse")

    @contextmanager
    def _worker(self) -> Iterator[ParseWorker]:
        """An idle parser process for one request (waits while all are busy)."""
        worker = self._workers.get()
        try:
            yield worker
        finally:
            self._workers.put(worker)

    def parse_path(self, path: Path, name: str, parent: str | None = None, *, seconds: float | None = None,
                   timeout_problem: Problem | None = None) -> FileReport:
        """An archived file, read by the parser process itself (see ParseWorker.parse_path)."""
        with self._worker() as worker:
            return worker.parse_path(path, name, parent, seconds=seconds, timeout_problem=timeout_problem)

    def read_mail(self, digest: str, *, seconds: float) -> MailContent:
        """The archived mail's body, read by a parser process (see ParseWorker.read_mail)."""
        with self._worker() as worker:
            return worker.read_mail(self.archive.root, digest, seconds=seconds)

    def start_parsers(self) -> None:
        """Start the idle parser processes now, ahead of the first request."""
        for worker in list(self._workers.queue):
            worker.start()

    def worker_pids(self) -> list[int]:
        if "_workers" not in self.__dict__:
            return []
        return [pid for w in list(self._workers.queue) if (pid := w.pid) is not None]

    @property
    def account(self) -> str:
        """The mailbox's name in the ledger: `[mailbox] account`, else the username,
        lowercased. Never the host or a path: "127.0.0.1" respelt "localhost", or the demo
        folder moved, is still the same mailbox, and its mail is not fetched anew."""
        mailbox = self.settings.mailbox
        if mailbox.account:
            return mailbox.account.strip().lower()
        return "maildir" if mailbox.source == "maildir" else mailbox.username.strip().lower()

    @property
    def our_addresses(self) -> set[str]:
        found = {self.settings.smtp.from_address.lower()}
        if "@" in self.settings.mailbox.username:
            found.add(self.settings.mailbox.username.lower())
        return found

    def close(self) -> None:
        if "parse_pool" in self.__dict__:
            self.parse_pool.shutdown(wait=True)
        if "_workers" in self.__dict__:
            workers = [self._workers.get() for _ in range(self._workers.qsize())]
            for worker in workers:
                worker.release()  # all told first: they end in parallel, not one after another
            for worker in workers:
                worker.wait_closed()
        if "ocr_worker" in self.__dict__:
            self.ocr_worker.close()
        self.db.dispose()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

