"""Provider event webhooks' payloads (Amazon SES, SendGrid, Postmark, Mailgun) to rows in DESIGN's bounce taxonomy; no I/O."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailflow.tasks.bounces.classify import HARD_REASONS, Verdict, classify_reply, extract_status
from mailflow.tasks.bounces.message import GENERIC_STATUSES

SEND_FIELD = "mailflow_send"  # the custom arg / metadata / tag users may set to the X-Mailflow-Send header's value
DIAGNOSTIC_CHARS = 1000  # kept of a provider's diagnostic text
_ADDRESS = re.compile(r"<?[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+>?")


@dataclass(frozen=True)
class Row:
    """One recipient's event as a provider reported it. `type`: bounce | complaint | auto_reply | unsubscribe."""

    key: str  # the provider's own id of the event (with the recipient): a retried delivery has the same
    type: str
    recipient: str
    kind: str | None = None
    reason: str | None = None
    status: str | None = None
    smtp_code: int | None = None
    diagnostic: str | None = None
    occurred_at: str | None = None
    echoed: str = ""  # header values the provider echoed (Message-ID, X-Mailflow-Send): a send token hides in them
    custom: str = ""  # the `mailflow_send` custom arg / metadata / tag, when set
    extra: dict = field(default_factory=dict)
    delayed: bool = False  # the provider is still trying (a delay notice): not a bounce the soft-bounce rule counts


def event_id(provider: str, row: Row) -> str:
    """The same provider event delivered twice (a retry) gets the same id, so the aggregate stage counts it once."""
    key = "\0".join(["webhook", provider, row.key, row.recipient.lower(), row.type])
    return "w" + hashlib.sha256(key.encode()).hexdigest()[:31]


def verdict(text: str | None, status: str | None = None, code: int | None = None, *, temporary: bool = False,
            fallback: str = "unknown") -> Verdict:
    """The rule table's verdict on a provider's diagnostic (the same rules as send-time replies and bounce
    messages); `temporary` when the provider says it will retry; `fallback` when the text names no cause."""
    return failure(text, status, code, temporary=temporary, fallback=fallback)[0]


def failure(text: str | None, status: str | None, code: int | None, *, temporary: bool,
            fallback: str) -> tuple[Verdict, str | None, int | None, str | None]:
    """(verdict, status, SMTP code, diagnostic): the text's own status wins over a generic one (as in DSNs), and
    the provider's own cause (`fallback`) over what a bare reply code would suggest."""
    text = _diagnostic(text) or ""
    said_code, said_status = extract_status(text)
    code = code if code is not None else said_code
    if said_status and (status is None or status in GENERIC_STATUSES) and said_status[0] == (status or said_status)[0]:
        status = said_status
    reason = classify_reply(None, None if status in GENERIC_STATUSES else status, text).reason
    if reason in ("unknown", "delivered"):
        reason = fallback
    if reason == "unknown":  # then what the basic code alone suggests (421: rate limited, 452: system...)
        found = classify_reply(code if code is not None and code >= 400 else None, status, text).reason
        reason = "unknown" if found == "delivered" else found
    temporary = temporary or (code is not None and code < 500) or (status or "5")[0] == "4"
    return Verdict("hard" if reason in HARD_REASONS and not temporary else "soft", reason), status, code, text or None


def bounce(key: str, recipient: str, text, status: str | None = None, code: int | None = None, *, temporary: bool,
           fallback: str = "unknown", **kw) -> Row:
    v, status, code, diagnostic = failure(text, status, code, temporary=temporary, fallback=fallback)
    return Row(key, "bounce", recipient, v.kind, v.reason, status, code, diagnostic, **kw)


def _diagnostic(text) -> str | None:
    """The provider's text without its "smtp;" prefix, addresses blanked (no address is written to a log)."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = re.sub(r"^\s*smtp\s*;\s*", "", text.strip(), flags=re.I)
    return _ADDRESS.sub("<address>", " ".join(text.split()))[:DIAGNOSTIC_CHARS]


def _code(value) -> int | None:
    try:
        code = int(value)
    except (TypeError, ValueError):
        return None
    return code if 200 <= code < 600 else None


def _status(value) -> str | None:
    match = re.fullmatch(r"\s*#?([245]\.\d{1,3}\.\d{1,3})\s*", value) if isinstance(value, str) else None
    return match.group(1) if match else None


def _when(value) -> str | None:
    """A provider's time (ISO text or Unix seconds) as UTC ISO; None when it is neither."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(float(value), UTC)
        elif isinstance(value, str) and value:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00")[:32])
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _custom(values) -> str:
    value = _dict(values).get(SEND_FIELD)
    return " ".join(map(str, value)) if isinstance(value, list) else _text(value)


# --- Amazon SES (the Message of an SNS notification: notificationType, or eventType from a configuration set) ---

