"""总览, 单位, 待处理, 汇总, 操作记录, 截止时间, 催报."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
from typing import Any

from sqlalchemy import or_, select
from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.routing import Route

from config.settings import UnitKind
from intake import actions
from intake.board import STATE_LABELS, build_board, campaign_of, submission_label
from intake.export import export_document
from notifications.digest import attention_groups, time_left
from notifications.reminders import REMIND_STATES
from notifications.workbook import build_workbook
from intake.web.common import Ctx, page
from intake.web.download import attachment
from storage.files import safe_file_name
from storage.models import Message, OutboxItem, OutboxKind, Submission

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@page()
def overview(ctx: Ctx) -> Response:
    board = build_board(ctx.session, ctx.settings, ctx.campaign)
    kind, state = ctx.request.query_params.get("kind", ""), ctx.request.query_params.get("state", "")
    rows = [r for r in board.rows if (not kind or r.kind.value == kind) and (not state or r.state.value == state)]
    deadline = ctx.campaign.deadline
    return ctx.render("overview.html", board=board, rows=rows, kind=kind, state=state, kinds=list(UnitKind),
                      states=list(STATE_LABELS), deadline=ctx.time(deadline), time_left=time_left(deadline, ctx.now),
                      remindable={s.value for s in REMIND_STATES}, title="总览")


@page()
def unit(ctx: Ctx) -> Response:
    name = ctx.request.path_params["name"]
    board = build_board(ctx.session, ctx.settings, ctx.campaign)
    row = next((r for r in board.rows if r.name == name), None)
    submissions = list(ctx.session.scalars(
        select(Submission).join(Submission.message).where(Submission.unit == name)
        .order_by(Message.arrived_at.desc(), Submission.id.desc())))
    if row is None and not submissions:
        return ctx.render("error.html", 404, message=f"没有单位「{name}」。")
    ids = [s.id for s in submissions]
    mail = ctx.session.scalars(
        select(OutboxItem).where(or_(OutboxItem.submission_id.in_(ids),
                                     OutboxItem.dedupe_key.like(f"reminder:{_like(name)}:%", escape="\\")))
        .where(OutboxItem.kind != OutboxKind.DIGEST).order_by(OutboxItem.created_at.desc(), OutboxItem.id.desc()))
    return ctx.render("unit.html", name=name, row=row, title=name,
                      submissions=[(s, submission_label(s, campaign_of(ctx.settings, s).deadline),
                                    _campaign_name(ctx, s)) for s in submissions],
                      current=row.submission_id if row else None, mails=[(m, mail_text(m.raw)) for m in mail])


def _campaign_name(ctx: Ctx, submission: Submission) -> str:
    spec = ctx.settings.campaign_set.get(submission.campaign)
    return spec.name if spec else "其他来信"


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def mail_text(raw: bytes) -> str:
    """The text a recipient reads: the text/plain part of a mail we sent."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    return body.get_content() if body is not None else ""


@page()
def queue(ctx: Ctx) -> Response:
    board = build_board(ctx.session, ctx.settings, ctx.campaign)
    return ctx.render("queue.html", groups=attention_groups(ctx.session, board), other=board.other, title="待处理")


@page()
def export_page(ctx: Ctx) -> Response:
    return ctx.render("export.html", title="汇总")


@page()
def export_xlsx(ctx: Ctx) -> Response:
    data = build_workbook(ctx.session, ctx.settings, ctx.campaign)
    local = ctx.now.astimezone(ctx.request.app.state.tz)
    name = safe_file_name(f"{ctx.campaign.name}汇总表-{local:%Y%m%d}.xlsx", fallback="汇总表.xlsx")
    return attachment(data, name, XLSX)


@page()
def export_json(ctx: Ctx) -> Response:
    text = json.dumps(export_document(ctx.session, ctx.settings, ctx.campaign), ensure_ascii=False, indent=2)
    name = "export.json" if len(ctx.settings.campaigns) == 1 else f"export-{ctx.campaign.id}.json"
    return attachment(text.encode("utf-8"), name, "application/json")


@page()
def audit_page(ctx: Ctx) -> Response:
    entries = [(e, actions.action_label(e.action), _diff(e.before, e.after)) for e in actions.recent_audit(ctx.session, 500)]
    return ctx.render("audit.html", entries=entries, title="操作记录")


def _diff(before: dict | None, after: dict | None) -> list[tuple[str, Any, Any]]:
    """The fields an act changed: (field, before, after)."""
    before, after = before or {}, after or {}
    return [(k, before.get(k), after.get(k)) for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]


@page()
def deadline(ctx: Ctx) -> Response:
    current = ctx.campaign.deadline
    if ctx.form is None:
        local = current.astimezone(ctx.request.app.state.tz)
        return ctx.render("deadline.html", deadline=ctx.time(current), value=local.strftime("%Y-%m-%dT%H:%M"),
                          title="截止时间")
    try:
        new = dt.datetime.fromisoformat(ctx.field("deadline"))
    except ValueError:
        raise actions.TrackingError("截止时间格式不对，请写成 2024-02-28T17:00。") from None
    if new.tzinfo is None:
        new = new.replace(tzinfo=ctx.request.app.state.tz)
    actions.set_deadline(ctx.session, ctx.settings, new, actor=ctx.user.name, now=ctx.now,
                         note=ctx.field("note") or None, campaign=ctx.campaign.id)
    return ctx.redirect("deadline", ctx.keep({"done": "1"}))


@page()
def remind(ctx: Ctx) -> Response:
    """GET: pick units, or preview the mail for the picked ones; POST: send."""
    source = ctx.form if ctx.form is not None else ctx.request.query_params
    units = [u for u in dict.fromkeys(source.getlist("unit")) if isinstance(u, str)]
    if ctx.form is not None:
        drafts = actions.remind(ctx.session, ctx.settings, units, actor=ctx.user.name, now=ctx.now,
                                campaign=ctx.campaign)
        response = ctx.render("remind_sent.html", drafts=drafts, title="催报")
        # After the response, so after the commit: the sender sees the queued mail.
        response.background = BackgroundTask(ctx.request.app.state.send_outbox)
        return response
    if units:
        drafts = actions.reminder_drafts(ctx.session, ctx.settings, units, now=ctx.now, campaign=ctx.campaign)
        return ctx.render("remind_preview.html", drafts=drafts, title="催报预览")
    board = build_board(ctx.session, ctx.settings, ctx.campaign)
    rows = [r for r in board.rows if r.state in REMIND_STATES]
    return ctx.render("remind.html", rows=rows, title="催报")


ROUTES = [
    Route("/", overview, name="overview"),
    Route("/units/{name:path}", unit, name="unit"),
    Route("/queue", queue, name="queue"),
    Route("/export", export_page, name="export"),
    Route("/export/workbook.xlsx", export_xlsx, name="export_xlsx"),
    Route("/export/export.json", export_json, name="export_json"),
    Route("/audit", audit_page, name="audit"),
    Route("/deadline", deadline, methods=["GET", "POST"], name="deadline"),
    Route("/remind", remind, methods=["GET", "POST"], name="remind"),
]
