"""报送: one submission, its files and page images, and the acts that apply to it."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from sqlalchemy import select
from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.routing import Route

from intake import actions
from intake.board import campaign_of, submission_label
from intake.decide import is_late
from intake.trust import awaits_staff
from intake.web.common import Ctx, page
from intake.web.download import attachment
from intake.web.pdfpages import PageError, page_png
from intake.web.routes.board import mail_text
from parsers.forms import FormSpec
from storage.models import LateDecision, OutboxItem, StoredFile, Submission, SubmissionStatus, Trust

TRUST_LABELS = {"verified": "已验证（登记邮箱，验证通过）", "registered": "登记邮箱（未能验证）",
                "claimed": "仅据邮件内容认定（待确认或已人工确认）", "unknown": "未识别单位"}
_CELL = re.compile(r"^(?P<sheet>.*)!\$?(?P<col>[A-Z]{1,3})\$?(?P<row>\d+)$")


def _submission(ctx: Ctx) -> Submission:
    submission = ctx.session.get(Submission, ctx.request.path_params["id"])
    if submission is None:
        raise actions.TrackingError(f"没有编号为 {ctx.request.path_params['id']} 的报送记录。")
    return submission


def auth_summary(auth: dict | None) -> str:
    """The stored authentication verdict (intake.authenticity) in one line."""
    if not auth:
        return "无验证结果"
    parts = [f"{name.upper()} {auth[name]}" for name in ("spf", "dkim", "dmarc") if auth.get(name)]
    if auth.get("dkim_domains"):
        parts.append("签名域 " + "、".join(map(str, auth["dkim_domains"])))
    head = {True: "通过", False: "未通过"}.get(auth.get("verified"), "未检查（未配置发件人验证）")
    return head + (f"（{' · '.join(parts)}）" if parts else "")


def _table(spec: FormSpec, rows: list, problems: list) -> list[list[tuple[object, bool]]]:
    """Each row's cells as (value, has a problem): a problem on the row's sheet and line
    marks the cells whose column its message names (the whole row when it names none)."""
    out = []
    for row in rows:
        place = _CELL.match(row.cell or "")
        hits = [p for p in problems if place and (m := _CELL.match(p.cell or ""))
                and m["sheet"] == place["sheet"] and m["row"] == place["row"]]
        named = {c.field for c in spec.columns for p in hits if c.label in p.message or any(a in p.message for a in c.aliases)}
        written = row.as_written or {}
        out.append([(_shown(written.get(c.field, spec.typed(c.field, row.values.get(c.field)))),
                      bool(hits) and (not named or c.field in named)) for c in spec.columns])
    return out


def _shown(value: object) -> object:
    """3.2000 as 3.2, a date as 2024-03-01."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return value.isoformat() if isinstance(value, dt.date) else value


@page()
def show(ctx: Ctx) -> Response:
    submission = _submission(ctx)
    message = submission.message
    spec = ctx.settings.campaign_set.get(submission.campaign)  # None: `other` mail
    ctx.shown = spec
    deadline = campaign_of(ctx.settings, submission).deadline
    late = spec is not None and is_late(message.arrived_at, deadline)  # `other` mail is late for nothing
    mails = ctx.session.scalars(select(OutboxItem).where(OutboxItem.submission_id == submission.id)
                                .order_by(OutboxItem.created_at, OutboxItem.id))
    codes = {p.code for p in submission.problems}
    counts = submission.status not in (SubmissionStatus.IGNORED, SubmissionStatus.REJECTED)
    return ctx.render(
        "submission.html", title=f"报送 #{submission.id}", s=submission, m=message, late=late,
        label=submission_label(submission, deadline), trust=TRUST_LABELS.get(submission.trust.value, submission.trust.value),
        auth=auth_summary(message.auth_results), units=[u.name for u in ctx.settings.units],
        owner=spec, forms=[(number, form, _table(form, submission.rows_of(form.id), submission.problems))
                           for number, form in enumerate(spec.forms if spec else (), 1)],
        mails=[(o, mail_text(o.raw)) for o in mails],
        # Unmatched, or a unit only claimed by the mail's text: a registered sender's unit stands.
        can_assign=counts and (submission.unit is None or submission.trust in (Trust.CLAIMED, Trust.UNKNOWN)),
        can_confirm=awaits_staff(submission),
        can_decide_late=late and submission.unit is not None and counts,
        can_route=submission.content_status is not SubmissionStatus.IGNORED,  # as actions.route_submission
        flagged_seal="seal_not_found" in codes or (submission.has_pdf and submission.seal is None),
        flagged_mismatch="pdf_mismatch" in codes,
        done=actions.action_label(ctx.request.query_params.get("done", "")),  # 已完成：归入征集, not the key
    )


