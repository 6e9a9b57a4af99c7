"""Electronically sealed files as units' e-seal products write them, built in the test.

- `signed_pdf`: a real detached CMS signature (cryptography's PKCS7SignatureBuilder) over
  the PDF's ByteRange, in a signature field added with pypdf. With `sm2=True` the ECDSA /
  P-256 OIDs in the CMS are rewritten to SM2's (same length, so the DER stays well formed):
  what an SM2 e-seal looks like to software that knows no SM2.
- `ofd_package`: an OFD (GB/T 33190) written from its XML: one page with text and an image,
  optionally a `Signs/` entry whose SignedValue.dat is shaped like a GB/T 38540 SES_Signature
  (the signer's certificate inside an OCTET STRING).
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, ByteStringObject, DictionaryObject, NameObject, NumberObject, TextStringObject

ECDSA_SHA256, SM2_SM3 = bytes.fromhex("06082A8648CE3D040302"), bytes.fromhex("06082A811CCF55018375")
P256, SM2_CURVE = bytes.fromhex("06082A8648CE3D030107"), bytes.fromhex("06082A811CCF5501822D")
PLACEHOLDER = 8192  # bytes reserved for the CMS
_RANGE = (1111111111, 2222222222, 3333333333)
_EPOCH = dt.datetime(2024, 1, 1)


@dataclass(frozen=True)
class Identity:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...]  # the issuing CA, carried in the signature as real ones do


def _name(cn: str, org: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(parts)


def identity(cn: str, org: str | None = None) -> Identity:
    """A signer's certificate issued by a made-up CA (the CA's name must not be taken as the signer's)."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("测试电子印章CA", "测试认证中心")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(_EPOCH).not_valid_after(_EPOCH + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(_name(cn, org)).issuer_name(ca_name).public_key(key.public_key())
            .serial_number(2).not_valid_before(_EPOCH).not_valid_after(_EPOCH + dt.timedelta(days=3650))
            .sign(ca_key, hashes.SHA256()))
    return Identity(cert, key, (ca,))


def as_sm2(der: bytes) -> bytes:
    """The same DER with SM2/SM3 algorithm OIDs in place of ECDSA-SHA256 / P-256."""
    return der.replace(ECDSA_SHA256, SM2_SM3).replace(P256, SM2_CURVE)


def cms_signature(data: bytes, signer: Identity) -> bytes:
    builder = pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(signer.cert, signer.key, hashes.SHA256())
    for cert in signer.chain:
        builder = builder.add_certificate(cert)
    return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])


