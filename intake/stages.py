"""Cheap per-stage timers for the benchmark: where a poll's time goes, without a profiler.

Off unless the environment names a directory in INTAKE_STAGES (read once, at import:
parser processes drop INTAKE_ variables after their imports). When on, every process
(the poller and each parser process) sums seconds and counts per stage name and writes
them to `<dir>/stages-<pid>.json` at exit, and a parser process also every second while
it serves (one killed on a timeout loses at most that second). bench/bench_mailbox.py adds the files up.

The cost when off is one dict lookup per call; when on, two perf_counter calls.
This module imports nothing of intake's, so parsers may use it too.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_DIR = os.environ.get("INTAKE_STAGES") or None
ENABLED = _DIR is not None
_seconds: dict[str, float] = {}
_counts: dict[str, int] = {}
_events: dict[str, list[float]] = {}  # wall-clock times of each occurrence (e.g. a mail stored)
_lock = threading.Lock()


def clock() -> float:
    return time.perf_counter()


def add(stage: str, seconds: float, count: int = 1) -> None:
    if not ENABLED:
        return
    with _lock:
        _seconds[stage] = _seconds.get(stage, 0.0) + seconds
        _counts[stage] = _counts.get(stage, 0) + count


def event(name: str) -> None:
    """Note the time something happened (one list entry per call: for throughput over time)."""
    if ENABLED:
        with _lock:
            _events.setdefault(name, []).append(time.time())


@contextmanager
def timed(stage: str) -> Iterator[None]:
    if not ENABLED:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        add(stage, time.perf_counter() - started)


def timing(stage: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """A decorator (or a wrapper of an imported function) that times each call."""

    def wrap(function: Callable[..., T]) -> Callable[..., T]:
        if not ENABLED:
            return function

        @functools.wraps(function)
        def timed_call(*args: object, **kwargs: object) -> T:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                add(stage, time.perf_counter() - started)

        return timed_call

    return wrap


def timed_iter(stage: str, iterable: Iterable[T]) -> Iterator[T]:
    """Items of `iterable`, the time spent producing each added to `stage`."""
    if not ENABLED:
        yield from iterable
        return
    iterator = iter(iterable)
    while True:
        started = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            add(stage, time.perf_counter() - started, 0)
            return
        add(stage, time.perf_counter() - started)
        yield item


def peak_rss_mb() -> float:
    """This process's peak resident size so far (VmHWM), in MB; 0 where /proc has none."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):
        return 0.0


def snapshot() -> dict:
    with _lock:
        return {"peak_rss_mb": peak_rss_mb(), "argv0": os.path.basename(sys.argv[0]) if sys.argv else "",
                "stages": {name: {"seconds": _seconds[name], "count": _counts[name]} for name in _seconds},
                "events": {name: list(times) for name, times in _events.items()}}


FLUSH_EVERY = 1.0  # seconds: flush_soon's interval
_flushed_at = 0.0


def flush_soon() -> None:
    """flush, at most once every FLUSH_EVERY seconds: a parser process calls it after each
    request, and writing a file per request cost the bench's parsers ~1 ms a file. The
    last sums are written when the process exits (ParseWorker.close lets it)."""
    if ENABLED and time.monotonic() - _flushed_at >= FLUSH_EVERY:
        flush()


def flush() -> None:
    """Write this process's sums (a no-op when off)."""
    global _flushed_at  # noqa: PLW0603 - one process-wide clock
    if not ENABLED:
        return
    _flushed_at = time.monotonic()
    target = Path(_DIR) / f"stages-{os.getpid()}.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(snapshot()))
    os.replace(tmp, target)


def collect(directory: Path, main_pid: int | None = None
            ) -> tuple[dict[str, dict], dict[str, list[float]], dict[int, float]]:
    """The sums, the events and the peak RSS (MB, by pid) of every process that wrote
    into `directory`; each sum lists where it was spent ("poller": `main_pid`, "parser":
    any other process) under "by", with its own seconds and count."""
    total: dict[str, dict[str, float]] = {}
    events: dict[str, list[float]] = {}
    peaks: dict[int, float] = {}
    for path in sorted(directory.glob("stages-*.json")):
        written = json.loads(path.read_text())
        peaks[int(path.stem.split("-")[1])] = written["peak_rss_mb"]
        pid = int(path.stem.split("-")[1])
        role = "poller" if pid == main_pid else "parser"
        for name, value in written["stages"].items():
            entry = total.setdefault(name, {"seconds": 0.0, "count": 0, "by": {}})
            entry["seconds"] += value["seconds"]
            entry["count"] += value["count"]
            mine = entry["by"].setdefault(role, {"seconds": 0.0, "count": 0})
            mine["seconds"] += value["seconds"]
            mine["count"] += value["count"]
        for name, times in written["events"].items():
            events.setdefault(name, []).extend(times)
    return total, {name: sorted(times) for name, times in events.items()}, peaks


if ENABLED:
    atexit.register(flush)
