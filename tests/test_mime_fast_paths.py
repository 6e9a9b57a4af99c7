"""The streaming reader's fast paths (issue 14) read every mail exactly as the line-by-line
reader they replace: a leaf's body handed to its spool in bulk (only lines that may be a
boundary are tested), and base64 line breaks deleted in one C pass."""

from __future__ import annotations

import base64
import binascii
import email.feedparser
import io
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import LimitsSettings
from intake import mime
from intake.archive import sha256_hex
from intake.mailread import content_to_json, read_mail_file
from intake.mime import _payload_of, parse_mail_file


class _LineByLineInput(mime._DivertingInput):
    """The reader as it was before the fast path: each body line tested against every
    end-of-part matcher and fed to the spool on its own."""

    push = email.feedparser.BufferedSubFile.push  # every line split off, as the stdlib does

    def readline(self) -> str | object:
        if self.divert is None:
            return email.feedparser.BufferedSubFile.readline(self)
        while True:
            if not self._lines:
                return self._release() if self._closed else email.feedparser.NeedMoreData
            line = self._lines.popleft()
            if any(at_eof(line) for at_eof in reversed(self._eofstack)):
                self._lines.appendleft(line)
                return self._release()
            if self._held is not None:
                self.divert.feed(self._held)
            self._held = line


@contextmanager
def _reader(chunk: int, *, reference: bool) -> Iterator[None]:
    """mime read in `chunk`-byte pieces, by the reference reader or by the fast one."""
    saved = mime._CHUNK, mime._DivertingInput, mime._base64_alphabet_only
    mime._CHUNK = chunk
    if reference:
        mime._DivertingInput = _LineByLineInput
        mime._base64_alphabet_only = lambda data: mime._NOT_BASE64.sub(b"", data)
    try:
        yield
    finally:
        mime._CHUNK, mime._DivertingInput, mime._base64_alphabet_only = saved


def _read(raw: bytes, chunk: int, *, reference: bool) -> tuple:
    """Everything parse_mail_file and read_mail_file make of `raw`."""
    with _reader(chunk, reference=reference):
        parsed = parse_mail_file(io.BytesIO(raw))
        content = content_to_json(read_mail_file(io.BytesIO(raw), LimitsSettings(), sha256_hex))
    try:
        tree = [(part.get_content_type(), [type(d).__name__ for d in part.defects],
                 None if part.is_multipart() else _payload_of(part).read(),
                 getattr(part, "preamble", None), getattr(part, "epilogue", None))
                for part in parsed.message.walk()]
        attachments = [(a.name, a.content_type, a.forwarded, a.sha256, a.read()) for a in parsed.attachments]
        return (tree, attachments, parsed.body_text, parsed.bodies, parsed.defects, parsed.too_deep,
                parsed.parts_lost, parsed.content_types, parsed.returned_ids, parsed.delivery_status, content)
    finally:
        parsed.close()


# --- random mails: nesting, boundaries that are prefixes of each other, dash lines ---

_BOUNDARIES = ["B", "BB", "B-", "B--", "=_B", "B.1", "Bx"]
_LINES = st.one_of(
    st.binary(min_size=1, max_size=60).map(lambda d: base64.b64encode(d).decode()),
    st.sampled_from(["", "x", "-", "--", "-- ", "---", "--B", "--B--", "--BB", "--BB--", "--B-", "--B---", "--B- ",
                     "--B\t", "--=_B", "--Bx--", "=3D", "a=", "=\r", "\xff\xfe", "Content-Type: text/plain",
                     "Status: 5.1.1", "Diagnostic-Code: smtp; 550", "  folded", "====", "QUJD=", "QU=JD"]),
)
_LEAF_TYPES = st.sampled_from(["text/plain; charset=utf-8", "text/html", "application/pdf; name=\"a.pdf\"",
                               "application/octet-stream", "text/rfc822-headers"])
_ENCODINGS = st.sampled_from(["base64", "quoted-printable", "7bit", "8bit", "", "x-uuencode"])


def _leaf() -> st.SearchStrategy[list[str]]:
    return st.builds(lambda kind, encoding, body: [f"Content-Type: {kind}"]
                     + ([f"Content-Transfer-Encoding: {encoding}"] if encoding else []) + [""] + body,
                     _LEAF_TYPES, _ENCODINGS, st.lists(_LINES, max_size=12))


def _delivery_status() -> st.SearchStrategy[list[str]]:
    block = st.lists(st.sampled_from(["Status: 5.1.1", "Content-Type: application/pdf", "Action: failed",
                                      "Content-Transfer-Encoding: base64", "QUJD"]), min_size=1, max_size=4)
    return st.lists(block, min_size=1, max_size=3).map(
        lambda blocks: ["Content-Type: message/delivery-status", ""] + [line for b in blocks for line in [*b, ""]])


def _containers(inner: st.SearchStrategy[list[str]]) -> st.SearchStrategy[list[str]]:
    multipart = st.builds(_multipart, st.sampled_from(["mixed", "alternative", "digest", "report"]),
                          st.sampled_from(_BOUNDARIES), st.lists(_LINES, max_size=2), st.lists(inner, max_size=3),
                          st.booleans(), st.lists(_LINES, max_size=2))
    forward = st.builds(lambda encoding, body: ["Content-Type: message/rfc822"]
                        + ([f"Content-Transfer-Encoding: {encoding}"] if encoding else []) + [""] + body,
                        st.sampled_from(["", "base64", "7bit"]), inner)
    return st.one_of(multipart, forward)


