from __future__ import annotations

import pytest

from config.settings import UnitKind, UnitSettings
from intake.registry import UnitRegistry
from parsers.model import ProblemCode, Severity
from tests.support.submissions import make_settings


@pytest.fixture(scope="module")
def registry() -> UnitRegistry:
    return UnitRegistry.from_settings(make_settings().units)


def match(registry: UnitRegistry, *, sender=None, sheets=(), subject=None, body=None):
    return registry.match(sender=sender, sheet_units=list(sheets), subject=subject, body=body)


def test_it_matches_a_registered_sender_address_ignoring_case(registry: UnitRegistry) -> None:
    found = match(registry, sender="JNZGH@163.com")
    assert (found.unit.name, found.source, found.problems) == ("济南市总工会", "sender", [])


def test_it_matches_any_address_on_a_registered_domain(registry: UnitRegistry) -> None:
    assert match(registry, sender="zhangsan@jnzgh.gov.cn").unit.name == "济南市总工会"
    assert match(registry, sender="lisi@mail.jnzgh.gov.cn").unit.name == "济南市总工会"
    assert match(registry, sender="lisi@notjnzgh.gov.cn").unit is None


@pytest.mark.parametrize(
    "written",
    ["济南市总工会", "济南市总", "济南总工会", "济南市总工会（盖章）", "济 南 市 总 工 会", "汇总单位：济南市总工会(章)"],
)
def test_it_recognises_the_sheet_unit_in_its_short_and_decorated_forms(registry: UnitRegistry, written: str) -> None:
    found = match(registry, sender="unknown@qq.com", sheets=[written])
    assert (found.unit.name, found.source) == ("济南市总工会", "sheet")


def test_it_folds_full_width_characters_and_the_party_prefix(registry: UnitRegistry) -> None:
    assert registry.find_in_text("中国共产党山东省委机关工会").name == "中共山东省委机关工会"
    assert registry.find_in_text("山东省委机关工会").name == "中共山东省委机关工会"
    assert registry.find_in_text("山东能源集团工会\u3000（盖章）").name == "山东能源集团工会"


def test_it_recognises_a_configured_alias(registry: UnitRegistry) -> None:
    found = match(registry, sheets=["山能集团工会"])
    assert found.unit.name == "山东能源集团工会"


def test_it_falls_back_to_the_subject_and_then_the_body(registry: UnitRegistry) -> None:
    by_subject = match(registry, subject="青岛市总工会报送劳动竞赛项目", body="济南市总工会")
    assert (by_subject.unit.name, by_subject.source) == ("青岛市总工会", "subject")
    by_body = match(registry, subject="报送材料", body="附件为汇总表。\n\n山东省教育工会 张三\n电话 0531-1234567")
    assert (by_body.unit.name, by_body.source) == ("山东省教育工会", "body")


def test_it_prefers_the_longest_most_specific_name() -> None:
    registry = UnitRegistry(
        [
            UnitSettings(name="济南市总工会", kind=UnitKind.CITY),
            UnitSettings(name="济南市总工会机关工会", kind=UnitKind.ORGAN),
        ]
    )
    assert registry.find_in_text("济南市总工会机关工会（盖章）").name == "济南市总工会机关工会"
    assert registry.find_in_text("济南市总工会（盖章）").name == "济南市总工会"


def test_it_refuses_to_guess_between_two_units_named_equally(registry: UnitRegistry) -> None:
    found = match(registry, subject="济南市总工会、青岛市总工会联合报送")
    assert (found.unit, found.source) == (None, None)


def test_it_does_not_guess_when_two_sheets_name_different_units(registry: UnitRegistry) -> None:
    found = match(registry, sheets=["济南市总工会", "青岛市总工会"], subject="青岛市总工会报送")
    assert found.unit is None


def test_it_refuses_a_short_form_that_two_units_share() -> None:
    registry = UnitRegistry(
        [
            UnitSettings(name="济南市总工会", kind=UnitKind.CITY),
            UnitSettings(name="济南县总工会", kind=UnitKind.CITY),
        ]
    )
    assert registry.find_in_text("济南总工会") is None
    assert registry.find_in_text("济南市总").name == "济南市总工会"


def test_it_leaves_an_unknown_sender_with_no_named_unit_unmatched(registry: UnitRegistry) -> None:
    found = match(registry, sender="someone@qq.com", sheets=["某某公司"], subject="报送", body="请查收")
    assert (found.unit, found.source, found.problems) == (None, None, [])


def test_it_warns_when_the_senders_unit_differs_from_the_sheets(registry: UnitRegistry) -> None:
    found = match(registry, sender="jnzgh@163.com", sheets=["青岛市总工会（盖章）"])
    assert found.unit.name == "济南市总工会"
    [problem] = found.problems
    assert problem.code is ProblemCode.UNIT_MISMATCH
    assert problem.severity is Severity.WARNING
    assert "济南市总工会" in problem.message and "青岛市总工会" in problem.message


def test_it_does_not_warn_when_the_sheet_names_the_senders_unit_in_short(registry: UnitRegistry) -> None:
    assert match(registry, sender="jnzgh@163.com", sheets=["济南市总", "未登记的单位"]).problems == []


def test_it_finds_a_unit_by_name_alias_or_short_form_for_staff(registry: UnitRegistry) -> None:
    assert registry.by_name("济南市总").name == "济南市总工会"
    assert registry.by_name("省教育工会").name == "山东省教育工会"
    assert registry.by_name("不存在的工会") is None
