"""Electronic seals (电子签章): whether a PDF carries a signature, and who signed it.

A unit that signs its PDF instead of scanning a red stamp has sealed it all the same, so
a signature makes the file count as stamped. Nothing here verifies a signature: Chinese
e-seals mostly use SM2/SM3, which neither pdfium nor `cryptography` can check, so staff
get `e_seal_unverified` and check it themselves.

The signer's name comes from the signing certificate inside the signature value. That
value is CMS SignedData (adbe.pkcs7.detached, ETSI.CAdES.detached) or GB/T 38540
SES_Signature (OFD, and some PDF e-seal products), so certificates are found by shape
wherever they sit, and read with `cryptography`; a certificate it refuses (a
non-DER date, an odd serial) is read with a minimal DER walk of its subject. An unknown
algorithm OID (SM2 is 1.2.156.10197.1.501) matters to neither: the subject is plain text.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from cryptography import x509
from cryptography.x509.oid import NameOID

from parsers.model import PdfReport, Problem, ProblemCode, SealKind

MAX_SIGNATURES = 8  # a form carries one or two seals; the rest is not read
MAX_CONTENTS = 1 << 20  # a signature value is a few KB; a CMS with a CRL bundle may be larger
MAX_CERTIFICATES = 32
MAX_SIGNER_CHARS = 80
# A certificate of 128 B .. 64 KB starts SEQUENCE (1- or 2-byte length) { SEQUENCE (tbsCertificate) ...
_CERT_START = re.compile(rb"\x30(?:\x81.|\x82..)\x30[\x81\x82]", re.DOTALL)
MAX_CANDIDATES = 4096
_DOCUMENT_TIMESTAMP = "ETSI.RFC3161"  # a timestamp on the document, not anyone's seal
# Findings of the red-seal check that a signature answers.
_SEAL_CHECKS = frozenset({ProblemCode.SEAL_NOT_FOUND, ProblemCode.SEAL_UNVERIFIABLE})
_CN, _O = "2.5.4.3", "2.5.4.10"


@dataclass(frozen=True)
class Signature:
    signer: str | None  # the signing certificate's subject, as people read it


# --- the signature fields of a PDF --------------------------------------------------------


def pdf_signatures(pdf: pdfium.PdfDocument) -> list[Signature]:
    """Every signed signature field (document timestamps aside), read by pdfium."""
    found = []
    for index in range(min(pdfium_c.FPDF_GetSignatureCount(pdf.raw), MAX_SIGNATURES)):
        handle = pdfium_c.FPDF_GetSignatureObject(pdf.raw, index)
        if not handle or _sub_filter(handle) == _DOCUMENT_TIMESTAMP:
            continue
        found.append(Signature(signer_from_der(_contents(handle))))
    return found


def _contents(handle: pdfium_c.FPDF_SIGNATURE) -> bytes:
    size = pdfium_c.FPDFSignatureObj_GetContents(handle, None, 0)
    if not 0 < size <= MAX_CONTENTS:
        return b""
    buffer = ctypes.create_string_buffer(size)
    pdfium_c.FPDFSignatureObj_GetContents(handle, buffer, size)
    return buffer.raw


def _sub_filter(handle: pdfium_c.FPDF_SIGNATURE) -> str:
    size = pdfium_c.FPDFSignatureObj_GetSubFilter(handle, None, 0)
    if not 0 < size <= 256:
        return ""
    buffer = ctypes.create_string_buffer(size)
    pdfium_c.FPDFSignatureObj_GetSubFilter(handle, buffer, size)
    return buffer.value.decode("ascii", "replace")


# --- certificates -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cert:
    subject: bytes  # DER of the Name, to tell the leaf from its issuers
    issuer: bytes
    name: str | None


def signer_from_der(blob: bytes) -> str | None:
    """The signer named by the certificates in a signature value: the one certificate
    that issued none of the others (the leaf), its CN, with O when that adds to it."""
    certs = list(_certificates(blob))
    issuers = {c.issuer for c in certs if c.issuer != c.subject}
    leaves = [c for c in certs if c.subject not in issuers and c.name] or [c for c in certs if c.name]
    return leaves[0].name if leaves else None


def _certificates(blob: bytes) -> Iterator[_Cert]:
    seen = 0
    for tried, match in enumerate(_CERT_START.finditer(blob)):
        if tried >= MAX_CANDIDATES or seen >= MAX_CERTIFICATES:
            return
        first = next(_children(blob, match.start()), None)
        cert = _read_certificate(blob[first[1]:first[3]]) if first else None
        if cert is not None:
            yield cert
            seen += 1


def _read_certificate(der: bytes) -> _Cert | None:
    names = _tbs_names(der)
    if names is None:
        return None
    issuer, subject = names
    try:
        parsed = x509.load_der_x509_certificate(der).subject
        cn = _attribute(parsed, NameOID.COMMON_NAME)
        org = _attribute(parsed, NameOID.ORGANIZATION_NAME)
    except Exception:  # cryptography refuses it (ValueError, or its Rust parser's own); the subject is still readable
        attributes = _name_attributes(subject)
        cn, org = attributes.get(_CN), attributes.get(_O)
    return _Cert(subject, issuer, _display(cn, org))


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def _display(cn: str | None, org: str | None) -> str | None:
    cn, org = _clean(cn), _clean(org)
    if cn and org and org not in cn:
        return f"{cn}（{org}）"[:MAX_SIGNER_CHARS]
    return cn or org


def _clean(text: str | None) -> str | None:
    """Attacker-written text for a message: no control characters, bounded."""
    if not text:
        return None
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text[:MAX_SIGNER_CHARS] or None


# --- a minimal DER walk: enough to find a certificate's names -----------------------------


def _children(der: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int, int]]:
    """(tag, header start, content start, content end) of each element in der[start:end];
    stops at anything that is not definite-length DER."""
    end = len(der) if end is None else end
    at = start
    while at + 2 <= end:
        tag, length, body = der[at], der[at + 1], at + 2
        if tag & 0x1F == 0x1F:
            return  # high tag numbers never occur in the parts read here
        if length & 0x80:
            width = length & 0x7F
            if not 1 <= width <= 4 or body + width > end:
                return
            length, body = int.from_bytes(der[body:body + width], "big"), body + width
        if body + length > end:
            return
        yield tag, at, body, body + length
        at = body + length


def _tbs_names(der: bytes) -> tuple[bytes, bytes] | None:
    """(issuer, subject) DER of a Certificate, or None when der is not shaped like one."""
    outer = list(_children(der))
    if len(outer) != 1 or outer[0][0] != 0x30 or outer[0][3] != len(der):
        return None
    parts = list(_children(der, outer[0][2], outer[0][3]))
    if len(parts) != 3 or parts[0][0] != 0x30:
        return None
    fields = list(_children(der, parts[0][2], parts[0][3]))
    if fields and fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    # serial, signature algorithm, issuer, validity, subject
    if len(fields) < 5 or fields[0][0] != 0x02 or not all(f[0] == 0x30 for f in fields[1:5]):
        return None
    issuer, subject = fields[2], fields[4]
    return der[issuer[1]:issuer[3]], der[subject[1]:subject[3]]


def _name_attributes(name: bytes) -> dict[str, str]:
    """OID (dotted) → value of a Name's attributes; the first of each wins."""
    found: dict[str, str] = {}
    outer = list(_children(name))
    if len(outer) != 1:
        return found
    _, _, body, end = outer[0]
    for _, _, set_body, set_end in _children(name, body, end):
        for _, _, pair_body, pair_end in _children(name, set_body, set_end):
            pair = list(_children(name, pair_body, pair_end))
            if len(pair) == 2 and pair[0][0] == 0x06:
                oid = _oid(name[pair[0][2]:pair[0][3]])
                found.setdefault(oid, _string(pair[1][0], name[pair[1][2]:pair[1][3]]))
    return found


