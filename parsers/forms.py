"""The two forms of the notice: their columns, official header labels and field types.

One definition serves the readers (header recognition), the validators and the writers
(the consolidated workbook and the demo's sample files). A campaign's titles come from
the config; the columns are the notice's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ValueType(StrEnum):
    TEXT = "text"
    INT = "int"  # counts of enterprises or people
    DECIMAL = "decimal"  # 亿元


@dataclass(frozen=True)
class Column:
    field: str  # the export contract's name
    label: str  # the notice's header text
    type: ValueType
    required: bool = False
    # Other spellings seen in the wild; matching normalises both sides first.
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class FormSpec:
    number: int
    short_title: str  # "重点工程类"
    columns: tuple[Column, ...]

    def column(self, field: str) -> Column:
        return next(c for c in self.columns if c.field == field)

    @property
    def numeric_fields(self) -> tuple[str, ...]:
        return tuple(c.field for c in self.columns if c.type is not ValueType.TEXT)


FORM1 = FormSpec(
    number=1,
    short_title="重点工程类",
    columns=(
        Column("competition", "竞赛名称", ValueType.TEXT, required=True, aliases=("劳动竞赛名称",)),
        Column("project", "参赛工程项目名称", ValueType.TEXT, required=True,
               aliases=("参赛工程名称", "工程项目名称", "参赛项目名称")),
        Column("enterprises", "预计参赛企业数", ValueType.INT, required=True, aliases=("参赛企业数",)),
        Column("private_enterprises", "预计参赛非公企业数", ValueType.INT, required=True, aliases=("参赛非公企业数",)),
        Column(
            "workers",
            "预计参赛职工数(含第三方员工、临时工等)",
            ValueType.INT,
            required=True,
            aliases=("预计参赛职工数", "参赛职工数"),
        ),
        Column("private_workers", "预计参赛非公企业职工数", ValueType.INT, required=True, aliases=("参赛非公企业职工数",)),
        Column("investment", "年度投资总额(亿元)", ValueType.DECIMAL, aliases=("年度投资总额", "投资总额(亿元)", "年度投资额(亿元)")),
    ),
)

FORM2 = FormSpec(
    number=2,
    short_title="技术技能类、创新创意类、工作推进类",
    columns=(
        Column("seq", "序号", ValueType.TEXT),
        Column("competition", "竞赛名称", ValueType.TEXT, required=True, aliases=("劳动竞赛名称",)),
        Column("organizer", "主办单位", ValueType.TEXT),
        Column("undertaker", "承办单位", ValueType.TEXT),
        Column("event", "竞赛项目(工种)", ValueType.TEXT, aliases=("竞赛项目", "竞赛工种", "竞赛项目(职业工种)")),
        Column("prelim", "预计初赛人数", ValueType.INT, required=True, aliases=("初赛人数",)),
        Column("final", "预计决赛人数", ValueType.INT, required=True, aliases=("决赛人数",)),
        Column("final_time_place", "决赛时间地点", ValueType.TEXT, aliases=("决赛时间、地点", "决赛时间及地点")),
    ),
)

FORMS = (FORM1, FORM2)
# Pairs that must hold row by row: (smaller, larger, problem code).
FORM1_BOUNDS = (("private_enterprises", "enterprises"), ("private_workers", "workers"))
FORM2_BOUNDS = (("final", "prelim"),)
TOTAL_LABEL = "合计"
UNIT_LABEL = "汇总单位"
DATE_LABEL = "填写日期"
