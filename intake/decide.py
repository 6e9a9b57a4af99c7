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
    # What the campaign asks for (CampaignSpec.requires_pdf / requires_editable).
    requires_pdf: bool = True
    requires_editable: bool = True

    @property
    def pdf_ok(self) -> bool:
        """The stamped copy is there, or the campaign does not ask for one."""
        return self.has_pdf or not self.requires_pdf

    @property
    def editable_ok(self) -> bool:
        return self.has_editable or not self.requires_editable


_WANTED = {(True, True): "盖章扫描的 PDF 和可编辑的电子版（Excel）", (True, False): "盖章扫描的 PDF",
           (False, True): "可编辑的电子版（Excel）", (False, False): "报送材料"}


def completeness(reports: Iterable[FileReport], linked: frozenset[str] = frozenset(), *,
                 requires_pdf: bool = True, requires_editable: bool = True) -> Completeness:
    """`linked`: what large-attachment links in the body stand for ("pdf", "editable";
    intake.links.LargeAttachment.covers): a part sent as a link is not missing. A part the
    campaign does not require is never missing."""
    reports = list(reports)
    # A photo taken as the stamped copy stands in for the scan (parsers.photo); an OFD is one.
    has_pdf = any(r.kind in (FileKind.PDF, FileKind.OFD, FileKind.PHOTO) for r in reports)
    has_editable = any(r.kind.editable for r in reports)
    problems: list[Problem] = []
    if not reports and not linked:
        problems.append(Problem(ProblemCode.NO_ATTACHMENTS,
                                f"邮件中没有附件：请附上{_WANTED[requires_pdf, requires_editable]}。"))
    else:
        if requires_pdf and not has_pdf and "pdf" not in linked:
            problems.append(Problem(ProblemCode.MISSING_PDF, "缺少盖章后扫描的 PDF 文件。"))
        if requires_editable and not has_editable and "editable" not in linked:
            problems.append(Problem(ProblemCode.MISSING_EDITABLE, "缺少可编辑的电子版（Excel 或 Word 表格）。"))
    return Completeness(has_pdf, has_editable, tuple(problems), requires_pdf, requires_editable)


def content_status(problems: Iterable[Problem], *, has_pdf: bool, has_editable: bool, attachments: int,
                   linked: frozenset[str] = frozenset()) -> SubmissionStatus:
    """Errors make it invalid (the reply lists them all, missing parts included);
    otherwise anything missing makes it incomplete, unless it came as a link: then the
    submission waits for staff to download it."""
    problems = list(problems)
    if attachments and any(p.severity is Severity.ERROR for p in problems):
        return SubmissionStatus.INVALID
    pdf, editable = has_pdf or "pdf" in linked, has_editable or "editable" in linked
    if not (attachments or linked) or not pdf or not editable:
        return SubmissionStatus.INCOMPLETE
    if not has_pdf or not has_editable:
        return SubmissionStatus.AWAITING_DOWNLOAD
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
