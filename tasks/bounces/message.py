"""Whole-message bounce classifier: one raw message to a result per failed recipient (DSN, ARF, auto-reply, prose)."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message

from mailflow.tasks.bounces.classify import (
    AUTO_REPLY,
    COMPLAINT,
    DELIVERED,
    NOT_BOUNCE,
    Verdict,
    classify_reply,
    classify_text,
    extract_status,
)
from mailflow.tasks.bounces.parts import (
    REPORT_TYPES,
    address_in,
    html_text,
    message_parts,
    original_headers,
    report_fields,
    return_path_token,
    subject_of,
)
from mailflow.tasks.bounces.prose import error_section, failed_recipients

# Statuses that name no cause (RFC 3463 "other"): the diagnostic text decides.
GENERIC_STATUSES = frozenset({"5.0.0", "4.0.0", "4.4.7", "5.5.0"})
_TRACE = re.compile(r"^X-Mailflow-Send:[ \t]*(\S+)", re.I | re.M)
_ENH = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_DAEMON_FROM = re.compile(r"mailer-daemon|postmaster|mail delivery|mail-daemon|microsoftexchange|mail administrator", re.I)
# A delay notice says the MTA is still trying; a final report (gave up, expired) is not one.
_DELAY_NOTICE = re.compile(r"\bdelay(?:ed)?\b|still being retried|遅延", re.I)
_STILL_TRYING = re.compile(r"(?:will|shall) (?:continue|keep|be) (?:trying|retrying|to (?:try|retry|attempt))|"
                           r"still (?:being )?(?:retried|trying)|not yet been delivered", re.I)
_BOUNCE_SUBJECT = re.compile(r"undeliver|undelivered|delivery (?:status|failure|notification|has failed|failed|delayed)"
                             r"|returned mail|failure notice|mail delivery|non-?delivery|could not be delivered"
                             r"|delivery problem|rejected|returned to sender|配信|不達|エラー", re.I)
# Vacation subjects in the languages mailflow's senders meet most.
_VACATION_SUBJECT = re.compile(
    r"out of (?:the )?office|ooo\b|auto(?:matic|matisch|matische|matique|mática|matica)?[- ]?(?:reply|response|antwort|antwoord"
    r"|réponse|reponse|respuesta|risposta|resposta|svar)|(?:réponse|reponse|respuesta|risposta|resposta) autom"
    r"|autoreply|autoresponder|vacation|on leave|abwesen|außer haus"
    r"|absence|absent|fuera de la oficina|ausente|fuori ufficio|assente|afwezig|niet aanwezig|frånvaro|poza biurem"
    r"|不在|自動応答|自動返信|休暇|自动回复|自動回覆|автоответ|отпуск|부재|자동 응답|tatil|otomatik yanıt", re.I)


@dataclass(frozen=True, slots=True)
class BounceResult:
    """One recipient's outcome from one returned message; `recipient` is None when the message names none."""

    recipient: str | None
    kind: str
    reason: str
    status: str | None = None
    smtp_code: int | None = None
    diagnostic: str = ""
    original_headers: dict = field(default_factory=dict)
    return_path_token: str | None = None
    source: str = ""
    delayed: bool = False  # a delay notice: the reporting MTA is still trying (DSN Action: delayed, "still being retried")


def classify_message(raw: bytes, source: str) -> list[BounceResult]:
    """Every failed recipient of one raw message, or one `not_bounce`/`unknown` result saying why there is none."""
    try:
        return _classify(raw, source)
    except Exception as exc:  # noqa: BLE001 - mail from strangers: a parser bug must cost one message, not the batch
        return [BounceResult(None, "not_bounce", "unknown", diagnostic=f"unreadable message: {type(exc).__name__}: {exc}"[:300],
                             source=source)]


