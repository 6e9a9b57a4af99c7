"""A TCP relay between intake and Dovecot that records what the client said, in order.

Used to prove the order of commands (ID before SELECT) and to cut connections on purpose.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field


@dataclass
class ImapProxy:
    upstream: tuple[str, int]
    client_lines: list[bytes] = field(default_factory=list)
    _server: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _connections: list[socket.socket] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.getsockname()[1]

    def start(self) -> ImapProxy:
        self._server = socket.create_server(("127.0.0.1", 0))
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._connections += [client, server]
            for src, dst, record in ((client, server, True), (server, client, False)):
                t = threading.Thread(target=self._pump, args=(src, dst, record), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        buffer = b""
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for sock in (src, dst):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            if record:
                buffer += data
                *lines, buffer = buffer.split(b"\r\n")
                self.client_lines.extend(lines)
            try:
                dst.sendall(data)
            except OSError:
                return

    def commands(self) -> list[str]:
        """The command names the client sent (tag stripped), e.g. ["CAPABILITY", "LOGIN", "ID", ...]."""
        out = []
        for line in self.client_lines:
            parts = line.split(b" ", 2)
            if len(parts) >= 2 and parts[0].isalnum():
                word = parts[1].upper().decode(errors="replace")
                if word == "UID" and len(parts) > 2:
                    word += " " + parts[2].split(b" ", 1)[0].upper().decode(errors="replace")
                out.append(word)
        return out

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for sock in self._connections:
            try:
                sock.close()
            except OSError:
                pass
