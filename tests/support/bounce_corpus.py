"""The crisp bounce corpus and how its expectations map to mailflow's taxonomy (shared by the bounce test modules)."""

from __future__ import annotations

import json
from pathlib import Path

# A copy kept in the repository, with its licence and README, so any clone runs these tests.
CORPUS = Path(__file__).parent.parent / "data" / "bounces-crisp"
NAMES = sorted(p.stem for p in CORPUS.glob("*.txt"))

# --- How the corpus's expectations map to mailflow's taxonomy -------------------------------
# The corpus (crisp-oss/email-bounce-parser) says `permanent` for any refusal, and mailflow's
# `hard` means only "the address or its domain does not exist" (DESIGN.md). So:
#  * reason from `data.error.data.type`, as in TYPE_REASONS;
#  * type `spam_content` splits by its flags: `blocked` (an IP/domain blocklist or reputation
#    block) -> reputation_blocked, else `spam` -> spam_blocked, else a refusal by local policy;
#  * no type: `spam` -> spam_blocked, `blocked` (the recipient's own sender block) -> policy,
#    neither -> the corpus names no cause and the reason is not asserted (None);
#  * kind: `soft` when the corpus says temporary or the code is 4xx (a 4xx is never hard);
#    else `hard` if the reason is one of HARD below, `soft` for any other reason; when the
#    corpus names no cause its `permanent` cannot tell hard from soft, so the kind must only be
#    a failure (hard or soft);
#  * `bounce: false` -> not_bounce / unknown.
# Codes: the extracted basic code and enhanced status must equal the corpus's (None included).
TYPE_REASONS = {
    "no_such_recipient": "user_unknown",
    "server_unknown": "domain_unknown",
    "server_timeout": "network",
    "mailbox_full": "mailbox_full",
    "mailbox_over_quota": "mailbox_full",
    "recipient_disabled_or_recipient_rate_limited": "mailbox_disabled",  # both corpus cases are 5.2.1
    "action_not_taken_mailbox_rate_limited": "rate_limited",
    "reputation": "reputation_blocked",
    "ip_blocked_spam": "reputation_blocked",
    "authentication_failure": "auth_failure",
}
HARD = {"user_unknown", "domain_unknown", "moved"}
# Files where mailflow deliberately disagrees with the corpus, and why.
DISAGREEMENTS = {
    "550_5_1_1_no_such_recipient_variant_11": "the reply says 511 (vpopmail chkuser's own code); the corpus rewrites it as 550",
    "550_5_1_1_no_such_recipient_variant_20": "Apple's relay refuses the sender ('<bounce address>: unauthorized sender'): "
                                              "policy, soft; nothing says the recipient is gone",
    "450_4_2_1_no_such_recipient": "'this mailbox is inactive and has been disabled' is a disabled mailbox, not an unknown user",
    "550_no_such_recipient_variant_1": "mail.ru 'account is disabled': the mailbox exists but is disabled, soft per DESIGN.md",
    "554_no_such_recipient": "Yahoo 554.30 'This mailbox is disabled': a disabled mailbox, soft per DESIGN.md",
    "550_5_7_1_spam_content_variant_3": "Gmail's UnsolicitedMessageError judges the message as spam, not the sender's reputation",
    "554_5_7_7_equal_headers": "5.7.7 (message integrity, duplicated X-headers) rejects a malformed message, not spam",
    "unknown_server_unknown_variant_1": "Postfix 'Host not found, try again' is a temporary DNS failure: the domain may exist",
    "unknown_server_unknown_variant_3": "'No route to host' from an MX that resolved is a network failure, not an unknown domain",
    "default": "a bare 'Hello' shows no sign of a bounce; the corpus counts any body it is handed as one",
}


def mapped(expected: dict) -> tuple[str | None, str | None]:
    """The (kind, reason) mailflow should give a corpus file; None where the corpus does not say."""
    if not expected["bounce"]:
        return "not_bounce", "unknown"
    error = expected["data"]["error"]
    flags = error.get("data") or {}
    if flags.get("type") == "spam_content":
        reason = "reputation_blocked" if flags["blocked"] else "spam_blocked" if flags["spam"] else "policy"
    elif flags.get("type") is not None:
        reason = TYPE_REASONS[flags["type"]]  # a type this table does not know fails loudly
    else:
        reason = "spam_blocked" if flags.get("spam") else "policy" if flags.get("blocked") else None
    codes = error.get("code") or {}
    if error.get("temporary") or str(codes.get("basic") or "").startswith("4") or str(codes.get("enhanced") or "").startswith("4"):
        return "soft", reason
    if reason is None:
        return None, None
    return ("hard" if reason in HARD else "soft"), reason


def load(name: str) -> tuple[str, dict]:
    """A corpus file's body and its expected parse."""
    text = (CORPUS / f"{name}.txt").read_text(encoding="utf-8", errors="replace")
    return text, json.loads((CORPUS / "expected" / f"{name}.json").read_text(encoding="utf-8"))
