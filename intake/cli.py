"""The `intake` command. Each command opens the app, calls one library function, and
turns a domain error into one clear Chinese line at the edge."""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console

from config.settings import ConfigError, Settings, brief, find_config, load_settings
from intake import __version__
from intake.logs import add_log_file, remove_log_file, setup_logging

log = logging.getLogger("intake")


class _Failure(click.ClickException):
    """click's "Error: " prefix is English; ours reads 错误：."""

    def show(self, file: object = None) -> None:
        click.echo(f"错误：{self.format_message()}", err=True)


class _Main(click.Group):
    """Whatever goes wrong ends as one Chinese line; `-v` shows the traceback instead."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.UsageError, click.exceptions.Exit, click.Abort):
            raise
        except click.ClickException as err:
            raise _Failure(err.message) from None
        except Exception as err:
            if ctx.params.get("verbose"):
                raise
            raise _Failure(f"出现意外错误：{type(err).__name__}: {brief(err)}（加 -v 可查看详细信息）") from None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="配置文件路径（默认：$INTAKE_CONFIG，否则 ./intake.toml）。")
@click.option("-v", "--verbose", is_flag=True, help="输出调试日志。")
@click.version_option(__version__, prog_name="intake")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """intake：自动收取、核验、回复竞赛项目报送邮件。

    \b
    示例：
      intake demo                 # 用内置样例邮件演示完整流程
      intake --config intake.toml poll
    """
    # Before anything creates a file: the database, archive and reports hold personal data.
    # Restored when the command ends, for callers that run it in their own process (tests).
    previous_umask = os.umask(0o077)
    ctx.call_on_close(lambda: os.umask(previous_umask))
    setup_logging(verbose)
    ctx.obj = {"config_path": config_path}


def settings_from(ctx: click.Context) -> Settings:
    try:
        settings = load_settings(ctx.obj["config_path"])
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    handler = add_log_file(settings.logging, settings.resolve)
    ctx.call_on_close(lambda: remove_log_file(handler))
    return settings


@contextmanager
def opened(ctx: click.Context) -> Iterator[object]:
    """The app for one command; what goes wrong outside our control ends as one line."""
    from sqlalchemy.exc import OperationalError

    from intake.app import App
    from intake.archive import ArchiveError
    from intake.mailbox import MailboxError

    try:
        with App(settings_from(ctx)) as app:
            yield app
    except MailboxError as err:
        raise click.ClickException(str(err)) from None
    except ArchiveError as err:
        raise click.ClickException(f"无法写入存档（磁盘已满或无权限）：{err}。邮件未丢失，空间恢复后重新运行即可。") from None
    except OperationalError as err:
        raise click.ClickException(f"数据库暂时不可用：{brief(err.orig)}。稍后重新运行即可，或用 intake check 检查。") from None


@main.command()
@click.option("--connect/--no-connect", default=None,
              help="登录邮箱和发信服务器、连接数据库、检查存档目录（配置中有密码时默认检查）。")
@click.option("--campaign-file", type=click.Path(dir_okay=False), default=None,
              help="只检查这一个征集文件（不读配置文件）。")
@click.pass_context
def check(ctx: click.Context, connect: bool | None, campaign_file: str | None) -> None:
    """逐项检查配置：每个取值和每个征集，以及（--connect）邮箱、发信服务器、数据库和存档目录。

    每项一行：✓ 正常，! 请留意，✗ 无法正常工作（此时退出码为 1）。不发送邮件，不建文件夹，不迁移数据库。

    \b
    示例：intake --config intake.toml check
          intake check --no-connect      # 只检查配置文件本身
          intake check --campaign-file campaigns/2025.toml
    """
    from intake.checks import Mark, campaign_file_checks, fail, has_credentials, run_checks
    from storage.models import utcnow

    if campaign_file is not None:
        items = campaign_file_checks(Path(campaign_file))
        for item in items:
            click.echo(item.line())
        if items[0].mark is Mark.FAIL:
            ctx.exit(1)
        click.echo(f"征集文件有效：{len(items)} 项正常。")
        return
    try:
        settings = load_settings(ctx.obj["config_path"])
    except ConfigError as err:  # a campaign file's mistake too: one ✗ line naming file and key
        click.echo(fail("配置文件", str(err)).line())
        ctx.exit(1)
    handler = add_log_file(settings.logging, settings.resolve)
    ctx.call_on_close(lambda: remove_log_file(handler))
    connect = has_credentials(settings) if connect is None else connect
    items = run_checks(settings, find_config(ctx.obj["config_path"]), connect=connect, now=utcnow())
    for item in items:
        click.echo(item.line())
    failed = sum(item.mark is Mark.FAIL for item in items)
    warned = sum(item.mark is Mark.WARN for item in items)
    if failed:
        click.echo(f"有 {failed} 项需要修改（✗），{warned} 项请留意（!）。")
        ctx.exit(1)
    click.echo(f"配置有效：{len(items) - warned} 项正常，{warned} 项请留意（!）"
               + ("。" if connect else "；未连接服务器（加 --connect 检查）。"))


@main.command()
@click.pass_context
def poll(ctx: click.Context) -> None:
    """收取一次新邮件，处理并发送回复，然后退出。

    \b
    示例：intake poll
    """
    from intake.runs import outbox_status, poll_once, unsent_lines

    with opened(ctx) as app:
        click.echo(poll_once(app).summary())
        health = outbox_status(app)
    for line in unsent_lines(health):
        click.echo(line)
    if health.failed or health.retrying_items:
        # Replies that did not go out are a failure of this command, not a footnote.
        ctx.exit(1)


@main.command()
@click.option("--standby", is_flag=True, help="若已有 run 进程，则等待并在其停止后接管（用于第二台机器）。")
@click.pass_context
def run(ctx: click.Context, standby: bool) -> None:
    """持续监视邮箱（支持 IDLE 时即时收取，否则定时轮询），并按时发送每日汇总。

    同一数据库同时只允许一个 run 进程；收到 SIGTERM 后在当前步骤结束时退出。

    \b
    示例：intake --config /etc/intake.toml run
          intake --config /etc/intake.toml run --standby   # 第二台机器（PostgreSQL）
    """
    from intake.scheduler import Runner
    from storage.locks import exclusive

    with opened(ctx) as app:
        if standby:
            log.info("standby: waiting until no other intake run holds the database")
        with exclusive(app.db, "intake-run", wait=standby) as acquired:
            if not acquired:
                raise click.ClickException("另一个 intake run 进程正在使用同一数据库，本进程退出。")
            runner = Runner(app)
            console = None
            if app.settings.web.enabled:  # the staff console in a thread, sharing the app and its outbox lock
                from intake.web.app import start_in_thread

                console = start_in_thread(app.settings, app, runner.send_outbox)
            try:
                runner.run()
            finally:
                if console is not None:
                    console.should_exit = True


CAMPAIGN = click.option("--campaign", "campaign_id", default=None, metavar="ID",
                        help="征集编号（intake campaigns 可列出；默认：唯一正在进行的征集）。")


def campaigns_for(settings: Settings, campaign_id: str | None, *, one: str | None = None) -> list:
    """The campaigns a command acts on: the one named, else the only open one, else (none
    open) the default. With several open and none named: every open one, or, when the
    command can do only `one` thing at a time, a refusal that lists their ids."""
    from storage.models import utcnow

    campaigns = settings.campaign_set
    if campaign_id is not None:
        chosen = campaigns.get(campaign_id)
        if chosen is None:
            raise click.ClickException(f"没有编号为「{campaign_id}」的征集；已配置：{'、'.join(c.id for c in campaigns)}")
        return [chosen]
    open_now = list(campaigns.open(utcnow())) or [settings.campaign]
    if len(open_now) > 1 and one:
        ids = "、".join(c.id for c in open_now)
        raise click.ClickException(f"有 {len(open_now)} 个征集正在进行（{ids}），请用 --campaign 指定要{one}的一个。")
    return open_now


@main.command()
@click.pass_context
def campaigns(ctx: click.Context) -> None:
    """列出配置的征集：编号、名称、截止时间、是否仍在受理、表格。

    \b
    示例：intake campaigns
    """
    from zoneinfo import ZoneInfo

    from storage.models import utcnow

    with opened(ctx) as app:  # the deadlines staff set count
        settings = app.settings
    tz, now = ZoneInfo(settings.digest.timezone), utcnow()
    for campaign in settings.campaign_set:
        state = "受理中" if campaign.is_open(now) else f"已截止（{campaign.closes_at.astimezone(tz):%Y-%m-%d %H:%M}）"
        forms = "、".join(f"{f.id}（{f.short_title}）" for f in campaign.forms)
        click.echo(f"{campaign.id}  {campaign.name}  截止 {campaign.deadline.astimezone(tz):%Y-%m-%d %H:%M}  {state}  表格：{forms}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="输出 JSON。")
@CAMPAIGN
@click.pass_context
def status(ctx: click.Context, as_json: bool, campaign_id: str | None) -> None:
    """显示各单位报送状态（有多个征集正在进行且未指定 --campaign 时逐个显示）。

    \b
    示例：intake status
          intake status --campaign wuyi-2024
          intake status --json
    """
    from intake.board import board_as_dict, build_board, render_board
    from intake.login_pause import current_pause
    from intake.runs import unsent_lines
    from notifications.outbox import outbox_health
    from storage.models import utcnow

    with opened(ctx) as app, app.db.session() as session:
        chosen = campaigns_for(app.settings, campaign_id)
        boards = [build_board(session, app.settings, c) for c in chosen]
        health = outbox_health(session, app.settings, utcnow())
        pause = current_pause(session)
        if as_json:
            # One campaign: the document as it always was (plus its id); several: one each.
            documents = [{"campaign_id": c.id, **board_as_dict(b)} for c, b in zip(chosen, boards, strict=True)]
            document = documents[0] if len(documents) == 1 else {"campaigns": documents}
            document["outbox"] = health.as_dict()
            document["mailbox"] = {"auth_paused_until": pause.until.isoformat() if pause else None,
                                   "auth_pause_reason": pause.reason if pause else None}
            click.echo(json.dumps(document, ensure_ascii=False, indent=2))
            return
        console = Console()
        for board in boards:  # 其他来信 once, under the last board
            if board is not boards[0]:
                console.print()
            render_board(board, console, other=board is boards[-1])
        for line in ([f"! {pause.describe(boards[0].timezone)}"] if pause else []) + unsent_lines(health):
            click.echo(line)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["json", "xlsx"]), default="json", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="输出文件（xlsx 必填；json 默认输出到屏幕）。")
@CAMPAIGN
@click.pass_context
def export(ctx: click.Context, fmt: str, out: str | None, campaign_id: str | None) -> None:
    """导出一个征集的全部报送数据：JSON，或按通知格式汇总的 Excel 工作簿。

    有多个征集正在进行时须用 --campaign 指定。

    \b
    示例：intake export --format json > export.json
          intake export --format xlsx --out 汇总表.xlsx --campaign ldjs-2024
    """
    from intake.archive import write_atomically  # 0600, new folders 0700
    from intake.export import export_document
    from notifications.workbook import build_workbook

    with opened(ctx) as app, app.db.session() as session:
        [campaign] = campaigns_for(app.settings, campaign_id, one="导出")
        if fmt == "xlsx":
            if not out:
                raise click.UsageError("导出 xlsx 需要 --out 文件名。")
            write_atomically(Path(out), build_workbook(session, app.settings, campaign))
            click.echo(f"已写入 {out}（{campaign.name}）")
            return
        text = json.dumps(export_document(session, app.settings, campaign), ensure_ascii=False, indent=2)
    if out:
        write_atomically(Path(out), text.encode("utf-8"))
    else:
        click.echo(text)


@main.command()
@click.argument("message_ids", nargs=-1, type=int)
@click.option("--campaign", "campaign_id", default=None, metavar="ID", help="只处理已归入该征集的邮件。")
@click.pass_context
def reprocess(ctx: click.Context, message_ids: tuple[int, ...], campaign_id: str | None) -> None:
    """从存档重新解析邮件（不访问邮箱，不会重复回复）。不带参数时处理全部（含其他来信）。

    \b
    示例：intake reprocess
          intake reprocess 12 15
          intake reprocess --campaign wuyi-2024
    """
    from intake.runs import reprocess_messages

    with opened(ctx) as app:
        if campaign_id is not None:
            campaigns_for(app.settings, campaign_id)  # refuses an unknown id
        outcomes = reprocess_messages(app, list(message_ids) or None, campaign=campaign_id)
        click.echo(f"已重新处理 {len(outcomes)} 封邮件。")


@main.command()
@click.option("--send", is_flag=True, help="通过发件箱发送给 [digest] recipients（每天一次）。")
@click.option("--out", type=click.Path(file_okay=False), help="把 digest.txt、digest.html 和汇总表写入此目录。")
@click.option("--campaign", "campaign_id", default=None, metavar="ID",
              help="只汇总这一个征集（intake campaigns 可列出；默认：每个正在进行的征集）。")
@click.pass_context
def digest(ctx: click.Context, send: bool, out: str | None, campaign_id: str | None) -> None:
    """生成每日汇总（默认打印文本）：每个正在进行的征集一节，或用 --campaign 只看一个征集。

    \b
    示例：intake digest
          intake digest --campaign wuyi-2024 --out 汇总
          intake digest --send
    """
    from intake.runs import write_digest
    from notifications.digest import build_digest, queue_digest
    from notifications.outbox import Outbox
    from storage.models import utcnow

    if send and campaign_id is not None:  # the day's one digest covers every open campaign
        raise click.UsageError("--send 发送的每日汇总包含所有正在进行的征集，不能与 --campaign 同用。")
    with opened(ctx) as app:
        now = utcnow()
        [campaign] = campaigns_for(app.settings, campaign_id) if campaign_id is not None else [None]
        if send:
            if not app.settings.digest.recipients:
                raise click.ClickException("没有收件人：请在 [digest] recipients 填写每日汇总的收件地址。")
            with app.db.session() as session:
                item = queue_digest(session, app.settings, now=now)
            Outbox(app.db, app.settings).send_pending()
            line, sent = digest_outcome(app, now, new=item is not None)
            click.echo(line)
            if not sent:
                ctx.exit(1)
            return
        with app.db.session() as session:
            built = build_digest(session, app.settings, now=now, since=None, campaign=campaign)
        if out:
            write_digest(built, Path(out))
            click.echo(f"已写入 {out}")
        else:
            click.echo(built.text)


def digest_outcome(app, now, *, new: bool) -> tuple[str, bool]:  # noqa: ANN001 - App, datetime
    """What became of today's digest, read back from its outbox row: (line, nothing wrong)."""
    from sqlalchemy import select

    from notifications.outbox import explain_send_error
    from storage.models import OutboxItem, OutboxKind, OutboxState

    with app.db.session() as session:
        item = session.scalars(select(OutboxItem).where(OutboxItem.kind == OutboxKind.DIGEST)
                               .order_by(OutboxItem.id.desc())).first()
    if item is None:
        return "今日汇总未能排队。", False
    again = "" if new else "（今日汇总此前已排队，不重复生成）"
    smtp = app.settings.smtp
    if item.state is OutboxState.SENT:
        where = f"写入 {app.settings.resolve(smtp.outbox_dir)}（mode = \"file\"，未经网络发出）" if smtp.mode == "file" else "发送"
        return (f"今日汇总已{where}：{item.to_address}" if new else f"今日汇总此前已{where}，不再重复：{item.to_address}"), True
    if item.state is OutboxState.SKIPPED:
        return f'今日汇总未发送：[smtp] mode = "off"{again}', False
    if item.state is OutboxState.FAILED:
        return f"今日汇总发送失败，已不再重试{again}：{explain_send_error(app.settings, item.last_error)}", False
    if item.last_error:
        return f"今日汇总已排队，但这次未能发出，稍后自动重试{again}：{explain_send_error(app.settings, item.last_error)}", False
    return f"今日汇总已排队，尚未发送（正在运行的 intake run 会发送）{again}。", True


