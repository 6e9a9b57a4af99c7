"""A mail's MIME tree is read in a parser process; the poller gets plain data back.

The stdlib email parser holds ~8 times a mail's size while it splits the body into lines
(a 59 MB mail cost the poller 455 MB), and every byte of it is written by a possible
attacker. So the whole mail is parsed only in a parser process (intake.sandbox): it reads
the mail from the archive file in chunks (intake.mime.parse_mail_file: each part's body is
decoded into a spool file as it is reached), files each attachment and zip member into
the archive itself, one attachment in memory at a time,
and hands back `MailContent` (body text, part types, file references, problems) as JSON,
rebuilt strictly. The poller reads only the mail's header block (intake.mime.header_block)
and joins the two into a `MailView`, which is all the later steps (reply decision,
threading, storing) see of a mail.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pydantic import ConfigDict, TypeAdapter

from config.settings import LimitsSettings
from intake.archive import sha256_hex
from intake.links import find_links
from intake.mime import MAX_NESTING, ParsedMail, decode_raw, parse_headers, parse_mail_file, safe_filename
from intake.unpack import ArchiveFile, MailBudget, archive_kind, unpack_archive, unsupported_archive
from parsers.model import Problem, ProblemCode

MAX_URL = 2000  # a link longer than this is cut (it is shown, never fetched cut)
# Attachments that are not submissions whatever they hold.
_NOT_SUBMISSIONS = ("text/calendar",)
# Outlook's winmail.dat wraps the real attachments (TNEF): found by type, name or signature.
_TNEF_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")
_TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"


@dataclass
class AttachmentRef:
    """An attachment as the mail carried it (a zip counts as one)."""

    name: str  # decoded display name, never a path
    content_type: str
    forwarded: bool
    sha256: str
    size: int


@dataclass
class FileRef:
    """A file to parse, already in the archive: an attachment or an archive member."""

    name: str
    digest: str
    parent: str | None = None  # display path of the archive it came from


@dataclass
class LinkRef:
    """A large-attachment link found in the body (intake.links), as stated there."""

    url: str
    name: str | None
    size: int | None
    expires_at: dt.datetime | None


@dataclass
class MailContent:
    """What a parser process read from a mail's body."""

    body_text: str = ""
    content_types: list[str] = field(default_factory=list)
    attachments: list[AttachmentRef] = field(default_factory=list)
    files: list[FileRef] = field(default_factory=list)
    archives: list[ArchiveFile] = field(default_factory=list)  # listed whatever their members' fate
    problems: list[Problem] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    too_deep: bool = False
    parts_lost: bool = False
    returned_ids: list[str] = field(default_factory=list)  # Message-IDs of mail carried inside
    delivery_status: str = ""  # a bounce's diagnostic
    links: list[LinkRef] = field(default_factory=list)  # large-attachment links (超大附件)


# Rebuilt like parsers.model's reports: unknown keys and wrong types are refused.
for _plain in (AttachmentRef, FileRef, ArchiveFile, MailContent):
    _plain.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
_CONTENT = TypeAdapter(MailContent)


def content_to_json(content: MailContent) -> bytes:
    return _CONTENT.dump_json(content)


def content_from_json(data: bytes) -> MailContent:
    """Raises pydantic.ValidationError for anything that is not well-formed content."""
    return _CONTENT.validate_json(data)


def read_mail(raw: bytes, limits: LimitsSettings, store: Callable[[bytes], str]) -> MailContent:
    """read_mail_file of a mail in memory: for tests and tools."""
    return read_mail_file(io.BytesIO(raw), limits, store)


def read_mail_file(source: BinaryIO, limits: LimitsSettings, store: Callable[[bytes], str],
                   spool_dir: Path | None = None) -> MailContent:
    """Parse a whole mail from a seekable binary file; attachments and zip members within
    the limits go to `store` (which returns their digest). Runs in a parser process (see
    module docstring)."""
    parsed = parse_mail_file(source, spool_dir)
    try:
        return _content(parsed, limits, store)
    finally:
        parsed.close()


