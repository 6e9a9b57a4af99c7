"""`intake backup DEST`: a consistent copy of the database and the archive, while running.

The database is copied first (SQLite's online backup API: a snapshot that is consistent
even while `intake run` writes), then the archive. Every archived file is written before
the row that names it, so an archive copied after the snapshot holds every file the
snapshot refers to.

PostgreSQL is backed up with its own tool (pg_dump) when it is on the PATH.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from config.settings import Settings
from storage.files import PRIVATE_FILE, make_private_dir, open_private

SQLITE_NAME = "intake.db"
PG_DUMP_NAME = "intake.pgdump"


class BackupError(Exception):
    """The backup could not be made; the message is one Chinese line."""


@dataclass(frozen=True)
class BackupReport:
    folder: Path
    database: Path
    archive_files: int


def backup(settings: Settings, destination: Path, *, now: dt.datetime | None = None) -> BackupReport:
    """Write `destination/intake-backup-<time>/` with the database, `files/` and a manifest."""
    now = now or dt.datetime.now(dt.UTC)
    folder = destination / f"intake-backup-{now:%Y%m%d-%H%M%S}"
    if folder.exists():
        raise BackupError(f"备份目录 {folder} 已存在，请稍后再试或换一个目标目录。")
    make_private_dir(folder)
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        database = _backup_sqlite(Path(url.database or ""), folder / SQLITE_NAME)
    elif url.get_backend_name() == "postgresql":
        database = _backup_postgres(url, folder / PG_DUMP_NAME)
    else:
        raise BackupError(f"不支持备份 {url.get_backend_name()} 数据库，请使用该数据库自带的备份工具。")
    total = _copy_archive(settings.resolve(settings.storage.path), folder / "files")
    manifest = {
        "made_at": now.isoformat(),
        "database": database.name,
        "archive_files": total,
        "restore": "stop intake; put the database back (or point [database] url at it) and [storage] path at files/",
    }
    _write_private(folder / "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2).encode())
    return BackupReport(folder, database, total)


def _backup_sqlite(source: Path, target: Path) -> Path:
    if not source.is_file():
        raise BackupError(f"找不到数据库文件 {source}。")
    _write_private(target, b"")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst)  # pages copied under a read transaction: one consistent snapshot
    finally:
        dst.close()
        src.close()
    return target


def _backup_postgres(url, target: Path) -> Path:  # noqa: ANN001 - sqlalchemy URL
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError(
            "PostgreSQL 数据库需用 pg_dump 备份，本机未找到 pg_dump（Debian：apt install postgresql-client）；"
            "也可在数据库服务器上执行 pg_dump --format=custom。"
        )
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    fd = open_private(target)
    try:
        result = subprocess.run([pg_dump, "--format=custom", "--dbname", libpq], stdout=fd, stderr=subprocess.PIPE, check=False)
    finally:
        os.close(fd)
    if result.returncode != 0:
        raise BackupError(f"pg_dump 失败：{result.stderr.decode('utf-8', 'replace').strip()[:300]}")
    return target


def _copy_archive(source: Path, target: Path) -> int:
    total = 0
    if not source.is_dir():
        return total
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue  # temporary files of a write in progress are dot-files
        total += 1
        destination = target / path.relative_to(source)
        make_private_dir(destination.parent)
        _write_private(destination, path.read_bytes())
    return total


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