@main.command()
@click.argument("destination", type=click.Path(file_okay=False))
@click.pass_context
def backup(ctx: click.Context, destination: str) -> None:
    """备份数据库和邮件存档到 DESTINATION 下的新目录（运行中也可备份，得到一致的副本）。

    恢复：停止 intake，把备份中的 intake.db 放回（或把 [database] url 指向它），[storage] path 指向备份中的 files/。

    \b
    示例：intake backup /srv/backup/intake
    """
    from intake.backup import BackupError, backup as make_backup

    try:
        report = make_backup(settings_from(ctx), Path(destination))
    except BackupError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"已备份到 {report.folder}：数据库 {report.database.name}，存档文件 {report.archive_files} 个。")


@main.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False), default="demo", show_default=True,
              help="演示数据目录（由演示创建；再次运行时清空重建，其他已有目录不会被清空）。")
@click.pass_context
def demo(ctx: click.Context, directory: str) -> None:
    """内置演示：生成样例邮件，走完整流程（SQLite、本地邮箱、回复写成 .eml 文件），最后显示状态表。

    \b
    示例：intake demo
    """
    from intake.demo import DemoError, run_demo

    try:
        run_demo(Path(directory), Console())
    except DemoError as err:
        raise click.ClickException(str(err)) from None


# Staff actions (assign, confirm, late, remind, deadline...) live in their own module.
from intake import cli_actions  # noqa: E402, F401 - registers its commands on main
from intake import cli_users  # noqa: E402, F401 - `intake user ...` and `intake web`

if __name__ == "__main__":  # pragma: no cover
    main()