def signed_pdf(pdf: bytes, signer: Identity, *, sm2: bool = False) -> bytes:
    """`pdf` with a signed signature field (adbe.pkcs7.detached) on its first page."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    value = writer._add_object(DictionaryObject({  # noqa: SLF001 - pypdf has no public add for a bare object
        NameObject("/Type"): NameObject("/Sig"),
        NameObject("/Filter"): NameObject("/Adobe.PPKLite"),
        NameObject("/SubFilter"): NameObject("/adbe.pkcs7.detached"),
        NameObject("/ByteRange"): ArrayObject([NumberObject(0), *(NumberObject(n) for n in _RANGE)]),
        NameObject("/Contents"): ByteStringObject(b"\0" * PLACEHOLDER),
        NameObject("/M"): TextStringObject("D:20240220100000+08'00'"),
    }))
    page = writer.pages[0]
    widget = writer._add_object(DictionaryObject({  # noqa: SLF001
        NameObject("/Type"): NameObject("/Annot"), NameObject("/Subtype"): NameObject("/Widget"),
        NameObject("/FT"): NameObject("/Sig"), NameObject("/T"): TextStringObject("Signature1"),
        NameObject("/V"): value, NameObject("/F"): NumberObject(132), NameObject("/P"): page.indirect_reference,
        NameObject("/Rect"): ArrayObject([NumberObject(0)] * 4),
    }))
    page[NameObject("/Annots")] = ArrayObject([widget])
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject({  # noqa: SLF001
        NameObject("/Fields"): ArrayObject([widget]), NameObject("/SigFlags"): NumberObject(3)})
    out = io.BytesIO()
    writer.write(out)
    return _sign_in_place(out.getvalue(), signer, sm2=sm2)


def _sign_in_place(pdf: bytes, signer: Identity, *, sm2: bool) -> bytes:
    hole = b"<" + b"00" * PLACEHOLDER + b">"
    start = pdf.index(hole)
    end = start + len(hole)
    at = pdf.index(b"/ByteRange")
    array = pdf[at:pdf.index(b"]", at)]
    for placeholder, number in zip(_RANGE, (start, end, len(pdf) - end)):
        array = array.replace(str(placeholder).encode(), str(number).encode().ljust(10), 1)
    pdf = pdf[:at] + array + pdf[at + len(array):]
    cms = cms_signature(pdf[:start] + pdf[end:], signer)
    if sm2:
        cms = as_sm2(cms)
    assert len(cms) <= PLACEHOLDER
    return pdf[:start] + b"<" + cms.hex().encode().ljust(2 * PLACEHOLDER, b"0") + b">" + pdf[end:]


# --- OFD ----------------------------------------------------------------------------------

NS = 'xmlns:ofd="http://www.ofdspec.org/2016"'


def _der(tag: int, body: bytes) -> bytes:
    length = len(body)
    head = bytes([length]) if length < 0x80 else bytes([0x80 | 2]) + length.to_bytes(2, "big")
    return bytes([tag]) + head + body


def ses_signature(signer: Identity) -> bytes:
    """A GB/T 38540 SES_Signature's outline: TBS_Sign { version, eseal, timeInfo,
    dataHash, propertyInfo, cert OCTET STRING, signatureAlgID } and the signature."""
    cert = signer.cert.public_bytes(serialization.Encoding.DER)
    to_sign = _der(0x30, b"".join([
        _der(0x02, b"\x04"),
        _der(0x30, _der(0x16, b"ESID-0001")),  # the seal (abridged)
        _der(0x18, b"20240220100000Z"),
        _der(0x03, b"\x00" + bytes(32)),
        _der(0x16, b"/Doc_0/Signs/Sign_0/Signature.xml"),
        _der(0x04, as_sm2(cert)),
        SM2_SM3,
    ]))
    return _der(0x30, to_sign + _der(0x03, b"\x00" + bytes(64)))


def ofd_package(page_image: bytes | None, lines: list[str], *, signature: bytes | None = None) -> bytes:
    """A one-page A4 OFD: `lines` as text from the top, the PNG `page_image` covering the
    page, and, with `signature`, a Signs/ entry whose SignedValue.dat holds it."""
    texts = "".join(
        f'<ofd:TextObject ID="{100 + i}" Boundary="20 {20 + 8 * i} 170 8" Font="3" Size="4">'
        f'<ofd:TextCode X="0" Y="5">{line}</ofd:TextCode></ofd:TextObject>' for i, line in enumerate(lines))
    image = '<ofd:ImageObject ID="20" ResourceID="10" Boundary="0 0 210 297" CTM="210 0 0 297 0 0"/>' if page_image else ""
    files = {
        "OFD.xml": f'<?xml version="1.0" encoding="UTF-8"?><ofd:OFD {NS} Version="1.1" DocType="OFD"><ofd:DocBody>'
                   '<ofd:DocInfo><ofd:DocID>0c2a6f1e</ofd:DocID></ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot>'
                   + ('<ofd:Signatures>Doc_0/Signs/Signatures.xml</ofd:Signatures>' if signature else "")
                   + '</ofd:DocBody></ofd:OFD>',
        "Doc_0/Document.xml": f'<?xml version="1.0" encoding="UTF-8"?><ofd:Document {NS}><ofd:CommonData>'
                              '<ofd:MaxUnitID>200</ofd:MaxUnitID><ofd:PageArea><ofd:PhysicalBox>0 0 210 297</ofd:PhysicalBox>'
                              '</ofd:PageArea><ofd:PublicRes>PublicRes.xml</ofd:PublicRes><ofd:DocumentRes>DocumentRes.xml'
                              '</ofd:DocumentRes></ofd:CommonData><ofd:Pages><ofd:Page ID="1" BaseLoc="Pages/Page_0/Content.xml"/>'
                              '</ofd:Pages></ofd:Document>',
        "Doc_0/PublicRes.xml": f'<?xml version="1.0" encoding="UTF-8"?><ofd:Res {NS} BaseLoc="Res"><ofd:Fonts>'
                               '<ofd:Font ID="3" FontName="宋体" FamilyName="宋体"/></ofd:Fonts></ofd:Res>',
        "Doc_0/DocumentRes.xml": f'<?xml version="1.0" encoding="UTF-8"?><ofd:Res {NS} BaseLoc="Res"><ofd:MultiMedias>'
                                 '<ofd:MultiMedia ID="10" Type="Image" Format="PNG"><ofd:MediaFile>image_10.png</ofd:MediaFile>'
                                 '</ofd:MultiMedia></ofd:MultiMedias></ofd:Res>',
        "Doc_0/Pages/Page_0/Content.xml": f'<?xml version="1.0" encoding="UTF-8"?><ofd:Page {NS}><ofd:Content>'
                                          f'<ofd:Layer ID="2">{image}{texts}</ofd:Layer></ofd:Content></ofd:Page>',
    }
    blobs: dict[str, bytes] = {name: text.encode() for name, text in files.items()}
    if page_image:
        blobs["Doc_0/Res/image_10.png"] = page_image
    if signature:
        blobs["Doc_0/Signs/Signatures.xml"] = (
            f'<?xml version="1.0" encoding="UTF-8"?><ofd:Signatures {NS}><ofd:MaxSignId>1</ofd:MaxSignId>'
            '<ofd:Signature ID="1" Type="Seal" BaseLoc="/Doc_0/Signs/Sign_0/Signature.xml"/></ofd:Signatures>').encode()
        blobs["Doc_0/Signs/Sign_0/Signature.xml"] = (
            f'<?xml version="1.0" encoding="UTF-8"?><ofd:Signature {NS}><ofd:SignedInfo>'
            '<ofd:Provider ProviderName="某电子签章系统" Company="某软件公司" Version="2.0"/>'
            '<ofd:SignatureMethod>1.2.156.10197.1.501</ofd:SignatureMethod>'
            '<ofd:SignatureDateTime>20240220100000Z</ofd:SignatureDateTime>'
            '<ofd:References CheckMethod="1.2.156.10197.1.401"><ofd:Reference FileRef="/Doc_0/Pages/Page_0/Content.xml">'
            '<ofd:CheckValue>AAAA</ofd:CheckValue></ofd:Reference></ofd:References>'
            '<ofd:StampAnnot ID="1" PageRef="1" Boundary="120 60 40 40"/></ofd:SignedInfo>'
            '<ofd:SignedValue>SignedValue.dat</ofd:SignedValue></ofd:Signature>').encode()
        blobs["Doc_0/Signs/Sign_0/SignedValue.dat"] = signature
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, blob in blobs.items():
            archive.writestr(name, blob)
    return out.getvalue()
