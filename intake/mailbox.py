"""The IMAP side: log in the way real servers need it, list new UIDs, fetch raw mail, IDLE.

Everything here is I/O against the server; what a message *means* is decided elsewhere.
"""

from __future__ import annotations

import datetime as dt
import imaplib
import logging
import re
import select as _select
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from imap_tools import BaseMailBox, MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import MailboxLoginError

from config.settings import MailboxSettings, Security, connection_failed, login_refused, tls_context
from intake import __version__

log = logging.getLogger(__name__)

imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))
imaplib.Commands.setdefault("MOVE", ("SELECTED",))

FETCH_ITEMS = "(UID INTERNALDATE RFC822.SIZE BODY.PEEK[])"
_UID = re.compile(rb"UID (\d+)")
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
# Some servers (and every NetEase one) refuse very long UID sets; batches stay well below.
NETWORK_ERRORS = (OSError, imaplib.IMAP4.abort, ssl.SSLError, TimeoutError)


class MailboxError(Exception):
    """The mailbox could not be reached or answered something we did not expect."""


class MailboxAuthError(MailboxError):
    """The server refused the username or password: retrying soon only risks a locked account."""


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    raw: bytes
    arrived_at: dt.datetime  # INTERNALDATE: when the server received it


@dataclass(frozen=True)
class FolderState:
    name: str
    uidvalidity: int
    uidnext: int | None
    exists: int


def _mailbox_class(settings: MailboxSettings) -> BaseMailBox:
    # imaplib's default context checks nothing; ours verifies the certificate and host name.
    timeout = settings.timeout_seconds
    if settings.security is Security.SSL:
        return MailBox(settings.host, settings.port, timeout=timeout, ssl_context=tls_context(settings.ca_file))
    if settings.security is Security.STARTTLS:
        return MailBoxStartTls(settings.host, settings.port, timeout=timeout, ssl_context=tls_context(settings.ca_file))
    return MailBoxUnencrypted(settings.host, settings.port, timeout=timeout)


def send_id(mailbox: BaseMailBox) -> None:
    """RFC 2971 ID: NetEase (163/126/yeah.net) answer SELECT with "Unsafe Login" without it."""
    client = mailbox.client
    if b"ID" not in {cap.encode() if isinstance(cap, str) else cap for cap in client.capabilities}:
        log.debug("server does not advertise ID; sending it anyway is harmless")
    fields = f'("name" "intake" "version" "{__version__}" "vendor" "intake")'
    typ, data = client._simple_command("ID", fields)  # noqa: SLF001 - imaplib has no ID wrapper
    if typ != "OK":
        log.warning("IMAP ID was refused: %s", data)


@contextmanager
def open_mailbox(settings: MailboxSettings) -> Iterator[BaseMailBox]:
    """A logged-in mailbox with ID sent and no folder selected yet."""
    mailbox = None
    try:
        mailbox = _mailbox_class(settings)
        mailbox.login(settings.username, settings.password.get_secret_value(), initial_folder=None)
        send_id(mailbox)
    except MailboxLoginError as err:
        mailbox.logout()  # a refused login leaves the connection open: end it now, not at GC
        server_text = err.command_result[1] if isinstance(err.command_result, tuple) else err
        raise MailboxAuthError(
            login_refused("mailbox", settings.username, settings.host, settings.port, server_text)) from err
    except NETWORK_ERRORS as err:  # certificate refusals included: connection_failed names them
        raise MailboxError(connection_failed("mailbox", settings.host, settings.port, settings.security, err)) from err
    try:
        yield mailbox
    finally:
        try:
            mailbox.logout()
        except Exception:  # noqa: BLE001 - the connection may already be gone
            pass


def select(mailbox: BaseMailBox, folder: str, *, readonly: bool = False) -> FolderState:
    """SELECT, or EXAMINE with `readonly` (the server then changes no flag in the folder)."""
    client = mailbox.client
    typ, data = client.select(_quote(folder), readonly=readonly)
    if typ != "OK":
        raise MailboxError(f"无法打开文件夹 {folder}：{data}")
    uidvalidity = _untagged_int(client, "UIDVALIDITY")
    if uidvalidity is None:
        raise MailboxError(f"服务器没有返回文件夹 {folder} 的 UIDVALIDITY")
    return FolderState(
        name=folder,
        uidvalidity=uidvalidity,
        uidnext=_untagged_int(client, "UIDNEXT"),
        exists=int(data[0]) if data and data[0] else 0,
    )


