"""intake.readahead: an iterator produced in its own thread, ahead of its reader."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from intake.readahead import read_ahead


def test_the_reader_gets_every_item_in_order() -> None:
    with read_ahead(iter(range(100)), limit=4, name="t") as items:
        assert list(items) == list(range(100))


def test_the_producer_runs_at_most_limit_items_ahead() -> None:
    produced: list[int] = []
    may_go_on = threading.Event()

    def numbers() -> Iterator[int]:
        for n in range(50):
            produced.append(n)
            yield n
            if n == 10:
                may_go_on.wait()

    with read_ahead(numbers(), limit=3, name="t") as items:
        first = [next(items) for _ in range(8)]
        # 8 read, 3 waiting, 1 being put: never more however long the reader dawdles.
        assert len(produced) <= 8 + 3 + 1
        may_go_on.set()
        assert first + list(items) == list(range(50))


def test_the_producers_exception_is_raised_where_its_item_would_have_been() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ConnectionError("IMAP gone")

    got = []
    with pytest.raises(ConnectionError, match="IMAP gone"), read_ahead(failing(), limit=8, name="t") as items:
        got.extend(items)
    assert got == [1, 2]


def test_a_reader_that_stops_early_stops_the_producer_before_leaving() -> None:
    produced: list[int] = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    with pytest.raises(RuntimeError), read_ahead(endless(), limit=2, name="reader-stops") as items:
        next(items)
        raise RuntimeError("the store failed")
    count = len(produced)
    assert not any(t.name == "reader-stops" for t in threading.enumerate())
    assert len(produced) == count  # nothing is produced once the context has been left


def test_grouped_reading_gets_what_has_piled_up_together_in_order_and_every_item_once() -> None:
    piled = threading.Event()

    def numbers() -> Iterator[int]:
        yield from range(5)
        piled.set()
        yield from range(5, 8)

    with read_ahead(numbers(), limit=16, name="t", grouped=True) as groups:
        piled.wait()
        first = next(groups)
        rest = [n for group in groups for n in group]
    assert len(first) >= 5  # the five produced before the reader came, at least
    assert first + rest == list(range(8))


def test_grouped_reading_raises_the_producers_exception_after_the_items_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ConnectionError("IMAP gone")

    got: list[int] = []
    with pytest.raises(ConnectionError, match="IMAP gone"), read_ahead(failing(), limit=8, name="t", grouped=True) as groups:
        for group in groups:
            got.extend(group)
    assert got == [1, 2]
