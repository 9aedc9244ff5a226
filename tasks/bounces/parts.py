"""A returned message taken apart: its parts as text, the original's headers, its subject, token and addresses."""

from __future__ import annotations

import email.errors
import re
from email.header import decode_header, make_header
from email.message import Message

_TOKEN = re.compile(r"bounce\+([A-Za-z0-9]{40})@", re.I)
_HEADER_LINE = re.compile(r"^(Message-ID|To|X-Mailflow-Send):[ \t]*(.+)$", re.I | re.M)
_ADDR_IN = re.compile(r"[^\s<>;:\"',()\[\]]+@[\w-]+(?:\.[\w-]+)*")
MAX_PART = 256 * 1024  # huge attachments are never read: a bounce's own text is short
REPORT_TYPES = ("message/delivery-status", "message/global-delivery-status")


def message_parts(msg: Message) -> dict[str, object]:
    """The first part of each content type that matters, as text (or as the Message for reports and originals)."""
    found: dict[str, object] = {}
    for part in _walk(msg):
        ctype = part.get_content_type()
        if ctype in found:
            continue
        if ctype in ("message/rfc822", "message/global") and part.is_multipart():
            inner = part.get_payload(0)
            found[ctype] = inner if isinstance(inner, Message) else None
            continue
        if ctype.startswith("multipart/"):
            continue
        if ctype in (*REPORT_TYPES, "message/feedback-report", "text/rfc822-headers", "text/plain", "text/html",
                     "message/global-headers"):
            found[ctype] = _text(part)
    return found


def _walk(msg: Message, depth: int = 0):
    """Parts in order, never inside a returned message: the original's own text is not the bounce's."""
    yield msg
    if depth < 20 and msg.is_multipart() and not msg.get_content_type().startswith("message/"):
        for part in msg.get_payload():
            if isinstance(part, Message):
                yield from _walk(part, depth + 1)


def _text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):  # compat32 parses message/delivery-status into header blocks
        return "\n\n".join(str(p) if isinstance(p, Message) else "" for p in payload)
    data = part.get_payload(decode=True)
    if data is None:
        return payload if isinstance(payload, str) else ""
    data = data[:MAX_PART]
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, errors="replace")
    except (LookupError, TypeError, ValueError):
        return data.decode("utf-8", errors="replace")


def report_fields(block: str) -> dict[str, str]:
    """RFC 822-style fields of one DSN block, folded lines joined, names lower-cased."""
    out: dict[str, str] = {}
    name = None
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and name:
            out[name] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            out.setdefault(name, value.strip())
    return out


def original_headers(parts: dict) -> dict:
    """Message-ID, X-Mailflow-Send and To of the returned message, from its copy or its quoted headers."""
    inner = parts.get("message/rfc822") or parts.get("message/global")
    if isinstance(inner, Message):
        return {k: str(inner[k]).strip() for k in ("Message-ID", "X-Mailflow-Send", "To", "From") if inner[k] is not None}
    quoted = parts.get("text/rfc822-headers") or parts.get("message/global-headers") or parts.get("text/plain") or ""
    out: dict[str, str] = {}
    for match in _HEADER_LINE.finditer(quoted[-MAX_PART:]):
        name = {"message-id": "Message-ID", "to": "To", "x-mailflow-send": "X-Mailflow-Send"}[match.group(1).lower()]
        out.setdefault(name, match.group(2).strip())
    return out


def return_path_token(msg: Message) -> str | None:
    for name in ("X-Original-To", "Delivered-To", "Envelope-To", "To", "X-Envelope-To"):
        for value in msg.get_all(name) or ():
            match = _TOKEN.search(str(value))
            if match:
                return match.group(1)
    return None


def subject_of(msg: Message) -> str:
    raw = msg.get("Subject")
    if raw is None:
        return ""
    try:
        return str(make_header(decode_header(str(raw))))
    except (LookupError, ValueError, UnicodeError, email.errors.HeaderParseError):
        return str(raw)


def address_in(value: str | None) -> str | None:
    if not value:
        return None
    match = _ADDR_IN.search(value)
    return match.group(0).rstrip(".") if match else None


def html_text(html: object) -> str:
    if not isinstance(html, str) or not html:
        return ""
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", html)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>", "\n", text)
    text = re.sub(r"<[^>]+>", " ", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("&nbsp;", " ")
