"""Driving the long-running side of intake in tests: `Runner.watch()` in a thread, and
`intake run` as a real child process. Waits are on conditions with deadlines, never sleeps."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import tomli_w

from tests.support.intake_env import settings_as_toml

from config.settings import Settings
from intake.app import App
from intake.poller import PollReport
from intake.scheduler import Runner


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Re-check a condition until it holds; fail naming it when the deadline passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class WatchThread:
    """`with WatchThread(app) as watch:` runs `Runner(app).watch()` until the block ends."""

    def __init__(self, app: App) -> None:
        self.runner = Runner(app, on_poll=self._polled)
        self.reports: list[PollReport] = []
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._watch, name="intake-watch", daemon=True)

    def _polled(self, report: PollReport) -> None:
        with self._changed:
            self.reports.append(report)
            self._changed.notify_all()

    def _watch(self) -> None:
        try:
            self.runner.watch()
        except BaseException as err:  # noqa: BLE001 - surfaced by the test, not lost in a thread
            self.error = err

    @property
    def polls(self) -> int:
        return len(self.reports)

    def wait_for_polls(self, count: int, timeout: float = 30.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self.polls >= count or self.error is not None, timeout=timeout):
                raise TimeoutError(f"expected {count} completed polls, got {self.polls}")
        assert self.error is None, f"the runner died: {self.error!r}"

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> WatchThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.runner.stop_event.set()
        self._thread.join(timeout=20)
        assert not self._thread.is_alive(), "the runner did not stop within 20 s of stop_event"


def write_config(settings: Settings, path: Path) -> Path:
    path.write_text(tomli_w.dumps(settings_as_toml(settings)), encoding="utf-8")
    return path


class IntakeProcess:
    """`intake --config PATH <args>` as a child process whose log lines can be waited for."""

    def __init__(self, config: Path, *args: str) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "intake.cli", "--config", str(config), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, encoding="utf-8",
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    @property
    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(text in line for line in self.lines) or self.process.poll() is not None, timeout=timeout
            )
            seen = any(text in line for line in self.lines)
        if not seen:
            raise AssertionError(f"no log line with {text!r} (found={found}); log so far:\n{self.log}")

    def terminate(self, timeout: float) -> int:
        """SIGTERM, then the exit code; a process that outlives the timeout is killed and fails."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"intake did not stop within {timeout}s of SIGTERM; log:\n{self.log}") from None
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
