"""Logging for every command: intake's own lines at INFO (DEBUG with -v), libraries quiet.

One INFO line per mail processed and per mail sent is the operator's record of what the
service did; third-party libraries (pdfminer alone prints thousands of DEBUG lines for
one PDF) stay at WARNING whatever -v says. `[logging] file` adds a size-rotated file,
optionally as JSON lines.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.handlers
import sys
from collections.abc import Callable
from pathlib import Path

from config.settings import LoggingSettings
from storage.files import create_private_file

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that are not ours; they speak only for warnings and errors.
THIRD_PARTY = (
    "alembic", "apscheduler", "pdfminer", "pdfplumber", "PIL", "imap_tools", "urllib3", "asyncio",
    "multipart", "charset_normalizer", "fontTools", "rapidocr", "onnxruntime", "RapidOCR", "mail.log",
    "uvicorn.access", "httpx", "httpcore",
)
OUR_LOGGERS = ("intake", "parsers", "storage", "notifications", "config")


class JsonLines(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(verbose: bool) -> None:
    """stderr for everything at WARNING; intake's own loggers at INFO, or DEBUG with -v."""
    logging.basicConfig(level=logging.WARNING, format=FORMAT, stream=sys.stderr)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.WARNING)


def add_log_file(settings: LoggingSettings, resolve: Callable[[Path], Path]) -> logging.Handler | None:
    """Also write to `[logging] file` (0600, rotated by size); the caller removes the
    handler when its command ends (remove_log_file)."""
    if settings.file is None:
        return None
    path = resolve(settings.file)
    create_private_file(path)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=settings.max_bytes, backupCount=settings.backups, encoding="utf-8"
    )
    handler.setFormatter(JsonLines() if settings.json_lines else logging.Formatter(FORMAT))
    logging.getLogger().addHandler(handler)
    return handler


def remove_log_file(handler: logging.Handler | None) -> None:
    if handler is not None:
        logging.getLogger().removeHandler(handler)
        handler.close()
