"""Bounce messages for tests: a corpus body wrapped as the plain message an MTA would return, and DSN/ARF builders."""

from __future__ import annotations

from email.message import EmailMessage
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

TOKEN = "a" * 40
BOUNCE_TO = f"bounce+{TOKEN}@bounces.example.com"


def plain_bounce(body: str, subject: str = "Undelivered Mail Returned to Sender") -> bytes:
    """A corpus body as the single text part of a prose bounce sent to a VERP address."""
    msg = EmailMessage()
    msg["From"] = "Mail Delivery System <MAILER-DAEMON@mx.example.net>"
    msg["To"] = BOUNCE_TO
    msg["Subject"] = subject
    msg.set_content(body)
    return msg.as_bytes()


def dsn(blocks: list[dict[str, str]], original: str = "", human: str = "Delivery failed.",
        report_type: str = "delivery-status") -> bytes:
    """An RFC 3464 multipart/report with one per-recipient block per dict, and optionally the original's headers."""
    msg = MIMEMultipart("report", report_type=report_type)
    msg["From"] = "MAILER-DAEMON@mx.example.net"
    msg["To"] = BOUNCE_TO
    msg["Subject"] = "Delivery Status Notification"
    msg["Auto-Submitted"] = "auto-replied"
    msg.attach(MIMEText(human))
    status = "Reporting-MTA: dns; mx.example.net\n\n" + "\n\n".join(
        "\n".join(f"{k}: {v}" for k, v in block.items()) for block in blocks) + "\n"
    part = MIMEBase("message", "delivery-status")
    part.set_payload(status)
    msg.attach(part)
    if original:
        headers = MIMEBase("text", "rfc822-headers")
        headers.set_payload(original)
        msg.attach(headers)
    return msg.as_bytes()
