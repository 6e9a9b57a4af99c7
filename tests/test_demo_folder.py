"""`intake demo --dir X` wipes only a folder the demo made itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from intake.cli import main
from intake.demo import DEMO_MARKER, DemoError, prepare_folder


def test_the_demo_refuses_a_folder_holding_someone_elses_files(tmp_path: Path) -> None:
    (tmp_path / "intake.toml").write_text("[campaign]\n", encoding="utf-8")
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "intake.db").write_bytes(b"SQLite format 3\0")
    result = CliRunner().invoke(main, ["demo", "--dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "不会清空" in result.output and "Traceback" not in result.output
    assert (tmp_path / "intake.toml").exists() and (tmp_path / "var" / "intake.db").exists()


def test_the_demo_wipes_and_recreates_a_folder_it_made(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    prepare_folder(folder)
    (folder / "old-output.txt").write_text("from the last run", encoding="utf-8")
    prepare_folder(folder)
    assert sorted(p.name for p in folder.iterdir()) == [DEMO_MARKER]


def test_the_demo_uses_an_empty_folder_and_refuses_a_symlink(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_folder(empty)
    assert (empty / DEMO_MARKER).is_file()
    link = tmp_path / "link"
    link.symlink_to(empty)
    with pytest.raises(DemoError):
        prepare_folder(link)
