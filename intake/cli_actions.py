"""The staff's acts as commands: each opens the app, calls one function of intake.actions
(the same the web console calls), sends what it queued, and prints one Chinese line.
Every act is audited with the person's name (--by, else the system user)."""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Iterator
from contextlib import contextmanager

import click

from intake import actions
from intake.board import campaign_of, submission_label
from intake.cli import CAMPAIGN, campaigns_for, main, opened
from storage.models import LateDecision, utcnow

BY = click.option("--by", default=None, help="操作人（默认：当前系统用户）。")


@contextmanager
def acting(ctx: click.Context) -> Iterator[tuple[object, object]]:
    """(app, session) for one act, committed at the end; a refused act is one line."""
    with opened(ctx) as app:
        try:
            with app.db.session() as session:
                yield app, session
        except actions.TrackingError as err:
            raise click.ClickException(str(err)) from None


def _send(app) -> None:  # noqa: ANN001 - App
    from notifications.outbox import Outbox

    Outbox(app.db, app.settings).send_pending()


def _who(by: str | None) -> str:
    return by or getpass.getuser()


@main.command()
@click.argument("submission_id", type=int)
@click.argument("unit")
@BY
@click.pass_context
def assign(ctx: click.Context, submission_id: int, unit: str, by: str | None) -> None:
    """人工指定某次报送所属单位。

    \b
    示例：intake assign 17 潍坊市总工会 --by 娄文华
    """
    with acting(ctx) as (app, session):
        submission = actions.assign_unit(session, app.registry, submission_id, unit, actor=_who(by), now=utcnow())
        deadline = campaign_of(app.settings, submission).deadline
        click.echo(f"报送 {submission.id} 已指定为 {submission.unit}（{submission_label(submission, deadline)}）。")


@main.command()
@click.argument("submission_id", type=int)
@click.argument("campaign")
@BY
@click.pass_context
def route(ctx: click.Context, submission_id: int, campaign: str, by: str | None) -> None:
    """把一份报送或一封「其他来信」归入某个征集（编号见 intake campaigns），并按该征集重新判定。

    以后重新处理时保持此归属；此前未回复的邮件会收到该征集的回复。

    \b
    示例：intake route 42 wuyi-2024 --by 娄文华
    """
    with opened(ctx) as app:
        try:
            submission = actions.route_submission(app, submission_id, campaign, actor=_who(by), now=utcnow())
        except actions.TrackingError as err:
            raise click.ClickException(str(err)) from None
        spec = app.settings.campaign_set.get(campaign)
        click.echo(f"报送 {submission.id} 已归入“{spec.name}”（{submission_label(submission, spec.deadline)}）。")
        _send(app)


@main.command()
@click.argument("submission_id", type=int)
@BY
@click.pass_context
def confirm(ctx: click.Context, submission_id: int, by: str | None) -> None:
    """确认一份「待确认」的报送确属该单位（发件地址不是该单位登记的邮箱时需要）。

    确认后它按到达时间参与替代；若替代了该单位已有的报送，会通知该单位登记的邮箱。

    \b
    示例：intake confirm 23 --by 娄文华
    """
    with acting(ctx) as (app, session):
        submission, notice = actions.confirm_claim(session, app.settings, submission_id, actor=_who(by), now=utcnow())
        click.echo(f"报送 {submission.id} 已确认为 {submission.unit} 的报送。"
                   + ("它替代了该单位此前的报送，已通知该单位登记的邮箱。" if notice is not None else ""))
    _send(app)


@main.command()
@click.argument("submission_id", type=int)
@BY
@click.pass_context
def reject(ctx: click.Context, submission_id: int, by: str | None) -> None:
    """驳回一份「待确认」的报送：它不计入该单位，该单位已有的报送不变。

    \b
    示例：intake reject 23 --by 娄文华
    """
    with acting(ctx) as (_app, session):
        submission = actions.reject_claim(session, submission_id, actor=_who(by), now=utcnow())
        click.echo(f"报送 {submission.id} 已驳回，不计入 {submission.unit}。")


@main.command()
@click.argument("submission_id", type=int)
@click.argument("decision", type=click.Choice(["accept", "reject"]))
@click.option("--note", default=None, help="告知单位的一句说明（可选）。")
@BY
@click.pass_context
def late(ctx: click.Context, submission_id: int, decision: str, note: str | None, by: str | None) -> None:
    """对逾期报送作出决定：accept（受理，计为逾期受理）或 reject（不予受理）；单位会收到回复。

    \b
    示例：intake late 31 accept --note "经研究，同意受理" --by 娄文华
    """
    chosen = LateDecision.ACCEPTED if decision == "accept" else LateDecision.REJECTED
    with acting(ctx) as (app, session):
        submission, mail = actions.decide_late(session, app.settings, submission_id, chosen, actor=_who(by),
                                               now=utcnow(), note=note)
        word = "受理" if chosen is LateDecision.ACCEPTED else "不予受理"
        click.echo(f"报送 {submission.id}（{submission.unit}）已决定{word}。" + ("已通知单位。" if mail is not None else ""))
    _send(app)


