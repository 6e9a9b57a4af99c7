"""A real Dovecot IMAP server on loopback, owned by the test (or benchmark) that starts it.

Each instance has its own config, Maildir root, log and port; nothing touches the
system's Dovecot. `imap_id_log = *` makes Dovecot log the ID command, which the tests
read to prove ID is sent before SELECT.

`Dovecot(tls="imaps")` serves implicit TLS on its port and `tls="starttls"` requires
STARTTLS before login, both with a self-signed certificate for 127.0.0.1 and localhost
made at start (`ca_file` is its path); the helpers below then speak TLS trusting it.
"""

from __future__ import annotations

import datetime as dt
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
instance_name = intake-test-{port}
listen = 127.0.0.1
protocols = imap
{ssl_settings}
auth_mechanisms = plain login
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
mail_location = maildir:{root}/mail/%u
first_valid_uid = 0
first_valid_gid = 0
mail_uid = {uid}
mail_gid = {gid}
imap_id_log = *
mail_max_userip_connections = 200
# Any user name logs in with the one test password: each test can take a fresh mailbox.
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
    ssl = {listener_ssl}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
protocol imap {{
  imap_idle_notify_interval = 1 secs
}}
"""


def encoded(folder: str) -> str:
    """IMAP folder names travel as modified UTF-7 (RFC 3501), quoted."""
    from imap_tools.imap_utf7 import utf7_encode

    return '"' + utf7_encode(folder).decode() + '"'


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for 127.0.0.1 and localhost, valid for a day."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intake test IMAP")])
    now = dt.datetime.now(dt.timezone.utc)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, crl_sign=False, encipher_only=False,
            decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def imap_date(when: dt.datetime) -> str:
    return imaplib.Time2Internaldate(when)


def new_root() -> Path:
    """A folder outside pytest's 0700 temp tree, so Dovecot's unprivileged users reach it."""
    return Path(tempfile.mkdtemp(prefix="intake-dovecot-"))


@dataclass
class Dovecot:
    root: Path = field(default_factory=new_root)
    port: int = field(default_factory=free_port)
    users: dict[str, str] = field(default_factory=lambda: {"intake@example.org": "secret"})
    tls: Literal["none", "imaps", "starttls"] = "none"
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    @property
    def ca_file(self) -> Path:
        """The server's self-signed certificate: the CA a client must trust (TLS modes)."""
        return self.root / "tls" / "cert.pem"

    def _ssl_settings(self) -> str:
        if self.tls == "none":
            return "ssl = no\ndisable_plaintext_auth = no"
        if not self.ca_file.exists():
            self_signed_certificate(self.ca_file.parent)
        # "required": no login before TLS, whichever way the connection got it.
        return (f"ssl = required\nssl_cert = <{self.ca_file}\nssl_key = <{self.ca_file.parent / 'key.pem'}\n"
                "disable_plaintext_auth = yes")

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def start(self) -> Dovecot:
        # Dovecot never runs mail processes as root: as root, the mailboxes belong to
        # Debian's "mail" user, and the instance's folder must be reachable by it.
        mail_user = pwd.getpwnam("mail") if os.getuid() == 0 else pwd.getpwuid(os.getuid())
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        for sub in ("run", "state", "mail", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("mail", "home"):
            os.chown(self.root / sub, mail_user.pw_uid, mail_user.pw_gid)
        self.config_path.write_text(
            CONFIG.format(
                root=self.root, port=self.port, uid=mail_user.pw_uid, gid=mail_user.pw_gid,
                password=self.password, ssl_settings=self._ssl_settings(),
                listener_ssl="yes" if self.tls == "imaps" else "no",
            )
        )
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until the server greets; a readiness check, not a sleep."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"dovecot exited: {err}\n{self.log_text()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as raw:
                    # Under implicit TLS the greeting comes only after the handshake.
                    sock = self.tls_context().wrap_socket(raw, server_hostname=self.host) if self.tls == "imaps" else raw
                    if sock.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.02)
        raise TimeoutError(f"dovecot did not start on port {self.port}")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def add_user(self, name: str) -> Dovecot:
        """Another, empty mailbox on the same server: a view that logs in as that user."""
        return replace(self, users={name: self.password})

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def session_body_counts(self) -> list[int]:
        """body_count of each IMAP session that logged out, oldest first (Dovecot's accounting)."""
        return [int(count) for count in re.findall(r"Logged out .*?body_count=(\d+)", self.log_text())]

    def wait_for_logouts(self, count: int, timeout: float = 10.0) -> list[int]:
        """session_body_counts once it has `count` sessions: Dovecot writes a session's line
        after the client's LOGOUT has returned, so a test reading right away can miss it."""
        deadline = time.monotonic() + timeout
        while len(counts := self.session_body_counts()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(counts)} IMAP sessions logged out, not {count}")
            time.sleep(0.02)  # polling the log for the line, not waiting a set time
        return counts

    # --- mailbox helpers for tests -------------------------------------------------

    @property
    def username(self) -> str:
        return next(iter(self.users))

    @property
    def password(self) -> str:
        return self.users[self.username]

    def client(self) -> imaplib.IMAP4:
        if self.tls == "imaps":
            conn = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=self.tls_context())
        else:
            conn = imaplib.IMAP4(self.host, self.port)
            if self.tls == "starttls":
                conn.starttls(self.tls_context())
        conn.login(self.username, self.password)
        return conn

    def append(
        self,
        raw: bytes,
        arrived_at: dt.datetime | None = None,
        folder: str = "INBOX",
    ) -> None:
        conn = self.client()
        try:
            if folder != "INBOX":
                conn.create(encoded(folder))
            date = imap_date(arrived_at) if arrived_at else None
            typ, data = conn.append(encoded(folder), "", date, raw)
            if typ != "OK":
                raise RuntimeError(f"APPEND failed: {data}")
        finally:
            conn.logout()

    def append_many(self, messages: list[tuple[bytes, dt.datetime | None]], folder: str = "INBOX") -> None:
        conn = self.client()
        try:
            for raw, arrived_at in messages:
                conn.append(encoded(folder), "", imap_date(arrived_at) if arrived_at else None, raw)
        finally:
            conn.logout()

    def uids(self, folder: str = "INBOX") -> list[int]:
        conn = self.client()
        try:
            conn.select(encoded(folder), readonly=True)
            typ, data = conn.uid("SEARCH", None, "ALL")
            return [int(x) for x in data[0].split()]
        finally:
            conn.logout()

    def flags(self, folder: str = "INBOX") -> dict[int, bytes]:
        conn = self.client()
        try:
            conn.select(encoded(folder), readonly=True)
            typ, data = conn.uid("FETCH", "1:*", "(FLAGS)")
            out = {}
            for item in data:
                if item:
                    text = item.decode() if isinstance(item, bytes) else item[0].decode()
                    uid = int(text.split("UID ")[1].split()[0].rstrip(")"))
                    out[uid] = text.encode()
            return out
        finally:
            conn.logout()

    def fetch_raw(self, folder: str = "INBOX") -> list[bytes]:
        conn = self.client()
        try:
            conn.select(encoded(folder), readonly=True)
            typ, data = conn.uid("FETCH", "1:*", "(BODY.PEEK[])")
            return [item[1] for item in data if isinstance(item, tuple)]
        finally:
            conn.logout()

    def set_uidvalidity(self, value: int, folder: str = "INBOX") -> None:
        subprocess.run(
            [DOVEADM, "-c", str(self.config_path), "mailbox", "update", "-u", self.username,
             "--uid-validity", str(value), folder],
            check=True,
            capture_output=True,
        )


class SpecialUseDovecot(Dovecot):
    """Dovecot with RFC 6154 special-use folders, as 163 and QQ have them: "Junk" (\\Junk)
    and "Sent" (\\Sent), created at login."""

    def _ssl_settings(self) -> str:
        return super()._ssl_settings() + (
            "\nnamespace inbox {\n  inbox = yes\n"
            "  mailbox Junk {\n    special_use = \\Junk\n    auto = create\n  }\n"
            "  mailbox Sent {\n    special_use = \\Sent\n    auto = create\n  }\n}\n"
        )
