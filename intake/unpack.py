"""Unpacking .zip attachments under limits, with the member names Chinese tools write.

Windows' built-in zip and many Chinese archivers store names in GBK without setting the
UTF-8 flag (bit 11), so Python shows them as cp437 mojibake; we recover the bytes and
decode them ourselves. Sizes are enforced on the bytes actually read, not on what the
archive claims, so a lying header cannot get a bomb past us.

Limits hold per mail, not per archive (`MailBudget`): ten zips each under the limits
still share one allowance of unpacked bytes, members, files read and seconds. Members are
handed to `store` (the archive) as they are read, so a mail's unpacked files are never
all in memory together.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

from config.settings import LimitsSettings
from intake.archive import sha256_hex
from intake.mime import safe_filename
from parsers.filetypes import detect_kind, extension
from parsers.model import FileKind, Problem, ProblemCode

UTF8_FLAG = 0x800
JUNK = ("__MACOSX/", ".DS_Store", "Thumbs.db", "desktop.ini")
UNSUPPORTED_ARCHIVES = {"rar", "7z", "tar", "gz", "tgz", "bz2", "xz"}
# Archives named .zip (or anything) that are not: found by their magic bytes.
ARCHIVE_MAGIC = {b"Rar!\x1a\x07": "rar", b"7z\xbc\xaf\x27\x1c": "7z", b"\x1f\x8b": "gz", b"\xfd7zXZ\x00": "xz", b"BZh": "bz2"}


@dataclass
class Member:
    name: str
    digest: str  # sha256 of the content, as `store` returned it
    parent: str  # display path of the archive(s) it came from


@dataclass
class Unpacked:
    members: list[Member] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def member_name(info: zipfile.ZipInfo) -> str:
    if info.flag_bits & UTF8_FLAG:
        return info.filename
    raw = info.filename.encode("cp437", errors="replace")
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return info.filename


def _unsafe_path(name: str) -> bool:
    return "\x00" in name or name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/") or (
        len(name) > 1 and name[1] == ":"
    )


class MailBudget:
    """What one mail may cost, over all its attachments and archives: files read, seconds,
    bytes unpacked and zip members."""

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


def unpack_zip(data: bytes, name: str, limits: LimitsSettings, *, budget: MailBudget | None = None,
               store: Callable[[bytes], str] = sha256_hex) -> Unpacked:
    """Members within the limits go to `store` (which returns their digest); the mail's
    `budget` is shared with its other archives (default: a budget of its own)."""
    result = Unpacked()
    _unpack(data, name, limits, budget or MailBudget(limits), store, depth=1, result=result)
    return result


def _problem(code: ProblemCode, file: str, message: str) -> Problem:
    return Problem(code=code, message=message, file=file)


def _unpack(data: bytes, name: str, limits: LimitsSettings, budget: MailBudget, store: Callable[[bytes], str],
            depth: int, result: Unpacked) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as err:
        result.problems.append(
            _problem(ProblemCode.UNREADABLE_FILE, name, f"压缩包《{name}》无法打开（{type(err).__name__}），请重新压缩后发送。")
        )
        return
    with archive:
        for info in infos:
            raw_name = member_name(info)
            if info.is_dir() or any(part in raw_name for part in JUNK):
                continue
            display = f"{name}/{safe_filename(raw_name)}"
            # zipfile cuts a name at NUL ("evil.exe\0.xlsx" reads as "evil.exe"); the name
            # as stored in the archive keeps it.
            if _unsafe_path(raw_name) or "\x00" in info.orig_filename:
                result.problems.append(
                    _problem(ProblemCode.UNSAFE_FILE, display,
                             f"压缩包《{name}》中的文件名“{raw_name[:80]!s}”含有非法路径，已拒绝该文件。")
                )
                continue
            if budget.members_left <= 0:
                result.problems.append(
                    _problem(ProblemCode.UNSAFE_FILE, name,
                             f"本邮件压缩包中的文件超过 {limits.max_zip_members} 个，《{name}》中其余文件未读取。")
                )
                return
            budget.members_left -= 1
            if info.flag_bits & 0x1:
                result.problems.append(
                    _problem(ProblemCode.ENCRYPTED_FILE, display, f"压缩包《{name}》中的《{safe_filename(raw_name)}》已加密，无法读取，请发送未加密的文件。")
                )
                continue
            if info.compress_size and info.file_size / info.compress_size > limits.max_zip_ratio:
                result.problems.append(
                    _problem(ProblemCode.UNSAFE_FILE, display,
                             f"压缩包《{name}》中的《{safe_filename(raw_name)}》压缩比异常（疑似压缩炸弹），已拒绝。")
                )
                continue
            cap = min(budget.bytes_left, limits.max_file_bytes)
            try:
                with archive.open(info) as handle:
                    content = handle.read(cap + 1)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError, ValueError) as err:
                result.problems.append(
                    _problem(ProblemCode.UNREADABLE_FILE, display,
                             f"压缩包《{name}》中的《{safe_filename(raw_name)}》无法解压（{type(err).__name__}）。")
                )
                continue
            if len(content) > cap:
                result.problems.append(
                    _problem(ProblemCode.TOO_LARGE if cap == limits.max_file_bytes else ProblemCode.UNSAFE_FILE, display,
                             f"压缩包《{name}》解压后超过大小限制（本邮件解压合计不超过 {limits.max_unpacked_bytes // (1024 * 1024)} MB），"
                             f"《{safe_filename(raw_name)}》未读取。")
                )
                if cap < limits.max_file_bytes:
                    return
                continue
            budget.bytes_left -= len(content)
            if detect_kind(content, raw_name) is FileKind.ZIP or extension(raw_name) == "zip":
                if depth >= limits.max_zip_depth:
                    result.problems.append(
                        _problem(ProblemCode.UNSAFE_FILE, display,
                                 f"压缩包《{name}》嵌套层数过多，《{safe_filename(raw_name)}》未解压。")
                    )
                    continue
                _unpack(content, display, limits, budget, store, depth + 1, result)
                continue
            if (problem := unsupported_archive(display, content)) is not None:
                result.problems.append(problem)
                continue
            result.members.append(Member(name=safe_filename(raw_name), digest=store(content), parent=name))
            del content


def unsupported_archive(name: str, data: bytes = b"") -> Problem | None:
    sniffed = next((kind for magic, kind in ARCHIVE_MAGIC.items() if data.startswith(magic)), None)
    ext = sniffed or extension(name)
    if ext in UNSUPPORTED_ARCHIVES:
        return _problem(
            ProblemCode.UNSUPPORTED_FILE, name, f"《{name}》是 {ext} 格式的压缩包，系统无法解压，请改用 zip 格式或直接发送文件。"
        )
    return None
