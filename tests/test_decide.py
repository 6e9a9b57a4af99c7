"""The verdict rules: lateness, completeness, status."""

from __future__ import annotations

import datetime as dt

import pytest

from intake.decide import completeness, content_status, is_late
from parsers.model import FileKind, FileReport, Problem, ProblemCode
from storage.models import SubmissionStatus

CST = dt.timezone(dt.timedelta(hours=8))
DEADLINE = dt.datetime(2024, 2, 25, 17, 0, tzinfo=CST)


@pytest.mark.parametrize(
    ("arrived", "late"),
    [
        (DEADLINE - dt.timedelta(seconds=1), False),
        (DEADLINE, True),
        (DEADLINE + dt.timedelta(seconds=1), True),
        (dt.datetime(2024, 2, 25, 8, 59, 59, tzinfo=dt.UTC), False),  # 16:59:59 in Beijing
        (dt.datetime(2024, 2, 25, 9, 0, 1, tzinfo=dt.UTC), True),
    ],
)
def test_on_time_means_strictly_before_the_deadline_in_any_timezone(arrived: dt.datetime, late: bool) -> None:
    assert is_late(arrived, DEADLINE) is late


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError):
        is_late(dt.datetime(2024, 2, 25, 16), DEADLINE)


def report(kind: FileKind) -> FileReport:
    return FileReport(name=f"x.{kind.value}", kind=kind, sha256="0" * 64, size=1)


def test_a_submission_without_the_scan_is_missing_the_pdf() -> None:
    done = completeness([report(FileKind.XLSX)])
    assert [p.code for p in done.problems] == [ProblemCode.MISSING_PDF]
    assert content_status(done.problems, has_pdf=False, has_editable=True, attachments=1) is SubmissionStatus.INCOMPLETE


def test_a_mail_without_attachments_has_no_attachments() -> None:
    done = completeness([])
    assert [p.code for p in done.problems] == [ProblemCode.NO_ATTACHMENTS]
    assert content_status(done.problems, has_pdf=False, has_editable=False, attachments=0) is SubmissionStatus.INCOMPLETE


def test_errors_make_it_invalid_and_warnings_do_not() -> None:
    error = Problem(ProblemCode.NON_NUMERIC, "x")
    warning = Problem(ProblemCode.SEAL_NOT_FOUND, "y")
    assert content_status([error], has_pdf=True, has_editable=True, attachments=2) is SubmissionStatus.INVALID
    assert content_status([warning], has_pdf=True, has_editable=True, attachments=2) is SubmissionStatus.ACCEPTED
