"""The reply templates: Chinese text and HTML for each kind, overridable, escaped in HTML."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from jinja2 import UndefinedError

from notifications import render as render_module
from notifications.render import cn_number, cn_time, render
from notifications.replies import reply_context, short_context
from parsers.model import Problem, ProblemCode
from storage.models import ReplyKind, Submission, SubmissionStatus
from tests.conftest import make_submission, reply_settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
XLSX = "宁波市总工会竞赛项目汇总表.xlsx"
SETTINGS = reply_settings()


def rendered(submission: Submission, replaces: Submission | None = None, templates_dir: Path | None = None) -> tuple[str, str]:
    return render(submission.reply.value, reply_context(submission, SETTINGS, replaces), templates_dir)


def invalid_submission(filename: str = XLSX) -> Submission:
    return make_submission(
        status=SubmissionStatus.INVALID,
        problems=[
            Problem(ProblemCode.PRIVATE_GT_TOTAL, f"《{filename}》表一!E6：预计参赛非公企业数（15）大于预计参赛企业数（12）", filename, "表一!E6"),
            Problem(ProblemCode.MISSING_REQUIRED, "必填项为空", filename, "表二!B9"),
        ],
    )


def test_it_formats_times_in_shanghai_as_chinese_dates() -> None:
    assert cn_time(dt.datetime(2024, 2, 25, 8, 59, 59, tzinfo=dt.UTC)) == "2024年2月25日 16:59:59"


def test_it_writes_amounts_without_trailing_zeros_or_exponents() -> None:
    from decimal import Decimal

    assert [cn_number(Decimal(v)) for v in ("12.5000", "100", "0.0")] == ["12.5", "100", "0"]


def test_the_receipt_lists_files_forms_totals_and_arrival_time() -> None:
    text, html = rendered(make_submission())
    for part in (text, html):
        assert "2024年2月23日 10:15:30" in part
        assert "宁波市总工会竞赛项目汇总表（盖章）.pdf" in part and XLSX in part
        assert "重点工程类 3 项、预计参赛企业 26 家、" in part and "、年度投资总额 12.5 亿元" in part
        assert "技术技能类、创新创意类、工作推进类 2 项、预计初赛 1200 人、预计决赛 90 人" in part
        assert "省总工会经济技术部 张老师" in part


def test_the_late_reply_states_arrival_against_deadline_and_that_the_office_decides() -> None:
    text, html = rendered(make_submission(late=True, arrived_at=dt.datetime(2024, 2, 25, 17, 0, 1, tzinfo=SHANGHAI)))
    for part in (text, html):
        assert "2024年2月25日 17:00:01" in part and "截止时间（2024年2月25日 17:00:00）" in part
        assert "办公室将另行研究是否受理" in part


@pytest.mark.parametrize(
    ("pdf", "editable", "expected"),
    [
        (False, True, "缺少加盖公章的扫描版 PDF 文件"),
        (True, False, "缺少可编辑版本（Excel 或 Word 文件）"),
        (False, False, "邮件中没有找到任何附件"),
    ],
)
def test_the_incomplete_reply_says_what_is_missing(pdf: bool, editable: bool, expected: str) -> None:
    submission = make_submission(status=SubmissionStatus.INCOMPLETE, pdf=pdf, editable=editable)
    text, html = rendered(submission)
    others = {"缺少加盖公章的扫描版 PDF 文件", "缺少可编辑版本（Excel 或 Word 文件）", "邮件中没有找到任何附件"} - {expected}
    for part in (text, html):
        assert expected in part
        assert not any(other in part for other in others)


def test_the_invalid_reply_lists_each_problem_with_file_and_cell_and_asks_for_a_resend() -> None:
    text, html = rendered(invalid_submission())
    for part in (text, html):
        # The first message names its file and cell already: they are not repeated.
        assert part.count("表一!E6") == 1 and f"《{XLSX}》表一!E6：预计参赛非公企业数（15）大于预计参赛企业数（12）" in part
        # The second does not: the template adds them.
        assert f"《{XLSX}》表二!B9：必填项为空" in part
        assert "重新发送至本邮箱" in part


@pytest.mark.parametrize("status", [SubmissionStatus.ACCEPTED, SubmissionStatus.INCOMPLETE, SubmissionStatus.INVALID])
def test_every_kind_says_which_earlier_submission_it_replaces(status: SubmissionStatus) -> None:
    older = make_submission(arrived_at=dt.datetime(2024, 2, 20, 15, 2, tzinfo=SHANGHAI))
    for part in rendered(make_submission(status=status), replaces=older):
        assert "本次报送将替代您于 2024年2月20日 15:02:00 提交的材料" in part
    for part in rendered(make_submission(status=status)):
        assert "本次报送将替代" not in part


def test_html_escapes_what_a_sender_wrote_and_text_keeps_it_verbatim() -> None:
    name = "<script>alert(1)</script>&汇总表.xlsx"
    text, html = rendered(invalid_submission(filename=name))
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;&amp;汇总表.xlsx" in html
    assert name in text


def test_the_text_part_has_no_runs_of_blank_lines() -> None:
    for submission in (make_submission(), invalid_submission(), make_submission(status=SubmissionStatus.INCOMPLETE, pdf=False)):
        text, _ = rendered(submission)
        assert "\n\n\n" not in text and text.endswith("\n")


def test_a_templates_dir_overrides_one_file_and_the_rest_stay_packaged(tmp_path: Path) -> None:
    (tmp_path / "receipt.txt.j2").write_text("收到了：{{ campaign.name }}\n", encoding="utf-8")
    text, html = rendered(make_submission(), templates_dir=tmp_path)
    assert text == "收到了：2024年度全省劳动和技能竞赛项目申报\n"
    assert "重点工程类 3 项" in html


def test_an_edited_override_is_used_once_the_check_interval_has_passed(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A running poller picks up an edited template without a restart, but does not stat
    # every template file on every reply to notice it.
    template = tmp_path / "receipt.txt.j2"
    template.write_text("第一版\n", encoding="utf-8")
    clock = [1000.0]
    monkeypatch.setattr(render_module.time, "monotonic", lambda: clock[0])
    assert rendered(make_submission(), templates_dir=tmp_path)[0] == "第一版\n"
    template.write_text("第二版\n", encoding="utf-8")
    os.utime(template, (template.stat().st_atime, template.stat().st_mtime + 5))
    clock[0] += render_module.RELOAD_CHECK_SECONDS / 2
    assert rendered(make_submission(), templates_dir=tmp_path)[0] == "第一版\n"
    clock[0] += render_module.RELOAD_CHECK_SECONDS
    assert rendered(make_submission(), templates_dir=tmp_path)[0] == "第二版\n"


def test_a_misspelt_variable_in_an_override_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "receipt.txt.j2").write_text("{{ campain.name }}\n", encoding="utf-8")
    with pytest.raises(UndefinedError):
        rendered(make_submission(), templates_dir=tmp_path)


def test_every_reply_kind_has_a_text_and_an_html_template() -> None:
    kinds = [k for k in ReplyKind if k is not ReplyKind.NONE]
    folder = Path(__file__).parents[1] / "notifications" / "templates"
    assert all((folder / f"{k.value}.{ext}.j2").is_file() for k in kinds for ext in ("txt", "html"))


def test_every_template_file_says_whether_it_is_text_or_html() -> None:
    # Autoescape follows the file name, partials included: a bare .j2 would be unescaped.
    folder = Path(__file__).parents[1] / "notifications" / "templates"
    names = [p.name for p in folder.iterdir() if p.suffix == ".j2"]
    assert names and all(n.endswith((".txt.j2", ".html.j2")) for n in names)


def test_quoted_values_file_names_and_cells_are_cut_to_forty_characters() -> None:
    long_name = "附" * 100 + ".xlsx"
    value = "值" * 100
    submission = make_submission(
        status=SubmissionStatus.INVALID,
        problems=[Problem(ProblemCode.NON_NUMERIC, f"《{long_name}》表一!C5：预计参赛企业数“{value}”不是数字", long_name, "表一!C5")],
    )
    for part in rendered(submission):
        assert f"《{'附' * 40}…》表一!C5：预计参赛企业数“{'值' * 40}…”不是数字" in part
        assert "附" * 41 not in part and "值" * 41 not in part
        assert part.count("附" * 40) == 1  # the cut message still names its (cut) file: not repeated


def test_the_short_reply_says_only_the_fixed_text_with_campaign_and_contact() -> None:
    submission = make_submission()
    text, html = render("short", short_context(submission, SETTINGS))
    for part in (text, html):
        assert "系统不回复具体内容" in part and "2024年度全省劳动和技能竞赛项目申报" in part
        assert "省总工会经济技术部 张老师" in part and "2024年2月23日 10:15:30" in part
        # Nothing from the submission: unit, name, subject, files, forms.
        assert not any(s in part for s in ("宁波", "李明", "汇总表", "重点工程类"))