SES_SUBTYPES = {"NoEmail": "user_unknown", "Suppressed": "user_unknown", "OnAccountSuppressionList": "user_unknown",
                "MailboxFull": "mailbox_full", "MessageTooLarge": "message_too_large",
                "ContentRejected": "content_rejected", "AttachmentRejected": "content_rejected"}


def ses_rows(message: dict, sns_id: str = "") -> list[Row]:
    kind = _text(message.get("notificationType") or message.get("eventType"))
    mail = _dict(message.get("mail"))
    headers = [f"{_text(h.get('name'))}: {_text(h.get('value'))}" for h in _list(mail.get("headers")) if isinstance(h, dict)]
    echoed = "\n".join([*headers, _text(_dict(mail.get("commonHeaders")).get("messageId"))])
    common = {"echoed": echoed, "custom": _custom(mail.get("tags"))}
    rows = []
    if kind == "Bounce":
        body = _dict(message.get("bounce"))
        key = _text(body.get("feedbackId")) or sns_id
        temporary = body.get("bounceType") != "Permanent"  # Transient, and Undetermined (SES could not tell)
        fallback = SES_SUBTYPES.get(_text(body.get("bounceSubType")), "unknown" if temporary else "user_unknown")
        for r in _list(body.get("bouncedRecipients")):
            r = _dict(r)
            status, text = _status(r.get("status")), _text(r.get("diagnosticCode"))
            rows.append(bounce(key, _text(r.get("emailAddress")), text, status, temporary=temporary, fallback=fallback,
                               occurred_at=_when(body.get("timestamp")), **common))
    elif kind == "DeliveryDelay":
        body = _dict(message.get("deliveryDelay"))
        key = f"{sns_id}:{_text(body.get('timestamp'))}"
        for r in _list(body.get("delayedRecipients")):
            r = _dict(r)
            status, text = _status(r.get("status")), _text(r.get("diagnosticCode"))
            fallback = "expired" if body.get("delayType") == "Expired" else "unknown"
            rows.append(bounce(key, _text(r.get("emailAddress")), text, status, temporary=True, fallback=fallback,
                               occurred_at=_when(body.get("timestamp")), delayed=body.get("delayType") != "Expired",
                               **common))
    elif kind == "Complaint":
        body = _dict(message.get("complaint"))
        if body.get("complaintFeedbackType") != "not-spam":  # a "not spam" report is the opposite of a complaint
            key = _text(body.get("feedbackId")) or sns_id
            for r in _list(body.get("complainedRecipients")):
                rows.append(Row(key, "complaint", _text(_dict(r).get("emailAddress")), "complaint", "complaint",
                                occurred_at=_when(body.get("timestamp")), **common))
    return [row for row in rows if row.recipient]  # Delivery, Send, Open...: the send ledger and our own links know


# --- SendGrid (Event Webhook: a JSON array of events) ---

SENDGRID_CLASSES = {"Invalid Address": "user_unknown", "Mailbox Unavailable": "mailbox_disabled",
                    "Reputation": "reputation_blocked", "Content": "content_rejected",
                    "Frequency or Volume": "rate_limited", "Technical": "system"}
# `dropped`: SendGrid did not send, because of its own suppression lists or the message
SENDGRID_DROPS = {"bounced address": ("bounce", "user_unknown"), "spam reporting address": ("complaint", "complaint"),
                  "unsubscribed address": ("unsubscribe", None), "unsubscribed group": ("unsubscribe", None),
                  "invalid": ("bounce", "syntax")}


def sendgrid_rows(events: list) -> list[Row]:
    rows = []
    for n, e in enumerate(_list(events)):
        e = _dict(e)
        what, recipient = _text(e.get("event")), _text(e.get("email"))
        key = _text(e.get("sg_event_id")) or f"{_text(e.get('sg_message_id'))}:{what}:{n}"
        common = {"occurred_at": _when(e.get("timestamp")), "echoed": _text(e.get("smtp-id")), "custom": _custom(e)}
        status, text = _status(e.get("status")), _text(e.get("reason")) or _text(e.get("response"))
        if what == "bounce":
            temporary = e.get("type") == "blocked"  # blocked: the receiver refused for now (reputation, content)
            fallback = SENDGRID_CLASSES.get(_text(e.get("bounce_classification")), "unknown")
            rows.append(bounce(key, recipient, text, status, temporary=temporary, fallback=fallback, **common))
        elif what == "deferred":
            rows.append(bounce(key, recipient, text, status, temporary=True, delayed=True, **common))
        elif what == "dropped":
            kind, reason = SENDGRID_DROPS.get(text.strip().lower(), ("bounce", "policy"))
            if kind == "bounce":
                rows.append(Row(key, "bounce", recipient, "hard" if reason in HARD_REASONS else "soft", reason,
                                diagnostic=_diagnostic(text), **common))
            else:
                rows.append(Row(key, kind, recipient, "complaint" if kind == "complaint" else None, reason, **common))
        elif what == "spamreport":
            rows.append(Row(key, "complaint", recipient, "complaint", "complaint", **common))
        elif what in ("unsubscribe", "group_unsubscribe"):
            rows.append(Row(key, "unsubscribe", recipient, **common))
    return [row for row in rows if row.recipient]


