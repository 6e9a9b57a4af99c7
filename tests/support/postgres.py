"""A real PostgreSQL server on loopback, owned by the test session that starts it.

The server lives in its own temp folder (data dir, unix socket, log) on a free port and
never touches a system cluster. PostgreSQL refuses to run as root, so when the tests run
as root (CI does) every server binary runs as Debian's `postgres` user via setpriv, which
execs in place: the Popen pid is the postmaster's own pid, so stopping it is a signal.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.support.dovecot import free_port

BIN_GLOB = "/usr/lib/postgresql/*/bin"
SERVER_USER = "postgres"
START_SECONDS = 60.0
MISSING = (
    "PostgreSQL server binaries (initdb, postgres) not found in {glob} or on PATH; "
    "install them with `apt-get install -y postgresql`"
)


def find_bindir() -> Path:
    """The newest installed PostgreSQL's bin folder; a clear error when there is none."""

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    for candidate in sorted(glob.glob(BIN_GLOB), key=version, reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).parent
    raise RuntimeError(MISSING.format(glob=BIN_GLOB))


def _as_server_user(argv: list[str]) -> list[str]:
    # --pdeathsig: a test run that is killed outright still takes its server down with it
    # (SIGINT is PostgreSQL's fast shutdown).
    prefix = ["setpriv", "--pdeathsig=INT"]
    if os.getuid() != 0:
        return [*prefix, *argv]
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise RuntimeError(
            f"running as root but there is no '{SERVER_USER}' user to run PostgreSQL as; "
            "install Debian's `postgresql` package, which creates it"
        ) from None
    return [*prefix, f"--reuid={SERVER_USER}", f"--regid={SERVER_USER}", "--init-groups", *argv]


@dataclass
class PostgresServer:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="intake-pg-")))
    port: int = field(default_factory=free_port)
    bindir: Path = field(default_factory=find_bindir)
    process: subprocess.Popen[bytes] | None = None

    host = "127.0.0.1"
    superuser = "postgres"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.superuser}@{self.host}:{self.port}/{database}"

    def _conninfo(self, database: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={self.superuser} dbname={database}"

    def start(self) -> PostgresServer:
        self.root.chmod(0o755)
        if os.getuid() == 0:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        initdb = [
            str(self.bindir / "initdb"),
            "-D", str(self.data_dir),
            "-U", self.superuser,
            "--auth=trust",  # the server listens on loopback only and lives for one test run
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        done = subprocess.run(_as_server_user(initdb), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.strip()}")
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            # Durability is worthless for throwaway test data; speed is not.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "100",
        }
        argv = [str(self.bindir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(_as_server_user(argv), stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited at start; log:\n{self.log_tail()}")
            try:
                with psycopg.connect(self._conninfo(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"postgres not ready in {START_SECONDS}s; log:\n{self.log_tail()}") from None
                time.sleep(0.05)  # polling interval of a deadline loop, not synchronisation

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def create_database(self, prefix: str = "t") -> tuple[str, str]:
        """A fresh, empty database: (name, SQLAlchemy URL)."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name, self.url(name)

    def drop_database(self, name: str) -> None:
        # FORCE ends connections a test left open (e.g. a child process it killed).
        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: no waiting for clients
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
