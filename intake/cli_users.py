"""Console accounts and the console itself as commands: `intake user add|list|disable`, `intake web`."""

from __future__ import annotations

import getpass
import sys

import click

from intake.cli import main, opened, settings_from
from storage.models import Role, utcnow


@main.group()
def user() -> None:
    """管理网页控制台的账户（add / list / disable）。

    \b
    示例：intake user add 娄文华 --role admin
          intake user list
    """


def _password(name: str) -> str:
    """From standard input when it is not a terminal (one line), else asked twice."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"为 {name} 设置密码：")
    if getpass.getpass("再输入一次：") != first:
        raise click.ClickException("两次输入的密码不一致。")
    return first


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["staff", "admin"]), default="staff", show_default=True,
              help="admin 还可以在网页上管理用户。")
@click.pass_context
def user_add(ctx: click.Context, name: str, role: str) -> None:
    """添加用户；密码从标准输入读取（或交互输入两次），至少 8 个字符。

    \b
    示例：intake user add 娄文华 --role admin
          echo '一个足够长的密码' | intake user add 王芳
    """
    from intake.web.auth import AccountError, add_user

    password = _password(name)
    with opened(ctx) as app:
        try:
            with app.db.session() as session:
                add_user(session, name, password, Role(role), actor=getpass.getuser(), now=utcnow())
        except AccountError as err:
            raise click.ClickException(str(err)) from None
    click.echo(f"已添加用户 {name}（{'管理员' if role == 'admin' else '工作人员'}）。")


@user.command("list")
@click.pass_context
def user_list(ctx: click.Context) -> None:
    """列出用户。"""
    from intake.web.auth import list_users

    with opened(ctx) as app, app.db.session() as session:
        users = list_users(session)
        if not users:
            click.echo("尚无用户。创建第一个：intake user add 名字 --role admin")
        for u in users:
            click.echo(f"{u.name}\t{'管理员' if u.role is Role.ADMIN else '工作人员'}\t{'已停用' if u.disabled else '正常'}")


@user.command("disable")
@click.argument("name")
@click.pass_context
def user_disable(ctx: click.Context, name: str) -> None:
    """停用用户（立即退出登录，无法再登录）。"""
    from intake.web.auth import AccountError, disable_user

    with opened(ctx) as app:
        try:
            with app.db.session() as session:
                disable_user(session, name, actor=getpass.getuser(), now=utcnow())
        except AccountError as err:
            raise click.ClickException(str(err)) from None
    click.echo(f"已停用用户 {name}。")


@main.command()
@click.option("--host", default=None, help="监听地址（默认 [web] host，即 127.0.0.1）。")
@click.option("--port", type=int, default=None, help="端口（默认 [web] port，即 8080）。")
@click.pass_context
def web(ctx: click.Context, host: str | None, port: int | None) -> None:
    """启动网页控制台（总览、待处理、催报、逾期决定等）。

    \b
    示例：intake user add admin --role admin
          intake web --config demo/intake.toml      # 然后打开 http://127.0.0.1:8080
    """
    from intake.web.app import serve

    settings = settings_from(ctx)
    click.echo(f"网页控制台：http://{host or settings.web.host}:{port or settings.web.port}{settings.web.base_path}/")
    serve(settings, host, port)
