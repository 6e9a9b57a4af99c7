"""Forms as data: a campaign's tables, their columns, types, bounds, row rules and totals.

A notice's forms are written in its campaign file (config/campaigns/*.toml) and read
here into `FormSpec`s. One definition serves the readers (header recognition), the
validators, the messages and the writers (the consolidated workbook, the demo's sample
files); no module names a column of any notice.

Values travel and are stored in one plain form (`plain`): an int for `int`, a canonical
decimal string for `decimal`, an ISO date string for `date`, text for `text`. `typed`
turns them back into numbers and dates for sums and comparisons.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
FORM_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"


class ValueType(StrEnum):
    TEXT = "text"
    INT = "int"  # counts: enterprises, people
    DECIMAL = "decimal"  # amounts (亿元), scores
    DATE = "date"

    @property
    def numeric(self) -> bool:
        return self in (ValueType.INT, ValueType.DECIMAL)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Spec):
    field: Annotated[str, Field(pattern=IDENTIFIER)]  # the export contract's name
    label: Annotated[str, Field(min_length=1)]  # the notice's header text
    type: ValueType = ValueType.TEXT
    required: bool = False
    # Other spellings seen in the wild; matching normalises both sides first.
    aliases: tuple[str, ...] = ()
    min: Decimal | None = None
    max: Decimal | None = None
    # A column written as a sub-header under another's group header, e.g. 其中：非公企业
    # under 预计参赛企业数: `part_of` names the group's field, `part_label` the words
    # ("非公") that mark this part in the sub-header.
    part_of: str | None = None
    part_label: str | None = None
    # Values the demo's sample files fill in (cycled); else made up from the type.
    samples: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Column:
        if (self.min is not None or self.max is not None) and not self.type.numeric:
            raise ValueError(f"“{self.label}”的 min/max 只能用于 int 或 decimal 栏")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"“{self.label}”的 min 大于 max")
        if (self.part_of is None) != (self.part_label is None):
            raise ValueError(f"“{self.label}”的 part_of 与 part_label 须同时填写")
        return self


class Op(StrEnum):
    LE = "<="
    LT = "<"
    GE = ">="
    GT = ">"
    EQ = "=="

    def holds(self, left: Any, right: Any) -> bool:
        return {"<=": left <= right, "<": left < right, ">=": left >= right, ">": left > right,
                "==": left == right}[self.value]

    @property
    def broken(self) -> str:
        """How a violation reads in a message: `A（5）大于B（3）`."""
        return {"<=": "大于", "<": "不小于", ">=": "小于", ">": "不大于", "==": "不等于"}[self.value]


_RULE = re.compile(r"^\s*([A-Za-z_]\w*)\s*(<=|>=|==|<|>)\s*([A-Za-z_]\w*)\s*$")


class Rule(_Spec):
    """A rule between two columns of one row, e.g. `private_enterprises <= enterprises`."""

    check: str
    # The problem code a violation is filed under (parsers.model.ProblemCode's value).
    code: str = "rule_violated"

    @field_validator("check")
    @classmethod
    def _parses(cls, value: str) -> str:
        if not _RULE.match(value):
            raise ValueError(f"规则「{value}」格式不对，应写作 栏名 <= 栏名（可用 <=、<、>=、>、==）")
        return value

    @property
    def parts(self) -> tuple[str, Op, str]:
        left, op, right = _RULE.match(self.check).groups()  # type: ignore[union-attr]
        return left, Op(op), right


class FormSpec(_Spec):
    id: Annotated[str, Field(pattern=FORM_ID)]  # "form1"; unique within its campaign
    title: str  # "竞赛项目汇总表（重点工程类）": the sheet's title line
    short_title: str  # "重点工程类": messages, sheet names
    columns: tuple[Column, ...] = Field(min_length=1)
    rules: tuple[Rule, ...] = ()
    # The fields the 合计 row sums; None: every numeric column; (): the form has no 合计 row.
    totals: tuple[str, ...] | None = None
    total_label: str = "合计"
    unit_label: str = "汇总单位"  # the line naming the unit that filled the form in
    date_label: str = "填写日期"
    campaign: str = ""  # set by the campaign that owns the form

    @model_validator(mode="after")
    def _consistent(self) -> FormSpec:
        fields = [c.field for c in self.columns]
        if len(set(fields)) != len(fields):
            raise ValueError(f"表“{self.short_title}”有重复的栏名（field）")
        labels = [_fold(n) for c in self.columns for n in (c.label, *c.aliases)]
        doubled = sorted({n for n in labels if labels.count(n) > 1})
        if doubled:
            raise ValueError(f"表“{self.short_title}”中表头文字“{doubled[0]}”对应了不止一栏")
        by_field = {c.field: c for c in self.columns}
        for rule in self.rules:
            left, _, right = rule.parts
            for name in (left, right):
                if name not in by_field:
                    raise ValueError(f"表“{self.short_title}”的规则「{rule.check}」用到了不存在的栏 {name}")
            if by_field[left].type.numeric != by_field[right].type.numeric or by_field[left].type is ValueType.TEXT:
                raise ValueError(f"表“{self.short_title}”的规则「{rule.check}」只能比较数字或日期栏")
        for name in self.totals or ():
            if name not in by_field:
                raise ValueError(f"表“{self.short_title}”的合计栏 {name} 不存在")
            if not by_field[name].type.numeric:
                raise ValueError(f"表“{self.short_title}”的合计栏 {name} 不是数字栏（int 或 decimal）")
        for column in self.columns:
            if column.part_of is not None and column.part_of not in by_field:
                raise ValueError(f"“{column.label}”的 part_of = {column.part_of} 不是本表的栏")
        return self

    @property
    def key(self) -> str:
        """Unique across campaigns: `campaign/form`."""
        return f"{self.campaign}/{self.id}" if self.campaign else self.id

    def column(self, field: str) -> Column:
        return next(c for c in self.columns if c.field == field)

    @property
    def numeric_fields(self) -> tuple[str, ...]:
        return tuple(c.field for c in self.columns if c.type.numeric)

    @property
    def total_fields(self) -> tuple[str, ...]:
        return self.numeric_fields if self.totals is None else self.totals

    def typed(self, field: str, value: Any) -> int | Decimal | dt.date | str | None:
        """A stored (plain) value as a number or date by its column's type."""
        return typed(self.column(field).type, value)


