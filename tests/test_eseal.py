"""Electronic seals (电子签章): signed PDFs and OFD files count as the stamped copy (issue 12).

Signed PDFs carry a real detached CMS signature made here with `cryptography`; the SM2
cases rewrite its algorithm OIDs to SM2's, which no library here can verify. OFD packages
are written from their XML. Each shape also goes through a real Dovecot to the export.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from config.settings import LimitsSettings, ParsingSettings
from intake.app import App
from intake.export import export_document
from intake.runs import poll_once
from intake.samples import form_workbook, mime_message, scanned_page, scanned_pdf
from parsers.dispatch import parse_file
from parsers.esign import signer_from_der
from parsers.filetypes import detect_kind
from parsers.model import FileKind, FileReport, ProblemCode, SealKind
from parsers.ofd import resolve
from tests.support.campaigns import DEFAULT_FORMS, FORM1
from tests.support.dovecot import Dovecot
from tests.support.eseal import (
    SM2_SM3,
    Identity,
    as_sm2,
    cms_signature,
    identity,
    ofd_package,
    ses_signature,
    signed_pdf,
)
from tests.support.intake_env import DEADLINE, intake_settings

UNIT = "济南市总工会"
SENDER = (UNIT, "jinan@example.cn")
OFD_LINES = ["竞赛项目汇总表（重点工程类）", f"汇总单位：{UNIT}"]


@pytest.fixture(scope="module")
def signer() -> Identity:
    return identity(UNIT, UNIT)


@pytest.fixture(scope="module")
def unstamped_scan() -> bytes:
    """A colour scan with no red seal: on its own the red-seal check says seal_not_found."""
    return scanned_pdf(seal=False, dpi=100)


def _png(*, seal: bool) -> bytes:
    out = io.BytesIO()
    scanned_page(seal=seal, dpi=100).save(out, "PNG")
    return out.getvalue()


def parse(data: bytes, name: str) -> FileReport:
    return parse_file(data, name, limits=LimitsSettings(), parsing=ParsingSettings(), forms=DEFAULT_FORMS)


def codes(report: FileReport) -> list[ProblemCode]:
    return [p.code for p in report.problems]


# --- signed PDFs ----------------------------------------------------------------------------


def test_a_signed_pdf_without_a_red_seal_counts_as_electronically_sealed(signer: Identity, unstamped_scan: bytes) -> None:
    assert parse(unstamped_scan, "盖章.pdf").pdf.seal is False  # the scan alone: no seal seen

    report = parse(signed_pdf(unstamped_scan, signer), "盖章.pdf")

    assert (report.pdf.seal, report.pdf.seal_kind, report.pdf.signer) == (True, SealKind.ELECTRONIC, UNIT)
    assert codes(report) == [ProblemCode.E_SEAL_UNVERIFIED]
    assert report.problems[0].message == (
        f"《盖章.pdf》使用电子签章（签章人：{UNIT}），系统未验证签章的有效性，请人工核实。")


def test_the_signer_is_the_leaf_certificate_with_its_organisation_not_the_issuing_ca(unstamped_scan: bytes) -> None:
    report = parse(signed_pdf(unstamped_scan, identity("张三", UNIT)), "盖章.pdf")

    assert report.pdf.signer == f"张三（{UNIT}）"


def test_an_sm2_signature_is_not_verified_but_still_names_its_signer(signer: Identity, unstamped_scan: bytes) -> None:
    data = signed_pdf(unstamped_scan, signer, sm2=True)
    assert SM2_SM3.hex().encode() in data.lower()
    sm2_cert = x509.load_der_x509_certificate(as_sm2(signer.cert.public_bytes(serialization.Encoding.DER)))
    with pytest.raises(UnsupportedAlgorithm):
        sm2_cert.public_key()  # nothing here can verify it

    report = parse(data, "盖章.pdf")

    assert (report.pdf.seal, report.pdf.seal_kind, report.pdf.signer) == (True, SealKind.ELECTRONIC, UNIT)
    assert codes(report) == [ProblemCode.E_SEAL_UNVERIFIED]


def test_a_certificate_cryptography_refuses_is_read_by_the_der_walk(signer: Identity) -> None:
    month_99 = (b"240101000000Z", b"249901000000Z")  # notBefore in month 99: not DER, refused
    with pytest.raises(ValueError):
        x509.load_der_x509_certificate(signer.cert.public_bytes(serialization.Encoding.DER).replace(*month_99))
    cms = cms_signature(b"form", signer).replace(*month_99)

    assert signer_from_der(cms) == UNIT


def test_a_mangled_signature_value_never_raises_and_leaves_the_signer_unknown(signer: Identity) -> None:
    cms = as_sm2(cms_signature(b"form", signer))
    for cut in range(0, len(cms), 7):
        signer_from_der(cms[:cut])  # truncated anywhere: no exception
    assert signer_from_der(bytes(range(256)) * 8) is None
    assert signer_from_der(b"\x30\x82\xff\xff\x30\x82\xff\xff") is None


# --- OFD --------------------------------------------------------------------------------------


def test_an_ofd_is_sniffed_by_its_content_whatever_its_name(signer: Identity) -> None:
    package = ofd_package(_png(seal=False), OFD_LINES)

    assert detect_kind(package, "盖章件.ofd") is FileKind.OFD
    assert detect_kind(package, "盖章件.zip") is FileKind.OFD  # never unpacked as an archive
    assert detect_kind(b"PK\x03\x04 truncated", "盖章件.ofd") is FileKind.OFD


def test_a_signed_ofd_counts_as_electronically_sealed_and_its_text_is_read(signer: Identity) -> None:
    report = parse(ofd_package(_png(seal=False), OFD_LINES, signature=ses_signature(signer)), "盖章件.ofd")

    assert report.kind is FileKind.OFD
    assert (report.pdf.seal, report.pdf.seal_kind, report.pdf.signer) == (True, SealKind.ELECTRONIC, UNIT)
    assert (report.pdf.unit, report.pdf.forms, report.pdf.has_text) == (UNIT, [FORM1.key], True)
    assert codes(report) == [ProblemCode.E_SEAL_UNVERIFIED]


def test_an_unsigned_ofd_is_checked_for_a_red_seal_on_its_page_images() -> None:
    stamped = parse(ofd_package(_png(seal=True), OFD_LINES), "盖章件.ofd")
    bare = parse(ofd_package(_png(seal=False), OFD_LINES), "盖章件.ofd")

    assert (stamped.pdf.seal, stamped.pdf.seal_kind, codes(stamped)) == (True, SealKind.SCAN, [])
    assert (bare.pdf.seal, bare.pdf.seal_kind, codes(bare)) == (False, None, [ProblemCode.SEAL_NOT_FOUND])


def _rewrite(package: bytes, replace: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, replace.get(name, src.read(name)))
    return out.getvalue()


def test_a_hostile_ofd_becomes_a_problem_never_a_crash() -> None:
    base = ofd_package(_png(seal=False), OFD_LINES)
    laughs = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
              b'<ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016">&b;</ofd:OFD>')
    bomb = b'<?xml version="1.0"?><ofd:Page xmlns:ofd="http://www.ofdspec.org/2016">' + b" " * (40 << 20) + b"</ofd:Page>"
    with zipfile.ZipFile(io.BytesIO(base)) as package:
        document = package.read("Doc_0/Document.xml")
    outside = _rewrite(base, {"Doc_0/Document.xml": document.replace(b"Pages/Page_0/Content.xml", b"../../../etc/passwd")})

    entity = parse(_rewrite(base, {"OFD.xml": laughs}), "a.ofd")
    huge = parse(_rewrite(base, {"Doc_0/Pages/Page_0/Content.xml": bomb}), "b.ofd")
    escape = parse(outside, "c.ofd")

    assert (entity.pdf, codes(entity)) == (None, [ProblemCode.UNREADABLE_FILE])
    assert (huge.pdf, codes(huge)) == (None, [ProblemCode.UNSAFE_FILE])  # 40 MB of spaces: ratio far over 100
    assert (escape.pdf, codes(escape)) == (None, [ProblemCode.UNREADABLE_FILE])  # no page inside the package
    assert resolve("Doc_0", "../../etc/passwd") is None and resolve("Doc_0", "/Doc_0/Res/a.png") == "Doc_0/Res/a.png"


# --- through a real Dovecot to the export -----------------------------------------------------


def _shapes(signer: Identity, scan: bytes) -> dict[str, tuple[str, bytes, str, bool | None, str | None]]:
    """case → (file name, bytes, kind, seal, seal_kind) of the stamped copy."""
    return {
        "signed_pdf": ("盖章件.pdf", signed_pdf(scan, signer), "pdf", True, "electronic"),
        "sm2_signed_pdf": ("盖章件.pdf", signed_pdf(scan, signer, sm2=True), "pdf", True, "electronic"),
        "signed_ofd": ("盖章件.ofd", ofd_package(_png(seal=False), OFD_LINES, signature=ses_signature(signer)),
                       "ofd", True, "electronic"),
        "unsigned_ofd_with_red_seal": ("盖章件.ofd", ofd_package(_png(seal=True), OFD_LINES), "ofd", True, "scan"),
    }


@pytest.mark.parametrize("case", ["signed_pdf", "sm2_signed_pdf", "signed_ofd", "unsigned_ofd_with_red_seal"])
def test_an_e_sealed_submission_is_accepted_through_imap_to_the_export(
        case: str, tmp_path: Path, dovecot: Dovecot, signer: Identity, unstamped_scan: bytes) -> None:
    name, stamped, kind, seal, seal_kind = _shapes(signer, unstamped_scan)[case]
    folder = f"eseal-{case}"
    arrived = DEADLINE - dt.timedelta(days=1)
    workbook = form_workbook(FORM1, "竞赛项目汇总表（重点工程类）", UNIT)
    dovecot.append(mime_message(sender=SENDER, subject=f"{UNIT}竞赛项目申报", body=f"请查收。\n{UNIT}",
                                attachments=[("附件1.xlsx", workbook), (name, stamped)], date=arrived),
                   arrived, folder=folder)

    with App(intake_settings(tmp_path, dovecot=dovecot, mailbox={"folder": folder})) as app:
        poll_once(app)
        with app.db.session() as session:
            [exported] = export_document(session, app.settings)["submissions"]

    files = {f["name"]: (f["kind"], f["seal"], f["seal_kind"]) for f in exported["files"]}
    assert files == {"附件1.xlsx": ("xlsx", None, None), name: (kind, seal, seal_kind)}
    assert (exported["status"], exported["unit"], exported["seal"], exported["has_pdf"]) == ("accepted", UNIT, True, True)
    problems = {p["code"]: p["message"] for p in exported["problems"]}
    assert "seal_not_found" not in problems and "missing_pdf" not in problems
    signers = {f["name"]: f["signer"] for f in exported["files"]}
    assert signers[name] == (UNIT if seal_kind == "electronic" else None)
    if seal_kind == "electronic":
        assert problems["e_seal_unverified"] == f"《{name}》使用电子签章（签章人：{UNIT}），系统未验证签章的有效性，请人工核实。"
        assert exported["needs_review"] is True
    else:
        assert "e_seal_unverified" not in problems
