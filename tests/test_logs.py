"""What the operator reads: one line per mail and per send, libraries quiet, a rotated file."""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner

from intake.cli import main
from intake.logs import THIRD_PARTY


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    directory = tmp_path / "demo"
    assert CliRunner().invoke(main, ["demo", "--dir", str(directory)]).exit_code == 0
    return directory


def with_log_file(config: Path, *, json_lines: bool) -> None:
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    data["logging"] = {"file": "log/intake.log", "json_lines": json_lines, "max_bytes": 10000, "backups": 2}
    config.write_text(tomli_w.dumps(data), encoding="utf-8")


def test_verbose_reprocess_logs_one_line_per_mail_and_no_library_debug(demo: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        result = CliRunner().invoke(main, ["-v", "--config", str(demo / "intake.toml"), "reprocess"])
    assert result.exit_code == 0, result.output
    ours = [r.getMessage() for r in caplog.records if r.name == "intake.pipeline" and r.getMessage().startswith("mail #")]
    assert len(ours) == 13  # the demo's thirteen mails, one line each
    assert any("from=jinan@example.cn campaign=default unit=济南市总工会 trust=verified verdict=" in line for line in ours)
    noisy = [r for r in caplog.records if r.name.split(".")[0] in {n.split(".")[0] for n in THIRD_PARTY} and r.levelno < logging.WARNING]
    assert noisy == []


def test_the_log_file_is_written_as_json_lines_and_rotated(demo: Path) -> None:
    config = demo / "intake.toml"
    with_log_file(config, json_lines=True)
    for _ in range(6):
        assert CliRunner().invoke(main, ["--config", str(config), "reprocess"]).exit_code == 0
    log_dir = demo / "log"
    files = sorted(p.name for p in log_dir.iterdir())
    assert files[0] == "intake.log" and "intake.log.1" in files and len(files) <= 3
    entries = [json.loads(line) for line in (log_dir / "intake.log").read_text(encoding="utf-8").splitlines()]
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    assert any(e["message"].startswith("mail #") for e in entries)
    assert oct((log_dir / "intake.log").stat().st_mode & 0o777) == "0o600"
