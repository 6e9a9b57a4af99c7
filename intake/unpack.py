"""Unpacking zip, 7z and RAR attachments under limits, with the member names Chinese tools write.

Windows' built-in zip and many Chinese archivers store names in GBK without setting the
UTF-8 flag (bit 11), so Python shows them as cp437 mojibake; we recover the bytes and
decode them ourselves (RAR 4 names without the Unicode flag the same way; 7z and RAR 5
names are always Unicode). Sizes are enforced on the bytes actually read, not on what the
archive claims, so a lying header cannot get a bomb past us.

Limits hold per mail, not per archive (`MailBudget`): ten archives each under the limits
still share one allowance of unpacked bytes, members, files read and seconds. Members are
handed to `store` (the archive) as they are read, so a mail's unpacked files are never
all in memory together. The three formats differ only in how a member is listed and read
(`_Zip`, `_SevenZip`, `_Rar`); every rule is applied once, in `_unpack`.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

from config.settings import LimitsSettings
from intake.archive import sha256_hex
from intake.mime import decode_raw, safe_filename
from parsers.filetypes import detect_kind, extension
from parsers.model import FileKind, Problem, ProblemCode

UTF8_FLAG = 0x800
JUNK = ("__MACOSX/", ".DS_Store", "Thumbs.db", "desktop.ini")
ARCHIVES = ("zip", "7z", "rar")  # what we unpack
UNSUPPORTED_ARCHIVES = {"tar", "gz", "tgz", "bz2", "xz"}
# Archives named .zip (or anything) are found by their magic bytes.
ARCHIVE_MAGIC = {b"Rar!\x1a\x07": "rar", b"7z\xbc\xaf\x27\x1c": "7z", b"\x1f\x8b": "gz", b"\xfd7zXZ\x00": "xz", b"BZh": "bz2"}


@dataclass
class Member:
    name: str
    digest: str  # sha256 of the content, as `store` returned it
    parent: str  # display path of the archive(s) it came from


@dataclass
class ArchiveFile:
    """An archive as it was sent (an attachment or a member of another archive): listed for
    the unit and staff whatever became of its members."""

    name: str
    kind: str  # "zip", "7z" or "rar"
    digest: str
    size: int
    parent: str | None = None  # display path of the archive it came from


@dataclass
class Unpacked:
    members: list[Member] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    archives: list[ArchiveFile] = field(default_factory=list)


def member_name(info: zipfile.ZipInfo) -> str:
    if info.flag_bits & UTF8_FLAG:
        return info.filename
    return decode_raw(info.filename.encode("cp437", errors="replace"))


def _unsafe_path(name: str) -> bool:
    return "\x00" in name or name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/") or (
        len(name) > 1 and name[1] == ":"
    )


class MailBudget:
    """What one mail may cost, over all its attachments and archives: files read, seconds,
    bytes unpacked and archive members."""

    def __init__(self, limits: LimitsSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.deadline = clock() + limits.max_seconds_per_mail
        self.files_left = limits.max_files_per_mail
        self.bytes_left = limits.max_unpacked_bytes
        self.members_left = limits.max_zip_members

    def seconds_left(self) -> float:
        return max(0.0, self.deadline - self.clock())

    def refuse_file(self, name: str) -> Problem | None:
        """Take one file from the budget; the problem to record instead if none is left."""
        if self.files_left <= 0:
            return _problem(ProblemCode.TOO_LARGE, name, f"《{name}》未读取：本邮件附件超过 {self.limits.max_files_per_mail} 个，"
                                                         "请只发送报送所需的文件。")
        if self.seconds_left() <= 0:
            return self.out_of_time(name)
        self.files_left -= 1
        return None

    def file_seconds(self) -> float:
        """The per-file time limit, cut to what is left of the mail's."""
        return min(self.limits.seconds_per_file, self.seconds_left())

    def out_of_time(self, name: str) -> Problem:
        return _problem(ProblemCode.TOO_LARGE, name, f"《{name}》未读取：本邮件处理时间超过 {self.limits.max_seconds_per_mail:g} 秒，"
                                                     "请分开发送或精简文件后重新发送。")


