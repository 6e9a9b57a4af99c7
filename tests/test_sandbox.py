"""The parser processes: reused while idle, started without the poller's descriptors, and
answering with plain data only."""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Iterator
from multiprocessing.connection import Connection, wait
from pathlib import Path

import psutil
import pytest

from config.settings import LimitsSettings, ParsingSettings
from intake import sandbox
from intake.app import App
from intake.runs import poll_once
from intake.sandbox import ParseWorker
from parsers.model import FileKind, FileReport, report_to_json
from storage.locks import exclusive
from storage.models import MessageState
from tests.support import hostile as h
from tests.support.campaigns import DEFAULT_FORMS
from tests.support.dovecot import Dovecot
from tests.support.intake_env import intake_settings, submission_mail


@pytest.fixture
def worker() -> Iterator[ParseWorker]:
    parser = ParseWorker(LimitsSettings(), ParsingSettings(seal_detection=False), DEFAULT_FORMS, idle_poll_seconds=0.02)
    yield parser
    parser.close()


def test_an_idle_worker_is_reused(worker: ParseWorker) -> None:
    assert worker.parse(h.form1_xlsx(), "汇总表.xlsx").forms
    pid = worker.pid
    # Fifty idle poll slices: a worker that wrongly took itself for orphaned exits in the first.
    with pytest.raises(psutil.TimeoutExpired):
        psutil.Process(pid).wait(timeout=1.0)
    assert worker.parse(h.form1_xlsx(), "汇总表.xlsx").forms
    assert worker.pid == pid


def test_a_worker_that_died_while_idle_is_replaced_and_the_next_file_parses(worker: ParseWorker) -> None:
    # Nothing asks an idle worker whether it lives (a system call a request): a dead one
    # fails the next request, which a fresh worker then answers, the file not blamed.
    assert worker.parse(h.form1_xlsx(), "汇总表.xlsx").forms
    dead, pid = worker._process, worker.pid  # noqa: SLF001 - to see it end without reaping it
    dead.kill()
    assert wait([dead.sentinel], timeout=10)
    report = worker.parse(h.form1_xlsx(), "汇总表.xlsx")
    assert report.forms and not report.problems
    assert worker.pid not in (None, pid)


def test_a_worker_is_replaced_after_its_share_of_requests(worker: ParseWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "RECYCLE_AFTER", 2)
    pids, processes = [], []
    for _ in range(3):
        assert worker.parse(h.form1_xlsx(), "汇总表.xlsx").forms
        pids.append(worker.pid)
        processes.append(worker._process)  # noqa: SLF001 - how the old one ended
    assert pids[0] == pids[1] != pids[2]
    assert processes[1].exitcode == 0  # it ended by itself (its exit handlers ran), not killed


def test_a_worker_grown_past_the_memory_mark_is_replaced_before_the_next_file(
        worker: ParseWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    assert worker.parse(h.form1_xlsx(), "汇总表.xlsx").forms
    first = worker.pid
    assert psutil.Process(first).memory_info().rss > 1024  # what the mark is compared with
    monkeypatch.setattr(sandbox, "RECYCLE_RSS_BYTES", 1024)
    monkeypatch.setattr(sandbox, "RSS_EVERY", 1)
    assert worker.parse(h.form1_xlsx(), "汇总表.xlsx").forms
    assert worker.pid != first


def test_the_parsed_report_comes_back_whole(worker: ParseWorker, tmp_path: Path) -> None:
    path = tmp_path / "form.xlsx"
    path.write_bytes(h.form1_xlsx())
    by_bytes, by_path = worker.parse(h.form1_xlsx(), "汇总表.xlsx", "材料.zip"), worker.parse_path(path, "汇总表.xlsx", "材料.zip")
    assert by_bytes == by_path
    assert by_bytes.parent == "材料.zip" and by_bytes.forms[0].rows


class Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return Path.touch, (self.marker,)


def _compromised_serve(conn: Connection, memory_bytes: int, idle_poll_seconds: float) -> None:  # noqa: ARG001
    """A parser process taken over by its input: answers each request with a pickle."""
    while conn.poll(30):
        header = conn.recv_bytes()
        if b'"path": null' in header:
            conn.recv_bytes()
        marker = Path(header.decode().split('"name": "', 1)[1].split('"', 1)[0])
        conn.send_bytes(sandbox.REPORT + pickle.dumps(Payload(marker)))


def test_a_compromised_worker_cannot_make_the_parent_unpickle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sandbox, "_serve", _compromised_serve)
    marker = tmp_path / f"unpickled-{uuid.uuid4().hex}"
    parser = ParseWorker(LimitsSettings(), ParsingSettings(), DEFAULT_FORMS)
    try:
        report = parser.parse(b"x", str(marker))
    finally:
        parser.close()
    assert not marker.exists()
    assert [p.code.value for p in report.problems] == ["unreadable_file"]


def test_a_report_with_unknown_fields_is_refused() -> None:
    report = FileReport(name="a.xlsx", kind=FileKind.XLSX, sha256="0" * 64, size=1)
    plain = report_to_json(report)
    assert sandbox._read_reply(sandbox.REPORT + plain) == report  # noqa: SLF001
    with pytest.raises(ValueError):
        sandbox._read_reply(sandbox.REPORT + plain.replace(b'"parent":null', b'"parent":null,"__class__":"os.system"'))  # noqa: SLF001


@pytest.mark.timeout(120)
def test_a_second_poll_runs_while_parser_processes_of_the_first_are_alive(tmp_path: Path, dovecot: Dovecot) -> None:
    mailbox = dovecot.add_user(f"sandbox-{uuid.uuid4().hex[:12]}@example.org")
    mailbox.append(submission_mail())
    with App(intake_settings(tmp_path, dovecot=mailbox)) as app:
        poll_once(app)
        workers = app.worker_pids()
        assert workers and all(psutil.pid_exists(pid) for pid in workers)
        # The poll lock as `intake poll` takes it: free although the workers live on.
        with exclusive(app.db, "poll") as acquired:
            assert acquired
        mailbox.append(submission_mail())
        report = poll_once(app)
        assert [o.state for o in report.outcomes] == [MessageState.PROCESSED]
        assert set(workers) <= set(app.worker_pids())  # the same processes, reused
