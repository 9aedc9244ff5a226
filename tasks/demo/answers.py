"""What the demo's receiver mails back after accepting a message: an RFC 3464 DSN (a late bounce) or an auto-reply."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from email.utils import format_datetime, formatdate

LATE_DOMAIN = "late.example"  # accepted at SMTP time, then bounced with a DSN (mailbox gone behind a gateway)
AWAY_DOMAIN = "away.example"  # delivered, and answered with an RFC 3834 auto-reply
REPORTING_MTA = "mx.late.example"
_DIAGNOSTIC = "smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in local recipient table"


def _head(raw: bytes) -> bytes:
    """The returned message's header block, CRLF line ends (what `text/rfc822-headers` carries)."""
    raw = raw.replace(b"\r\n", b"\n")
    return raw.split(b"\n\n", 1)[0].replace(b"\n", b"\r\n") + b"\r\n"


def _header(raw: bytes, name: str) -> str:
    for line in _head(raw).split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower().encode():
            return value.strip().decode("ascii", "replace")
    return ""


def late_dsn(return_path: str, recipient: str, original: bytes) -> bytes:
    """A Postfix-shaped RFC 3464 report of a failed delivery after acceptance, returning the original's headers."""
    boundary = os.urandom(8).hex()
    date = formatdate(usegmt=True)
    prose = (f"This is the mail system at host {REPORTING_MTA}.\r\n\r\nI'm sorry to have to inform you that your message "
             "could not\r\nbe delivered to one or more recipients.\r\n\r\n"
             f"<{recipient}>: host {REPORTING_MTA} said: 550 5.1.1 User unknown in local recipient table\r\n")
    status = (f"Reporting-MTA: dns; {REPORTING_MTA}\r\nArrival-Date: {date}\r\n\r\nFinal-Recipient: rfc822; {recipient}\r\n"
              f"Original-Recipient: rfc822;{recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
              f"Diagnostic-Code: {_DIAGNOSTIC.format(rcpt=recipient)}\r\n")
    head = (f"From: MAILER-DAEMON@{REPORTING_MTA} (Mail Delivery System)\r\nTo: {return_path}\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nDate: {date}\r\nMessage-ID: <{boundary}@{REPORTING_MTA}>\r\n"
            "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n\r\n')
    parts = [b"Content-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + prose.encode(),
             b"Content-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n" + status.encode(),
             b"Content-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n" + _head(original)]
    sep = f"--{boundary}\r\n".encode()
    return (f"Return-Path: <>\r\nDelivered-To: {return_path}\r\n" + head).encode() + b"".join(sep + p + b"\r\n" for p in parts) \
        + f"--{boundary}--\r\n".encode()


def auto_reply(return_path: str, recipient: str, original: bytes) -> bytes:
    """An RFC 3834 vacation answer to the return path, naming the message it answers (In-Reply-To, References)."""
    answered = _header(original, "Message-ID")
    subject = _header(original, "Subject")
    return (f"Return-Path: <>\r\nDelivered-To: {return_path}\r\nFrom: <{recipient}>\r\nTo: {return_path}\r\n"
            f"Subject: Out of office: {subject}\r\nDate: {format_datetime(datetime.now(UTC))}\r\n"
            f"Message-ID: <{os.urandom(8).hex()}@{AWAY_DOMAIN}>\r\nIn-Reply-To: {answered}\r\nReferences: {answered}\r\n"
            "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "I am out of the office until next Monday, with no access to email.\r\n").encode()


ANSWERS = {LATE_DOMAIN: late_dsn, AWAY_DOMAIN: auto_reply}