def archive_kind(data: bytes, name: str) -> str | None:
    """"zip", "7z" or "rar" when the bytes are one of the archives we unpack (an .xlsx,
    .docx or .ofd is a zip but not an archive), else None."""
    sniffed = next((kind for magic, kind in ARCHIVE_MAGIC.items() if data.startswith(magic)), None)
    if sniffed is not None:
        return sniffed if sniffed in ARCHIVES else None
    if detect_kind(data, name) is FileKind.ZIP:
        return "zip"
    return extension(name) if extension(name) in ARCHIVES else None  # damaged: opening it says so


def unpack_archive(data: bytes, name: str, kind: str, limits: LimitsSettings, *, budget: MailBudget | None = None,
                   store: Callable[[bytes], str] = sha256_hex, parent: str | None = None) -> Unpacked:
    """Members within the limits go to `store` (which returns their digest); the mail's
    `budget` is shared with its other archives (default: a budget of its own). The
    archive itself is stored too and listed in `archives`."""
    result = Unpacked()
    _unpack(data, name, kind, limits, budget or MailBudget(limits), store, depth=1, result=result, parent=parent)
    return result


def unpack_zip(data: bytes, name: str, limits: LimitsSettings, *, budget: MailBudget | None = None,
               store: Callable[[bytes], str] = sha256_hex) -> Unpacked:
    return unpack_archive(data, name, "zip", limits, budget=budget, store=store)


def _problem(code: ProblemCode, file: str, message: str) -> Problem:
    return Problem(code=code, message=message, file=file)


@dataclass
class _Entry:
    """A member as its archive describes it, before any byte of it is read."""

    name: str  # decoded, as stored
    handle: object  # the reader's own (ZipInfo, RarInfo, 7z name)
    is_dir: bool = False
    is_link: bool = False
    encrypted: bool = False
    size: int = 0  # declared
    packed: int | None = None  # declared compressed size; None in a solid archive
    nul_in_name: bool = False


class _Encrypted(Exception):
    """The archive's own listing is encrypted: no member can be named without the password."""


class _NoTool(Exception):
    """RAR needs an unpacking tool (unar, bsdtar or unrar) and none is installed."""


class _Zip:
    def __init__(self, data: bytes) -> None:
        self.archive = zipfile.ZipFile(io.BytesIO(data))
        self.solid = False

    def entries(self) -> list[_Entry]:
        # zipfile cuts a name at NUL ("evil.exe\0.xlsx" reads as "evil.exe"); the name as
        # stored in the archive keeps it.
        return [_Entry(member_name(i), i, is_dir=i.is_dir(), encrypted=bool(i.flag_bits & 0x1), size=i.file_size,
                       packed=i.compress_size, nul_in_name="\x00" in i.orig_filename) for i in self.archive.infolist()]

    def read(self, entry: _Entry, limit: int) -> bytes:
        with self.archive.open(entry.handle) as handle:  # type: ignore[arg-type]
            return handle.read(limit)

    def close(self) -> None:
        self.archive.close()


class _Capped:
    """py7zr's writer for one member: keeps at most `limit` bytes, then stops the extraction."""

    class Full(Exception):
        pass

    def __init__(self, limit: int) -> None:
        from py7zr.io import Py7zIO

        limit_ = limit
        chunks = bytearray()

        class Writer(Py7zIO):
            def write(self, s: bytes | bytearray) -> int:
                chunks.extend(s[: limit_ - len(chunks)])
                if len(chunks) >= limit_:
                    raise _Capped.Full
                return len(s)

            def read(self, size: int | None = None) -> bytes:
                return bytes(chunks)

            def seek(self, offset: int, whence: int = 0) -> int:
                return 0

            def flush(self) -> None:
                pass

            def size(self) -> int:
                return len(chunks)

        self.writer, self.chunks = Writer(), chunks


