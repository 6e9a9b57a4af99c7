"""Header text as people type it, reduced to one spelling so labels can be compared.

`预计初\n赛人数（人）` and `预计初赛人数(人)` are the same header; so are `合 计` and `合计`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property, lru_cache

from parsers.forms import Column, FormSet, FormSpec

# Brackets and punctuation that NFKC leaves apart but people use interchangeably.
_PUNCT = str.maketrans({"【": "(", "】": ")", "[": "(", "]": ")", "〔": "(", "〕": ")", "﹙": "(", "﹚": ")",
                        "〈": "(", "〉": ")", "《": "(", "》": ")", "﹕": ":", "，": ",", "；": ";", "、": "、",
                        "—": "-", "－": "-", "~": "-", "～": "-"})
_SPACE = re.compile(r"\s+")
_PARENS = re.compile(r"\([^()]*\)")
# Rows under a table that are remarks, not data: `注：…`, `填表说明`, `联系人：…`. The
# punctuation after 注 keeps a competition such as `注塑工技能竞赛` a data row.
_NOTE = re.compile(r"^(?:(?:注|说明|备注|附注)(?:[:.、(0-9]|$)|填表说明|填报说明"
                   r"|(?:联系人|联系电话|电话|填表人|填报人|审核人|负责人|单位负责人|制表人?|经办人)(?::|$))")


def normalize(text: object) -> str:
    """NFKC, one kind of bracket and punctuation, no whitespace (line breaks included)."""
    if text is None:
        return ""
    folded = unicodedata.normalize("NFKC", str(text)).translate(_PUNCT)
    return _SPACE.sub("", folded)


def core(label: str) -> str:
    """A label without its parenthesised remarks: `预计参赛职工数(含…)(人)` → `预计参赛职工数`."""
    previous = None
    text = normalize(label)
    while previous != text:
        previous, text = text, _PARENS.sub("", text)
    return text


def short_label(column: Column) -> str:
    """The label for a message, without the `(含…)` remark: `预计参赛职工数`."""
    return re.sub(r"\(含[^()]*\)", "", normalize(column.label))


@dataclass(frozen=True)
class Match:
    form: str  # the form's key (`campaign/form`)
    column: Column
    exact: bool

    @cached_property  # ranked again and again: _match keeps its Match objects
    def rank(self) -> tuple[int, int]:
        # An exact label beats containment; a longer contained label is more specific.
        return (1 if self.exact else 0, len(core(self.column.label)))


# FormSets hash by identity: one built per configuration, cached while in use.
@lru_cache(maxsize=8)
def _spellings(forms: FormSet) -> tuple[tuple[FormSpec, Column, frozenset[str], tuple[str, ...]], ...]:
    table = []
    for spec in forms:
        for column in spec.columns:
            names = (column.label, *column.aliases)
            exact = frozenset(normalize(n) for n in names) | frozenset(core(n) for n in names)
            # Containment uses cores of at least three characters so `初赛` alone never wins.
            contained = tuple(sorted({core(n) for n in names if len(core(n)) >= 3}, key=len, reverse=True))
            table.append((spec, column, exact, contained))
    return tuple(table)


def match_header(text: str, forms: FormSet) -> tuple[Match, ...]:
    """Every (form, column) this header cell could be, best first; empty when none."""
    key = normalize(text)
    return _match(forms, key) if key else ()


@lru_cache(maxsize=8192)
def _match(forms: FormSet, key: str) -> tuple[Match, ...]:
    bare = core(key)
    found = []
    for spec, column, exact, contained in _spellings(forms):
        if key in exact or bare in exact:
            found.append(Match(spec.key, column, True))
        elif any(part in key for part in contained):
            found.append(Match(spec.key, column, False))
    best = max((m.rank for m in found), default=None)
    return tuple(sorted((m for m in found if m.rank == best), key=lambda m: m.form))


def is_total(text: object, forms: FormSet) -> bool:
    key = normalize(text).rstrip(":")
    return any(key == label or key.startswith(label + "(") for label in forms.total_labels)


def is_subtotal(text: object) -> bool:
    """A 小计 row inside a table: its figures repeat rows already counted."""
    return normalize(text).rstrip(":").startswith("小计")


_UNIT_NOTE = re.compile(r"^\(?(?:单位:)?(?:家|个|人|名|人次|亿元|万元|元|个数|人数)\)?$")


def is_unit_note(text: object) -> bool:
    """`（家）`, `(人)`, `单位：亿元`: a row of these under a header belongs to the header."""
    return bool(_UNIT_NOTE.match(normalize(text)))


def is_title(text: object, forms: FormSet) -> bool:
    """A form's title row, e.g. `2024年度竞赛项目汇总表（重点工程类）`."""
    key = normalize(text)
    return "汇总表" in key or any(core(f.title) in key for f in forms if len(core(f.title)) >= 4)


def is_note(text: object) -> bool:
    return bool(_NOTE.match(normalize(text)))


def header_fields(text: object, forms: FormSet) -> dict[str, str]:
    """`汇总单位（公章）：济南市总工会  填写日期：2024年2月20日` → {"unit": …, "date": …}.

    A label with nothing after it maps to "" so the caller can look in the next cell.
    """
    spaced = _SPACE.sub(" ", unicodedata.normalize("NFKC", str(text or "")).translate(_PUNCT))
    found: dict[str, str] = {}
    matches = list(_field_re(forms).finditer(spaced))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(spaced)
        found.setdefault(forms.field_labels[m.group(1)], spaced[m.end():end].strip(" :;,"))
    return found


@lru_cache(maxsize=8)
def _field_re(forms: FormSet) -> re.Pattern[str]:
    names = "|".join(re.escape(n) for n in sorted(forms.field_labels, key=len, reverse=True))
    return re.compile(rf"({names})(?:\([^()]*\))*[:]?")
