"""intake.routing: which campaign a mail belongs to, one test per branch of the rule."""

from __future__ import annotations

import datetime as dt

from config.campaigns import Campaigns, CampaignSpec
from intake.routing import Table, is_document, route
from tests.support.campaigns import CST, LDJS, WUYI

NOW = dt.datetime(2024, 2, 20, 10, 0, tzinfo=CST)


def variant(spec: CampaignSpec, **changes: object) -> CampaignSpec:
    """A campaign built anew (model_copy would keep the cached keywords)."""
    return CampaignSpec.model_validate({**spec.model_dump(), **changes})


# A third campaign that closed before NOW, with its own keyword.
OLD = variant(LDJS, id="ldjs-2023", name="2023年度劳动竞赛项目征集", keywords=["2023年度竞赛"],
              deadline=dt.datetime(2023, 2, 25, 17, 0, tzinfo=CST), closes_at=dt.datetime(2023, 3, 1, tzinfo=CST))
BOTH = Campaigns((LDJS, WUYI))


def routed(campaigns: Campaigns = BOTH, *, tables: list[Table] = (), pdf_forms: tuple[str, ...] = (),  # type: ignore[assignment]
           subject: str = "材料", files: tuple[str, ...] = (), documents: bool | None = None):  # noqa: ANN202
    return route(tables=list(tables), pdf_forms=pdf_forms, subject=subject, file_names=list(files),
                 documents=any(is_document(f) for f in files) if documents is None else documents,
                 campaigns=campaigns, now=NOW)


def test_a_recognised_table_routes_to_its_campaign_whatever_the_subject_says() -> None:
    found = routed(tables=[Table("wuyi-2024/candidates", 3)], subject="劳动竞赛项目报送", files=("表.xlsx",))
    assert (found.campaign, found.routed_by, found.closed) == (WUYI, "form", False)


def test_two_campaigns_forms_go_to_the_one_with_more_tables_and_the_reason_names_both() -> None:
    found = routed(tables=[Table("ldjs-2024/form1", 2), Table("ldjs-2024/form2", 2), Table("wuyi-2024/candidates", 9)])
    assert found.campaign is LDJS and found.routed_by == "form"
    assert LDJS.name in found.reason and WUYI.name in found.reason


def test_with_as_many_tables_the_rows_decide() -> None:
    found = routed(tables=[Table("ldjs-2024/form1", 2), Table("wuyi-2024/candidates", 5)])
    assert found.campaign is WUYI


def test_forms_a_pdf_names_route_when_no_file_holds_a_table() -> None:
    found = routed(pdf_forms=("wuyi-2024/candidates",), files=("扫描件.pdf",))
    assert (found.campaign, found.routed_by) == (WUYI, "form")


def test_the_subject_routes_a_mail_without_forms() -> None:
    found = routed(subject="关于五一劳动奖章推荐人选的报送", files=("扫描件.pdf",))
    assert (found.campaign, found.routed_by) == (WUYI, "keyword")


def test_file_names_route_when_the_subject_names_nothing() -> None:
    found = routed(subject="请查收", files=("附件1-竞赛项目汇总表（重点工程类）.pdf",))
    assert (found.campaign, found.routed_by) == (LDJS, "keyword")
    assert "附件文件名" in found.reason


def test_the_subject_is_read_before_the_file_names() -> None:
    found = routed(subject="劳动竞赛项目", files=("推荐人选.pdf",))
    assert found.campaign is LDJS


def test_the_longest_keyword_wins() -> None:
    # 劳动竞赛 (LDJS, 4) is inside the subject too; 五一劳动奖章 (WUYI, 6) is longer.
    found = routed(subject="五一劳动奖章与劳动竞赛")
    assert found.campaign is WUYI


def test_equally_long_keywords_of_two_campaigns_route_nowhere_and_say_so() -> None:
    tied = Campaigns((variant(LDJS, keywords=["甲乙丙丁"]), variant(WUYI, keywords=["戊己庚辛"])))
    found = routed(tied, subject="甲乙丙丁和戊己庚辛", files=("a.docx",))
    assert (found.campaign, found.routed_by) == (None, "none")
    assert "无法判断" in found.reason


def test_an_open_campaign_is_preferred_to_a_closed_one_with_the_same_forms() -> None:
    found = routed(Campaigns((OLD, LDJS)), tables=[Table("ldjs-2023/form1", 5), Table("ldjs-2024/form1", 1)])
    assert found.campaign is LDJS and not found.closed


def test_a_match_only_to_a_closed_campaign_is_marked_closed() -> None:
    found = routed(Campaigns((OLD, WUYI)), subject="2023年度竞赛项目材料")
    assert (found.campaign.id, found.routed_by, found.closed) == ("ldjs-2023", "keyword", True)
    assert "截止" in found.reason


def test_a_document_with_nothing_recognisable_goes_to_the_only_open_campaign() -> None:
    found = routed(Campaigns((LDJS,)), subject="请查收", files=("新建 Microsoft Excel 工作表.xlsx",))
    assert (found.campaign, found.routed_by) == (LDJS, "only")


def test_only_counts_open_campaigns() -> None:
    found = routed(Campaigns((OLD, WUYI)), subject="请查收", files=("附件.pdf",))
    assert (found.campaign, found.routed_by, found.closed) == (WUYI, "only", False)


def test_a_document_with_nothing_recognisable_is_other_while_several_campaigns_are_open() -> None:
    found = routed(subject="关于召开工作会议的函", files=("会议通知.docx",))
    assert (found.campaign, found.routed_by) == (None, "none")


def test_a_mail_without_documents_and_keywords_is_other_even_with_one_campaign() -> None:
    found = routed(Campaigns((LDJS,)), subject="请问联系人电话", files=("照片.jpg",))
    assert (found.campaign, found.routed_by) == (None, "none")


def test_a_table_of_an_unknown_form_key_is_not_evidence() -> None:
    found = routed(tables=[Table("gone/form1", 4)], subject="你好")
    assert found.campaign is None


def test_documents_are_known_by_their_names() -> None:
    assert [is_document(n) for n in ("a.XLSX", "b.et", "c.pdf", "d.ofd", "e.wps", "f.jpg", "g.zip", "h")] == [
        True, True, True, True, True, False, False, False]
