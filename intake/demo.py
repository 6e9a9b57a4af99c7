"""`intake demo`: the whole pipeline on sample mail, with nothing to set up.

A Maildir of generated sample mail stands in for the mailbox, SQLite for the database,
and replies are written as .eml files. Two campaigns are open in the one mailbox: the
2024 notice (the example config's `[campaign]`) and the shipped 五一劳动奖章推荐, so the
demo shows routing, a board per campaign and mail that belongs to neither (其他来信).
The demo folder keeps its own intake.toml, so every other command can be tried on the
result (`intake --config demo/intake.toml status`).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tomllib
from importlib.resources import files
from pathlib import Path

import tomli_w
from rich.console import Console

from config.settings import load_settings
from intake.app import App
from intake.board import build_board, render_board
from intake.runs import poll_once, write_digest
from intake.samples import CST, DEMO_AUTHSERV, demo_samples
from notifications.digest import build_digest
from storage.models import utcnow


def example_config() -> dict:
    return tomllib.loads(files("config").joinpath("intake.example.toml").read_text(encoding="utf-8"))


# The second campaign the demo opens beside the example's: a shipped file, its deadline
# three weeks after the example's so its mail arrives after the first one closed.
SECOND_CAMPAIGN = {"file": "2024-五一劳动奖章推荐", "deadline": dt.datetime(2024, 3, 15, 17, 0, tzinfo=CST)}


def demo_config(directory: Path) -> dict:
    config = example_config()
    config["campaigns"] = [dict(SECOND_CAMPAIGN)]
    config["mailbox"] = {"source": "maildir", "maildir": "maildir"}
    config["smtp"] = {"mode": "file", "outbox_dir": "outbox", "from_address": "szscbhb@163.com",
                      "from_name": "山东省总工会劳动竞赛项目征集"}
    config["database"] = {"url": "sqlite:///intake.db"}
    config["storage"] = {"path": "files"}
    config["digest"] = {"recipients": ["staff@example.cn"], "at": "08:30"}
    config["authenticity"] = {"trusted_authserv_ids": [DEMO_AUTHSERV], "verify_dkim": False, "require": True}
    return config


def write_maildir(root: Path, samples: list) -> None:
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for index, sample in enumerate(samples, start=1):
        path = root / "new" / f"{index:04d}.intake-demo"
        path.write_bytes(sample.raw)
        stamp = sample.arrived_at.timestamp()
        os.utime(path, (stamp, stamp))  # a Maildir file's mtime is its arrival time


# Left in every folder the demo makes: the only proof that wiping the folder is ours to do.
DEMO_MARKER = ".intake-demo"


class DemoError(Exception):
    """The demo cannot use the folder it was given; the message is one Chinese line."""


def prepare_folder(directory: Path) -> None:
    """Start from an empty folder: wipe one the demo made before, refuse anything else.

    `--dir .` or a folder holding a real intake.toml and database must never be deleted.
    """
    if directory.is_symlink():
        raise DemoError(f"演示目录 {directory} 是符号链接，为安全起见不使用；请换一个新目录。")
    if directory.exists():
        if not directory.is_dir():
            raise DemoError(f"{directory} 已存在且不是目录；请换一个新目录。")
        if (directory / DEMO_MARKER).is_file():
            shutil.rmtree(directory)
        elif any(directory.iterdir()):
            raise DemoError(f"目录 {directory} 已存在且不是演示目录（里面有其他文件），不会清空它；请换一个新目录，例如 --dir demo。")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / DEMO_MARKER).write_text("intake demo: this folder is recreated by each `intake demo`\n", encoding="utf-8")


def run_demo(directory: Path, console: Console) -> None:
    prepare_folder(directory)
    config_path = directory / "intake.toml"
    config_path.write_text(tomli_w.dumps(demo_config(directory)), encoding="utf-8")
    settings = load_settings(config_path)
    first, *others = settings.campaigns
    samples = demo_samples(first, others[0] if others else None)
    write_maildir(settings.resolve(settings.mailbox.maildir), samples)
    console.print(f"[bold]样例邮件 {len(samples)} 封[/bold]（{directory / 'maildir'}）：")
    for sample in samples:
        console.print(f"  · {sample.name}")
    with App(settings) as app:
        report = poll_once(app)
        console.print(f"\n{report.summary()}\n")
        with app.db.session() as session:
            for campaign in settings.campaigns:  # 其他来信 once, under the last board
                render_board(build_board(session, settings, campaign), console,
                             other=campaign is settings.campaigns[-1])
                console.print()
            digest = build_digest(session, settings, now=utcnow(), since=None)
        write_digest(digest, directory / "digest")
    outbox = settings.resolve(settings.smtp.outbox_dir)
    console.print(
        f"\n回复邮件（.eml）：{outbox}\n每日汇总与汇总表：{directory / 'digest'}\n"
        f"继续查看：intake --config {config_path} campaigns | status | "
        f"export --format json --campaign {settings.campaigns[-1].id} | digest"
    )