def _fold(text: str) -> str:
    from parsers.labels import normalize  # labels imports this module for its types

    return normalize(text)


def plain(kind: ValueType, value: int | Decimal | dt.date | str | None) -> int | str | None:
    """The one stored and transported form of a value (JSON-native, exact)."""
    if value is None:
        return None
    if kind is ValueType.INT:
        return int(value)  # type: ignore[arg-type]
    if kind is ValueType.DECIMAL:
        number = Decimal(value) if not isinstance(value, Decimal) else value  # type: ignore[arg-type]
        text = format(number.normalize(), "f")
        return "0" if text in ("-0", "") else text
    if kind is ValueType.DATE and isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def typed(kind: ValueType, value: Any) -> int | Decimal | dt.date | str | None:
    if value is None:
        return None
    try:
        if kind is ValueType.INT:
            return int(value)
        if kind is ValueType.DECIMAL:
            return Decimal(str(value))
        if kind is ValueType.DATE:
            return dt.date.fromisoformat(str(value))
    except (ValueError, InvalidOperation):
        return str(value)  # an as-written value stored in place of a number
    return str(value)


class FormSet:
    """The forms a parser looks for: every form of every campaign in play.

    Built once per configuration; cheap to hash so lookups on it can be cached.
    """

    def __init__(self, forms: tuple[FormSpec, ...]) -> None:
        keys = [f.key for f in forms]
        if len(set(keys)) != len(keys):
            raise ValueError("两个表使用了同一个 id")
        self.forms = forms

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.forms)

    def __len__(self) -> int:
        return len(self.forms)

    def get(self, key: str) -> FormSpec | None:
        return self.by_key.get(key)

    @cached_property
    def by_key(self) -> dict[str, FormSpec]:
        return {f.key: f for f in self.forms}

    @cached_property
    def total_labels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(l for f in self.forms for l in (f.total_label, "合计", "总计")))

    @cached_property
    def field_labels(self) -> dict[str, str]:
        """Label of a line above or below a table → the FormTable attribute it fills."""
        found = {"填报日期": "date", "填表日期": "date", "报送日期": "date"}
        for form in self.forms:
            found.setdefault(form.unit_label, "unit")
            found.setdefault(form.date_label, "date")
        return found

    def to_json(self) -> list[dict[str, Any]]:
        return [f.model_dump(mode="json") for f in self.forms]

    @classmethod
    def from_json(cls, data: list[dict[str, Any]]) -> FormSet:
        return cls(tuple(FormSpec.model_validate(f) for f in data))