# --- Postmark (one record per POST: Bounce, SpamComplaint, SubscriptionChange) ---

# Bounce Type -> (temporary, the reason when Details names none); None: not a failure of this address
POSTMARK_TYPES: dict[str, tuple[bool, str] | None] = {
    "HardBounce": (False, "user_unknown"), "BadEmailAddress": (False, "user_unknown"), "AddressChange": (False, "moved"),
    "SoftBounce": (True, "unknown"), "Transient": (True, "unknown"), "DnsError": (True, "network"),
    "SpamNotification": (True, "spam_blocked"), "VirusNotification": (True, "content_rejected"),
    "Blocked": (True, "policy"), "DMARCPolicy": (True, "auth_failure"), "ManuallyDeactivated": (True, "policy"),
    "Unknown": (True, "unknown"), "SMTPApiError": (True, "system"), "ChallengeVerification": (True, "policy"),
    "Subscribe": None, "OpenRelayTest": None, "InboundError": None, "TemplateRenderingFailed": None, "Unconfirmed": None,
}


def postmark_rows(record: dict) -> list[Row]:
    record = _dict(record)
    kind, metadata = _text(record.get("RecordType")), _dict(record.get("Metadata"))
    common = {"echoed": _text(record.get("Content"))[:65536], "custom": _custom(metadata)}
    if kind == "SubscriptionChange":
        # Only a recipient's own unsubscribe is news: suppressions for bounces and complaints arrive as those records
        if record.get("SuppressSending") is True and record.get("SuppressionReason") == "ManualSuppression":
            key = f"{_text(record.get('MessageID'))}:{_text(record.get('ChangedAt'))}"
            return [Row(key, "unsubscribe", _text(record.get("Recipient")), occurred_at=_when(record.get("ChangedAt")),
                        **common)] if record.get("Recipient") else []
        return []
    if kind not in ("Bounce", "SpamComplaint"):
        return []
    key, recipient, when = str(record.get("ID") or record.get("MessageID") or ""), _text(record.get("Email")), record.get("BouncedAt")
    kind_of = _text(record.get("Type"))
    if not recipient:
        return []
    if kind == "SpamComplaint" or kind_of == "SpamComplaint":
        return [Row(key, "complaint", recipient, "complaint", "complaint", occurred_at=_when(when), **common)]
    if kind_of == "Unsubscribe":
        return [Row(key, "unsubscribe", recipient, occurred_at=_when(when), **common)]
    if kind_of == "AutoResponder":
        return [Row(key, "auto_reply", recipient, "auto_reply", "auto_reply", occurred_at=_when(when), **common)]
    known = POSTMARK_TYPES.get(kind_of, (True, "unknown"))
    if known is None:
        return []
    temporary, fallback = known
    text = _text(record.get("Details")) or _text(record.get("Description"))
    return [bounce(key, recipient, text, temporary=temporary, fallback=fallback, occurred_at=_when(when), **common)]


# --- Mailgun (webhooks: {"signature": {...}, "event-data": {...}}) ---

MAILGUN_SUPPRESSED = {"suppress-bounce": "bounce", "suppress-complaint": "complaint", "suppress-unsubscribe": "unsubscribe"}


def mailgun_rows(event: dict) -> list[Row]:
    event = _dict(event)
    what, recipient, key = _text(event.get("event")), _text(event.get("recipient")), _text(event.get("id"))
    headers = _dict(_dict(event.get("message")).get("headers"))
    common = {"occurred_at": _when(event.get("timestamp")), "custom": _custom(event.get("user-variables")),
              "echoed": "\n".join(f"{k}: {v}" for k, v in headers.items() if isinstance(v, str))}
    if not recipient or not key:
        return []
    if what == "complained":
        return [Row(key, "complaint", recipient, "complaint", "complaint", **common)]
    if what == "unsubscribed":
        return [Row(key, "unsubscribe", recipient, **common)]
    if what != "failed":
        return []
    suppressed = MAILGUN_SUPPRESSED.get(_text(event.get("reason")))
    if suppressed == "complaint":
        return [Row(key, "complaint", recipient, "complaint", "complaint", **common)]
    if suppressed == "unsubscribe":
        return [Row(key, "unsubscribe", recipient, **common)]
    status_of = _dict(event.get("delivery-status"))
    text = " ".join(t for t in (_text(status_of.get("message")), _text(status_of.get("description"))) if t.strip())
    code, status = _code(status_of.get("code")), _status(status_of.get("enhanced-code"))
    temporary = event.get("severity") != "permanent"
    return [bounce(key, recipient, text, status, code, temporary=temporary, delayed=temporary,  # Mailgun retries
                   fallback="user_unknown" if suppressed == "bounce" else "unknown", **common)]
