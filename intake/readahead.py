"""An iterator run in a thread of its own, a bounded number of items ahead of its reader.

The poller fetches, archives and records mail in such a thread while its main thread
stores what the parser processes have read: the fetcher's waits (the server, fsyncs)
overlap the store's work. The reader sees the items in order, and the producer's
exception, if any, where the item would have been; a reader that stops early stops the
producer (after the item it is working on) before the context manager returns, so the
resources it uses (an IMAP connection) are free again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
_END = object()
DRAIN_SECONDS = 0.05  # how often a stopping reader looks whether the producer has ended


@dataclass(frozen=True)
class _Raised:
    error: BaseException


@contextmanager
def read_ahead(items: Iterator[T], *, limit: int, name: str, grouped: bool = False) -> Iterator[Iterator]:
    """`items`, produced in a thread named `name` at most `limit` items ahead. `grouped`:
    read as lists of the items ready when the reader comes for the next (at least one),
    so that the reader can handle what has piled up at once (one transaction, one fsync)."""
    buffer: queue.Queue[object] = queue.Queue(maxsize=max(1, limit))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                buffer.put(item)
                if stop.is_set():
                    return
            buffer.put(_END)
        except BaseException as err:  # noqa: BLE001 - handed to the reader, raised there
            buffer.put(_Raised(err))

    def read() -> Iterator[T]:
        while (item := buffer.get()) is not _END:
            if isinstance(item, _Raised):
                raise item.error
            yield item  # type: ignore[misc]

    def read_grouped() -> Iterator[list[T]]:
        held: object | None = None  # the end or an error, seen while gathering a group
        while held is None:
            group = [buffer.get()]
            while group[-1] is not _END and not isinstance(group[-1], _Raised):
                try:
                    group.append(buffer.get_nowait())
                except queue.Empty:
                    break
            if group[-1] is _END or isinstance(group[-1], _Raised):
                held = group.pop()
            if group:
                yield group  # type: ignore[misc]
        if isinstance(held, _Raised):
            raise held.error

    producer = threading.Thread(target=produce, name=name, daemon=True)
    producer.start()
    try:
        yield read_grouped() if grouped else read()
    finally:
        stop.set()
        while producer.is_alive():  # a full buffer would block the producer's last put
            try:
                buffer.get(timeout=DRAIN_SECONDS)
            except queue.Empty:
                pass
        producer.join()