def _classify(raw: bytes, source: str) -> list[BounceResult]:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    token = return_path_token(msg)
    parts = message_parts(msg)
    original = original_headers(parts)
    for name in ("In-Reply-To", "References"):  # the message's own: the mail an auto-reply answers (mapping reads them)
        if msg[name] is not None:
            original[name] = str(msg[name])[:2000]

    def result(verdict: Verdict, recipient=None, status=None, code=None, diagnostic="", delayed=False) -> BounceResult:
        return BounceResult(recipient, verdict.kind, verdict.reason, status, code, diagnostic.strip()[:1000],
                            original, token, source, delayed and verdict.kind == "soft")

    feedback = parts.get("message/feedback-report")
    microsoft = _microsoft_fbl_recipient(msg, parts)
    if feedback is not None or microsoft:
        return [result(COMPLAINT, microsoft or _complaint_recipient(feedback, original), diagnostic=_feedback_type(feedback))]
    report = next((parts[t] for t in REPORT_TYPES if t in parts), None)
    if report is not None:
        results = [result(*r) for r in _dsn(report)]
        if results:
            return results
    subject = subject_of(msg)
    sender = str(msg.get("From", ""))
    text = parts.get("text/plain") or html_text(parts.get("text/html", ""))
    looks_bounce = bool(_DAEMON_FROM.search(sender) or _BOUNCE_SUBJECT.search(subject))
    if not looks_bounce and _is_auto_reply(msg, subject):
        return [result(AUTO_REPLY, address_in(sender), diagnostic=subject)]
    section = error_section(text)
    verdict = classify_text(section) if section.strip() else NOT_BOUNCE
    if verdict is NOT_BOUNCE and looks_bounce and section.strip():
        verdict = classify_text(section + "\nundeliverable")  # a daemon's notice with no failure wording is still one
        if verdict.kind not in ("hard", "soft"):
            verdict = NOT_BOUNCE
    if verdict.kind not in ("hard", "soft"):
        if verdict is NOT_BOUNCE and _is_auto_reply(msg, subject):
            return [result(AUTO_REPLY, address_in(sender), diagnostic=subject)]
        recipient = original.get("To") if verdict is DELIVERED else sender if verdict is AUTO_REPLY else None
        return [result(verdict, address_in(recipient), diagnostic=subject)]
    exclude = frozenset(a.lower() for a in (address_in(sender), address_in(str(msg.get("To", ""))),
                                             address_in(original.get("From", ""))) if a)
    recipients = failed_recipients(section, exclude)
    delayed = bool(_DELAY_NOTICE.search(subject) or _STILL_TRYING.search(section))
    if not recipients:
        code, status = extract_status(section)
        return [result(verdict, address_in(original.get("To", "")), status, code, section[-500:], delayed)]
    out = []
    for address, segment in recipients:
        own = classify_text(segment) if extract_status(segment) != (None, None) else None
        if own is not None and own.kind in ("hard", "soft"):
            code, status = extract_status(segment)
            out.append(result(own, address, status, code, segment, delayed))
        else:
            code, status = extract_status(section)
            out.append(result(verdict, address, status, code, segment.strip() or section[-500:], delayed))
    return out


def _dsn(report: str) -> list[tuple]:
    """(verdict, recipient, status, code, diagnostic, delayed) for each per-recipient block of a delivery-status report."""
    out = []
    for block in re.split(r"\n[ \t]*\n", report.replace("\r\n", "\n")):
        f = report_fields(block)
        rcpt = f.get("final-recipient") or f.get("original-recipient")
        if not rcpt:
            continue
        recipient = address_in(rcpt.split(";", 1)[-1])
        action = f.get("action", "").lower().split()[:1]
        diagnostic = f.get("diagnostic-code", "").split(";", 1)[-1].strip()
        dsn_status = _ENH.search(f.get("status", ""))
        status = dsn_status.group(0) if dsn_status else None
        code, said = extract_status(diagnostic)
        if said and (status is None or status in GENERIC_STATUSES) and said[0] == (status or said)[0]:
            status = said  # the reply's own status is more specific than the MTA's summary
        if action == ["delivered"] or action == ["relayed"] or action == ["expanded"] or (status or " ")[0] == "2":
            out.append((DELIVERED, recipient, status, code, diagnostic, False))
            continue
        delayed = action == ["delayed"]
        text = diagnostic or f.get("status", "")
        if status and status in GENERIC_STATUSES and not diagnostic:
            verdict = classify_reply(code, None, text)
        else:
            verdict = classify_reply(code, None if status in GENERIC_STATUSES else status, text)
        if delayed or (status or "5")[0] == "4":
            verdict = Verdict("soft", verdict.reason) if verdict.kind == "hard" else verdict
        if verdict.kind not in ("hard", "soft"):
            verdict = classify_reply(None, "4.0.0" if delayed else "5.0.0", text)
        out.append((verdict, recipient, status, code, diagnostic, delayed))
    return out


def _is_auto_reply(msg: Message, subject: str) -> bool:
    submitted = str(msg.get("Auto-Submitted", "")).strip().lower()
    if submitted.startswith("auto-replied"):
        return True
    if msg.get("X-Autoreply") or msg.get("X-Autorespond") or msg.get("X-Vacation"):
        return True
    precedence = str(msg.get("Precedence", "")).strip().lower()
    if precedence == "auto_reply":
        return True
    return bool(_VACATION_SUBJECT.search(subject)) and (precedence in ("bulk", "junk", "list") or not submitted.startswith("no")
                                                        or bool(msg.get("X-Auto-Response-Suppress")))


def _microsoft_fbl_recipient(msg: Message, parts: dict) -> str | None:
    """Microsoft's JMRP loop is no ARF: it returns the complained-of message marked with the complainer's address."""
    for carrier in (msg, parts.get("message/rfc822")):
        if isinstance(carrier, Message) and carrier.get("X-HmXmrOriginalRecipient"):
            return address_in(str(carrier["X-HmXmrOriginalRecipient"])) or "unknown@invalid"
    return None


def _complaint_recipient(feedback, original: dict) -> str | None:
    if isinstance(feedback, str):
        f = report_fields(feedback)
        for name in ("original-rcpt-to", "removal-recipient"):
            if f.get(name):
                return address_in(f[name])
    return address_in(original.get("To", ""))


def _feedback_type(feedback) -> str:
    return report_fields(feedback).get("feedback-type", "abuse") if isinstance(feedback, str) else "abuse"


