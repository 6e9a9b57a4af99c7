"""Which registered unit sent a mail: by sender address, else by the name it writes.

Names are compared after normalisation (full/half width, spaces, "中国共产党" → "中共"), and
each unit is also known by the short forms people write ("济南市总", "济南总工会").
The longest name found wins; two different units found at the same length is no answer,
never a guess.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from config.settings import UnitSettings
from parsers.model import Problem, ProblemCode

# Below this length a derived short form ("济南市") names too many things to trust.
MIN_SHORT_FORM = 4
_SPACE = re.compile(r"\s+")
# "济南市总工会" → place "济南", level "市"; the short forms drop one part or the other.
_FEDERATION = re.compile(r"^(?P<place>.{2,}?)(?P<level>[省市县区州盟旗])总工会$")


def normalize(text: str) -> str:
    """The form names are compared in: NFKC (full → half width), no spaces, 中共 prefix form."""
    text = unicodedata.normalize("NFKC", text)
    text = _SPACE.sub("", text)
    return text.replace("中国共产党", "中共")


def name_keys(unit: UnitSettings) -> set[str]:
    """Every normalised spelling that names the unit: name, aliases and their short forms."""
    keys: set[str] = set()
    for spelling in (unit.name, *unit.aliases):
        full = normalize(spelling)
        if not full:
            continue
        keys.add(full)
        if full.startswith("中共") and len(full) - 2 >= MIN_SHORT_FORM:
            keys.add(full[2:])
        federation = _FEDERATION.match(full)
        if federation:
            place, level = federation["place"], federation["level"]
            keys.update(k for k in (f"{place}{level}总", f"{place}总工会") if len(k) >= MIN_SHORT_FORM)
    return keys


@dataclass
class UnitMatch:
    unit: UnitSettings | None
    source: str | None  # "sender" | "sheet" | "subject" | "body"
    problems: list[Problem] = field(default_factory=list)


class _Ambiguous(Exception):
    """Two units fit equally well; the caller must not choose."""


class UnitRegistry:
    """The units of the config's [[units]], with lookups by address and by written name."""

    def __init__(self, units: Iterable[UnitSettings]) -> None:
        self.units = list(units)
        self._addresses: dict[str, list[UnitSettings]] = {}
        self._domains: dict[str, list[UnitSettings]] = {}
        self._keys: list[tuple[str, UnitSettings]] = []
        for unit in self.units:
            for email in unit.emails:
                email = email.strip().lower()
                table = self._domains if email.startswith("@") else self._addresses
                table.setdefault(email.lstrip("@"), []).append(unit)
            self._keys.extend((key, unit) for key in name_keys(unit))
        # Longest first, so the most specific spelling is tried before its short forms.
        self._keys.sort(key=lambda pair: len(pair[0]), reverse=True)

    @classmethod
    def from_settings(cls, units: list[UnitSettings]) -> UnitRegistry:
        return cls(units)

    def by_name(self, name: str) -> UnitSettings | None:
        """The unit a staff member or a sheet means by `name` (exact name, alias or short form)."""
        wanted = normalize(name)
        found = {unit.name: unit for key, unit in self._keys if key == wanted}
        return next(iter(found.values())) if len(found) == 1 else None

    def by_sender(self, sender: str | None) -> UnitSettings | None:
        """Exact address first, then a registered domain ("@jnzgh.gov.cn", or a subdomain of it)."""
        if not sender or "@" not in sender:
            return None
        address = sender.strip().lower()
        units = self._addresses.get(address)
        if units is None:
            domain = address.rsplit("@", 1)[1]
            parts = domain.split(".")
            # The most specific registered domain wins: a.b.cn before b.cn.
            units = next(
                (self._domains[d] for d in (".".join(parts[i:]) for i in range(len(parts))) if d in self._domains),
                None,
            )
        if not units or len({u.name for u in units}) != 1:
            return None
        return units[0]

    def find_in_text(self, text: str | None) -> UnitSettings | None:
        """The unit named in free text; None when none is named or two are named equally."""
        try:
            return self._find(text)
        except _Ambiguous:
            return None

    def _find(self, text: str | None) -> UnitSettings | None:
        if not text:
            return None
        haystack = normalize(text)
        best_len = 0
        best: dict[str, UnitSettings] = {}
        for key, unit in self._keys:
            if len(key) < best_len:
                break
            if key in haystack:
                best_len = len(key)
                best[unit.name] = unit
        if len(best) > 1:
            raise _Ambiguous
        return next(iter(best.values()), None)

    def _find_in_sheets(self, sheet_units: list[str]) -> UnitSettings | None:
        found = {u.name: u for u in (self._find(text) for text in sheet_units) if u is not None}
        if len(found) > 1:
            raise _Ambiguous
        return next(iter(found.values()), None)

    def match(self, *, sender: str | None, sheet_units: list[str], subject: str | None, body: str | None) -> UnitMatch:
        """Sender, then the sheets' 汇总单位, subject, body; an ambiguous source ends the search."""
        unit = self.by_sender(sender)
        if unit is not None:
            return UnitMatch(unit, "sender", self._mismatches(unit, sheet_units))
        sources = (
            ("sheet", lambda: self._find_in_sheets(sheet_units)),
            ("subject", lambda: self._find(subject)),
            ("body", lambda: self._find(body)),
        )
        for source, find in sources:
            try:
                unit = find()
            except _Ambiguous:
                return UnitMatch(None, None)
            if unit is not None:
                return UnitMatch(unit, source)
        return UnitMatch(None, None)

    def _mismatches(self, unit: UnitSettings, sheet_units: list[str]) -> list[Problem]:
        problems: list[Problem] = []
        seen: set[str] = set()
        for written in sheet_units:
            other = self.find_in_text(written)
            if other is None or other.name == unit.name or other.name in seen:
                continue
            seen.add(other.name)
            problems.append(
                Problem(
                    ProblemCode.UNIT_MISMATCH,
                    f"发件邮箱登记的单位是「{unit.name}」，但表格汇总单位填写为「{written.strip()}」（{other.name}），"
                    "请确认报送单位。",
                )
            )
        return problems
