"""The streaming mail reader (issue 14): a mail read from a file in chunks, each part's
body decoded into a spool file as the parser reaches it, gives what the stdlib's
whole-mail parse gives, and never holds a large part whole."""

from __future__ import annotations

import base64
import binascii
import email
import hashlib
import os
import quopri
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import LimitsSettings
from intake import mime
from intake.mailread import read_mail_file
from intake.mime import RAW_HEADERS, _Base64, _payload_of, _QuotedPrintable, parse_mail, parse_mail_file

MB = 1024 * 1024


def _stdlib_leaves(raw: bytes) -> list[bytes | None]:
    """Each leaf as get_payload(decode=True) gives it; None where that is the undecoded
    base64 text (a stray last character), which we read differently."""
    message = email.message_from_bytes(raw, policy=RAW_HEADERS)
    return [None if _stray_base64(part) else part.get_payload(decode=True) or b"" for part in message.walk()
            if not part.is_multipart() and part.get_content_maintype() != "message"]


def _stray_base64(part: email.message.Message) -> bool:
    sent = part._payload.encode("ascii", "surrogateescape")  # noqa: SLF001 - as sent, bytes as surrogates
    return (str(part.get("content-transfer-encoding", "")).lower() == "base64" and bool(sent)
            and part.get_payload(decode=True) == b"".join(sent.splitlines()))


def _streamed_leaves(raw: bytes, tmp_path: Path) -> list[bytes]:
    path = tmp_path / "mail.eml"
    path.write_bytes(raw)
    with path.open("rb") as handle:
        parsed = parse_mail_file(handle)
    try:
        return [_payload_of(part).read() for part in parsed.message.walk() if not part.is_multipart()
                and part.get_content_maintype() != "message"]
    finally:
        parsed.close()


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def _mail(parts: list[tuple[bytes, bytes]], newline: bytes = b"\r\n", close: bool = True) -> bytes:
    """multipart/mixed of (Content-Transfer-Encoding, body as sent)."""
    out = [b"From: a@example.cn", b"MIME-Version: 1.0", b"Content-Type: multipart/mixed; boundary=BB", b""]
    for encoding, body in parts:
        out += [b"--BB", b"Content-Type: application/octet-stream",
                b'Content-Disposition: attachment; filename="f.bin"', b"Content-Transfer-Encoding: " + encoding, b"",
                body]
    if close:
        out.append(b"--BB--")
    return newline.join(out) + newline


# --- decoders against the stdlib, split anywhere ---

_B64_TEXT = st.binary(max_size=300).map(lambda d: base64.encodebytes(d))
_B64_NOISE = st.lists(st.sampled_from([b"A", b"z", b"+", b"/", b"=", b"==", b" ", b"\r\n", b"\n", b"*", b"\xff"]),
                      max_size=60).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(_B64_TEXT, _B64_NOISE, st.tuples(_B64_TEXT, _B64_NOISE).map(b"".join)),
       cuts=st.lists(st.integers(0, 500), max_size=6))
def test_base64_in_pieces_decodes_as_the_stdlib(text: bytes, cuts: list[int]) -> None:
    decoder = _Base64()
    ours = b"".join(decoder.decode(piece) for piece in _split(text, cuts)) + decoder.finish()
    message = email.message_from_bytes(b"Content-Transfer-Encoding: base64\r\n\r\n" + text, policy=RAW_HEADERS)
    if _stray_base64(message):
        # A stray last character: the stdlib gives back the text, we drop the character.
        assert ours == binascii.a2b_base64(_strip_last_character(text))
    else:
        assert ours == message.get_payload(decode=True)


def _strip_last_character(text: bytes) -> bytes:
    alphabet = bytes(c for c in text if c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    alphabet = alphabet.replace(b"=", b"")  # never a complete pad here, else no stray character
    return alphabet[: len(alphabet) - len(alphabet) % 4]


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.sampled_from([b"a", b"=", b"=3D", b"=4", b"=\r\n", b"=\n", b"=\r", b"\r", b"\n", b"\r\n",
                                      b" ", b"\t", b"\xe4", b"=E4=B8", b"=ZZ", b"_"]), max_size=80).map(b"".join),
       cuts=st.lists(st.integers(0, 200), max_size=6))
def test_quoted_printable_in_pieces_decodes_as_the_stdlib(text: bytes, cuts: list[int]) -> None:
    decoder = _QuotedPrintable()
    ours = b"".join(decoder.decode(piece) for piece in _split(text, cuts)) + decoder.finish()
    assert ours == quopri.decodestring(text)


# --- whole mails: the same leaves as the stdlib's parse, whatever the chunk size ---

_ENCODING = st.sampled_from([b"base64", b"quoted-printable", b"7bit", b"8bit", b"binary", b"x-unknown", b"Base64 "])
_BODY = st.one_of(
    st.binary(max_size=400).map(base64.encodebytes),
    st.binary(max_size=400).map(lambda d: quopri.encodestring(d)),
    st.binary(max_size=400),
    st.lists(st.sampled_from([b"x", b"\r\n", b"\n", b"\r", b"=", b"--BB", b"--BB--", b" ", b"\xff"]),
             max_size=40).map(b"".join),
)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.tuples(_ENCODING, _BODY), max_size=4), newline=st.sampled_from([b"\r\n", b"\n"]),
       close=st.booleans(), chunk=st.sampled_from([1, 7, 64, 65536]))
