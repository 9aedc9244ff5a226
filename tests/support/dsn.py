"""Bounce messages built around real sent messages: RFC 3464 DSNs and RFC 5965 complaints, and a mailbox of them."""

from __future__ import annotations

import mailbox
from pathlib import Path


def dsn(original: bytes, recipient: str, status: str = "5.1.1", diagnostic: str = "smtp; 550 5.1.1 user unknown",
        to: str = "bounce@bounces.example.com", headers_only: bool = False) -> bytes:
    """A DSN for `recipient` sent to `to` (pass the VERP return path), returning `original` or only its headers."""
    report = (f"Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; {recipient}\r\n"
              f"Action: {'delayed' if status.startswith('4') else 'failed'}\r\nStatus: {status}\r\n"
              f"Diagnostic-Code: {diagnostic}\r\n").encode()
    return _report("delivery-status", "MAILER-DAEMON@mx.example.net", to, "Undelivered Mail Returned to Sender",
                   b"Content-Type: message/delivery-status\r\n\r\n" + report, original, headers_only)


def complaint(original: bytes, to: str = "fbl@bounces.example.com") -> bytes:
    """An RFC 5965 abuse report returning `original`."""
    report = b"Content-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: fbl/1.0\r\nVersion: 1\r\n"
    return _report("feedback-report", "feedback@fbl.example.net", to, "Complaint", report, original, False)


def _report(kind: str, sender: str, to: str, subject: str, report: bytes, original: bytes, headers_only: bool) -> bytes:
    original = original.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if headers_only:
        returned = b"Content-Type: text/rfc822-headers\r\n\r\n" + original.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    else:
        returned = b"Content-Type: message/rfc822\r\n\r\n" + original
    head = (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; report-type={kind}; boundary="b0undary"\r\n\r\n').encode()
    parts = [b"Content-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n", report, returned]
    return head + b"".join(b"--b0undary\r\n" + p + b"\r\n" for p in parts) + b"--b0undary--\r\n"


def write_maildir(folder: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(str(folder), create=True)
    for raw in messages:
        box.add(raw)
    return folder


def write_mbox(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.mbox(str(path), create=True)
    for raw in messages:
        box.add(raw)
    box.flush()
    box.close()
    return path
