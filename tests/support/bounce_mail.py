"""Bounce messages for tests: a corpus body wrapped as the plain message an MTA would return, and DSN/ARF builders."""

from __future__ import annotations

from email.message import EmailMessage

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
    status = "Reporting-MTA: dns; mx.example.net\n\n" + "\n\n".join(
        "\n".join(f"{k}: {v}" for k, v in block.items()) for block in blocks) + "\n"
    parts = [f"Content-Type: text/plain; charset=us-ascii\n\n{human}\n",
             f"Content-Type: message/{report_type}\n\n{status}"]
    if original:
        parts.append(f"Content-Type: text/rfc822-headers\n\n{original}")
    body = "".join(f"--BOUNDARY\n{part}\n" for part in parts) + "--BOUNDARY--\n"
    return (f"From: MAILER-DAEMON@mx.example.net\nTo: {BOUNCE_TO}\nSubject: Delivery Status Notification\n"
            f"Auto-Submitted: auto-replied\nMIME-Version: 1.0\n"
            f'Content-Type: multipart/report; report-type={report_type}; boundary="BOUNDARY"\n\n{body}').encode()
