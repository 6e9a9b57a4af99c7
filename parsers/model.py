"""What a parser hands back: typed rows, per-file facts and coded problems.

These types are the contract between parsers/ and the rest of the pipeline; they carry
no I/O and no database knowledge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from pydantic import ConfigDict, TypeAdapter


class Severity(StrEnum):
    ERROR = "error"  # the submission is invalid
    WARNING = "warning"  # accepted, shown to staff


class ProblemCode(StrEnum):
    # errors in an editable file
    NON_NUMERIC = "non_numeric"
    NEGATIVE_NUMBER = "negative_number"
    MISSING_REQUIRED = "missing_required"
    PRIVATE_GT_TOTAL = "private_gt_total"
    FINAL_GT_PRELIM = "final_gt_prelim"
    RULE_VIOLATED = "rule_violated"  # a campaign's row rule between two columns
    OUT_OF_RANGE = "out_of_range"  # a number outside its column's min/max
    NOT_A_DATE = "not_a_date"
    TOTAL_MISMATCH = "total_mismatch"
    UNKNOWN_LAYOUT = "unknown_layout"
    UNREADABLE_FILE = "unreadable_file"
    ENCRYPTED_FILE = "encrypted_file"
    UNSAFE_FILE = "unsafe_file"
    TOO_LARGE = "too_large"
    # warnings
    SEAL_NOT_FOUND = "seal_not_found"
    SEAL_UNVERIFIABLE = "seal_unverifiable"  # a greyscale scan cannot show a red seal: staff look
    PDF_MISMATCH = "pdf_mismatch"
    UNIT_MISMATCH = "unit_mismatch"
    UNSUPPORTED_FILE = "unsupported_file"
    SENDER_UNVERIFIED = "sender_unverified"
    SENDER_AMBIGUOUS = "sender_ambiguous"  # From names no address, several, or an unreadable one
    UNIT_UNCONFIRMED = "unit_unconfirmed"  # unit named by the mail, not proven by the sender
    QUARANTINED = "quarantined"
    E_SEAL_UNVERIFIED = "e_seal_unverified"  # an electronic seal (电子签章) found, not verified
    PHOTO_NOT_PDF = "photo_not_pdf"  # a phone photo taken as the stamped copy
    LINK_PENDING = "link_pending"  # a large-attachment link (超大附件) staff must download
    FOUND_IN_SPAM = "found_in_spam"  # a registered unit's mail found in the spam folder
    OTHER_CAMPAIGN_FORM = "other_campaign_form"  # a table of another campaign's form, not stored (intake.routing)
    # completeness of a submission
    MISSING_PDF = "missing_pdf"
    MISSING_EDITABLE = "missing_editable"
    NO_ATTACHMENTS = "no_attachments"


ERROR_CODES = frozenset(
    {
        ProblemCode.NON_NUMERIC,
        ProblemCode.NEGATIVE_NUMBER,
        ProblemCode.MISSING_REQUIRED,
        ProblemCode.PRIVATE_GT_TOTAL,
        ProblemCode.FINAL_GT_PRELIM,
        ProblemCode.RULE_VIOLATED,
        ProblemCode.OUT_OF_RANGE,
        ProblemCode.NOT_A_DATE,
        ProblemCode.TOTAL_MISMATCH,
        ProblemCode.UNKNOWN_LAYOUT,
        ProblemCode.UNREADABLE_FILE,
        ProblemCode.ENCRYPTED_FILE,
        ProblemCode.UNSAFE_FILE,
        ProblemCode.TOO_LARGE,
    }
)
COMPLETENESS_CODES = frozenset(
    {ProblemCode.MISSING_PDF, ProblemCode.MISSING_EDITABLE, ProblemCode.NO_ATTACHMENTS}
)


def severity_of(code: ProblemCode) -> Severity:
    return Severity.ERROR if code in ERROR_CODES else Severity.WARNING


@dataclass(frozen=True)
class Problem:
    code: ProblemCode
    message: str  # Chinese, for the submitter; names the file and cell
    file: str | None = None
    cell: str | None = None  # e.g. "Sheet1!D7"

    @property
    def severity(self) -> Severity:
        return severity_of(self.code)


class FileKind(StrEnum):
    XLSX = "xlsx"  # also .xlsm: macros are never run
    XLS = "xls"
    DOCX = "docx"
    CSV = "csv"
    PDF = "pdf"
    OFD = "ofd"  # GB/T 33190 fixed-layout document: a stamped copy like a PDF
    ZIP = "zip"
    LINK = "link"  # a large-attachment link (超大附件) in the body: not a file yet (intake.links)
    IMAGE = "image"
    OTHER = "other"
    # Tables under other names (a .xls or .et that is not a workbook), found by content.
    HTML = "html"
    MHTML = "mhtml"  # a saved web page
    SPREADSHEETML = "spreadsheetml"  # Excel 2003 XML
    DOC = "doc"  # old Word / WPS writer (or a WPS sheet calamine cannot read): converted
    PHOTO = "photo"  # a JPG/PNG/HEIC photo taken as the stamped copy ([parsing] photos_as_scan)

    @property
    def editable(self) -> bool:
        return self in (FileKind.XLSX, FileKind.XLS, FileKind.DOCX, FileKind.CSV, FileKind.HTML, FileKind.MHTML,
                        FileKind.SPREADSHEETML, FileKind.DOC)


@dataclass
class Row:
    """One row of a form, by its columns' fields (parsers.forms), in plain values: an int
    for `int`, a decimal string for `decimal`, an ISO date for `date`, else text."""

    values: dict[str, int | str | None]
    cell: str | None = None  # where the row starts, e.g. "Sheet1!A5"
    # Number or date cells the unit filled with text ("约300"), as written: staff see what
    # was typed; `values` holds None for them.
    as_written: dict[str, str] = field(default_factory=dict)


@dataclass
class FormTable:
    """One recognised form inside one file (a form split over sheets is merged)."""

    form: str  # the form's key, `campaign/form` (parsers.forms.FormSpec.key)
    location: str  # sheet name(s) or "表格1"
    unit: str | None = None  # 汇总单位 as written
    filled_date: str | None = None  # 填写日期 as written
    rows: list[Row] = field(default_factory=list)
    # The 合计 row as read, by field name; None when the form has no 合计 row.
    totals: dict[str, Decimal | None] | None = None


class SealKind(StrEnum):
    SCAN = "scan"  # a red seal seen on the page image
    ELECTRONIC = "electronic"  # a signature (电子签章) in the file; never verified here


@dataclass
class PdfReport:
    pages: int
    has_text: bool
    # True: a red seal was seen; False: a colour scan with no seal; None: cannot verify
    # (greyscale scan, detection off, or the file could not be rendered).
    seal: bool | None
    unit: str | None = None  # 汇总单位 from the text layer or OCR
    totals: dict[str, Decimal | None] | None = None  # 合计 figures from text or OCR
    forms: list[str] = field(default_factory=list)  # which forms (keys) the PDF shows
    ocr_used: bool = False
    seal_kind: SealKind | None = None  # set when seal is True
    signer: str | None = None  # an electronic seal's signer, from its certificate


@dataclass
class FileReport:
    name: str  # decoded display name, never used as a path
    kind: FileKind
    sha256: str
    size: int
    forms: list[FormTable] = field(default_factory=list)
    pdf: PdfReport | None = None
    problems: list[Problem] = field(default_factory=list)
    parent: str | None = None  # the archive this file was unpacked from
    # A PDF made from a photo, for the archive beside the original (base64 in JSON).
    derived_pdf: bytes | None = None


# Parser processes hand reports back as JSON, never as pickles: the parent rebuilds them
# with a strict validator (unknown keys and wrong types are refused), so a compromised
# parser process can send data but never make the parent build arbitrary objects.
for _plain in (Problem, Row, FormTable, PdfReport, FileReport):
    _plain.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
FileReport.__pydantic_config__ = ConfigDict(extra="forbid", ser_json_bytes="base64",  # type: ignore[attr-defined]
                                            val_json_bytes="base64")
_REPORT = TypeAdapter(FileReport)


def report_to_json(report: FileReport) -> bytes:
    return _REPORT.dump_json(report)


def report_from_json(data: bytes) -> FileReport:
    """Raises pydantic.ValidationError for anything that is not a well-formed report."""
    return _REPORT.validate_json(data)


def total_key(form: str, field: str) -> str:
    """A 合计 figure's key in PdfReport.totals: `campaign/form:field` (two forms in one PDF
    may both have a column of the same field)."""
    return f"{form}:{field}"


def split_total_key(key: str) -> tuple[str, str]:
    form, _, name = key.rpartition(":")
    return form, name
