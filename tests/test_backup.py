"""`intake backup` makes a copy that works as the database and archive on its own."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from click.testing import CliRunner

from intake.cli import main


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_backup_restores_to_a_working_database_and_archive(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    invoke("demo", "--dir", str(demo))
    config = demo / "intake.toml"
    before = json.loads(invoke("--config", str(config), "export", "--campaign", "default"))
    invoke("--config", str(config), "backup", str(tmp_path / "backups"))
    [folder] = (tmp_path / "backups").iterdir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "intake.db").stat().st_mode) == 0o600

    # Restore: a config pointing at nothing but the backup.
    restored = tmp_path / "restored.toml"
    restored.write_text(
        config.read_text(encoding="utf-8")
        .replace('url = "sqlite:///intake.db"', f'url = "sqlite:///{folder / "intake.db"}"')
        .replace('path = "files"', f'path = "{folder / "files"}"'),
        encoding="utf-8",
    )
    assert json.loads(invoke("--config", str(restored), "export", "--campaign", "default"))["submissions"] == before["submissions"]
    # The archive came along: every mail can be parsed again from the copy alone.
    assert "已重新处理" in invoke("--config", str(restored), "reprocess")
    assert json.loads(invoke("--config", str(restored), "status", "--json", "--campaign", "default"))["counts"] == before["counts"]
