"""The stamped PDF against the editable file of the same submission: the same 汇总单位
and the same 合计 figures, or a `pdf_mismatch` warning naming both files.

Only what the PDF's text layer or OCR actually read is compared; a figure the PDF does
not show is never a mismatch.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

from parsers.forms import FormSet
from parsers.labels import normalize
from parsers.model import FileReport, FormTable, Problem, ProblemCode, split_total_key

# `汇总单位（公章）：` remarks and brackets people add around a name.
_REMARKS = re.compile(r"\((?:公章|盖章|章)\)|[()]")


def unit_key(unit: str | None) -> str:
    """A unit's name for comparison: no spaces, brackets or （公章）."""
    return _REMARKS.sub("", normalize(unit))


def _editable_total(table: FormTable, field: str) -> Decimal | None:
    """The editable file's 合计 figure; without a 合计 row, the sum of its rows."""
    if table.totals is not None:
        return table.totals.get(field)
    values = [row.values.get(field) for row in table.rows]
    present = [Decimal(v) for v in values if v is not None]
    return sum(present, Decimal(0)) if present else None


def _same(shown: Decimal, exact: Decimal) -> bool:
    """Equal as the PDF shows it: Excel prints 12.345 as 12.35 when formatted so."""
    places = max(0, -int(shown.as_tuple().exponent))
    return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP) == shown


def cross_check(reports: list[FileReport], forms: FormSet) -> list[Problem]:
    """pdf_mismatch warnings between every PDF that was read and every editable file;
    a PDF's 合计 figure is compared with the sheet of the same form."""
    problems: list[Problem] = []
    pdfs = [r for r in reports if r.pdf is not None and (r.pdf.unit or r.pdf.totals)]
    editables = [r for r in reports if r.forms]
    for pdf_file in pdfs:
        pdf = pdf_file.pdf
        assert pdf is not None
        for other in editables:
            problems += _compare_unit(pdf_file.name, pdf.unit, other)
            for key, shown in (pdf.totals or {}).items():
                problems += _compare_total(pdf_file.name, key, shown, other, forms)
    return problems


def _compare_unit(pdf_name: str, unit: str | None, other: FileReport) -> list[Problem]:
    names = {t.unit for t in other.forms if t.unit}
    if not unit or not names or unit_key(unit) in {unit_key(n) for n in names}:
        return []
    written = "、".join(sorted(names))
    return [Problem(ProblemCode.PDF_MISMATCH,
                    f"《{pdf_name}》的汇总单位“{unit}”与《{other.name}》的“{written}”不一致，请核对。",
                    file=pdf_name)]


def _compare_total(pdf_name: str, key: str, shown: Decimal | None, other: FileReport, forms: FormSet
                   ) -> list[Problem]:
    form, field = split_total_key(key)
    spec = forms.get(form)
    if shown is None or spec is None or field not in spec.total_fields:
        return []
    problems = []
    for table in other.forms:
        if table.form != form:
            continue
        exact = _editable_total(table, field)
        if exact is not None and not _same(shown, exact):
            label = spec.column(field).label
            problems.append(Problem(
                ProblemCode.PDF_MISMATCH,
                f"《{pdf_name}》合计“{label}”为 {shown}，《{other.name}》（{table.location}）为 {exact}，请核对两份文件是否一致。",
                file=pdf_name))
    return problems


def seal_verdict(reports: list[FileReport]) -> bool | None:
    """The submission's seal: True if any PDF shows one, False if colour PDFs exist and
    none shows one, None if nothing could be verified."""
    seals = [r.pdf.seal for r in reports if r.pdf is not None]
    if any(seal is True for seal in seals):
        return True
    return False if any(seal is False for seal in seals) else None
