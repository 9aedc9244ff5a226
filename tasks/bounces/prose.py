"""Failed recipients of a non-standard (prose) bounce: Postfix, Exim, Sendmail, qmail, Exchange, Gmail, Yahoo and the rest."""

from __future__ import annotations

import re

from mailflow.tasks.bounces.classify import extract_status

# Where the returned copy of the original message starts: nothing after it names a failed recipient.
_ORIGINAL = re.compile(
    r"^[ \t>]*(?:-{2,} ?(?:original message|this is a copy of|below this line is a copy|the header of the original|"
    r"returned mail follows|undelivered message headers|message headers? follows?|original message headers)"
    r"|-{3,} ?(?:original|returned|undelivered) (?:message|mail)"
    r"|original message (?:follows|headers)|the original message (?:was received|headers)"
    r"|received: from |return-path: <|message-id: <)",
    re.I | re.M)
_ADDRESS = re.compile(r"(?<![\w.!#$%&'*+/=?^`{|}~-])([\w.!#$%&'*+/=?^`{|}~-]{1,64}@[\w-]+(?:\.[\w-]+)+)", re.A)
# Addresses that report the failure, never suffer it.
_DAEMONS = re.compile(r"^(?:postmaster|mailer-daemon|mail-daemon|mailerdaemon|no-?reply|abuse|double-bounce|root)@", re.I)
# "Received: ... for <x>" and "From: x" lines quote the sender or a relay, not a failed recipient.
_NOT_RECIPIENT_LINE = re.compile(r"^\s*(?:from|sender|reply-to|return-path|received|by|envelope-from|for assistance|"
                                 r"please (?:contact|send)|contact)\b", re.I)
_FOR_HELP = re.compile(r"(?:send mail to|contact|write to|email|e-mail)\s*:?\s*<?$", re.I)
# Below these, a bounce repeats its recipients for administrators or quotes the SMTP transcript.
_DETAILS = re.compile(r"diagnostic information for administrators|technical details|transcript of (?:the )?session"
                      r"|here is (?:the|some) (?:technical|detailed)", re.I)
_LEAD = re.compile(r"[ \t<\"'*\u2022>-]*(?:(?:rcpt to|recipient|to|address|original-recipient|final-recipient)\s*:?\s*<?)?", re.I)
_VERP = re.compile(r"bounces?[+=-]", re.I)
_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")
_MAX_TEXT = 64 * 1024  # the error part of a bounce is short; a huge body is mostly the returned message


def error_section(text: str) -> str:
    """The part of a bounce body before the returned original message."""
    text = text[:_MAX_TEXT]
    match = _ORIGINAL.search(text)
    return text[:match.start()] if match and match.start() > 0 else text


def failed_recipients(text: str, exclude: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(address, the text that follows it up to the next recipient) for each failed recipient named in `text`.

    `text` should be the error section; `exclude` holds lower-cased addresses known not to be
    recipients (the bounce's own sender and recipient, the original's From).
    """
    found: list[tuple[str, int]] = []
    seen: set[str] = set()
    details = _DETAILS.search(text)
    details_at = details.start() if details else len(text)
    indent = 0
    for match in _ADDRESS.finditer(text):
        address = match.group(1).strip(".")
        key = address.lower()
        if key in seen or key in exclude or _DAEMONS.match(key) or _VERP.match(key):
            continue
        line_start = text.rfind("\n", 0, match.start()) + 1
        before = text[line_start:match.start()]
        if _NOT_RECIPIENT_LINE.match(before) or _FOR_HELP.search(before.rstrip()):
            continue
        if found:
            # Later recipients are listed like the first one; an address inside a diagnostic
            # ("expanded from <x>", "<sender>: unauthorized", a repeat in the admin details) is not one.
            lead = _LEAD.fullmatch(before)
            if not lead or match.start() > details_at or len(before) - len(before.lstrip()) > indent:
                continue
        else:
            indent = len(before) - len(before.lstrip())
        seen.add(key)
        found.append((address, match.end()))
    out = []
    lower = text.lower()
    for i, (address, end) in enumerate(found):
        stop = len(text)
        if i + 1 < len(found):
            # the next recipient's segment starts on the line that names it
            nxt = text.find(found[i + 1][0], end)
            stop = text.rfind("\n", end, nxt) if nxt >= 0 and text.rfind("\n", end, nxt) >= 0 else (nxt if nxt >= 0 else stop)
        segment = text[end:stop]
        if details and end < details_at:
            # The segment never runs on into the details below, which quote every recipient's reply; when it
            # quotes none of its own, the details' paragraph on this recipient ("#550 5.1.1 ...") leads it.
            again = lower.find(address.lower(), details_at)
            segment = text[end:min(stop, details_at)]
            if again >= 0 and extract_status(segment) == (None, None):
                blank = _BLANK_LINE.search(text, again)
                segment = text[again + len(address):blank.start() if blank else len(text)] + "\n" + segment
        out.append((address, segment))
    return out
