"""Numbers as units write them: read exactly, or refused; never guessed."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers.numbers import NotANumber, money_unit, to_count, to_money

FULL_WIDTH = str.maketrans("0123456789,", "０１２３４５６７８９，")


@pytest.mark.parametrize("text", ["1,200", "1，200", "1200人", "1200家", "１２００", " 1200 ", "1200.0"])
def test_it_reads_counts_written_in_common_ways(text: str) -> None:
    assert to_count(text) == 1200


def test_it_turns_excel_floats_into_ints() -> None:
    assert to_count(1200.0) == 1200 and isinstance(to_count(1200.0), int)


@pytest.mark.parametrize(("text", "expected"), [("1.5亿", "1.5"), ("1.5亿元", "1.5"), ("15000万元", "1.5"),
                                                ("1.5", "1.5"), (1.5, "1.5"), (0.1 + 0.2, "0.3")])
def test_it_reads_money_in_yi_yuan_exactly(text: object, expected: str) -> None:
    assert to_money(text) == Decimal(expected)


@pytest.mark.parametrize("text", ["约300", "若干", "300-500", "待定", "300余", "1,2", "三百", "--", "1.5亿", "①", "3²"])
def test_it_refuses_counts_that_are_not_numbers(text: str) -> None:
    with pytest.raises(NotANumber):
        to_count(text)


def test_it_refuses_a_fraction_as_a_count() -> None:
    with pytest.raises(NotANumber) as err:
        to_count("12.5")
    assert err.value.reason == "不是整数"


def test_it_reads_a_blank_cell_as_none() -> None:
    assert to_count("  ") is None and to_money(None) is None


def test_it_keeps_the_sign_of_a_negative_number() -> None:
    assert to_count("-5") == -5 and to_count("－5") == -5


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(["", "人", "家", "个", "名"]),
       st.booleans(), st.booleans())
def test_any_count_formatted_for_people_parses_back_to_itself(n: int, unit: str, grouped: bool, wide: bool) -> None:
    text = (f"{n:,}" if grouped else str(n)) + unit
    assert to_count(text.translate(FULL_WIDTH) if wide else text) == n


@given(st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False, allow_infinity=False))
def test_any_amount_in_wan_yuan_is_read_as_yi_yuan(amount: Decimal) -> None:
    assert to_money(f"{amount * 10000}万元") == amount


@given(st.text(alphabet=st.characters(blacklist_categories=("Nd",)), min_size=1))
def test_text_without_decimal_digits_never_parses_to_a_number(text: str) -> None:
    try:
        assert to_count(text) is None  # only blank text has no value
    except NotANumber:
        pass


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["约", "大约", "近", "超过", "不少于"]))
def test_approximate_counts_are_never_guessed(n: int, prefix: str) -> None:
    with pytest.raises(NotANumber):
        to_count(f"{prefix}{n}")


def test_a_bare_number_under_a_wan_yuan_header_is_converted_to_yi_yuan() -> None:
    assert to_money(15000, money_unit("年度投资总额（万元）")) == Decimal("1.5")
    assert to_money("2亿元", money_unit("年度投资总额（万元）")) == Decimal(2)
    assert to_money(1.5, money_unit("年度投资总额（亿元）")) == Decimal("1.5")
