"""Large-attachment links (超大附件): files a webmail keeps on its own servers and sends as a
link in the body, because they exceed its attachment limit.

163/126/yeah write an HTML block "从网易163邮箱发来的超大附件" whose entries link (icon, file
name, 下载) to mail.163.com/large-attachment-download/... or dashi.163.com/html/
cloud-attachment-download?key=..., followed by "(25.3M, 2024年3月20日 10:00 到期)". QQ Mail
writes a div titled "name\\n文件大小：25.3M\\n到期时间：2024年03月20日 10:00" around a link to
wx.mail.qq.com/ftn/download?... or mail.qq.com/cgi-bin/ftnExs_download?... (valid ~30 days).
Their text/plain parts and forwards carry the same facts as text.

Pure functions over body text: the HTML is flattened to text with each link's URL written
where the link stands, so one recogniser reads HTML, plain text and forwards alike. The
download ([links] download) is `fetch_link`: only those hosts, a byte cap and a deadline.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

# The providers' download hosts and the paths their links use.
PROVIDER_LINKS = (
    ("mail.163.com", "/large-attachment-download/"),
    ("mail.126.com", "/large-attachment-download/"),
    ("mail.yeah.net", "/large-attachment-download/"),
    ("dashi.163.com", "/html/cloud-attachment-download"),
    ("wx.mail.qq.com", "/ftn/download"),
    ("mail.qq.com", "/cgi-bin/ftnExs_download"),
    ("exmail.qq.com", "/cgi-bin/ftnExs_download"),
)
PROVIDER_HOSTS = frozenset(host for host, _ in PROVIDER_LINKS)
MAX_LINKS = 20
MAX_BODY_CHARS = 400_000  # what is read of one body: the providers' blocks come early
_URL = re.compile(r"https?://[^\s<>\"'()（）\[\]{}，。]+", re.IGNORECASE)
_NAME = re.compile(
    r"[^\s/\\:*?\"<>|()\[\],，:：]{1,150}\.(?:pdf|ofd|xlsx|xlsm|xls|et|ett|csv|docx|doc|wps|zip|rar|7z|jpe?g|png|heic)\b",
    re.IGNORECASE,
)
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMG])(?:B|iB)?\b", re.IGNORECASE)
_EXPIRY = re.compile(r"(\d{4})\s*[年/-]\s*(\d{1,2})\s*[月/-]\s*(\d{1,2})\s*日?\s*(?:(\d{1,2})\s*[:：]\s*(\d{2}))?")
_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}
CHINA = ZoneInfo("Asia/Shanghai")  # the providers state expiry in Beijing time
_SCAN_PDF = {"pdf", "ofd", "jpg", "jpeg", "png", "heic"}
_EDITABLE = {"xlsx", "xlsm", "xls", "et", "ett", "csv", "docx", "doc", "wps"}
_ARCHIVES = {"zip", "rar", "7z"}  # could hold either


@dataclass(frozen=True)
class LargeAttachment:
    url: str
    name: str | None  # as the body states it
    size: int | None  # bytes, as stated (25.3M → 26528972)
    expires_at: dt.datetime | None

    @property
    def covers(self) -> frozenset[str]:
        """What its name says it is: "pdf" (the stamped copy), "editable", or both (an archive)."""
        suffix = (self.name or "").rpartition(".")[2].lower()
        if suffix in _SCAN_PDF:
            return frozenset({"pdf"})
        if suffix in _EDITABLE:
            return frozenset({"editable"})
        return frozenset({"pdf", "editable"}) if suffix in _ARCHIVES else frozenset()


def is_provider_link(url: str, hosts: frozenset[str] | None = None) -> bool:
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    if hosts is not None:
        return host in hosts
    return any(host == h and parts.path.startswith(p) for h, p in PROVIDER_LINKS)


def find_links(bodies: list[tuple[str, str]]) -> list[LargeAttachment]:
    """Every large-attachment link in the bodies ((content type, text) pairs: text/html or
    text/plain), first occurrence first, one per URL, at most MAX_LINKS."""
    found: dict[str, LargeAttachment] = {}
    for content_type, body in bodies:
        text = flatten_html(body[:MAX_BODY_CHARS]) if content_type == "text/html" else body[:MAX_BODY_CHARS]
        for link in links_in_text(text):
            known = found.get(link.url)
            if known is None:
                found[link.url] = link
            elif known.name is None or known.size is None or known.expires_at is None:
                found[link.url] = LargeAttachment(link.url, known.name or link.name, known.size or link.size,
                                                  known.expires_at or link.expires_at)
    return list(found.values())[:MAX_LINKS]


def links_in_text(text: str) -> list[LargeAttachment]:
    """The links in flat text; each one's name, size and expiry are the matches nearest to
    where its URL stands, within the stretch up to the neighbouring links."""
    hits = [(m.start(), m.end(), html.unescape(m.group(0)).rstrip(".,;")) for m in _URL.finditer(text)]
    hits = [h for h in hits if is_provider_link(h[2])]
    groups: list[tuple[str, list[tuple[int, int]]]] = []  # consecutive occurrences of one URL
    for start, end, url in hits:
        if groups and groups[-1][0] == url:
            groups[-1][1].append((start, end))
        else:
            groups.append((url, [(start, end)]))
    links = []
    for i, (url, spans) in enumerate(groups):
        low = groups[i - 1][1][-1][1] if i else max(0, spans[0][0] - 600)
        high = groups[i + 1][1][0][0] if i + 1 < len(groups) else min(len(text), spans[-1][1] + 600)
        links.append(LargeAttachment(
            url=url,
            name=_nearest(_NAME, text, low, high, spans, lambda m: m.group(0).strip()),
            size=_nearest(_SIZE, text, low, high, spans, _bytes),
            expires_at=_nearest(_EXPIRY, text, low, high, spans, _expiry),
        ))
    return links


def _nearest(pattern: re.Pattern[str], text: str, low: int, high: int, spans: list[tuple[int, int]], read):  # noqa: ANN001, ANN202
    """The value read from the match of `pattern` in text[low:high] nearest to the URL's
    occurrences (`spans`), never one inside a URL."""
    best = None
    for match in pattern.finditer(text, low, high):
        if any(start <= match.start() < end for start, end in spans):
            continue
        distance = min(start - match.end() if match.end() <= start else match.start() - end for start, end in spans)
        value = read(match)
        if value is not None and (best is None or distance < best[0]):
            best = (distance, value)
    return best[1] if best else None


def _bytes(match: re.Match[str]) -> int | None:
    return round(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _expiry(match: re.Match[str]) -> dt.datetime | None:
    year, month, day, hour, minute = (int(g) if g else 0 for g in match.groups())
    try:
        return dt.datetime(year, month, day, hour, minute, tzinfo=CHINA)
    except ValueError:
        return None


class _Flattener(HTMLParser):
    """HTML as text with every link's URL written after its text, followed by the title
    attributes of the elements around it (QQ states name, size and expiry there)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._links: list[str] = []
        self._titles: list[tuple[str, str]] = []  # (tag, title) of open elements that have one

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v or "" for k, v in attrs}
        if values.get("title") and tag != "a":
            self._titles.append((tag, values["title"]))
        if tag == "a":
            if values.get("filename"):  # 163 names the file on the link itself
                self.chunks.append(f" {values['filename']} ")
            self._links.append(values.get("href", ""))
        elif tag in ("br", "p", "div", "tr", "li"):
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._links:
            titles = " ".join(title for _, title in self._titles[-2:])
            self.chunks.append(f" {self._links.pop()} {titles}\n")
        elif self._titles and self._titles[-1][0] == tag:
            self._titles.pop()

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def flatten_html(body: str) -> str:
    flattener = _Flattener()
    flattener.feed(body)
    flattener.close()
    return "".join(flattener.chunks)


