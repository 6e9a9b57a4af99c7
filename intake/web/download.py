"""Files leave the console as downloads, never as pages: a sender's bytes must not run in
staff's browser under the console's origin."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from starlette.responses import Response

# What a download may be labelled as; anything else is application/octet-stream.
SAFE_TYPES = {
    ".pdf": "application/pdf",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".xls": "application/vnd.ms-excel",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".doc": "application/msword",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
    ".zip": "application/zip",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
}


def safe_type(name: str) -> str:
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return SAFE_TYPES.get(suffix, "application/octet-stream")


def ascii_fallback(name: str) -> str:
    """The filename= for old clients: printable ASCII without quotes, separators or controls."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    plain = "".join(c if c.isalnum() or c in "._-" else "_" for c in plain).strip("._") or "file"
    suffix = name.rsplit(".", 1)[-1] if "." in name else ""
    if suffix.isascii() and suffix.isalnum() and not plain.endswith("." + suffix):
        plain += "." + suffix
    return plain[:100]


def content_disposition(name: str) -> str:
    # RFC 6266 / 5987: filename* carries the real name percent-encoded, so no character of
    # it can end the header or start a new one.
    clean = "".join(c for c in name if unicodedata.category(c)[0] != "C").replace("/", "_").replace("\\", "_")
    return f"attachment; filename=\"{ascii_fallback(clean)}\"; filename*=UTF-8''{quote(clean[:200], safe='')}"


def attachment(data: bytes, name: str, media_type: str | None = None) -> Response:
    headers = {"Content-Disposition": content_disposition(name), "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'none'; sandbox", "Cache-Control": "private, no-store"}
    return Response(data, media_type=media_type or safe_type(name), headers=headers)