def _content(parsed: ParsedMail, limits: LimitsSettings, store: Callable[[bytes], str]) -> MailContent:
    content = MailContent(
        body_text=parsed.body_text,
        content_types=sorted(parsed.content_types),
        defects=parsed.defects,
        too_deep=parsed.too_deep,
        parts_lost=parsed.parts_lost,
        returned_ids=parsed.returned_ids,
        delivery_status=parsed.delivery_status,
        links=[LinkRef(link.url[:MAX_URL], safe_filename(link.name) if link.name else None, link.size, link.expires_at)
               for link in find_links(parsed.bodies)],
    )
    del parsed.message  # the tree: the attachments' content is in their spool files
    if parsed.too_deep:
        content.problems.append(Problem(ProblemCode.UNSAFE_FILE, f"邮件结构嵌套超过 {MAX_NESTING} 层（异常构造），附件未读取；请直接附上文件重新发送。"))
        return content
    if parsed.parts_lost:
        content.problems.append(Problem(ProblemCode.UNREADABLE_FILE, "邮件的 MIME 结构已损坏（找不到分隔符），附件无法读取，请重新发送。"))
    _file_attachments(parsed, content, limits, store)
    return content


def _file_attachments(parsed: ParsedMail, content: MailContent, limits: LimitsSettings,
                      store: Callable[[bytes], str]) -> None:
    budget = MailBudget(limits)  # bytes and members unpacked, shared by the mail's archives
    for attachment in parsed.attachments:
        data = attachment.read()  # one decoded attachment in memory at a time
        content.attachments.append(AttachmentRef(attachment.name, attachment.content_type, attachment.forwarded,
                                                 attachment.sha256, len(data)))
        if _is_tnef(attachment.content_type, attachment.name, data):
            _file_tnef(attachment.name, data, content, limits, budget, store)
        elif attachment.content_type in _NOT_SUBMISSIONS:
            content.problems.append(Problem(ProblemCode.UNSUPPORTED_FILE, f"《{attachment.name}》不是报送文件（日历邀请），已忽略；请以普通附件形式发送 PDF 和 Excel。", attachment.name))
        else:
            _file_one(attachment.name, data, content, limits, budget, store)
        del data
        attachment.release()  # archived: freed before the next one is read


def _file_one(name: str, data: bytes, content: MailContent, limits: LimitsSettings, budget: MailBudget,
              store: Callable[[bytes], str]) -> None:
    """An attachment (or a file Outlook wrapped in winmail.dat): unpacked, refused or filed."""
    if (kind := archive_kind(data, name)) is not None:
        unpacked = unpack_archive(data, name, kind, limits, budget=budget, store=store)
        content.problems.extend(unpacked.problems)
        content.files.extend(FileRef(m.name, m.digest, m.parent) for m in unpacked.members)
        content.archives.extend(unpacked.archives)
    elif (problem := unsupported_archive(name, data)) is not None:
        content.problems.append(problem)
    else:
        content.files.append(FileRef(name, store(data)))


def _is_tnef(content_type: str, name: str, data: bytes) -> bool:
    return content_type in _TNEF_TYPES or name.lower() == "winmail.dat" or data.startswith(_TNEF_SIGNATURE)


