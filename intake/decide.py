"""The verdict on one submitted mail: late or not, complete or not, valid or not.

Pure functions over parser output, so every rule here is tested without a database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from parsers.model import FileKind, FileReport, Problem, ProblemCode, Severity
from storage.models import SubmissionStatus


def is_late(arrived_at: dt.datetime, deadline: dt.datetime) -> bool:
    """On time means strictly before the deadline; both must be timezone-aware."""
    if arrived_at.tzinfo is None or deadline.tzinfo is None:
        raise ValueError("is_late needs timezone-aware datetimes")
    return arrived_at >= deadline


@dataclass(frozen=True)
class Completeness:
    has_pdf: bool
    has_editable: bool
    problems: tuple[Problem, ...]


def completeness(reports: Iterable[FileReport]) -> Completeness:
    reports = list(reports)
    # A photo taken as the stamped copy stands in for the scan (parsers.photo); an OFD is one.
    has_pdf = any(r.kind in (FileKind.PDF, FileKind.OFD, FileKind.PHOTO) for r in reports)
    has_editable = any(r.kind.editable for r in reports)
    problems: list[Problem] = []
    if not reports:
        problems.append(Problem(ProblemCode.NO_ATTACHMENTS, "邮件中没有附件：请附上盖章扫描的 PDF 和可编辑的电子版（Excel）。"))
    else:
        if not has_pdf:
            problems.append(Problem(ProblemCode.MISSING_PDF, "缺少盖章后扫描的 PDF 文件。"))
        if not has_editable:
            problems.append(Problem(ProblemCode.MISSING_EDITABLE, "缺少可编辑的电子版（Excel 或 Word 表格）。"))
    return Completeness(has_pdf=has_pdf, has_editable=has_editable, problems=tuple(problems))


def content_status(problems: Iterable[Problem], *, has_pdf: bool, has_editable: bool, attachments: int) -> SubmissionStatus:
    """Errors make it invalid (the reply lists them all, missing parts included);
    otherwise anything missing makes it incomplete."""
    problems = list(problems)
    if attachments and any(p.severity is Severity.ERROR for p in problems):
        return SubmissionStatus.INVALID
    if not attachments or not has_pdf or not has_editable:
        return SubmissionStatus.INCOMPLETE
    return SubmissionStatus.ACCEPTED


def sheet_units(reports: Iterable[FileReport]) -> list[str]:
    """汇总单位 as written in the editable forms, then in the PDFs; first occurrence wins."""
    seen: list[str] = []
    for report in reports:
        names = [form.unit for form in report.forms] + [report.pdf.unit if report.pdf else None]
        for name in names:
            if name and name not in seen:
                seen.append(name)
    return seen
