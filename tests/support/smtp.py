"""A real SMTP server (aiosmtpd) on loopback that keeps what it is sent.

It can be stopped and started again on the same port to simulate an outage, and told
to answer every MAIL FROM with a 4xx to simulate a throttling provider.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.dovecot import free_port, self_signed_certificate


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        with self.sink._lock:  # noqa: SLF001
            self.sink.attempts += 1
            refusal = self.sink.refusal
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        with self.sink._lock:  # noqa: SLF001
            data_refusal = self.sink.data_refusal
        if data_refusal:
            return data_refusal  # as 163 answers mail it takes for bulk: after the whole DATA
        if self.sink._release is not None:  # noqa: SLF001
            with self.sink._changed:  # noqa: SLF001
                self.sink.held += 1
                self.sink._changed.notify_all()  # noqa: SLF001
            # Wait off the event loop, so the server still answers other clients meanwhile.
            await asyncio.get_running_loop().run_in_executor(None, self.sink._release.wait)  # noqa: SLF001
        received = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content))
        with self.sink._changed:  # noqa: SLF001
            self.sink.messages.append(received)
            self.sink._changed.notify_all()  # noqa: SLF001
        return "250 Message accepted for delivery"


class SmtpSink:
    """`SmtpSink(users={...}, tls="starttls").start()`; `.messages`; `.stop()`/`.start()`; `.refuse("421 ...")`/`.accept()`; `.hold()`/`.release()`."""

    def __init__(
        self,
        port: int | None = None,
        *,
        users: dict[str, str] | None = None,
        tls: Literal["none", "starttls", "ssl"] = "none",
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        # With users, AUTH PLAIN/LOGIN is offered (after STARTTLS when tls = "starttls").
        self.users = users
        self.tls = tls
        self.ca_file: Path | None = None  # the self-signed certificate, for TLS modes
        self.messages: list[Received] = []
        self.attempts = 0  # MAIL FROM commands seen, refused or not
        self.refusal: str | None = None
        self.data_refusal: str | None = None
        self.held = 0  # messages that reached DATA while holding
        self._release: threading.Event | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._controller: Controller | None = None

    def start(self) -> SmtpSink:
        if self._controller is None:
            # decode_data=False keeps the exact bytes the client sent.
            self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, decode_data=False,
                                          **self._security())
            self._controller.start()  # returns once the server answers
        return self

    def _security(self) -> dict[str, object]:
        options: dict[str, object] = {}
        if self.users is not None:
            options.update(authenticator=self._authenticate, auth_require_tls=self.tls == "starttls")
        if self.tls != "none":
            if self.ca_file is None:
                self.ca_file, key = self_signed_certificate(Path(tempfile.mkdtemp(prefix="intake-smtp-tls-")))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.ca_file, self.ca_file.parent / "key.pem")
            if self.tls == "ssl":
                options.update(ssl_context=context)
            else:
                options.update(tls_context=context, require_starttls=True)
        return options

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: object) -> AuthResult:
        known = isinstance(auth_data, LoginPassword) and self.users.get(auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=known, handled=False)  # handled=False: aiosmtpd answers 535 itself

    def stop(self) -> None:
        self.release()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def refuse(self, reply: str = "421 4.7.0 Too many connections, try again later") -> None:
        with self._lock:
            self.refusal = reply

    def refuse_data(self, reply: str = "554 DT:SPM 163 smtp10,DsCowADH0Kq test, please see http://mail.163.com/help") -> None:
        """Answer the end of DATA with `reply` (163's spam filter answers so)."""
        with self._lock:
            self.data_refusal = reply

    def accept(self) -> None:
        with self._lock:
            self.refusal = None
            self.data_refusal = None

    def hold(self) -> None:
        """Keep every DATA unanswered until release(): a send that is in flight."""
        self._release = threading.Event()

    def release(self) -> None:
        if self._release is not None:
            self._release.set()
            self._release = None

    def wait_until_held(self, count: int = 1, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self.held >= count, timeout=timeout):
                raise TimeoutError(f"expected {count} held messages, got {self.held}")

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until `count` messages have arrived (a condition, not a sleep)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.messages) >= count, timeout=timeout):
                raise TimeoutError(f"expected {count} messages, got {len(self.messages)}")
            return list(self.messages)