def _multipart(subtype: str, boundary: str, preamble: list[str], parts: list[list[str]], close: bool,
               epilogue: list[str]) -> list[str]:
    lines = [f'Content-Type: multipart/{subtype}; boundary="{boundary}"', "", *preamble]
    for part in parts:
        lines += [f"--{boundary}", *part]
    return lines + ([f"--{boundary}--"] if close else []) + epilogue


_ENTITY = st.recursive(st.one_of(_leaf(), _delivery_status()), _containers, max_leaves=8)


def _raw(lines: list[str], newlines: list[str]) -> bytes:
    lines = ["From: a@example.cn", "Subject: s", *lines]
    text = "".join(line + newlines[i % len(newlines)] for i, line in enumerate(lines))
    return text.encode("latin-1")


@settings(max_examples=400, deadline=None)
@given(entity=_ENTITY, newlines=st.lists(st.sampled_from(["\r\n", "\n", "\r"]), min_size=1, max_size=3),
       chunk=st.one_of(st.integers(1, 200), st.just(64 * 1024)), cut_end=st.integers(0, 3))
def test_a_mail_reads_as_with_the_line_by_line_reader(entity: list[str], newlines: list[str], chunk: int,
                                                     cut_end: int) -> None:
    raw = _raw(entity, newlines)
    raw = raw[: len(raw) - cut_end]  # also without the last line break, or cut inside a boundary
    assert _read(raw, chunk, reference=False) == _read(raw, chunk, reference=True)


# --- the usual case, at real sizes ---

def _campaign_like(newline: bytes) -> bytes:
    """A text body, an xlsx-sized and a scan-sized base64 attachment, as the bench sends."""
    pdf = base64.encodebytes(bytes(range(256)) * 400).replace(b"\n", newline)
    xlsx = base64.encodebytes(b"PK\x03\x04" + bytes(9_000)).replace(b"\n", newline)
    lines = [b"From: a@example.cn", b"MIME-Version: 1.0", b'Content-Type: multipart/mixed; boundary="==b"', b"",
             b"--==b", b"Content-Type: text/plain; charset=utf-8", b"", "请查收\r\n-- \r\n签名".encode(), b"",
             b"--==b", b'Content-Type: application/vnd.ms-excel; name="form.xlsx"',
             b"Content-Transfer-Encoding: base64", b"", xlsx,
             b"--==b", b'Content-Type: application/pdf; name="scan.pdf"', b"Content-Transfer-Encoding: base64",
             b"", pdf, b"--==b--", b""]
    return newline.join(lines)


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
@pytest.mark.parametrize("chunk", [1, 4093, 64 * 1024])
def test_a_submission_reads_as_with_the_line_by_line_reader(newline: bytes, chunk: int) -> None:
    raw = _campaign_like(newline)
    ours = _read(raw, chunk, reference=False)
    assert ours == _read(raw, chunk, reference=True)
    assert [name for name, *_ in ours[1]] == ["form.xlsx", "scan.pdf"]
    assert ours[1][1][4] == bytes(range(256)) * 400


# --- base64: line breaks deleted in C, the regex only for anything else ---

@settings(max_examples=500, deadline=None)
@given(data=st.lists(st.sampled_from([b"QUJD", b"A", b"z9", b"+/", b"=", b"==", b"\r\n", b"\n", b"\r", b" ", b"\t",
                                      b"*", b"-", b"\xff", b"\x00", b"."]), max_size=40).map(b"".join))
def test_base64_alphabet_only_deletes_what_the_regex_deletes(data: bytes) -> None:
    assert mime._base64_alphabet_only(data) == mime._NOT_BASE64.sub(b"", data)


@pytest.mark.parametrize("body", [b"QUJD\r\nREVG\r\n", b"QUJD REVG\r\n", b"QU*JD\xffREVG", b"QUJD\r\n=\r\nREVG",
                                  b"QUJDREU=\r\n"])
def test_base64_bodies_with_stray_characters_decode_as_binascii(body: bytes) -> None:
    decoder = mime._Base64()
    assert decoder.decode(body) + decoder.finish() == binascii.a2b_base64(body)


# --- memory: the bulk hand-over holds back one line, not the body ---

def test_a_body_read_in_pieces_shorter_than_its_lines_is_not_held(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MB: 1.4 MB of base64 in 76-character lines
    raw = (b'From: a@example.cn\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
           b'Content-Type: application/pdf; name="a.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
           + base64.encodebytes(data).replace(b"\n", b"\r\n") + b"--B--\r\n")
    path = tmp_path / "mail.eml"
    path.write_bytes(raw)
    with _reader(50, reference=False), path.open("rb") as handle:
        tracemalloc.start()
        try:
            parsed = parse_mail_file(handle, spool_dir=tmp_path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    try:
        assert parsed.attachments[0].read() == data
    finally:
        parsed.close()
    # The spool's in-memory start (512 KB) and the parser's own state: not 1.4 MB of text.
    assert peak < 900 * 1024, peak
