"""The services one run of intake works with, built once from the settings."""

from __future__ import annotations

import logging
from functools import cached_property

from config.settings import Settings
from intake.archive import Archive
from intake.registry import UnitRegistry
from intake.sandbox import ParseWorker
from storage.db import Database

log = logging.getLogger(__name__)


class App:
    def __init__(self, settings: Settings, *, database: Database | None = None) -> None:
        self.settings = settings
        self.db = database or Database(settings.database_url)
        self.archive = Archive(settings.resolve(settings.storage.path))
        self.registry = UnitRegistry.from_settings(settings.units)

    @cached_property
    def worker(self) -> ParseWorker:
        return ParseWorker(self.settings.limits, self.settings.parsing)

    @property
    def account(self) -> str:
        mailbox = self.settings.mailbox
        if mailbox.source == "maildir":
            return f"maildir:{self.settings.resolve(mailbox.maildir)}"
        return f"{mailbox.username}@{mailbox.host}"

    @property
    def our_addresses(self) -> set[str]:
        found = {self.settings.smtp.from_address.lower()}
        if "@" in self.settings.mailbox.username:
            found.add(self.settings.mailbox.username.lower())
        return found

    def close(self) -> None:
        if "worker" in self.__dict__:
            self.worker.close()
        self.db.dispose()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

