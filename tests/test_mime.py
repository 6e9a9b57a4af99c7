"""Reading headers, bodies and attachment names as Chinese mail clients write them."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from intake.mime import (
    HEADER_TEXT_LIMIT,
    MAX_ENCODED_WORDS,
    ParsedMail,
    decode_header_value,
    display_text,
    normalize_charset,
    parse_mail,
    safe_filename,
)

NAME = "竞赛项目汇总表（重点工程类）镕.xlsx"  # 镕 is GB18030/GBK but not GB2312


def one_attachment(disposition: bytes, content_type: bytes = b"application/octet-stream") -> bytes:
    return (
        b"From: a@example.cn\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n"
        b"--B\r\nContent-Type: " + content_type + b"\r\n" + disposition + b"\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--B--\r\n"
    )


def test_gb2312_and_gbk_labels_are_read_as_gb18030() -> None:
    assert {normalize_charset(x) for x in ("gb2312", "GBK", "x-gbk", "cp936", '"GB2312"')} == {"gb18030"}


def test_an_encoded_word_inside_a_quoted_filename_is_decoded_with_gb18030() -> None:
    word = base64.b64encode(NAME.encode("gb18030")).decode()
    raw = one_attachment(f'Content-Disposition: attachment; filename="=?gb2312?B?{word}?="'.encode())
    assert [a.name for a in parse_mail(raw).attachments] == [NAME]


def test_an_rfc2231_filename_with_continuations_is_joined_and_decoded() -> None:
    data = NAME.encode("utf-8")
    header = f"Content-Disposition: attachment;\r\n filename*0*=utf-8''{quote(data[:12])};\r\n filename*1*={quote(data[12:])}"
    assert [a.name for a in parse_mail(one_attachment(header.encode())).attachments] == [NAME]


def test_an_rfc2231_filename_labelled_gb2312_keeps_characters_outside_gb2312() -> None:
    header = "Content-Disposition: attachment; filename*=gb2312''" + quote(NAME.encode("gb18030"))
    assert [a.name for a in parse_mail(one_attachment(header.encode())).attachments] == [NAME]


def test_a_raw_8bit_gbk_filename_is_decoded() -> None:
    raw = one_attachment(b'Content-Disposition: attachment; filename="' + NAME.encode("gb18030") + b'"')
    assert [a.name for a in parse_mail(raw).attachments] == [NAME]


def test_a_name_only_on_content_type_is_used() -> None:
    raw = one_attachment(b"", content_type=b'application/vnd.ms-excel; name="=?GBK?B?'
                         + base64.b64encode("表.xls".encode("gbk")) + b'?="')
    assert [a.name for a in parse_mail(raw).attachments] == ["表.xls"]


@pytest.mark.parametrize("evil", ["../../etc/passwd", "/abs/path.xlsx", "C:\\win\\a.xlsx", "a\x00b.xlsx"])
def test_path_tricks_in_filenames_leave_only_a_plain_display_name(evil: str) -> None:
    name = safe_filename(evil)
    assert "/" not in name and "\\" not in name and "\x00" not in name and name


def test_raw_8bit_gbk_headers_are_decoded() -> None:
    raw = b"From: " + "济南市总工会".encode("gbk") + b" <jn@example.cn>\r\nSubject: " + "报送材料".encode("gbk") + b"\r\n\r\nx"
    mail = parse_mail(raw)
    assert (mail.from_name, mail.from_address, mail.subject) == ("济南市总工会", "jn@example.cn", "报送材料")


def test_headers_in_an_unknown_charset_do_not_crash() -> None:
    assert decode_header_value("=?x-unknown-charset?B?1eLKx9bQzsQ=?=")


def test_a_subject_with_crlf_injection_is_flattened() -> None:
    assert "\n" not in decode_header_value("=?utf-8?Q?a=0D=0ABcc:_evil@example.com?=")


def test_an_html_only_body_is_read_as_text() -> None:
    raw = b"From: a@b.cn\r\nContent-Type: text/html; charset=gbk\r\n\r\n" + "<p>济南市总工会</p><script>x()</script>".encode("gbk")
    assert parse_mail(raw).body_text.strip() == "济南市总工会"


def test_a_forwarded_message_is_walked_even_when_its_client_base64_encoded_it() -> None:
    inner = (b"From: b@example.cn\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=I\r\n\r\n"
             b"--I\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
             b"JVBERi0xLjQ=\r\n--I--\r\n")
    outer = (b"From: a@example.cn\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=O\r\n\r\n"
             b"--O\r\nContent-Type: text/plain\r\n\r\nfw\r\n--O\r\nContent-Type: message/rfc822\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(inner) + b"--O--\r\n")
    attachments = parse_mail(outer).attachments
    assert [(a.name, a.data, a.forwarded) for a in attachments] == [("scan.pdf", b"%PDF-1.4", True)]


# --- who sent it: From read the way receiving servers read it ------------------------------


def from_header(*values: bytes) -> ParsedMail:
    return parse_mail(b"".join(b"From: " + v + b"\r\n" for v in values) + b"Subject: x\r\n\r\nbody\r\n")


def test_an_encoded_word_display_name_never_becomes_the_address() -> None:
    mail = from_header(b"=?utf-8?q?jinan=40example=2Ecn?= <attacker@evil.example>")
    assert (mail.from_address, mail.from_name, mail.from_problem) == ("attacker@evil.example", "jinan@example.cn", None)


def test_an_encoded_word_that_spells_a_whole_mailbox_is_still_only_a_name() -> None:
    mail = from_header(b"=?utf-8?q?=E6=B5=8E=E5=8D=97_=3Cjinan=40example.cn=3E?= <attacker@evil.example>")
    assert (mail.from_address, mail.from_name) == ("attacker@evil.example", "济南 <jinan@example.cn>")


def test_a_gb2312_labelled_display_name_keeps_characters_outside_gb2312() -> None:
    word = base64.b64encode("朱镕基".encode("gb18030"))
    mail = from_header(b"=?gb2312?B?" + word + b"?= <ZJ@Example.cn>")
    assert (mail.from_name, mail.from_address) == ("朱镕基", "zj@example.cn")


@pytest.mark.parametrize("value", [b"jinan@example.cn", b"<jinan@example.cn>", b"jinan@example.cn (\xe6\xb5\x8e)",
                                   b'"' + "济南市总工会".encode("gbk") + b'" <jinan@example.cn>'])
def test_a_single_address_in_any_honest_form_is_read(value: bytes) -> None:
    mail = from_header(value)
    assert (mail.from_address, mail.from_problem) == ("jinan@example.cn", None)


def test_raw_8bit_junk_in_front_of_a_bare_address_leaves_no_usable_address() -> None:
    mail = from_header(b"\x8e\xa1\xfe\xfe jinan@example.cn")
    assert (mail.from_address, mail.from_problem) == (None, "unparseable")


@pytest.mark.parametrize("values", [(b"jinan@example.cn, attacker@evil.example",),
                                    (b"jinan@example.cn", b"attacker@evil.example"),
                                    (b"=?utf-8?b?5rWO5Y2X?= <jinan@example.cn>, <attacker@evil.example>",)])
def test_several_from_addresses_yield_none_to_trust_or_answer(values: tuple[bytes, ...]) -> None:
    mail = from_header(*values)
    assert (mail.from_address, mail.from_problem) == (None, "multiple")


@pytest.mark.parametrize("value", [b"jinan@example.cn <attacker@evil.example>",
                                   b"<attacker@evil.example> jinan@example.cn",
                                   b"group: jinan@example.cn;", b"jinan@example.cn\x00", b"\xe6\xb5\x8e@example.cn"])
def test_a_from_whose_address_is_a_matter_of_interpretation_yields_none(value: bytes) -> None:
    mail = from_header(value)
    assert (mail.from_address, mail.from_problem) == (None, "unparseable")


def test_a_missing_or_empty_from_is_recorded_as_missing() -> None:
    assert parse_mail(b"Subject: x\r\n\r\nbody").from_problem == "missing"
    assert from_header(b"").from_problem == "missing"


# --- bounded header decoding and what is shown to people ------------------------------------


def test_decoding_stops_after_max_encoded_words() -> None:
    word = "=?utf-8?b?" + base64.b64encode("长".encode()).decode() + "?="
    subject = " ".join([word] * 200_000)  # 4.4 MB on one line: quadratic in the stdlib
    assert decode_header_value(subject) == "长" * MAX_ENCODED_WORDS


def test_every_decoded_header_is_cut_to_the_limit() -> None:
    assert len(decode_header_value("长" * 1_000_000)) == HEADER_TEXT_LIMIT
    assert decode_header_value("=?utf-8?q?ab?=", limit=1) == "a"


def test_bidi_overrides_and_invisible_format_characters_are_never_shown() -> None:
    hidden = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u200b\ufeff\U000e0041"
    assert display_text(f"in{hidden}voice\u202excod.pdf") == "invoicexcod.pdf"
    assert display_text("👩\u200d💻") == "👩\u200d💻"  # the zero width joiner is kept


def test_an_attachment_named_with_a_right_to_left_override_shows_without_it() -> None:
    header = "Content-Disposition: attachment; filename*=utf-8''" + quote("invoice\u202excod.pdf".encode())
    assert [a.name for a in parse_mail(one_attachment(header.encode())).attachments] == ["invoicexcod.pdf"]


def test_subjects_and_display_names_lose_bidi_overrides() -> None:
    evil = base64.b64encode("济南\u202e总工会".encode()).decode()
    mail = parse_mail(f"From: =?utf-8?b?{evil}?= <a@b.cn>\r\nSubject: =?utf-8?b?{evil}?=\r\n\r\nx".encode())
    assert (mail.from_name, mail.subject) == ("济南总工会", "济南总工会")
