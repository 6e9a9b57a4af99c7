"""Numbers as units write them: `1,200`, `１２００人`, `1.5亿元`, `15000万元`, 1200.0 from Excel.

Only exact readings are accepted. `约300`, `若干`, `300-500` and `待定` are not numbers and
raise NotANumber; nothing is ever guessed.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any

from parsers.forms import ValueType

# Units a count may carry, and the multipliers a money amount in 亿元 may carry.
_COUNT_UNITS = {"": 1, "人": 1, "家": 1, "个": 1, "名": 1, "户": 1, "人次": 1, "万": 10_000, "万人": 10_000}
_YI_UNITS = {"": Decimal(1), "亿": Decimal(1), "亿元": Decimal(1), "万": Decimal("0.0001"),
             "万元": Decimal("0.0001"), "元": Decimal("0.00000001")}
_NUMBER = re.compile(r"^([+-]?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(\D*)$")
_MINUS = str.maketrans({"−": "-", "－": "-", "﹣": "-", "，": ","})
# Excel stores 0.1 + 0.2 as 0.30000000000000004; nine places is far below any count or 亿元.
_FLOAT_PLACES = 9


class NotANumber(ValueError):
    """The text is not a number of the column's kind; `reason` says why, in Chinese."""

    def __init__(self, value: object, reason: str = "不是数字") -> None:
        super().__init__(f"{value!r}: {reason}")
        self.value = value
        self.reason = reason


def is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def to_decimal(value: object, kind: ValueType = ValueType.DECIMAL, bare_unit: str = "") -> Decimal | None:
    """The exact value of a cell as Decimal; None for a blank cell. `bare_unit` is the unit
    a number without one is in (the column header's, e.g. 万元 for `投资额（万元）`)."""
    if is_blank(value):
        return None
    units = _YI_UNITS if kind is ValueType.DECIMAL else _COUNT_UNITS
    if isinstance(value, bool) or isinstance(value, (dt.date, dt.time, dt.timedelta)):
        raise NotANumber(value)
    if isinstance(value, int):
        return Decimal(value) * units[bare_unit]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotANumber(value)
        return Decimal(repr(round(value, _FLOAT_PLACES))) * units[bare_unit]
    if isinstance(value, Decimal):
        return value * units[bare_unit]
    number, unit = _from_text(str(value), units)
    return number * units[unit or bare_unit]


def _from_text(text: str, units: dict[str, Any]) -> tuple[Decimal, str]:
    # NFKC turns ² or ① into a digit; a cell written that way is not a plain number.
    if any(unicodedata.category(ch) in ("No", "Nl") for ch in text):
        raise NotANumber(text)
    folded = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text).translate(_MINUS))
    match = _NUMBER.match(folded)
    if not match or match.group(4) not in units:
        raise NotANumber(text)
    sign, digits, fraction, unit = match.groups()
    try:
        return Decimal(sign + digits.replace(",", "") + (fraction or "")), unit
    except InvalidOperation:
        raise NotANumber(text) from None


def to_count(value: object) -> int | None:
    """A count of enterprises or people; a fraction is not a count."""
    number = to_decimal(value, ValueType.INT)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise NotANumber(value, "不是整数")
    return int(number)


def to_money(value: object, bare_unit: str = "") -> Decimal | None:
    """An amount in 亿元; `15000万元` is 1.5, and so is 15000 under a 万元 header."""
    number = to_decimal(value, ValueType.DECIMAL, bare_unit)
    return None if number is None else number.normalize() + 0


def money_unit(header: str) -> str:
    """The unit a money column's header states for bare numbers: 亿元 (the notice's), 万元 or 元."""
    folded = unicodedata.normalize("NFKC", header)
    return next((unit for unit in ("亿元", "万元", "元") if unit in folded), "")


def read_value(value: object, kind: ValueType, bare_unit: str = "") -> int | Decimal | None:
    return to_count(value) if kind is ValueType.INT else to_money(value, bare_unit)


# --- dates ------------------------------------------------------------------------------------

# 2024-02-20, 2024/2/20, 2024.2.20, 2024年2月20日; without the day (2024年2月, 1985.06) a
# year-month, read as the first of the month. A time after the date (`2024-02-20 00:00`,
# what a date cell turns into as text) is allowed and dropped.
_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})(?:[-/.月](?:(\d{1,2})[日号]?)?)?(?:\d{1,2}:\d{2}(?::\d{2})?)?$")
_YEARS = range(1900, 2101)


class NotADate(ValueError):
    """The cell is not a date as people write one."""

    def __init__(self, value: object) -> None:
        super().__init__(f"{value!r}: 不是日期")
        self.value = value


def to_date(value: object) -> dt.date | None:
    """A date cell: an Excel date, or text in one of the spellings above; None when blank.

    A number such as 1985.06 is how Excel keeps a typed year-month (and 1985.1 is how it
    keeps 1985.10, so the fraction's first two places are the month)."""
    if is_blank(value):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, bool) or isinstance(value, int):
        raise NotADate(value)
    if isinstance(value, (float, Decimal)):
        return _year_month(value)
    folded = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(value)))
    match = _DATE.match(folded)
    if not match:
        raise NotADate(value)
    year, month, day = match.groups()
    return _date(value, int(year), int(month), int(day or 1))


def _year_month(value: float | Decimal) -> dt.date:
    number = Decimal(repr(value)) if isinstance(value, float) else value
    if not number.is_finite():
        raise NotADate(value)
    year, month = int(number), (number - int(number)).scaleb(2)
    if month != month.to_integral_value():
        raise NotADate(value)
    return _date(value, year, int(month), 1)


def _date(value: object, year: int, month: int, day: int) -> dt.date:
    if year not in _YEARS:
        raise NotADate(value)
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise NotADate(value) from None