# --- download ([links] download) --------------------------------------------------------


class LinkFetchError(Exception):
    """The link could not be fetched within the limits; the message is Chinese, for staff."""


@dataclass(frozen=True)
class Fetched:
    data: bytes
    name: str | None  # from Content-Disposition, when the server names the file


_DISPOSITION_NAME = re.compile(r"filename\*?=(?:UTF-8'')?\"?([^\";]+)", re.IGNORECASE)


def fetch_link(url: str, *, max_bytes: int, seconds: float, hosts: frozenset[str] = PROVIDER_HOSTS,
               follow: int = 2) -> Fetched:
    """The file behind a link: the response itself when it is not a web page, else the
    page's first download link (the providers' landing pages), `follow` hops at most.
    Only `hosts` are ever contacted, over the URL's own scheme; at most max_bytes are read."""
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    for _hop in range(follow + 1):
        if (urllib.parse.urlsplit(url).hostname or "").lower() not in hosts:
            raise LinkFetchError(f"链接指向未允许的站点，未下载：{url[:200]}")
        left = (deadline - dt.datetime.now(dt.UTC)).total_seconds()
        if left <= 0:
            raise LinkFetchError("下载超时")
        data, content_type, disposition = _get(url, max_bytes, left)
        if "html" not in content_type or "attachment" in disposition.lower():
            named = _DISPOSITION_NAME.search(disposition)
            return Fetched(data, urllib.parse.unquote(named.group(1)) if named else None)
        target = _download_target(data.decode("utf-8", "replace"), url)
        if target is None:
            raise LinkFetchError("链接页面中没有找到下载地址（可能已过期或需要登录）")
        url = target
    raise LinkFetchError("链接跳转次数过多")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - hops are ours to check
        return None


def _get(url: str, max_bytes: int, seconds: float) -> tuple[bytes, str, str]:
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers={"User-Agent": "intake"})
    try:
        with opener.open(request, timeout=seconds) as response:
            data = response.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise LinkFetchError(f"文件超过 {max_bytes // (1024 * 1024)} MB 上限，未下载")
            return data, response.headers.get_content_type(), response.headers.get("Content-Disposition", "")
    except urllib.error.HTTPError as err:
        location = err.headers.get("Location") if 300 <= err.code < 400 else None
        if location:  # a redirect becomes a page whose only link is the target (checked next hop)
            return f'<a download href="{html.escape(urllib.parse.urljoin(url, location))}">'.encode(), "text/html", ""
        raise LinkFetchError(f"下载失败（HTTP {err.code}）") from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise LinkFetchError(f"下载失败（{type(err).__name__}）") from err


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.targets: list[tuple[bool, str]] = []  # (has download attribute, href)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v for k, v in attrs}
        if tag == "a" and values.get("href"):
            self.targets.append(("download" in values, values["href"] or ""))


def _download_target(page: str, base: str) -> str | None:
    anchors = _Anchors()
    anchors.feed(page[:MAX_BODY_CHARS])
    chosen = [href for marked, href in anchors.targets if marked] or [
        href for _, href in anchors.targets if "download" in href.lower()
    ]
    return urllib.parse.urljoin(base, chosen[0]) if chosen else None