def _back(ctx: Ctx, submission_id: int, done: str, send: bool = False) -> Response:
    response = ctx.redirect("submission", {"done": done}, id=submission_id)
    if send:
        response.background = BackgroundTask(ctx.request.app.state.send_outbox)
    return response


@page()
def assign(ctx: Ctx) -> Response:
    submission = actions.assign_unit(ctx.session, ctx.app.registry, _submission(ctx).id, ctx.field("unit"),
                                     actor=ctx.user.name, now=ctx.now)
    return _back(ctx, submission.id, "assign")


@page()
def confirm(ctx: Ctx) -> Response:
    submission, notice = actions.confirm_claim(ctx.session, ctx.settings, _submission(ctx).id, actor=ctx.user.name,
                                               now=ctx.now)
    return _back(ctx, submission.id, "confirm", send=notice is not None)


@page()
def reject(ctx: Ctx) -> Response:
    submission = actions.reject_claim(ctx.session, _submission(ctx).id, actor=ctx.user.name, now=ctx.now)
    return _back(ctx, submission.id, "reject")


@page()
def late(ctx: Ctx) -> Response:
    decision = {"accept": LateDecision.ACCEPTED, "reject": LateDecision.REJECTED}.get(ctx.field("decision"))
    if decision is None:
        raise actions.TrackingError("请选择受理或不受理。")
    submission, mail = actions.decide_late(ctx.session, ctx.settings, _submission(ctx).id, decision,
                                           actor=ctx.user.name, now=ctx.now, note=ctx.field("note") or None)
    return _back(ctx, submission.id, f"late_{decision.value}", send=mail is not None)


@page()
def review(ctx: Ctx) -> Response:
    seal = {"yes": True, "no": False}.get(ctx.field("seal"))
    checked = True if ctx.field("mismatch_checked") else None
    note = ctx.field("note") or None
    if seal is None and checked is None and note is None:
        raise actions.TrackingError("请选择盖章认定、勾选已核对，或填写备注。")
    submission = actions.review(ctx.session, _submission(ctx).id, actor=ctx.user.name, now=ctx.now, seal=seal,
                                mismatch_checked=checked, note=note)
    return _back(ctx, submission.id, "review")


@page()
def reprocess(ctx: Ctx) -> Response:
    submission_id = _submission(ctx).id  # the parse then runs in transactions of its own
    submission = actions.reprocess_submission(ctx.app, submission_id, actor=ctx.user.name, now=ctx.now)
    return _back(ctx, submission.id, "reprocess", send=True)


@page()
def route(ctx: Ctx) -> Response:
    """归入征集: the mail is decided again under the chosen campaign (its own transactions)."""
    submission_id = _submission(ctx).id
    submission = actions.route_submission(ctx.app, submission_id, ctx.field("target"), actor=ctx.user.name,
                                          now=ctx.now)
    return _back(ctx, submission.id, "route", send=True)  # an `other` mail gets its campaign's reply


def _file(ctx: Ctx) -> StoredFile:
    stored = ctx.session.get(StoredFile, ctx.request.path_params["file_id"])
    if stored is None or stored.submission_id != ctx.request.path_params["id"]:
        raise actions.TrackingError("没有这个文件。")
    return stored


@page()
def download(ctx: Ctx) -> Response:
    stored = _file(ctx)
    return attachment(ctx.app.archive.path("files", stored.sha256).read_bytes(), stored.name)


@page()
def page_image(ctx: Ctx) -> Response:
    stored = _file(ctx)
    number = ctx.request.path_params["n"]
    if stored.kind != "pdf" or not 1 <= number <= min(stored.pdf_pages or 0, ctx.settings.limits.max_pdf_pages):
        raise actions.TrackingError("没有这一页。")
    try:
        png = page_png(ctx.app.archive.path("files", stored.sha256), number - 1, stored.sha256)
    except PageError as err:
        raise actions.TrackingError(str(err)) from None
    return Response(png, media_type="image/png", headers={"X-Content-Type-Options": "nosniff",
                                                           "Cache-Control": "private, max-age=3600"})


ROUTES = [
    Route("/submissions/{id:int}", show, name="submission"),
    Route("/submissions/{id:int}/assign", assign, methods=["POST"], name="assign"),
    Route("/submissions/{id:int}/confirm", confirm, methods=["POST"], name="confirm"),
    Route("/submissions/{id:int}/reject", reject, methods=["POST"], name="reject"),
    Route("/submissions/{id:int}/late", late, methods=["POST"], name="late"),
    Route("/submissions/{id:int}/review", review, methods=["POST"], name="review"),
    Route("/submissions/{id:int}/reprocess", reprocess, methods=["POST"], name="reprocess"),
    Route("/submissions/{id:int}/route", route, methods=["POST"], name="route"),
    Route("/submissions/{id:int}/files/{file_id:int}", download, name="file"),
    Route("/submissions/{id:int}/files/{file_id:int}/pages/{n:int}.png", page_image, name="page"),
]
