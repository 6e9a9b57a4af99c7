"""Files and folders that intake creates are private to the account that runs it.

The database, the archive, lock files and exported reports hold other people's mail and
personal data. Modes are set explicitly, so they hold whatever umask the process inherits.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
_MAX_NAME_BYTES = 200  # below NAME_MAX (255 bytes) with room for a temp prefix
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def make_private_dir(path: Path) -> None:
    """Create `path` and any missing parents as 0700; folders that already exist are left alone."""
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR)
        except FileExistsError:
            continue  # another process made it first
        os.chmod(folder, PRIVATE_DIR)  # mkdir's mode is masked by the umask


def create_private_file(path: Path) -> None:
    """Create an empty 0600 file if none exists (an existing file keeps its mode)."""
    make_private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))


def open_private(path: Path, flags: int = os.O_RDWR | os.O_CREAT) -> int:
    """os.open for a file intake owns: created 0600, in a 0700 folder if that is new."""
    make_private_dir(path.parent)
    return os.open(path, flags, PRIVATE_FILE)


def safe_file_name(text: str, fallback: str = "file") -> str:
    """One path component built from configuration text (e.g. the campaign name).

    Separators and control or invisible format characters become "_", leading dots go
    (no "..", no hidden files), and the name fits a filesystem's 255-byte limit, keeping
    its extension."""
    cleaned = "".join(
        "_" if ch in "/\\" or unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in text
    )
    cleaned = cleaned.strip().lstrip(".").strip()
    if not cleaned.strip("._ "):
        cleaned = fallback
    stem, dot, suffix = cleaned.rpartition(".")
    if not dot or len(suffix) > 10:
        stem, suffix = cleaned, ""
    tail = f".{suffix}" if suffix else ""
    while len((stem + tail).encode("utf-8")) > _MAX_NAME_BYTES:
        stem = stem[:-1]
    return stem + tail