def _file_tnef(name: str, data: bytes, content: MailContent, limits: LimitsSettings, budget: MailBudget,
               store: Callable[[bytes], str]) -> None:
    """The attachments inside Outlook's winmail.dat, each handled like a mail attachment
    (members of the mail's budget, so a TNEF of thousands of files costs what a zip would)."""
    from tnefparse import TNEF

    try:
        found = [a for a in TNEF(data).attachments if a.data]
    except Exception as err:  # noqa: BLE001 - a hostile stream may break the decoder anywhere
        content.problems.append(Problem(ProblemCode.UNREADABLE_FILE, f"《{name}》（Outlook 专用格式）无法读取（{type(err).__name__}）；请在 Outlook 中改用 HTML 或纯文本格式重新发送。", name))
        return
    if not found:
        content.problems.append(Problem(ProblemCode.UNSUPPORTED_FILE, f"《{name}》是 Outlook 专用格式，其中没有附件，已忽略；请以普通附件形式发送 PDF 和 Excel。", name))
    for attachment in found:
        if budget.members_left <= 0:
            content.problems.append(Problem(ProblemCode.UNSAFE_FILE, f"《{name}》中的文件超过 {limits.max_zip_members} 个，其余文件未读取。", name))
            return
        budget.members_left -= 1
        _file_one(_tnef_name(attachment), attachment.data, content, limits, budget, store)


def _tnef_name(attachment) -> str:  # noqa: ANN001 - tnefparse.TNEFAttachment
    """The long name where Outlook wrote one (MAPI, already decoded), else the 8.3 title,
    which tnefparse would decode as UTF-8 only: GBK from a Chinese Outlook is common."""
    from tnefparse.properties import MAPI_ATTACH_LONG_FILENAME

    long_names = [a.data for a in attachment.mapi_attrs if a.name == MAPI_ATTACH_LONG_FILENAME]
    raw = long_names[0] if long_names else attachment._name  # noqa: SLF001 - the undecoded title
    name = raw if isinstance(raw, str) else decode_raw(bytes(raw).rstrip(b"\x00"))
    return safe_filename(name.strip("\x00"))


@dataclass(frozen=True)
class MailView:
    """A mail as the steps after parsing see it: header fields and the mail's top-level
    headers (from the header block), and what a parser process read from its body. Plain
    data: no MIME tree, no raw bytes."""

    message_id: str | None
    from_name: str
    from_address: str | None  # None unless the mail names exactly one usable address
    from_problem: str | None  # why not: intake.mime.FROM_MISSING, FROM_MULTIPLE, FROM_UNPARSEABLE
    to: str
    subject: str
    date_header: str | None
    headers: tuple[tuple[str, str], ...]  # (name, value as sent), in order
    content_types: frozenset[str]
    body_text: str = ""
    attachments: tuple[AttachmentRef, ...] = ()
    archives: tuple[ArchiveFile, ...] = ()
    defects: tuple[str, ...] = ()
    too_deep: bool = False
    parts_lost: bool = False
    returned_ids: tuple[str, ...] = ()
    delivery_status: str = ""
    links: tuple[LinkRef, ...] = ()

    @classmethod
    def of(cls, headers: ParsedMail, content: MailContent | None = None) -> MailView:
        """`headers` from intake.mime.parse_headers; `content` from a parser process
        (None: the body was not read)."""
        content = content or MailContent()
        return cls(
            message_id=headers.message_id,
            from_name=headers.from_name,
            from_address=headers.from_address,
            from_problem=headers.from_problem,
            to=headers.to,
            subject=headers.subject,
            date_header=headers.date_header,
            headers=tuple(headers.message.items()),
            content_types=frozenset(headers.content_types | set(content.content_types)),
            body_text=content.body_text,
            attachments=tuple(content.attachments),
            archives=tuple(content.archives),
            defects=tuple(dict.fromkeys([*headers.defects, *content.defects])),
            too_deep=content.too_deep,
            parts_lost=content.parts_lost,
            returned_ids=tuple(content.returned_ids),
            delivery_status=content.delivery_status,
            links=tuple(content.links),
        )

    @classmethod
    def from_bytes(cls, raw: bytes, limits: LimitsSettings | None = None) -> MailView:
        """Read entirely in this process: for tests and tools, never for received mail."""
        return cls.of(parse_headers(raw), read_mail(raw, limits or LimitsSettings(), sha256_hex))

    def get(self, name: str) -> str | None:
        """The first top-level header of that name as sent, or None (like Message.get)."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def keys(self) -> list[str]:
        return [key for key, _ in self.headers]