class _SevenZip:
    """py7zr has no streaming reader: each member is extracted alone into a capped writer (a
    solid block is decompressed up to the member, bounded by the mail's time limit)."""

    def __init__(self, data: bytes) -> None:
        import py7zr

        self.data = data
        try:
            with py7zr.SevenZipFile(io.BytesIO(data)) as archive:
                self.infos = archive.list()
                self.encrypted = archive.needs_password()
        except py7zr.PasswordRequired as err:  # the listing itself is encrypted (7z -mhe)
            raise _Encrypted from err
        self.solid = any(info.compressed is None for info in self.infos if info.is_file)

    def entries(self) -> list[_Entry]:
        return [_Entry(i.filename, i.filename, is_dir=i.is_directory, is_link=i.is_symlink, encrypted=self.encrypted,
                       size=i.uncompressed, packed=i.compressed) for i in self.infos]

    def read(self, entry: _Entry, limit: int) -> bytes:
        import py7zr
        from py7zr.io import WriterFactory

        capped = _Capped(limit)

        class One(WriterFactory):
            def create(self, filename: str):  # noqa: ANN202 - py7zr's Py7zIO
                return capped.writer

        try:
            with py7zr.SevenZipFile(io.BytesIO(self.data)) as archive:
                archive.extract(targets=[entry.handle], factory=One())  # type: ignore[list-item]
        except _Capped.Full:
            pass
        return bytes(capped.chunks)

    def close(self) -> None:
        pass


class _Rar:
    """rarfile reads the listing itself; compressed members go through unar or bsdtar."""

    def __init__(self, data: bytes) -> None:
        import rarfile

        # "strict": a damaged header is an error, not a silently shorter listing.
        self.archive = rarfile.RarFile(io.BytesIO(data), errors="strict")
        if self.archive.needs_password() and not self.archive.infolist():
            raise _Encrypted  # rar -hp: even the names are encrypted
        self.solid = self.archive.is_solid()

    def entries(self) -> list[_Entry]:
        return [_Entry(self._name(i), i, is_dir=i.is_dir(), is_link=i.is_symlink(), encrypted=i.needs_password(),
                       size=i.file_size, packed=i.compress_size, nul_in_name="\x00" in i.filename)
                for i in self.archive.infolist()]

    @staticmethod
    def _name(info) -> str:  # noqa: ANN001 - rarfile.RarInfo
        import rarfile

        # RAR 4 without the Unicode flag stores the writer's code page (GBK on Chinese
        # Windows); rarfile would guess UTF-16 or cp1252.
        if isinstance(info, rarfile.Rar3Info) and not info.flags & rarfile.RAR_FILE_UNICODE:
            return decode_raw(info.orig_filename)
        return info.filename

    def read(self, entry: _Entry, limit: int) -> bytes:
        import rarfile

        try:
            with self.archive.open(entry.handle) as handle:  # type: ignore[arg-type]
                return handle.read(limit)
        except rarfile.RarCannotExec as err:
            raise _NoTool from err

    def close(self) -> None:
        self.archive.close()


READERS = {"zip": _Zip, "7z": _SevenZip, "rar": _Rar}


def _open(data: bytes, name: str, kind: str, result: Unpacked) -> _Zip | _SevenZip | _Rar | None:
    try:
        return READERS[kind](data)
    except _Encrypted:
        result.problems.append(_problem(ProblemCode.ENCRYPTED_FILE, name, encrypted_message(name)))
    except Exception as err:  # noqa: BLE001 - a hostile archive may break its library anywhere
        result.problems.append(
            _problem(ProblemCode.UNREADABLE_FILE, name, f"压缩包《{name}》无法打开（{type(err).__name__}），请重新压缩后发送。")
        )
    return None


def encrypted_message(name: str) -> str:
    return f"压缩包《{name}》设有密码，无法解压；请取消密码后重新发送（或直接发送文件）。"


def _ratio_refused(entry: _Entry, reader: _Zip | _SevenZip | _Rar, declared_total: int, data_size: int,
                   limits: LimitsSettings) -> bool:
    """Declared sizes against packed ones: per member, or over the whole archive when it is
    solid (a solid block's later members pack to almost nothing legitimately)."""
    if reader.solid or entry.packed is None:
        return data_size > 0 and declared_total / data_size > limits.max_zip_ratio
    return bool(entry.packed) and entry.size / entry.packed > limits.max_zip_ratio


def _unpack(data: bytes, name: str, kind: str, limits: LimitsSettings, budget: MailBudget, store: Callable[[bytes], str],
            depth: int, result: Unpacked, parent: str | None = None) -> None:
    display_name = name.rsplit("/", 1)[-1] if parent else name
    result.archives.append(ArchiveFile(display_name, kind, store(data), len(data), parent))
    reader = _open(data, name, kind, result)
    if reader is None:
        return
    try:
        _members(reader, data, name, limits, budget, store, depth, result)
    finally:
        reader.close()


