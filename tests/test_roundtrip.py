"""Any form a campaign file can define is read back as written: random FormSpecs → rows
that satisfy them → the sample workbook → parse_file → the same rows, no problems; and a
row that breaks one generated bound or rule yields exactly that problem."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import LimitsSettings, ParsingSettings
from intake.samples import form_workbook
from parsers.dispatch import parse_file
from parsers.forms import Column, FormSet, FormSpec, Op, Rule, ValueType, plain

# Labels are three characters from one pool and values use none of them: no label contains
# another, and no value reads as a header, a note, a 合计 or a title.
POOL = "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥"
TITLE = "测试汇总表"
ROUNDTRIP = settings(max_examples=30, deadline=None)
Rows = list[dict[str, Any]]


@st.composite
def columns(draw: st.DrawFn) -> tuple[Column, ...]:
    labels = draw(st.lists(st.text(POOL, min_size=3, max_size=3), min_size=2, max_size=8, unique=True))
    kinds = [ValueType.TEXT] + [draw(st.sampled_from(list(ValueType))) for _ in labels[1:]]
    found = []
    for i, (label, kind) in enumerate(zip(labels, kinds)):
        low, high = (draw(st.sampled_from([None, Decimal(-50), Decimal(0), Decimal(5)])),
                     draw(st.sampled_from([None, Decimal(100), Decimal(10000)]))) if kind.numeric else (None, None)
        # The first column (a name) is always filled in: a row is never blank.
        found.append(Column(field=f"c{i}", label=label, type=kind, required=i == 0 or draw(st.booleans()),
                            min=low, max=high))
    return tuple(found)


def value(draw: st.DrawFn, column: Column, n: int) -> Any:
    if not column.required and draw(st.integers(0, 4)) == 0:
        return None
    if column.type is ValueType.TEXT:
        return f"项目{n}" if column.field == "c0" else draw(st.sampled_from(["说明文字", "济南", "A-1", "第二批"]))
    if column.type is ValueType.DATE:
        return draw(st.dates(dt.date(1950, 1, 1), dt.date(2030, 12, 31))).isoformat()
    low = int(column.min) if column.min is not None else -20000
    high = int(column.max) if column.max is not None else 20000
    if column.type is ValueType.INT:
        return draw(st.integers(low, high))
    cents = draw(st.integers(low * 100, high * 100))
    return plain(ValueType.DECIMAL, Decimal(cents).scaleb(-2))


def holding_op(spec_columns: dict[str, Column], rows: Rows, left: str, right: str) -> Op | None:
    """An operator that holds between the two columns on every row (blank cells skip)."""
    pairs = [(typed(spec_columns[left], r[left]), typed(spec_columns[right], r[right])) for r in rows]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    return next((op for op in (Op.LE, Op.GE, Op.LT, Op.GT) if all(op.holds(a, b) for a, b in pairs)), None)


def typed(column: Column, stored: Any) -> Any:
    from parsers.forms import typed as as_typed

    return as_typed(column.type, stored)


@st.composite
def forms_and_rows(draw: st.DrawFn) -> tuple[FormSpec, Rows]:
    cols = draw(columns())
    rows = [{c.field: value(draw, c, n) for c in cols} for n in range(1, draw(st.integers(1, 4)) + 1)]
    by_field = {c.field: c for c in cols}
    comparable = [(a.field, b.field) for a in cols for b in cols if a.field < b.field
                  and a.type is not ValueType.TEXT and (a.type is b.type or a.type.numeric and b.type.numeric)]
    rules = []
    for left, right in draw(st.lists(st.sampled_from(comparable), max_size=2, unique=True)) if comparable else []:
        op = holding_op(by_field, rows, left, right)
        if op is not None:
            rules.append(Rule(check=f"{left} {op.value} {right}"))
    numeric = [c.field for c in cols if c.type.numeric]
    totals = draw(st.sampled_from([None, (), tuple(numeric[:1]), tuple(numeric)]))
    spec = FormSpec(id="t", title=TITLE, short_title="测试", columns=cols, rules=tuple(rules), totals=totals,
                    campaign="roundtrip")
    return spec, rows


def parse(spec: FormSpec, rows: Rows) -> Any:
    data = form_workbook(spec, TITLE, "济南市总工会", rows)
    return parse_file(data, "表.xlsx", limits=LimitsSettings(), parsing=ParsingSettings(seal_detection=False),
                      forms=FormSet((spec,)))


@ROUNDTRIP
@given(forms_and_rows())
def test_any_defined_form_reads_back_the_rows_written(case: tuple[FormSpec, Rows]) -> None:
    spec, rows = case
    report = parse(spec, rows)
    assert report.problems == []
    (table,) = report.forms
    assert table.form == spec.key and [r.values for r in table.rows] == rows


def _isolated(spec: FormSpec) -> list[tuple[str, Any]]:
    """Constraints whose breaking touches nothing else: a bound on a column no rule or 合计
    names, or a rule between unbounded columns no other rule or 合计 names."""
    in_rules = [f for rule in spec.rules for f in (rule.parts[0], rule.parts[2])]
    busy = set(in_rules) | set(spec.total_fields)
    found: list[tuple[str, Any]] = [("bound", c) for c in spec.columns
                                    if (c.min is not None or c.max is not None) and c.field not in busy]
    for rule in spec.rules:
        left, _, right = rule.parts
        if all(spec.column(f).min is None and spec.column(f).max is None and in_rules.count(f) == 1
               and f not in spec.total_fields for f in (left, right)):
            found.append(("rule", rule))
    return found


def _broken(spec: FormSpec, row: dict[str, Any], constraint: tuple[str, Any]) -> str:
    """Break the constraint in the row; the problem code that should follow."""
    kind, what = constraint
    if kind == "bound":
        below = what.min is not None
        row[what.field] = plain(what.type, what.min - 1 if below else what.max + 1)
        return "negative_number" if below and what.min == 0 else "out_of_range"
    left, op, right = what.parts
    column = spec.column(left)
    other = typed(spec.column(right), row[right])
    step: Any = dt.timedelta(days=1) if column.type is ValueType.DATE else 1
    row[left] = plain(column.type, other - step if op in (Op.GE, Op.GT) else other + step)
    return "rule_violated"


@ROUNDTRIP
@given(forms_and_rows(), st.data())
def test_breaking_one_bound_or_rule_yields_exactly_its_problem(case: tuple[FormSpec, Rows], data: st.DataObject
                                                                ) -> None:
    spec, rows = case
    constraints = _isolated(spec)
    if constraints:
        constraint = data.draw(st.sampled_from(constraints))
        _, what = constraint
        if constraint[0] == "rule":  # both cells must be filled for the rule to apply
            left, _, right = what.parts
            rows[0][right] = rows[0][right] if rows[0][right] is not None else value_for(spec.column(right))
            rows[0][left] = rows[0][left] if rows[0][left] is not None else rows[0][right]
        expected = _broken(spec, rows[0], constraint)
    else:  # nothing to break in isolation: a date column reads no text instead
        dates = [c for c in spec.columns if c.type is ValueType.DATE]
        if not dates:
            return
        rows[0][dates[0].field], expected = "不详", "not_a_date"
    report = parse(spec, rows)
    assert [p.code.value for p in report.problems] == [expected]


def value_for(column: Column) -> Any:
    return "2024-02-20" if column.type is ValueType.DATE else plain(column.type, 7)
