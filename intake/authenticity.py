"""Is the From address real? SPF/DKIM/DMARC evidence, believed only where it can be trusted.

Anyone can write 济南市总工会's address into From. Two sources of evidence count:

- `Authentication-Results` headers (RFC 8601) added by our own receiving server, named by
  its authserv-id in `trusted_authserv_ids`. Any other copy of the header may have been
  written by the sender. Headers are prepended hop by hop, so for each method the topmost
  trusted header wins over a lower one a sender may have planted with the same id.
- DKIM signatures we verify ourselves with dkimpy (needs DNS; optional).

The From is verified by a DMARC pass whose header.from names the From's domain, or by a
DKIM pass whose d= is aligned with it (same organisational domain per the Public Suffix
List, so mail.163.com aligns with 163.com but qingdao.gov.cn does not align with
jinan.gov.cn). SPF alone never verifies From: it authenticates the envelope sender, which
the sender chooses. At most MAX_SIGNATURES DKIM signatures are checked, aligned ones first.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from itertools import islice

import authres
import dkim
from publicsuffixlist import PublicSuffixList

from intake.mailread import MailView
from intake.mime import FROM_MISSING, FROM_MULTIPLE, header_block
from parsers.model import Problem, ProblemCode

AUTH_RESULTS = "Authentication-Results"
# authres parses a header in super-linear time (one 3.4 MB header took 530 s). Our own
# server's headers are the topmost few and short, so only the first MAX_AUTH_RESULTS are
# read and a longer one than MAX_AUTH_RESULTS_CHARS is ignored as malformed.
MAX_AUTH_RESULTS = 20
MAX_AUTH_RESULTS_CHARS = 4_000
SOURCE_HEADER = "authentication-results"
SOURCE_DKIM = "dkim"
SOURCE_NONE = "none"


@dataclass
class AuthVerdict:
    # True: From is authenticated; False: failure, or no evidence where evidence was
    # required; None: cannot tell (no checks configured).
    verified: bool | None
    spf: str | None = None  # results as recorded: "pass", "fail", "softfail", "none", ...
    dkim: str | None = None
    dmarc: str | None = None
    dkim_domains: list[str] = field(default_factory=list)  # d= of passing signatures
    source: str = SOURCE_NONE  # "authentication-results" | "dkim" | "none"

    def as_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the list ships inside the package: no network


def organisational_domain(domain: str) -> str:
    """163.com for mail.163.com, jinan.gov.cn for mail.jinan.gov.cn (RFC 7489 §3.2)."""
    domain = domain.strip().rstrip(".").lower()
    return _psl().privatesuffix(domain) or domain


def aligned(domain: str, from_domain: str) -> bool:
    """DMARC relaxed alignment: both domains share one organisational domain."""
    return organisational_domain(domain) == organisational_domain(from_domain)


def domain_of(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    domain = address.rsplit("@", 1)[1].strip().strip(">").rstrip(".").lower()
    return domain or None


@dataclass
class _Evidence:
    spf: str | None = None
    dkim: str | None = None
    dmarc: str | None = None
    dmarc_from: str | None = None  # header.from of the dmarc result
    dkim_passes: list[str] = field(default_factory=list)  # d= (or i= domain) of dkim=pass

    @property
    def found(self) -> bool:
        return any(value is not None for value in (self.spf, self.dkim, self.dmarc))


def _header_values(raw: bytes, name: str) -> list[str]:
    # compat32 hands back header text as written (only unfolded here), which is what the
    # RFC 8601 grammar expects; a header that is not even parseable simply yields nothing.
    # Only the header block is parsed: the parser would otherwise copy the whole body.
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(header_block(raw))
    return [re.sub(r"\r?\n[ \t]", " ", str(value)) for value in headers.get_all(name) or []]


def _property(result: authres.AuthenticationResult, ptype: str, name: str) -> str | None:
    for prop in result.properties:
        if prop.type.lower() == ptype and prop.name.lower() == name and prop.value:
            return str(prop.value)
    return None


def _trusted_evidence(raw: bytes, trusted_ids: Collection[str]) -> _Evidence:
    trusted = {authserv_id.lower() for authserv_id in trusted_ids}
    evidence = _Evidence()
    taken: set[str] = set()  # methods already answered by a header higher up
    for value in islice(_header_values(raw, AUTH_RESULTS), MAX_AUTH_RESULTS):
        if len(value) > MAX_AUTH_RESULTS_CHARS:
            continue
        try:
            header = authres.AuthenticationResultsHeader.parse_value(value)
        except Exception:  # noqa: BLE001 - malformed headers are ignored, never fatal
            continue
        if str(header.authserv_id or "").lower() not in trusted:
            continue
        by_method: dict[str, list[authres.AuthenticationResult]] = {}
        for result in header.results:
            by_method.setdefault(str(result.method).lower(), []).append(result)
        for method in ("spf", "dkim", "dmarc"):
            if method in taken or method not in by_method:
                continue
            taken.add(method)
            results = by_method[method]
            if method == "spf":
                evidence.spf = str(results[0].result).lower()
            elif method == "dmarc":
                evidence.dmarc = str(results[0].result).lower()
                evidence.dmarc_from = _property(results[0], "header", "from")
            else:
                outcomes = [str(r.result).lower() for r in results]
                evidence.dkim = "pass" if "pass" in outcomes else outcomes[0]
                for result in results:
                    signer = _property(result, "header", "d") or domain_of(_property(result, "header", "i"))
                    if str(result.result).lower() == "pass" and signer:
                        evidence.dkim_passes.append(signer.lower())
    return evidence


def _txt_lookup(resolver: Callable[[str], bytes | None]) -> Callable[..., bytes | None]:
    def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        return resolver(text.rstrip("."))

    return dnsfunc


# Each signature costs a DNS lookup and an RSA check; a mail may carry hundreds.
MAX_SIGNATURES = 3


def _signature_order(checker: dkim.DKIM, from_domain: str | None) -> list[int]:
    """Indexes of the signatures worth checking: those whose d= aligns with From first,
    at most MAX_SIGNATURES in all."""
    signatures = [value for name, value in checker.headers if name.lower() == b"dkim-signature"]
    aligned_first: list[int] = []
    others: list[int] = []
    for idx, value in enumerate(signatures):
        match = re.search(rb"(?:^|;)\s*d\s*=\s*([^;\s]+)", value)
        signer = match.group(1).decode("ascii", "replace") if match else ""
        ok = from_domain is not None and signer and aligned(signer, from_domain)
        (aligned_first if ok else others).append(idx)
    return (aligned_first + others)[:MAX_SIGNATURES]


def _verify_signatures(
    raw: bytes, resolver: Callable[[str], bytes | None] | None, from_domain: str | None
) -> tuple[str, list[str]]:
    """("none" | "pass" | "fail", d= of each signature that verifies and covers From)."""
    dnsfunc = _txt_lookup(resolver) if resolver is not None else dkim.get_txt
    if not _header_values(raw, "DKIM-Signature"):
        return "none", []
    try:
        checker = dkim.DKIM(raw)
    except Exception:  # noqa: BLE001 - an unparseable message has no valid signature
        return "fail", []
    passes: list[str] = []
    for idx in _signature_order(checker, from_domain):
        try:
            ok = checker.verify(idx, dnsfunc=dnsfunc)
        except Exception:  # noqa: BLE001 - dkimpy raises for bad keys, tags and DNS
            continue
        fields = checker.signature_fields or {}
        # A signature must cover From to vouch for it, and l= lets anyone append an
        # unsigned tail to the body, so such a signature proves nothing about the mail.
        if ok and b"from" in checker.include_headers and b"l" not in fields:
            passes.append(checker.domain.decode("ascii", "replace").lower())
    return ("pass" if passes else "fail"), passes


def check_sender(
    raw: bytes,
    *,
    from_address: str | None,
    trusted_authserv_ids: Collection[str],
    verify_dkim: bool,
    dns_resolver: Callable[[str], bytes | None] | None = None,
) -> AuthVerdict:
    """Judge whether `from_address` is authenticated; never raises on a bad message.

    `raw` is the whole mail when verify_dkim is on; otherwise its header block is enough.

    dns_resolver(name) returns the TXT record of e.g. "sel._domainkey.163.com" as bytes
    (None when there is none); without it dkimpy asks DNS itself.
    """
    if not trusted_authserv_ids and not verify_dkim:
        return AuthVerdict(verified=None)
    from_domain = domain_of(from_address)
    evidence = _trusted_evidence(raw, trusted_authserv_ids) if trusted_authserv_ids else _Evidence()
    own_result, own_passes = _verify_signatures(raw, dns_resolver, from_domain) if verify_dkim else (None, [])

    def aligned_with_from(domain: str) -> bool:
        return from_domain is not None and aligned(domain, from_domain)

    # A dmarc=pass vouches for the domain it names in header.from; without that name it
    # may be about another From than the one we read, so it proves nothing.
    dmarc_ok = (
        evidence.dmarc == "pass"
        and from_domain is not None
        and evidence.dmarc_from is not None
        and evidence.dmarc_from.strip().rstrip(".").lower() == from_domain
    )
    header_ok = dmarc_ok or any(aligned_with_from(d) for d in evidence.dkim_passes)
    own_ok = any(aligned_with_from(d) for d in own_passes)
    if header_ok or (evidence.found and not own_ok):
        source = SOURCE_HEADER
    elif own_result is not None:
        source = SOURCE_DKIM
    else:
        source = SOURCE_NONE
    dkim_domains = list(dict.fromkeys(evidence.dkim_passes + own_passes))
    return AuthVerdict(
        verified=header_ok or own_ok,
        spf=evidence.spf,
        dkim="pass" if dkim_domains else (evidence.dkim or own_result),
        dmarc=evidence.dmarc,
        dkim_domains=dkim_domains,
        source=source,
    )


def sender_problem(verdict: AuthVerdict, from_address: str | None) -> Problem | None:
    """The staff-facing warning for a From that is not authenticated; None when it is."""
    if verdict.verified is True:
        return None
    sender = f"发件人地址 {from_address}" if from_address else "发件人地址（缺失）"
    if verdict.verified is None:
        detail = "未配置发件人验证（authenticity.trusted_authserv_ids 或 verify_dkim），无法确认"
    else:
        parts = [f"{name.upper()}={value}" for name, value in
                 (("spf", verdict.spf), ("dkim", verdict.dkim), ("dmarc", verdict.dmarc)) if value]
        if verdict.dkim_domains:
            parts.append("签名域 " + "、".join(verdict.dkim_domains) + " 与发件人域名不一致")
        detail = "检查结果：" + ("，".join(parts) if parts else "邮件中没有可信的验证结果")
    return Problem(
        code=ProblemCode.SENDER_UNVERIFIED,
        message=f"{sender}未通过验证（SPF/DKIM/DMARC）：{detail}。"
        "发件人地址可被伪造，请核实该邮件确由该单位发出。",
    )


_FROM_PROBLEMS = {
    FROM_MISSING: "邮件没有发件人（From）地址",
    FROM_MULTIPLE: "邮件的发件人（From）有多个地址",
}


def sender_header_problem(mail: MailView) -> Problem | None:
    """The staff-facing warning for a From that names no single usable address; such a
    mail is matched to no unit by its sender and never answered."""
    if mail.from_problem is None:
        return None
    what = _FROM_PROBLEMS.get(mail.from_problem, "邮件的发件人（From）无法解析为一个有效地址")
    return Problem(
        code=ProblemCode.SENDER_AMBIGUOUS,
        message=f"{what}，无法确认发件人，未按发件人识别单位，也不会自动回复。请核实该邮件由哪个单位发出。",
    )