@main.command()
@click.argument("submission_id", type=int)
@click.option("--seal", type=click.Choice(["yes", "no"]), default=None, help="人工认定是否盖章。")
@click.option("--mismatch-checked", is_flag=True, help="PDF 与 Excel 不一致之处已人工核对。")
@click.option("--note", default=None, help="备注。")
@BY
@click.pass_context
def review(ctx: click.Context, submission_id: int, seal: str | None, mismatch_checked: bool, note: str | None,
           by: str | None) -> None:
    """人工复核：认定盖章与否，或标记 PDF 与 Excel 不一致已核对。

    \b
    示例：intake review 12 --seal yes --note "电子签章，已核实"
    """
    if seal is None and not mismatch_checked and not note:
        raise click.UsageError("请至少指定 --seal、--mismatch-checked 或 --note 之一。")
    with acting(ctx) as (_app, session):
        submission = actions.review(session, submission_id, actor=_who(by), now=utcnow(),
                                    seal=None if seal is None else seal == "yes",
                                    mismatch_checked=True if mismatch_checked else None, note=note)
        click.echo(f"报送 {submission.id} 已记录人工复核。")


@main.command()
@click.argument("units", nargs=-1, required=True)
@click.option("--preview", is_flag=True, help="只显示每个单位将收到的邮件，不发送。")
@CAMPAIGN
@BY
@click.pass_context
def remind(ctx: click.Context, units: tuple[str, ...], preview: bool, campaign_id: str | None, by: str | None) -> None:
    """催报：给未报送、材料不全或需修改的单位发送提醒（受每日发送上限约束）。

    \b
    示例：intake remind 淄博市总工会 --preview
          intake remind 淄博市总工会 枣庄市总工会
    """
    with acting(ctx) as (app, session):
        now = utcnow()
        [campaign] = campaigns_for(app.settings, campaign_id, one="催报")
        if preview:
            for draft in actions.reminder_drafts(session, app.settings, list(units), now=now, campaign=campaign):
                click.echo(f"== {draft.unit} → {', '.join(draft.to) or '（无邮箱）'}"
                           + (f"（不会发送：{draft.refused}）" if draft.refused else ""))
                click.echo(f"主题：{draft.subject}\n{draft.text}")
            return
        drafts = actions.remind(session, app.settings, list(units), actor=_who(by), now=now, campaign=campaign)
        for draft in drafts:
            click.echo(f"{draft.unit}：" + (f"未发送（{draft.refused}）" if draft.refused else "已加入发送队列"))
    _send(app)


def _parse_deadline(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter("请写成 2024-02-28T17:00:00+08:00 的形式。") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))


@main.command()
@click.argument("new", required=False, type=_parse_deadline)
@click.option("--note", default=None, help="变更原因（记入操作记录）。")
@CAMPAIGN
@BY
@click.pass_context
def deadline(ctx: click.Context, new: dt.datetime | None, note: str | None, campaign_id: str | None,
             by: str | None) -> None:
    """显示或修改截止时间（延期立即作用于各单位状态、汇总和汇总表；已发出的回复不变）。

    不带时区的时间按北京时间理解。

    \b
    示例：intake deadline
          intake deadline 2024-02-28T17:00 --note "延期三天"
    """
    with acting(ctx) as (app, session):
        [campaign] = campaigns_for(app.settings, campaign_id, one="修改截止时间")
        if new is None:
            click.echo(f"{campaign.name} 截止时间：{campaign.deadline.isoformat()}")
            return
        actions.set_deadline(session, app.settings, new, actor=_who(by), now=utcnow(), note=note, campaign=campaign.id)
        click.echo(f"{campaign.name} 截止时间已改为 {new.isoformat()}（原为 {campaign.deadline.isoformat()}）。")


@main.command()
@click.option("--limit", default=50, show_default=True, help="显示最近多少条。")
@click.pass_context
def audit(ctx: click.Context, limit: int) -> None:
    """显示操作记录（谁、何时、做了什么）。

    \b
    示例：intake audit --limit 20
    """
    from zoneinfo import ZoneInfo

    from intake.board import local_time

    with acting(ctx) as (app, session):
        tz = ZoneInfo(app.settings.digest.timezone)
        for entry in actions.recent_audit(session, limit):
            click.echo(f"{local_time(entry.at, tz)} {entry.actor} {actions.action_label(entry.action)} {entry.target or ''}"
                       + (f"：{entry.note}" if entry.note else ""))



@main.group()
def outbox() -> None:
    """发送失败的邮件：重新发送或放弃。

    \b
    示例：intake outbox retry            # 全部发送失败的邮件
          intake outbox dismiss 42 --note "该邮箱已停用"
    """


@outbox.command("retry")
@click.argument("item_ids", nargs=-1, type=int)
@BY
@click.pass_context
def outbox_retry(ctx: click.Context, item_ids: tuple[int, ...], by: str | None) -> None:
    """重新发送发送失败的邮件（不带编号时为全部），并立即尝试一次。

    \b
    示例：intake outbox retry
          intake outbox retry 42 43
    """
    with acting(ctx) as (app, session):
        ids = actions.retry_failed(session, list(item_ids) or None, actor=_who(by), now=utcnow())
        click.echo(f"已重新排队 {len(ids)} 封邮件。" if ids else "没有发送失败的邮件。")
    _send(app)


@outbox.command("dismiss")
@click.argument("item_id", type=int)
@click.option("--note", default=None, help="放弃的原因（记入操作记录）。")
@BY
@click.pass_context
def outbox_dismiss(ctx: click.Context, item_id: int, note: str | None, by: str | None) -> None:
    """放弃一封发送失败的邮件（保留记录，不再计入 poll 的失败）。

    \b
    示例：intake outbox dismiss 42 --note "该邮箱已停用"
    """
    with acting(ctx) as (_app, session):
        row = actions.dismiss_failed(session, item_id, actor=_who(by), now=utcnow(), note=note)
        click.echo(f"已放弃发件编号 {row.id}（{row.to_address}）。")
