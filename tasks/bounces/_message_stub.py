"""STUB until the classify part lands: a minimal `classify_message` with the agreed interface, for mapping and the CLI."""

# Replaced by tasks/bounces/message.py (the classify helper's whole-message classifier); delete this file then.
# It reads only RFC 3464 delivery-status and RFC 5965 feedback reports and RFC 3834 auto-replies.

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field

from mailflow.tasks.bounces.classify import classify_reply

_VERP = re.compile(r"bounce\+([a-z2-7]{36,40})@", re.IGNORECASE)


@dataclass(frozen=True)
class BounceResult:
    recipient: str | None
    kind: str
    reason: str
    status: str | None = None
    smtp_code: int | None = None
    diagnostic: str | None = None
    original_headers: dict = field(default_factory=dict)
    return_path_token: str | None = None


def classify_message(raw: bytes, source: str) -> list[BounceResult]:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    found = _VERP.search(" ".join(str(msg.get(h, "")) for h in ("To", "Delivered-To", "X-Original-To")))
    token = found.group(1) if found else None
    original, reports = {}, []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            inner = part.get_payload(0) if part.is_multipart() else email.message_from_string(str(part.get_payload()))
            original = {h: str(inner[h]).strip() for h in ("Message-ID", "X-Mailflow-Send", "To") if inner[h]}
        elif ctype in ("message/delivery-status", "message/feedback-report"):
            reports.append((ctype, part))
    def result(**kw) -> BounceResult:
        return BounceResult(original_headers=original, return_path_token=token, **kw)
    if any(c == "message/feedback-report" for c, _ in reports):
        return [result(recipient=original.get("To"), kind="complaint", reason="complaint")]
    out = []
    for _, part in reports:
        for block in part.get_payload()[1:] if part.is_multipart() else []:
            rcpt = str(block.get("Final-Recipient", "")).partition(";")[2].strip()
            status, diag = block.get("Status"), str(block.get("Diagnostic-Code", "")).partition(";")[2].strip()
            code = re.match(r"\d{3}", diag)
            if not rcpt or not status or status.startswith("2"):
                continue
            verdict = classify_reply(int(code.group()) if code else None, status, diag)
            out.append(result(recipient=rcpt, kind=verdict.kind, reason=verdict.reason, status=status,
                              smtp_code=int(code.group()) if code else None, diagnostic=diag))
    if out:
        return out
    if msg.get("Auto-Submitted", "no").lower() != "no" or msg.get("X-Autoreply"):
        return [result(recipient=None, kind="auto_reply", reason="auto_reply")]
    return [result(recipient=None, kind="not_bounce", reason="unknown")]