def extra_folders(mailbox: BaseMailBox, settings: MailboxSettings) -> list[str]:
    """The folders read besides `folder`: `extra_folders` as configured, else the server's
    \\Junk special-use folder(s) (RFC 6154), where 163 and QQ file some real mail."""
    if settings.extra_folders is not None:
        names = settings.extra_folders
    else:
        names = [f.name for f in mailbox.folder.list() if any(flag.lower() == "\\junk" for flag in f.flags)]
    return [name for name in dict.fromkeys(names) if name not in (settings.folder, settings.processed_folder)]


def _untagged_int(client: imaplib.IMAP4, name: str) -> int | None:
    _, values = client.response(name)
    for value in values or []:
        if value:
            return int(value)
    return None


def _quote(folder: str) -> str:
    from imap_tools.imap_utf7 import utf7_encode

    encoded = utf7_encode(folder).decode()
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def uids_after(mailbox: BaseMailBox, last_uid: int) -> list[int]:
    """UIDs strictly above last_uid ("n:*" always matches the newest message, so filter)."""
    typ, data = mailbox.client.uid("SEARCH", f"UID {last_uid + 1}:*")
    if typ != "OK":
        raise MailboxError(f"UID SEARCH 失败：{data}")
    found = [int(x) for x in (data[0] or b"").split()]
    return sorted(uid for uid in found if uid > last_uid)


def sizes(mailbox: BaseMailBox, uids: list[int]) -> dict[int, int]:
    """RFC822.SIZE of these UIDs, bodies untouched: so large mail can be fetched alone.
    A UID gone since the SEARCH (expunged) is simply absent."""
    if not uids:
        return {}
    typ, data = mailbox.client.uid("FETCH", ",".join(map(str, uids)), "(UID RFC822.SIZE)")
    if typ != "OK":
        raise MailboxError(f"UID FETCH 失败：{data}")
    found = {}
    for item in data:
        line = item[0] if isinstance(item, tuple) else item
        if isinstance(line, bytes) and (uid := _UID.search(line)) and (size := _SIZE.search(line)):
            found[int(uid.group(1))] = int(size.group(1))
    return found


def fetch(mailbox: BaseMailBox, uids: list[int]) -> Iterator[FetchedMessage]:
    """Raw bytes, UID and INTERNALDATE for these UIDs; peeks, so nothing is marked read."""
    if not uids:
        return
    typ, data = mailbox.client.uid("FETCH", ",".join(map(str, uids)), FETCH_ITEMS)
    if typ != "OK":
        raise MailboxError(f"UID FETCH 失败：{data}")
    for item in data:
        if not isinstance(item, tuple) or len(item) < 2:
            continue  # the closing ")" of each response, or an unsolicited FLAGS line
        meta, raw = item[0], item[1]
        uid_match, date_match = _UID.search(meta), _INTERNALDATE.search(meta)
        if not uid_match or not date_match:
            raise MailboxError(f"服务器返回的 FETCH 响应缺少 UID 或 INTERNALDATE：{meta[:200]!r}")
        yield FetchedMessage(
            uid=int(uid_match.group(1)),
            raw=raw,
            arrived_at=parse_internaldate(date_match.group(1).decode()),
        )


def parse_internaldate(value: str) -> dt.datetime:
    """'25-Feb-2024 16:59:59 +0800' -> aware datetime (the server's own clock and zone)."""
    return dt.datetime.strptime(value.strip(), "%d-%b-%Y %H:%M:%S %z")


def move(mailbox: BaseMailBox, uid: int, destination: str) -> None:
    """MOVE where the server has it; COPY + \\Deleted + UID EXPUNGE of just this UID otherwise."""
    if not mailbox.folder.exists(destination):
        mailbox.folder.create(destination)
    mailbox.move(str(uid), destination)


def server_closed(mailbox: BaseMailBox) -> bool:
    """True once the server has closed the connection. imap_tools' IDLE poll reads EOF as
    "no news", so a dropped connection would otherwise pass for a quiet mailbox until the
    IDLE period ends. POLLRDHUP is Linux's "peer closed"; it works under TLS too."""
    poller = _select.poll()
    poller.register(mailbox.client.sock.fileno(), getattr(_select, "POLLRDHUP", 0x2000))
    return bool(poller.poll(0))  # POLLHUP, POLLERR and POLLNVAL are always reported


def supports_idle(mailbox: BaseMailBox) -> bool:
    return "IDLE" in {str(cap).upper() for cap in mailbox.client.capabilities}
