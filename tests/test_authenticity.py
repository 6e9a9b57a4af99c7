"""Sender authenticity: trusted Authentication-Results and our own DKIM checks, never DNS."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from config.settings import settings_from_dict
from intake.authenticity import (
    MAX_AUTH_RESULTS,
    MAX_SIGNATURES,
    AuthVerdict,
    aligned,
    check_sender,
    sender_header_problem,
    sender_problem,
)
from intake.mime import parse_mail
from parsers.model import ProblemCode, Severity

FROM = "zgh@jinan.gov.cn"
SELECTOR = b"s2024"
TRUSTED = ["mx.163.com"]


@pytest.fixture(scope="module")
def private_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def dns(private_key: bytes) -> dict[str, bytes]:
    """The TXT records of a tiny fake DNS: every test domain publishes the same key."""
    public = serialization.load_pem_private_key(private_key, password=None).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    domains = ["jinan.gov.cn", "mail.jinan.gov.cn", "attacker.example", "qingdao.gov.cn"]
    return {f"{SELECTOR.decode()}._domainkey.{domain}": record for domain in domains}


def mail(from_address: str = FROM, body: str = "附件为我单位竞赛项目汇总表。\n", headers: str = "") -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = f"济南市总工会 <{from_address}>"
    message["To"] = "intake@example.org"
    message["Subject"] = "济南市总工会 劳动竞赛项目汇总表"
    message["Date"] = "Tue, 20 Feb 2024 09:30:00 +0800"
    message["Message-ID"] = "<abc@jinan.gov.cn>"
    message.set_content(body)
    return headers.encode() + message.as_bytes()


def signed(raw: bytes, domain: str, private_key: bytes, **options: object) -> bytes:
    signature = dkim.sign(
        raw, SELECTOR, domain.encode(), private_key,
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"], **options,
    )
    return signature + raw


def check_dkim(raw: bytes, dns: dict[str, bytes], from_address: str | None = FROM) -> AuthVerdict:
    return check_sender(raw, from_address=from_address, trusted_authserv_ids=[], verify_dkim=True, dns_resolver=dns.get)


def check_headers(raw: bytes, from_address: str | None = FROM) -> AuthVerdict:
    return check_sender(raw, from_address=from_address, trusted_authserv_ids=TRUSTED, verify_dkim=False)


# --- our own DKIM verification -----------------------------------------------------------


def test_a_forged_from_without_a_signature_is_not_verified(dns: dict[str, bytes]) -> None:
    verdict = check_dkim(mail(), dns)
    assert (verdict.verified, verdict.dkim, verdict.source) == (False, "none", "dkim")


def test_a_valid_signature_from_the_from_domain_verifies_it(dns: dict[str, bytes], private_key: bytes) -> None:
    verdict = check_dkim(signed(mail(), "jinan.gov.cn", private_key), dns)
    assert (verdict.verified, verdict.dkim, verdict.source) == (True, "pass", "dkim")
    assert verdict.dkim_domains == ["jinan.gov.cn"]


def test_a_signature_from_a_subdomain_of_the_from_domain_is_aligned(
    dns: dict[str, bytes], private_key: bytes
) -> None:
    verdict = check_dkim(signed(mail(), "mail.jinan.gov.cn", private_key), dns)
    assert verdict.verified is True


def test_a_valid_signature_from_another_domain_does_not_verify_the_from(
    dns: dict[str, bytes], private_key: bytes
) -> None:
    verdict = check_dkim(signed(mail(), "attacker.example", private_key), dns)
    assert (verdict.verified, verdict.dkim, verdict.dkim_domains) == (False, "pass", ["attacker.example"])


def test_a_sibling_domain_under_a_public_suffix_is_not_aligned(dns: dict[str, bytes], private_key: bytes) -> None:
    # gov.cn is a public suffix: qingdao.gov.cn must never vouch for jinan.gov.cn.
    verdict = check_dkim(signed(mail(), "qingdao.gov.cn", private_key), dns)
    assert verdict.verified is False


def test_alignment_compares_organisational_domains() -> None:
    assert aligned("mail.163.com", "163.com")
    assert aligned("MAIL.JINAN.GOV.CN.", "jinan.gov.cn")
    assert not aligned("qingdao.gov.cn", "jinan.gov.cn")
    assert not aligned("163.com.attacker.example", "163.com")


def test_a_body_tampered_after_signing_fails(dns: dict[str, bytes], private_key: bytes) -> None:
    raw = signed(mail(body="投资额 12.5 亿元\n"), "jinan.gov.cn", private_key)
    verdict = check_dkim(raw.replace("12.5".encode(), "99.5".encode()), dns)
    assert (verdict.verified, verdict.dkim, verdict.dkim_domains) == (False, "fail", [])


def test_a_body_length_limited_signature_does_not_vouch_for_an_appended_tail(
    dns: dict[str, bytes], private_key: bytes
) -> None:
    raw = signed(mail(), "jinan.gov.cn", private_key, length=True)
    assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: dns.get(name.decode().rstrip(".")))
    verdict = check_dkim(raw + b"\r\nappended by someone else\r\n", dns)
    assert verdict.verified is False


def test_a_signature_whose_key_is_not_in_dns_fails(private_key: bytes) -> None:
    verdict = check_dkim(signed(mail(), "jinan.gov.cn", private_key), dns={})
    assert (verdict.verified, verdict.dkim) == (False, "fail")


def test_a_mail_without_a_from_address_is_not_verified(dns: dict[str, bytes], private_key: bytes) -> None:
    assert check_dkim(signed(mail(), "jinan.gov.cn", private_key), dns, from_address=None).verified is False


# --- Authentication-Results from the receiving server ------------------------------------


def ar(authserv_id: str, results: str) -> str:
    return f"Authentication-Results: {authserv_id};\r\n\t{results}\r\n"


def test_a_trusted_dmarc_pass_verifies_the_from() -> None:
    header = ar("mx.163.com", "spf=pass smtp.mailfrom=jinan.gov.cn; dmarc=pass (p=none) header.from=jinan.gov.cn")
    verdict = check_headers(mail(headers=header))
    assert (verdict.verified, verdict.spf, verdict.dmarc, verdict.source) == (
        True, "pass", "pass", "authentication-results"
    )


def test_the_same_header_from_an_untrusted_server_is_ignored() -> None:
    header = ar("mx.attacker.example", "dmarc=pass header.from=jinan.gov.cn; dkim=pass header.d=jinan.gov.cn")
    verdict = check_headers(mail(headers=header))
    assert (verdict.verified, verdict.dmarc, verdict.dkim, verdict.source) == (False, None, None, "none")


def test_authserv_ids_are_compared_without_regard_to_case() -> None:
    verdict = check_headers(mail(headers=ar("MX.163.COM", "dmarc=pass header.from=jinan.gov.cn")))
    assert verdict.verified is True


def test_a_trusted_dkim_pass_counts_only_when_aligned_with_from() -> None:
    own = check_headers(mail(headers=ar("mx.163.com", "dkim=pass header.d=mail.jinan.gov.cn header.s=s1")))
    other = check_headers(mail(headers=ar("mx.163.com", "dkim=pass header.i=@attacker.example")))
    assert (own.verified, own.dkim_domains) == (True, ["mail.jinan.gov.cn"])
    assert (other.verified, other.dkim, other.dkim_domains) == (False, "pass", ["attacker.example"])


def test_a_dmarc_pass_for_another_header_from_does_not_verify() -> None:
    verdict = check_headers(mail(headers=ar("mx.163.com", "dmarc=pass header.from=attacker.example")))
    assert (verdict.verified, verdict.dmarc) == (False, "pass")


def test_a_trusted_dmarc_pass_without_header_from_is_no_proof() -> None:
    # It may be about another From than the one we read (two From headers, say).
    verdict = check_headers(mail(headers=ar("mx.163.com", "dmarc=pass (p=none)")))
    assert (verdict.verified, verdict.dmarc) == (False, "pass")


def test_a_dmarc_pass_names_the_from_domain_in_any_case() -> None:
    verdict = check_headers(mail(headers=ar("mx.163.com", "dmarc=pass header.from=JINAN.GOV.CN")))
    assert verdict.verified is True


def test_spf_pass_alone_does_not_verify_the_from() -> None:
    verdict = check_headers(mail(headers=ar("mx.163.com", "spf=pass smtp.mailfrom=jinan.gov.cn; dkim=none")))
    assert (verdict.verified, verdict.spf, verdict.dkim) == (False, "pass", "none")


def test_multiple_trusted_headers_combine_and_the_topmost_wins_per_method() -> None:
    headers = (
        ar("mx.attacker.example", "dmarc=pass header.from=jinan.gov.cn")
        + ar("mx.163.com", "spf=softfail smtp.mailfrom=jinan.gov.cn")
        + ar("mx.163.com", "dkim=fail header.d=jinan.gov.cn; dmarc=fail header.from=jinan.gov.cn")
        # Planted by the sender before the mail reached our server: below ours, ignored.
        + ar("mx.163.com", "dkim=pass header.d=jinan.gov.cn; dmarc=pass header.from=jinan.gov.cn")
    )
    verdict = check_headers(mail(headers=headers))
    assert (verdict.verified, verdict.spf, verdict.dkim, verdict.dmarc) == (False, "softfail", "fail", "fail")


def test_separate_trusted_headers_per_method_are_read_together() -> None:
    headers = ar("mx.163.com", "spf=pass smtp.mailfrom=jinan.gov.cn") + ar("mx.163.com", "dkim=pass header.d=jinan.gov.cn")
    verdict = check_headers(mail(headers=headers))
    assert (verdict.verified, verdict.spf, verdict.dkim) == (True, "pass", "pass")


def test_malformed_headers_and_signatures_never_crash(dns: dict[str, bytes]) -> None:
    headers = (
        "Authentication-Results: ;;;==(((\r\n"
        "Authentication-Results: mx.163.com; dkim=\r\n"
        "Authentication-Results: mx.163.com; dmarc=pass header.from=\xe6\xb5\x8b\r\n"
        "DKIM-Signature: v=1; a=rsa-sha256; d=; b=%%%; bh=\r\n"
        "DKIM-Signature: garbage\r\n"
    )
    for raw in (mail(headers=headers), b"\x00\xff not a mail at all", b""):
        verdict = check_sender(
            raw, from_address=FROM, trusted_authserv_ids=TRUSTED, verify_dkim=True, dns_resolver=dns.get
        )
        assert verdict.verified is False


# --- configuration, storage and the staff warning ----------------------------------------


def test_with_no_checks_configured_the_verdict_is_unknown() -> None:
    verdict = check_sender(mail(), from_address=FROM, trusted_authserv_ids=[], verify_dkim=False)
    assert (verdict.verified, verdict.source) == (None, "none")


def test_the_verdict_is_stored_as_plain_json(dns: dict[str, bytes], private_key: bytes) -> None:
    verdict = check_dkim(signed(mail(), "jinan.gov.cn", private_key), dns)
    assert json.loads(json.dumps(verdict.as_dict())) == {
        "verified": True, "spf": None, "dkim": "pass", "dmarc": None,
        "dkim_domains": ["jinan.gov.cn"], "source": "dkim",
    }


def test_an_unverified_sender_gets_a_chinese_warning_naming_the_address() -> None:
    verdict = AuthVerdict(verified=False, spf="softfail", dkim="none", dmarc="fail", source="authentication-results")
    problem = sender_problem(verdict, FROM)
    assert problem is not None and problem.code is ProblemCode.SENDER_UNVERIFIED
    assert problem.severity is Severity.WARNING
    assert FROM in problem.message and "未通过验证（SPF/DKIM/DMARC）" in problem.message
    assert "DMARC=fail" in problem.message


def test_a_sender_that_cannot_be_checked_is_warned_about_the_missing_configuration() -> None:
    problem = sender_problem(AuthVerdict(verified=None), FROM)
    assert problem is not None and "未配置" in problem.message


def test_a_verified_sender_gets_no_warning() -> None:
    assert sender_problem(AuthVerdict(verified=True, dmarc="pass"), FROM) is None


def test_settings_read_the_authenticity_section() -> None:
    campaign = {"name": "2024", "deadline": "2024-02-25T17:00:00+08:00"}
    assert settings_from_dict({"campaign": campaign}).authenticity.require is True
    settings = settings_from_dict(
        {"campaign": campaign, "authenticity": {"trusted_authserv_ids": ["mx.163.com"], "verify_dkim": True}}
    )
    assert settings.authenticity.trusted_authserv_ids == ["mx.163.com"]
    assert settings.authenticity.verify_dkim is True


# --- bounded DKIM work and the From header itself --------------------------------------------


def counting(dns: dict[str, bytes]) -> tuple[list[str], Callable[[str], bytes | None]]:
    calls: list[str] = []

    def resolver(name: str) -> bytes | None:
        calls.append(name)
        return dns.get(name)

    return calls, resolver


def test_a_mail_with_500_signatures_costs_at_most_three_lookups(dns: dict[str, bytes], private_key: bytes) -> None:
    raw = mail()
    signature = signed(raw, "attacker.example", private_key)[: -len(raw)]
    calls, resolver = counting(dns)
    verdict = check_sender(signature * 500 + raw, from_address=FROM, trusted_authserv_ids=[], verify_dkim=True,
                           dns_resolver=resolver)
    assert len(calls) == MAX_SIGNATURES == 3
    assert verdict.verified is False


def test_signatures_aligned_with_from_are_checked_first(dns: dict[str, bytes], private_key: bytes) -> None:
    raw = mail()
    others = signed(raw, "attacker.example", private_key)[: -len(raw)] * 5
    calls, resolver = counting(dns)
    verdict = check_sender(others + signed(raw, "mail.jinan.gov.cn", private_key), from_address=FROM,
                           trusted_authserv_ids=[], verify_dkim=True, dns_resolver=resolver)
    assert calls[0] == "s2024._domainkey.mail.jinan.gov.cn"
    assert (verdict.verified, verdict.dkim_domains[0]) == (True, "mail.jinan.gov.cn")


@pytest.mark.parametrize(("header", "words"), [(b"From: a@x.cn, b@y.cn", "多个地址"), (b"Subject: x", "没有发件人"),
                                               (b"From: a@x.cn <b@y.cn>", "无法解析")])
def test_a_from_without_one_usable_address_is_a_staff_warning(header: bytes, words: str) -> None:
    problem = sender_header_problem(parse_mail(header + b"\r\n\r\nbody"))
    assert problem is not None and problem.code is ProblemCode.SENDER_AMBIGUOUS
    assert problem.severity is Severity.WARNING and words in problem.message


def test_a_from_with_one_address_has_no_sender_header_problem() -> None:
    assert sender_header_problem(parse_mail(mail())) is None


def test_an_over_long_authentication_results_header_is_ignored_unparsed() -> None:
    # authres needs minutes for a few MB; no receiving server writes 4,000 characters.
    padding = "; ".join(["dkim=none header.d=jinan.gov.cn"] * 200)
    verdict = check_headers(mail(headers=ar("mx.163.com", "dmarc=pass header.from=jinan.gov.cn; " + padding)))
    assert (verdict.verified, verdict.dmarc) == (False, None)


def test_only_the_topmost_authentication_results_headers_are_read() -> None:
    planted = ar("mx.attacker.example", "dkim=none") * MAX_AUTH_RESULTS
    verdict = check_headers(mail(headers=planted + ar("mx.163.com", "dmarc=pass header.from=jinan.gov.cn")))
    assert (verdict.verified, verdict.dmarc) == (False, None)
