"""The `intake` command as an office's IT person uses it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from intake.cli import main

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
# The demo's two open campaigns: the example config's [campaign] (id `default`) and the shipped medal one.
DEMO_2024 = "2024年度山东省职工“聚力强省建设·建功高质量发展”创新创优劳动竞赛"
DEMO_MEDAL = "2024年山东省五一劳动奖章推荐"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("demo") / "demo"
    result = CliRunner().invoke(main, ["demo", "--dir", str(directory)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return directory, result.output


def invoke(demo_dir: Path, *args: str):  # noqa: ANN201
    result = CliRunner().invoke(main, ["--config", str(demo_dir / "intake.toml"), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_has_help_with_an_example_and_is_in_the_readme(name: str) -> None:
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0
    assert "示例" in result.output
    assert f"`intake {name}" in README


def test_the_demo_ends_with_the_status_board_and_writes_replies_digest_and_workbook(demo: tuple[Path, str]) -> None:
    directory, output = demo
    assert "济南市总工会" in output and "已受理" in output and "未报送" in output
    replies = sorted((directory / "outbox").glob("*.eml"))
    assert len(replies) == 11  # thirteen mails: no reply to the out-of-office one nor to the letter for no campaign
    assert {re.sub(r"^\d+-|-.*$", "", p.name) for p in replies} == {"receipt", "late", "incomplete", "invalid"}
    digest = directory / "digest"
    assert "报送" in (digest / "digest.txt").read_text(encoding="utf-8")
    workbooks = {p.name.split("汇总表-")[0]: p for p in digest.glob("*.xlsx")}  # one per open campaign
    assert set(workbooks) == {DEMO_2024, DEMO_MEDAL}
    assert len(load_workbook(workbooks[DEMO_2024]).sheetnames) >= 4


def test_the_demo_prints_a_board_per_campaign_and_the_letter_for_neither_once(demo: tuple[Path, str]) -> None:
    _, output = demo
    assert f"{DEMO_2024} 报送情况" in output and f"{DEMO_MEDAL} 报送情况" in output
    assert output.count("其他来信 1 封") == 1 and "关于职工疗养安排的请示" in output.split(f"{DEMO_MEDAL} 报送情况")[1]


def test_the_digest_of_one_campaign_holds_that_campaign_only(demo: tuple[Path, str], tmp_path: Path) -> None:
    directory, _ = demo
    every = invoke(directory, "digest").output
    medal = invoke(directory, "digest", "--campaign", "wuyi-2024").output
    assert DEMO_2024 in every and DEMO_MEDAL in every
    assert DEMO_MEDAL in medal and DEMO_2024 not in medal
    assert "关于职工疗养安排的请示" in medal  # mail for no campaign stays in front of staff
    invoke(directory, "digest", "--campaign", "wuyi-2024", "--out", str(tmp_path / "medal"))
    assert [p.name.split("汇总表-")[0] for p in (tmp_path / "medal").glob("*.xlsx")] == [DEMO_MEDAL]
    refused = CliRunner().invoke(main, ["--config", str(directory / "intake.toml"), "digest", "--send",
                                        "--campaign", "wuyi-2024"])
    assert refused.exit_code != 0 and "不能与 --campaign 同用" in refused.output


def test_the_json_export_keeps_the_contract(demo: tuple[Path, str]) -> None:
    directory, _ = demo
    document = json.loads(invoke(directory, "export", "--format", "json", "--campaign", "default").output)
    assert set(document) >= {"campaign", "submissions", "units"}
    assert set(document["campaign"]) >= {"name", "deadline"}
    submission = document["submissions"][0]
    assert set(submission) >= {
        "id", "message_id", "unit", "sender", "subject", "received_at", "late", "status", "reply", "files",
        "has_pdf", "has_editable", "seal", "problems", "form1_rows", "form2_rows", "trust", "reply_form",
    }
    assert {s["trust"] for s in document["submissions"]} <= {"verified", "registered", "claimed", "unknown"}
    assert set(submission["files"][0]) >= {"name", "kind", "sha256", "size"}
    assert set(submission["form1_rows"][0]) >= {
        "competition", "project", "enterprises", "private_enterprises", "workers", "private_workers", "investment"}
    form2 = next(s for s in document["submissions"] if s["form2_rows"])["form2_rows"][0]
    assert set(form2) >= {"seq", "competition", "organizer", "undertaker", "event", "prelim", "final", "final_time_place"}
    assert {u["state"] for u in document["units"]} >= {"missing", "accepted", "accepted_late", "incomplete", "invalid"}
    statuses = {s["status"] for s in document["submissions"]}
    assert statuses >= {"accepted", "incomplete", "invalid", "superseded", "ignored"}
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", submission["received_at"])


def test_status_as_json_lists_every_registered_unit(demo: tuple[Path, str]) -> None:
    directory, _ = demo
    board = json.loads(invoke(directory, "status", "--json", "--campaign", "default").output)
    assert len(board["units"]) == 32


def test_the_xlsx_export_writes_the_workbook(demo: tuple[Path, str], tmp_path: Path) -> None:
    directory, _ = demo
    out = tmp_path / "汇总表.xlsx"
    invoke(directory, "export", "--format", "xlsx", "--out", str(out), "--campaign", "default")
    assert load_workbook(out).sheetnames


def test_reprocess_reads_the_archive_again_and_queues_no_new_reply(demo: tuple[Path, str]) -> None:
    directory, _ = demo
    before = sorted(p.name for p in (directory / "outbox").glob("*.eml"))
    exported = [json.loads(invoke(directory, "export", "--campaign", c).output) for c in ("default", "wuyi-2024")]
    output = invoke(directory, "reprocess").output
    assert "重新处理 13 封" in output
    again = [json.loads(invoke(directory, "export", "--campaign", c).output) for c in ("default", "wuyi-2024")]
    assert [e["submissions"] for e in again] == [e["submissions"] for e in exported]
    invoke(directory, "poll")
    assert sorted(p.name for p in (directory / "outbox").glob("*.eml")) == before


def test_assign_settles_an_unmatched_submission_and_records_who(demo: tuple[Path, str]) -> None:
    directory, _ = demo
    document = json.loads(invoke(directory, "export", "--campaign", "default").output)
    target = next(s for s in document["submissions"] if s["status"] == "accepted" and s["unit"] == "潍坊市总工会")
    invoke(directory, "assign", str(target["id"]), "潍坊市总", "--by", "娄文华")
    after = next(s for s in json.loads(invoke(directory, "export", "--campaign", "default").output)["submissions"]
                 if s["id"] == target["id"])
    assert after["unit"] == "潍坊市总工会" and after["assigned_by"] == "娄文华"


def test_a_broken_config_stops_with_one_line_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "intake.toml"
    config.write_text('[campaign]\nname = "x"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(config), "check"])
    assert result.exit_code == 1
    assert "campaign.deadline" in result.output and result.output.count("\n") == 1


def test_check_reads_the_shipped_example_and_refuses_its_placeholders() -> None:
    example = Path(__file__).parents[1] / "config" / "intake.example.toml"
    result = CliRunner().invoke(main, ["--config", str(example), "check"])
    assert result.exit_code == 1 and "登记单位 32 个" in result.output and "✗ 示例地址" in result.output


def test_confirm_and_reject_settle_claims_and_refuse_what_needs_no_word(tmp_path: Path) -> None:
    directory = tmp_path / "demo"  # its own demo: the module's is changed by the assign test
    CliRunner().invoke(main, ["demo", "--dir", str(directory)], catch_exceptions=False)
    submissions = json.loads(invoke(directory, "export", "--campaign", "default").output)["submissions"]
    claims = [s for s in submissions if s["confirmation"] == "pending"]
    assert len(claims) >= 1 and all(s["trust"] == "claimed" for s in claims)
    invoke(directory, "confirm", str(claims[0]["id"]), "--by", "娄文华")
    after = {s["id"]: s for s in json.loads(invoke(directory, "export", "--campaign", "default").output)["submissions"]}
    assert (after[claims[0]["id"]]["confirmation"], after[claims[0]["id"]]["confirmed_by"]) == ("confirmed", "娄文华")
    trusted = next(s for s in submissions if s["trust"] in ("verified", "registered"))
    result = CliRunner().invoke(main, ["--config", str(directory / "intake.toml"), "reject", str(trusted["id"])])
    assert result.exit_code != 0 and "不需要确认" in result.output


def test_a_deadline_set_from_the_cli_applies_to_status_at_once_and_is_audited(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    CliRunner().invoke(main, ["demo", "--dir", str(directory)], catch_exceptions=False)
    units = {u["name"]: u for u in json.loads(invoke(directory, "status", "--json", "--campaign", "default").output)["units"]}
    assert units["烟台市总工会"]["state"] == "accepted_late"
    invoke(directory, "deadline", "2024-03-31T17:00", "--note", "延期", "--by", "娄文华", "--campaign", "default")
    units = {u["name"]: u for u in json.loads(invoke(directory, "status", "--json", "--campaign", "default").output)["units"]}
    assert units["烟台市总工会"]["state"] == "accepted"
    assert "娄文华 修改截止时间 campaign:default：延期" in invoke(directory, "audit").output


def test_a_deadline_moved_for_one_campaign_leaves_the_other_alone(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    CliRunner().invoke(main, ["demo", "--dir", str(directory)], catch_exceptions=False)

    def states(campaign: str) -> dict[str, str]:
        board = json.loads(invoke(directory, "status", "--json", "--campaign", campaign).output)
        return {u["name"]: u["state"] for u in board["units"]}

    before = states("default")
    refused = CliRunner().invoke(main, ["--config", str(directory / "intake.toml"), "deadline", "2024-03-01T17:00"])
    assert refused.exit_code != 0 and "default、wuyi-2024" in refused.output  # two open: say which
    assert "2024-03-01" in invoke(directory, "deadline", "2024-03-01T17:00", "--campaign", "wuyi-2024").output
    assert states("wuyi-2024")["青岛市总工会"] == "accepted_late"  # its recommendation came on 03-09
    assert states("default") == before
    assert "2024-02-25T17:00:00+08:00" in invoke(directory, "deadline", "--campaign", "default").output