def test_a_mail_read_in_chunks_has_the_stdlibs_parts(tmp_path_factory: pytest.TempPathFactory,
                                                      parts: list[tuple[bytes, bytes]], newline: bytes, close: bool,
                                                      chunk: int) -> None:
    raw = _mail(parts, newline, close)
    theirs = _stdlib_leaves(raw)
    original, mime._CHUNK = mime._CHUNK, chunk
    try:
        ours = _streamed_leaves(raw, tmp_path_factory.mktemp("mail"))
    finally:
        mime._CHUNK = original
    assert len(ours) == len(theirs)
    assert [o for o, t in zip(ours, theirs) if t is not None] == [t for t in theirs if t is not None]


def test_a_part_without_a_boundary_line_before_it_and_a_single_part_mail_read_as_before(tmp_path: Path) -> None:
    single = b"From: a@example.cn\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + \
        base64.encodebytes(b"%PDF-1.4 whole") + b"\r\n"
    nested = (b"From: a@example.cn\r\nContent-Type: multipart/mixed; boundary=O\r\n\r\npreamble\r\n--O\r\n"
              b"Content-Type: multipart/alternative; boundary=I\r\n\r\n--I\r\nContent-Type: text/plain\r\n\r\n"
              b"text\r\n\r\n--I\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--O\r\n"  # inner close missing
              b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=\r\nb=3D\r\n--O--\r\n")
    for raw in (single, nested):
        assert _streamed_leaves(raw, tmp_path) == _stdlib_leaves(raw)
    assert parse_mail(single).attachments[0].data == b"%PDF-1.4 whole"


# --- memory: a large part is never held whole ---

def _write_large_mail(path: Path, size: int) -> str:
    """A mail with one base64 attachment of `size` random bytes; returns their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        out.write(b"From: a@example.cn\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n"
                  b"--BB\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xe8\xaf\xb7\xe6\x9f\xa5\xe6\x94\xb6\r\n"
                  b'--BB\r\nContent-Type: application/pdf; name="scan.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n')
        for _ in range(size // (57 * 1024)):
            block = os.urandom(57 * 1024)
            digest.update(block)
            out.write(base64.encodebytes(block).replace(b"\n", b"\r\n"))
        out.write(b"--BB--\r\n")
    return digest.hexdigest()


def test_a_large_base64_attachment_is_decoded_to_a_spool_file_not_held(tmp_path: Path) -> None:
    path = tmp_path / "large.eml"
    expected = _write_large_mail(path, 8 * MB)  # ~11 MB of base64
    tracemalloc.start()
    try:
        with path.open("rb") as handle:
            parsed = parse_mail_file(handle, spool_dir=tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    try:
        (attachment,) = parsed.attachments
        assert attachment.data == b""
        assert attachment.payload is not None and attachment.payload.sha256 == expected
        assert hashlib.sha256(attachment.read()).hexdigest() == expected
        assert parsed.body_text.strip() == "请查收"
    finally:
        parsed.close()
    # The parser's lines, a 64 KB batch and the in-memory start of a spool: not the 11 MB
    # part, nor its 8 MB decoded.
    assert peak < 2 * MB, peak


def test_read_mail_file_files_each_attachment_and_holds_one_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "large.eml"
    expected = _write_large_mail(path, 4 * MB)
    stored: dict[str, int] = {}
    held: list[int] = []

    def store(data: bytes) -> str:
        held.append(tracemalloc.get_traced_memory()[0])
        digest = hashlib.sha256(data).hexdigest()
        stored[digest] = len(data)
        return digest

    tracemalloc.start()
    try:
        with path.open("rb") as handle:
            content = read_mail_file(handle, LimitsSettings(), store)
    finally:
        tracemalloc.stop()
    assert [(a.name, a.sha256, a.size) for a in content.attachments] == [("scan.pdf", expected, stored[expected])]
    assert [f.digest for f in content.files] == [expected]
    # When the attachment is filed, memory holds it (4 MB) once, not its base64 as well.
    assert max(held) < 4 * MB + 2 * MB, held


def test_a_spool_that_cannot_be_written_is_our_fault_not_the_mails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    path = tmp_path / "large.eml"
    _write_large_mail(path, 2 * MB)

    def full(self: object, data: bytes) -> int:  # noqa: ARG001
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("tempfile.SpooledTemporaryFile.write", full)
    with path.open("rb") as handle, pytest.raises(mime.SpoolError):
        parse_mail_file(handle)


def test_base64_decoder_matches_binascii_on_a_large_stream() -> None:
    data = os.urandom(3 * MB + 17)
    text = base64.encodebytes(data)
    decoder = _Base64()
    out = [decoder.decode(text[i:i + 65_537]) for i in range(0, len(text), 65_537)]
    assert b"".join(out) + decoder.finish() == data == binascii.a2b_base64(text)