def _oid(body: bytes) -> str:
    arcs, value = [], 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        return ""
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def _string(tag: int, body: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return body.decode("utf-16-be", "replace")
    if tag == 0x1C:  # UniversalString
        return body.decode("utf-32-be", "replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:  # a T61String holding GBK, as some Chinese CAs write it
        return body.decode("gb18030", "replace")


# --- the verdict --------------------------------------------------------------------------


def settle_seal(report: PdfReport, problems: list[Problem], name: str, signatures: list[Signature]) -> list[Problem]:
    """The file's seal from both checks: a signature makes it stamped (electronic) and
    answers the red-seal check's doubts; else a seal seen on the page is a scan's.
    Returns the file's problems with the warning staff need."""
    if not signatures:
        if report.seal:
            report.seal_kind = SealKind.SCAN
        return problems
    report.seal, report.seal_kind = True, SealKind.ELECTRONIC
    report.signer = next((s.signer for s in signatures if s.signer), None)
    kept = [p for p in problems if p.code not in _SEAL_CHECKS]
    return [*kept, e_seal_problem(name, report.signer)]


def e_seal_problem(name: str, signer: str | None) -> Problem:
    return Problem(ProblemCode.E_SEAL_UNVERIFIED,
                   f"《{name}》使用电子签章（签章人：{signer or '未能识别'}），系统未验证签章的有效性，请人工核实。",
                   file=name)
