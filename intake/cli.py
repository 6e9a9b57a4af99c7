"""The `intake` command. Each command opens the app, calls one library function, and
turns a domain error into one clear Chinese line at the edge."""

from __future__ import annotations

import getpass
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console

from config.settings import ConfigError, Settings, load_settings
from intake import __version__

log = logging.getLogger("intake")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Library chatter (Alembic's migration banner, APScheduler's job lines) is not ours.
    for noisy in ("alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    _setup_logging(verbose)
    ctx.obj = {"config_path": config_path}


def settings_from(ctx: click.Context) -> Settings:
    try:
        return load_settings(ctx.obj["config_path"])
    except ConfigError as err:
        raise click.ClickException(str(err)) from None


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
        raise click.ClickException(f"数据库暂时不可用：{err.orig}。稍后重新运行即可。") from None


@main.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """检查配置文件是否有效。

    \b
    示例：intake --config intake.toml check
    """
    settings = settings_from(ctx)
    click.echo(f"配置有效：{settings.campaign.name}，截止 {settings.campaign.deadline.isoformat()}，登记单位 {len(settings.units)} 个。")


@main.command()
@click.pass_context
def poll(ctx: click.Context) -> None:
    """收取一次新邮件，处理并发送回复，然后退出。

    \b
    示例：intake poll
    """
    from intake.runs import poll_once

    with opened(ctx) as app:
        click.echo(poll_once(app).summary())


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
            Runner(app).run()


@main.command()
@click.option("--json", "as_json", is_flag=True, help="输出 JSON。")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """显示各单位报送状态。

    \b
    示例：intake status
          intake status --json
    """
    from intake.board import board_as_dict, build_board, render_board

    with opened(ctx) as app, app.db.session() as session:
        board = build_board(session, app.settings)
        if as_json:
            click.echo(json.dumps(board_as_dict(board), ensure_ascii=False, indent=2))
        else:
            render_board(board, Console())


@main.command()
@click.option("--format", "fmt", type=click.Choice(["json", "xlsx"]), default="json", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="输出文件（xlsx 必填；json 默认输出到屏幕）。")
@click.pass_context
def export(ctx: click.Context, fmt: str, out: str | None) -> None:
    """导出全部报送数据：JSON，或按通知格式汇总的 Excel 工作簿。

    \b
    示例：intake export --format json > export.json
          intake export --format xlsx --out 汇总表.xlsx
    """
    from intake.export import export_document
    from notifications.workbook import build_workbook

    with opened(ctx) as app, app.db.session() as session:
        if fmt == "xlsx":
            if not out:
                raise click.UsageError("导出 xlsx 需要 --out 文件名。")
            Path(out).write_bytes(build_workbook(session, app.settings))
            click.echo(f"已写入 {out}")
            return
        text = json.dumps(export_document(session, app.settings), ensure_ascii=False, indent=2)
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        click.echo(text)


@main.command()
@click.argument("message_ids", nargs=-1, type=int)
@click.pass_context
def reprocess(ctx: click.Context, message_ids: tuple[int, ...]) -> None:
    """从存档重新解析邮件（不访问邮箱，不会重复回复）。不带参数时处理全部。

    \b
    示例：intake reprocess
          intake reprocess 12 15
    """
    from intake.runs import reprocess_messages

    with opened(ctx) as app:
        outcomes = reprocess_messages(app, list(message_ids) or None)
        click.echo(f"已重新处理 {len(outcomes)} 封邮件。")


@main.command()
@click.argument("submission_id", type=int)
@click.argument("unit")
@click.option("--by", default=None, help="操作人（默认：当前系统用户）。")
@click.pass_context
def assign(ctx: click.Context, submission_id: int, unit: str, by: str | None) -> None:
    """人工指定某次报送所属单位。

    \b
    示例：intake assign 17 潍坊市总工会 --by 娄文华
    """
    from intake.tracking import TrackingError, assign as assign_unit
    from storage.models import utcnow

    with opened(ctx) as app:
        try:
            with app.db.session() as session:
                submission = assign_unit(
                    session, submission_id, unit, by=by or getpass.getuser(), now=utcnow(), registry=app.registry
                )
                click.echo(f"报送 {submission.id} 已指定为 {submission.unit}（{submission.status.value}）。")
        except TrackingError as err:
            raise click.ClickException(str(err)) from None


@main.command()
@click.option("--send", is_flag=True, help="通过发件箱发送给 [digest] recipients（每天一次）。")
@click.option("--out", type=click.Path(file_okay=False), help="把 digest.txt、digest.html 和汇总表写入此目录。")
@click.pass_context
def digest(ctx: click.Context, send: bool, out: str | None) -> None:
    """生成每日汇总（默认打印文本）。

    \b
    示例：intake digest
          intake digest --send
    """
    from intake.runs import write_digest
    from notifications.digest import build_digest, queue_digest
    from notifications.outbox import Outbox
    from storage.models import utcnow

    with opened(ctx) as app:
        now = utcnow()
        if send:
            with app.db.session() as session:
                item = queue_digest(session, app.settings, now=now)
            Outbox(app.db, app.settings).send_pending()
            click.echo("今日汇总已发送。" if item else "今日汇总此前已发送，不再重复。")
            return
        with app.db.session() as session:
            built = build_digest(session, app.settings, now=now, since=None)
        if out:
            write_digest(built, Path(out))
            click.echo(f"已写入 {out}")
        else:
            click.echo(built.text)


@main.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False), default="demo", show_default=True,
              help="演示数据目录（每次运行前清空）。")
@click.pass_context
def demo(ctx: click.Context, directory: str) -> None:
    """内置演示：生成样例邮件，走完整流程（SQLite、本地邮箱、回复写成 .eml 文件），最后显示状态表。

    \b
    示例：intake demo
    """
    from intake.demo import run_demo

    run_demo(Path(directory), Console())


if __name__ == "__main__":  # pragma: no cover
    main()
