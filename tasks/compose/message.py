"""Envelope, HeaderInjection, and the reference EmailMessage builder the fast MIME writer is tested against."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class HeaderInjection(ValueError):
    """A header value carried a line break or control character; the message is not sent."""


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipient: str
    data: bytes
    smtputf8: bool = False  # a non-ASCII address: only a relay that offers SMTPUTF8 may take it (RFC 6531)


def safe(name: str, value: str) -> str:
    if _CONTROL.search(value):
        raise HeaderInjection(f"header {name} contains a line break or control character")
    return value


def build_message(
    *,
    from_addr: str,
    to_email: str,
    to_name: str | None,
    subject: str,
    html: str,
    text: str,
    reply_to: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """A multipart/alternative message (text, then HTML) as CRLF bytes ready for DATA."""
    sender_name, sender_email = parseaddr(safe("From", from_addr))
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(display_name=sender_name, addr_spec=sender_email)
    msg["To"] = Address(display_name=safe("To", to_name or ""), addr_spec=safe("To", to_email))
    msg["Subject"] = safe("Subject", subject)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=sender_email.rpartition("@")[2])
    if reply_to:
        msg["Reply-To"] = ", ".join(a for _, a in getaddresses([safe("Reply-To", reply_to)]))
    for name, value in (extra_headers or {}).items():
        msg[safe("header name", name)] = safe(name, value)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg.as_bytes()


def envelope_sender(from_addr: str) -> str:
    return parseaddr(from_addr)[1]
