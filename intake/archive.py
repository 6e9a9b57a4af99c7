"""Content-addressed, fsync'd storage for raw mail and attachments.

A file's name is its sha256, never anything a sender chose, so no filename can escape
the archive and the same bytes are stored once however often they arrive.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from intake import stages
from storage.files import make_private_dir


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArchiveError(OSError):
    """The archive could not write (disk full, read-only, gone): a fault of ours, not of the
    mail, so callers stop and retry later rather than record or quarantine anything."""


class Archive:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, area: str, digest: str) -> Path:
        return self.root / area / digest[:2] / digest

    @stages.timing("archive write+fsync")
    def store(self, area: str, data: bytes) -> str:
        """Write data durably under its sha256 and return the digest (idempotent)."""
        try:
            return self._write(area, data)
        except OSError as err:
            raise ArchiveError(err.errno, f"无法写入存档 {self.root}：{err.strerror or err}") from err

    def _write(self, area: str, data: bytes) -> str:
        digest = sha256_hex(data)
        target = self.path(area, digest)
        if not (target.exists() and target.stat().st_size == len(data)):
            write_atomically(target, data)
        return digest

    def read(self, area: str, digest: str) -> bytes:
        data = self.path(area, digest).read_bytes()
        if sha256_hex(data) != digest:
            raise OSError(f"archive file {digest} is corrupt")
        return data

    def read_start(self, area: str, digest: str, size: int) -> bytes:
        """The first `size` bytes (fewer for a shorter file), unverified: for a mail's
        header block, which must not cost reading the whole mail."""
        with self.path(area, digest).open("rb") as handle:
            return handle.read(size)

    def exists(self, area: str, digest: str) -> bool:
        return self.path(area, digest).exists()


def write_atomically(path: Path, data: bytes, *, sync_folder: bool = True) -> None:
    """Temp file, fsync, rename, fsync the folder: a reader sees the whole file or none,
    and after a crash the file is either complete or absent. The file is 0600 (mkstemp's
    mode, whatever the umask) and new folders are 0700. Writing many files into one
    folder, pass `sync_folder=False` and call fsync_folder once after the last."""
    make_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync_folder:
        fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """A rename is only durable once the directory entry is on disk too."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
