"""OCR of image-only scans, after the reply has gone out.

OCR reads the scan's 汇总单位 and 合计 figures so staff learn when the stamped PDF and
the editable file disagree (`pdf_mismatch`). It costs seconds a page, so the pipeline
only marks such submissions `ocr_pending`; this pass runs later (after `intake poll`
has sent its replies, and every minute under `intake run`) and adds warnings for staff.
It never changes a reply that was sent.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from intake.app import App
from parsers.crosscheck import cross_check
from parsers.model import FileKind, FileReport
from storage.models import ProblemRecord, Submission

log = logging.getLogger(__name__)


def run_pending_ocr(app: App, limit: int = 20) -> int:
    """OCR up to `limit` waiting submissions; returns how many were done."""
    with app.db.session() as session:
        waiting = session.scalars(
            select(Submission.id).where(Submission.ocr_pending.is_(True)).order_by(Submission.id).limit(limit)
        ).all()
    for submission_id in waiting:
        _ocr_one(app, submission_id)
    return len(waiting)


def _ocr_one(app: App, submission_id: int) -> None:
    with app.db.session() as session:
        files = [(f.name, f.sha256, f.parent, f.kind) for f in session.get(Submission, submission_id).files]
    reports: list[FileReport] = []
    for name, digest, parent, kind in files:
        # The parser process reads the archived file itself: no copy passes through here.
        path = app.archive.path("files", digest)
        worker = app.ocr_worker if kind == FileKind.PDF.value else None
        reports.append(worker.parse_path(path, name, parent) if worker else app.parse_path(path, name, parent))
    found = cross_check(reports, app.settings.campaign_set.forms)
    with app.db.session() as session:
        submission = session.get(Submission, submission_id)
        known = {(p.code, p.message) for p in submission.problems}
        for problem in found:
            if (problem.code.value, problem.message) not in known:
                submission.problems.append(
                    ProblemRecord(code=problem.code.value, severity=problem.severity.value, message=problem.message,
                                  file=problem.file, cell=problem.cell)
                )
                submission.needs_review = True
        submission.ocr_pending = False
    if found:
        log.info("OCR of submission %s found %d difference(s) with the editable file", submission_id, len(found))