def _members(reader: _Zip | _SevenZip | _Rar, data: bytes, name: str, limits: LimitsSettings, budget: MailBudget,
             store: Callable[[bytes], str], depth: int, result: Unpacked) -> None:
    entries = reader.entries()
    declared_total = sum(e.size for e in entries if not e.is_dir)
    for entry in entries:
        raw_name = entry.name
        if entry.is_dir or any(part in raw_name for part in JUNK):
            continue
        member = safe_filename(raw_name)
        display = f"{name}/{member}"
        if _unsafe_path(raw_name) or entry.nul_in_name or entry.is_link:
            what = "链接" if entry.is_link else "非法路径"
            result.problems.append(
                _problem(ProblemCode.UNSAFE_FILE, display, f"压缩包《{name}》中的文件名“{raw_name[:80]!s}”含有{what}，已拒绝该文件。")
            )
            continue
        if budget.members_left <= 0:
            result.problems.append(
                _problem(ProblemCode.UNSAFE_FILE, name, f"本邮件压缩包中的文件超过 {limits.max_zip_members} 个，《{name}》中其余文件未读取。")
            )
            return
        budget.members_left -= 1
        if entry.encrypted:
            result.problems.append(
                _problem(ProblemCode.ENCRYPTED_FILE, display, f"压缩包《{name}》中的《{member}》设有密码，无法读取；请取消密码后重新发送。")
            )
            continue
        if _ratio_refused(entry, reader, declared_total, len(data), limits):
            result.problems.append(
                _problem(ProblemCode.UNSAFE_FILE, display, f"压缩包《{name}》中的《{member}》压缩比异常（疑似压缩炸弹），已拒绝。")
            )
            continue
        cap = min(budget.bytes_left, limits.max_file_bytes)
        try:
            content = reader.read(entry, cap + 1)
        except _NoTool:
            result.problems.append(
                _problem(ProblemCode.UNSUPPORTED_FILE, display, f"本系统未安装 RAR 解压工具，《{name}》无法解压；请改用 zip 格式或直接发送文件。")
            )
            return
        except Exception as err:  # noqa: BLE001 - a hostile archive may break its library anywhere
            result.problems.append(
                _problem(ProblemCode.UNREADABLE_FILE, display, f"压缩包《{name}》中的《{member}》无法解压（{type(err).__name__}）。")
            )
            continue
        if len(content) > cap:
            result.problems.append(
                _problem(ProblemCode.TOO_LARGE if cap == limits.max_file_bytes else ProblemCode.UNSAFE_FILE, display,
                         f"压缩包《{name}》解压后超过大小限制（本邮件解压合计不超过 {limits.max_unpacked_bytes // (1024 * 1024)} MB），"
                         f"《{member}》未读取。")
            )
            if cap < limits.max_file_bytes:
                return
            continue
        budget.bytes_left -= len(content)
        if (inner := archive_kind(content, raw_name)) is not None:
            if depth >= limits.max_zip_depth:
                result.problems.append(
                    _problem(ProblemCode.UNSAFE_FILE, display, f"压缩包《{name}》嵌套层数过多，《{member}》未解压。")
                )
                continue
            _unpack(content, display, inner, limits, budget, store, depth + 1, result, parent=name)
            continue
        if (problem := unsupported_archive(display, content)) is not None:
            result.problems.append(problem)
            continue
        result.members.append(Member(name=member, digest=store(content), parent=name))
        del content


def unsupported_archive(name: str, data: bytes = b"") -> Problem | None:
    sniffed = next((kind for magic, kind in ARCHIVE_MAGIC.items() if data.startswith(magic)), None)
    ext = sniffed or extension(name)
    if ext in UNSUPPORTED_ARCHIVES:
        return _problem(
            ProblemCode.UNSUPPORTED_FILE, name, f"《{name}》是 {ext} 格式的压缩包，系统无法解压，请改用 zip、7z 或 rar 格式，或直接发送文件。"
        )
    return None
