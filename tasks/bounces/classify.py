"""Bounce classification: SMTP replies and bounce texts to a (kind, reason) verdict of DESIGN.md's taxonomy."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailflow.tasks.bounces.rules import (
    BASIC_FALLBACK,
    DETAIL_FALLBACK,
    SENDER_RULES,
    STRICT_CODES,
    SUBJECT_FALLBACK,
    TEMPORARY_POLICY,
    TEXT_RULES,
)

KINDS = ("hard", "soft", "complaint", "auto_reply", "delivered", "not_bounce")
REASONS = ("user_unknown", "domain_unknown", "moved", "mailbox_full", "mailbox_disabled", "message_too_large",
           "spam_blocked", "reputation_blocked", "policy", "auth_failure", "rate_limited", "expired", "network",
           "system", "content_rejected", "relay_denied", "syntax", "complaint", "auto_reply", "delivered", "unknown")
# Only these say the address (or its domain) does not exist; everything else may heal or is the sender's doing.
HARD_REASONS = frozenset({"user_unknown", "domain_unknown", "moved"})
# Kinds that suppress the address at once; soft bounces count towards a threshold instead.
SUPPRESSING = frozenset({"hard", "complaint"})


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str
    reason: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.reason not in REASONS:
            raise ValueError(f"not a bounce verdict: kind {self.kind!r}, reason {self.reason!r}")


def suppresses_at_once(verdict: Verdict) -> bool:
    """Hard bounces and complaints stop all further mail to the address immediately."""
    return verdict.kind in SUPPRESSING


# Verdicts are a small closed set: build each once, so the hot path allocates nothing.
_VERDICTS = {(kind, reason): Verdict(kind, reason) for kind in KINDS for reason in REASONS}
NOT_BOUNCE = _VERDICTS["not_bounce", "unknown"]
DELIVERED = _VERDICTS["delivered", "delivered"]
AUTO_REPLY = _VERDICTS["auto_reply", "auto_reply"]
COMPLAINT = _VERDICTS["complaint", "complaint"]

_ENH = r"[245]\.\d{1,3}\.\d{1,3}"
_ENH_END = r"(?!\w|\.\d)"  # not part of a longer number such as Yahoo's "4.16.55.1" or an IP address
_STATUS = re.compile(rf"#?({_ENH})")
_LEADING_STATUS = re.compile(rf"\s*(?:[245]\d\d[ -])?#?({_ENH}){_ENH_END}")
# Status codes are dropped before matching: multi-line replies repeat them mid-sentence. Every
# pattern here starts with a plain character (boundary checks come after it), which lets `re`
# skip ahead to candidate positions instead of trying each one: about ten times faster.
_CODES = re.compile(rf"[245](?<![\w.][245])(?:\d\d[ -]+['\"]?#?[245])?\.\d{{1,3}}\.\d{{1,3}}{_ENH_END}"
                    r"|[245](?<![\w.][245])\d\d-")
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)*")

_SENDER = tuple((reason, re.compile(pattern)) for reason, pattern in SENDER_RULES)
_RULES = tuple((reason, re.compile(pattern), codes) for reason, pattern, codes in TEXT_RULES)
_TABLE_REASONS = ({r for r, _ in SENDER_RULES} | {r for r, _, _ in TEXT_RULES} | set(STRICT_CODES.values())
                  | set(DETAIL_FALLBACK.values()) | set(SUBJECT_FALLBACK.values()) | set(BASIC_FALLBACK.values())
                  | {TEMPORARY_POLICY})
if not _TABLE_REASONS <= set(REASONS):  # a typo in the table must not become a reason nobody knows
    raise ImportError(f"bounce rules name unknown reasons: {sorted(_TABLE_REASONS - set(REASONS))}")


def _clean(text: str) -> str:
    """Lower-case, addresses and codes removed, whitespace collapsed: what the text rules see.

    Addresses are never matched on (a local part may read "nospam") and never kept.
    """
    words = text.lower().split()
    if any("@" in word for word in words):
        words = [_ADDRESS.sub(" ", word) if "@" in word else word for word in words]
    return " ".join(_CODES.sub(" ", " ".join(words)).split())


def _status(enhanced: str | None, text: str) -> str | None:
    """A well-formed enhanced status: the one given, else one leading the reply text."""
    if enhanced:
        match = _STATUS.fullmatch(enhanced.strip())
        if match:
            return match.group(1)
    match = _LEADING_STATUS.match(text)
    return match.group(1) if match else None


def _reason(code: int | None, status: str | None, clean: str) -> str:
    for reason, rx in _SENDER:
        if rx.search(clean):
            return reason
    if status in STRICT_CODES:
        return STRICT_CODES[status]
    for reason, rx, codes in _RULES:
        if (codes is None or status in codes) and rx.search(clean):
            return reason
    if status:
        klass, subject, detail = status.split(".")
        if subject == "7" and klass == "4":
            return TEMPORARY_POLICY
        fallback = DETAIL_FALLBACK.get(f"{subject}.{detail}") or SUBJECT_FALLBACK.get(subject)
        if fallback:
            return fallback
    return BASIC_FALLBACK.get(code, "unknown") if code is not None else "unknown"


def _verdict(reason: str, temporary: bool) -> Verdict:
    # A temporary failure says nothing permanent about the address, whatever its text claims.
    return _VERDICTS["hard" if reason in HARD_REASONS and not temporary else "soft", reason]


def _temporary(code: int | None, status: str | None) -> bool:
    if code is not None:
        return not 500 <= code < 600  # 4xx, and replies no RFC defines, are retried rather than trusted
    return status is not None and status.startswith("4")


def classify_reply(code: int | None, enhanced: str | None, text: str) -> Verdict:
    """The verdict on one SMTP reply: `hard` or `soft` with a reason (`delivered` for a 2xx).

    `enhanced` may be None when the caller did not parse it; a status leading `text` is used then.
    Called on every 4xx/5xx the sender gets, so it only runs precompiled regexes over a short text.
    """
    text = text or ""
    status = _status(enhanced, text)
    if (code is not None and 200 <= code < 300) or (code is None and status is not None and status[0] == "2"):
        return DELIVERED
    return _verdict(_reason(code, status, _clean(text)), _temporary(code, status))


# --- free-text bounce bodies (the human-readable part of a DSN) ---

_PAIR = re.compile(rf"([245](?<![\w.\[/-][245])\d\d)(?:\s+|-)['\"]?#?({_ENH}){_ENH_END}")
_BASIC = re.compile(r"([245](?<![\w.\[/#-][245])\d\d)(?=[\s-])")
_ALONE = re.compile(rf"([245](?<![\w.][245])\.\d{{1,3}}\.\d{{1,3}}){_ENH_END}")
_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")
_COMPLAINT_TEXT = re.compile(r"feedback-type: ?abuse|this is an (?:e-?mail )?abuse report")
_DELAYED_TEXT = re.compile(r"delivery incomplete|temporary problem|will (?:retry|continue trying|keep trying|try again)"
                           r"|(?:has been|was) delayed|delivery (?:has been )?delayed|not yet been delivered"
                           r"|action: delayed|still (?:trying|being retried)")
_DELIVERED_TEXT = re.compile(r"action: (?:delivered|relayed|expanded)|status: 2\.\d{1,3}\.\d{1,3}"
                             r"|(?:was|were|been) (?:successfully )?delivered to|successfully (?:delivered|relayed)"
                             r"|delivery to (?:the following|these) recipients? (?:or groups )?(?:was |has |is )?"
                             r"(?:complete|completed|succeeded|successful)")
_FAILED_TEXT = re.compile(r"could(?: not|n't) be delivered|undeliverable|undelivered|delivery (?:has )?failed"
                          r"|failed permanently|returned mail|mail delivery (?:failed|system|subsystem)|non-?delivery"
                          r"|permanent (?:fatal )?errors?|unable to deliver|wasn't delivered|rejected your message"
                          r"|address not found|action: failed|diagnostic-code:")
_AUTO_REPLY_TEXT = re.compile(r"out of (?:the )?office|auto(?:matic)?[- ]?(?:reply|response)|autoreply|on vacation"
                              r"|vacation (?:reply|message|notice)|away from (?:the |my )?(?:office|desk)"
                              r"|i(?: am|'m) (?:currently )?(?:away|out of)|abwesenheit")


def _first(rx: re.Pattern, text: str) -> re.Match | None:
    """The first match reporting a failure (4/5); a success code only when there is none.

    A transcript shows "250 2.1.0 Sender ok" before the reply that failed.
    """
    first = None
    for match in rx.finditer(text):
        if match.group(1)[0] in "45":
            return match
        first = first or match
    return first


def _locate(text: str) -> tuple[int | None, str | None, int, bool]:
    """Basic code, enhanced status, where the reply starts (-1: nowhere) and whether the two came as a pair."""
    pair = _first(_PAIR, text)
    if pair:
        return int(pair.group(1)), pair.group(2), pair.start(), True
    basic, alone = _first(_BASIC, text), _first(_ALONE, text)
    starts = [m.start() for m in (basic, alone) if m]
    return (int(basic.group(1)) if basic else None, alone.group(1) if alone else None, min(starts, default=-1), False)


def extract_status(text: str) -> tuple[int | None, str | None]:
    """The SMTP basic code and RFC 3463 enhanced status reported in a bounce body, each None when absent.

    A code paired with a status ("550 5.1.1", "550-5.1.1", "421\\n 4.7.0") wins over codes seen apart.
    """
    code, status, _, _ = _locate(text or "")
    return code, status


def classify_text(text: str) -> Verdict:
    """The verdict on a bounce body: the reply it quotes if any, else its wording."""
    if not text or not text.strip():
        return NOT_BOUNCE
    flat = " ".join(text.lower().split())
    if _COMPLAINT_TEXT.search(flat):
        return COMPLAINT
    code, status, start, paired = _locate(text)
    delayed = _DELAYED_TEXT.search(flat) is not None  # a delay notice quotes a 5xx it has not given up on
    failed = delayed or _FAILED_TEXT.search(flat) is not None
    # A lone number ("call 555 0100", "section 5.1.1") is a reply code only in a failure notice or
    # as the text's first word; "550 5.1.1" is one anywhere.
    credible = paired or failed or start == len(text) - len(text.lstrip())
    if credible and ((code is not None and code >= 400) or (status is not None and status[0] in "45")):
        blank = _BLANK_LINE.search(text, start)
        reply = text[start:blank.start() if blank else len(text)]  # the quoted reply ends at its paragraph
        return _verdict(_reason(code, status, _clean(reply)), delayed or _temporary(code, status))
    if _DELIVERED_TEXT.search(flat):
        return DELIVERED
    if failed:
        return _verdict(_reason(None, None, _clean(text)), delayed)
    if _AUTO_REPLY_TEXT.search(flat):
        return AUTO_REPLY
    return NOT_BOUNCE
