"""mailto unsubscribes: mail to `unsubscribe+TOKEN@<bounce domain>` (List-Unsubscribe's mailto) arriving in the bounce box."""

from __future__ import annotations

import re

from mailflow.tasks.bounces.mapping import SendIndex

# Where the address the mail was delivered to shows: the MTA's own headers first, the To the sender wrote last.
_ADDRESSED = re.compile(rb"^(?:X-Original-To|Delivered-To|Envelope-To|X-Envelope-To|To):[^\n]*?unsubscribe\+([A-Za-z2-7]{40})@",
                        re.I | re.M)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_HEAD_LIMIT = 64 * 1024


def mailto_token(raw: bytes) -> str | None:
    """The token of an `unsubscribe+TOKEN@` address the message was delivered to, if any (headers only)."""
    end = _HEAD_END.search(raw, 0, _HEAD_LIMIT)
    head = raw[:end.start() if end else _HEAD_LIMIT]
    if b"unsubscribe+" not in head.lower():  # most mail: one scan, no regex
        return None
    match = _ADDRESSED.search(head)
    return match.group(1).decode("ascii") if match else None


def unsubscribe_row(raw: bytes, source: str, index: SendIndex | None) -> dict | None:
    """The `bounces classify` object of a verified mailto unsubscribe: not a bounce (`kind: not_bounce`) with
    `"action": "unsubscribe"` and the send it names; None when the message is none (or its token is not ours)."""
    token = mailto_token(raw) if index is not None else None
    found = index.unsubscriber(token) if token else None
    if found is None:
        return None
    match, address = found
    return {"source": source, "recipient": address, "kind": "not_bounce", "reason": "unknown", "status": None,
            "smtp_code": None, "diagnostic": None, "action": "unsubscribe", "campaign_id": match.campaign_id,
            "subscriber_id": match.subscriber_id, "variant": match.variant, "mapped_by": "mailto"}
