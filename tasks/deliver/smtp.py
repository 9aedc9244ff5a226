"""Delivery outcomes, their causes, and the one mapping from an SMTP reply to an outcome."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from mailflow.tasks.compose.message import Envelope

_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
# Servers echo the recipient in their replies; the ledger is a log, so addresses are masked.
_ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>@]+>?")


class Cause(StrEnum):
    """Why an outcome is what it is, when that is ours to say: code decides on this, never on `detail`
    (the text is for people)."""

    REPLY = ""  # the server's reply (or the connection's trouble) says it all
    ADDRESS = "address"  # the recipient's address, not the campaign, is what failed
    RELAY_REFUSED = "relay_refused"  # the relay refused our session or our sender: nothing of the recipient
    SUSPENDED = "suspended"  # held back unsent while its provider is suspended for throttling us
    EXPIRED = "expired"  # given up on: deferred longer than send.give_up_after
    WARMUP = "warmup"  # held back unsent: its pool's warm-up cap for its provider group is used up today


@dataclass(frozen=True)
class Outcome:
    status: str  # delivered | deferred | bounced | failed
    smtp_code: int | None = None
    enhanced_status: str | None = None
    detail: str = ""
    # Nothing of the message reached the server (no session, or the sender was refused): another
    # server may be tried at once without risking a second copy.
    unsent: bool = False
    cause: Cause = Cause.REPLY


def outcome_of_reply(code: int, message: str) -> Outcome:
    """The only mapping from an SMTP reply to an outcome: 2xx delivered, 4xx deferred, 5xx bounced."""
    match = _ENHANCED.match(message or "")
    enhanced = match.group(1) if match else None
    detail = _ADDRESS.sub("<address>", " ".join((message or "").split()))[:500]
    if 200 <= code < 300:
        return Outcome("delivered", code, enhanced, detail)
    if 400 <= code < 500:
        return Outcome("deferred", code, enhanced, detail)
    if 500 <= code < 600:
        return Outcome("bounced", code, enhanced, detail)
    return Outcome("deferred", code, enhanced, f"unexpected reply: {detail}")


def outcome_of_session_refusal(code: int, message: str) -> Outcome:
    """The relay refused the session itself (greeting, EHLO, STARTTLS, AUTH): nothing is known
    of the recipient, so it is deferred, never bounced — a wrong relay password must not bounce a list."""
    outcome = outcome_of_reply(code, message)
    return Outcome("deferred", outcome.smtp_code, outcome.enhanced_status, f"relay refused the session: {outcome.detail}",
                   unsent=True, cause=Cause.RELAY_REFUSED)


def outcome_of_mail_refusal(code: int, message: str) -> Outcome:
    """MAIL FROM refused. A message too large for the server (552, 5.3.4: our SIZE) bounces; any
    other 5xx (530 authentication required, 550 sender rejected) means the server takes nothing
    from us, whoever the recipient: deferred like a refused session, never bounced. Either way
    nothing of the message was sent, so another server may be tried."""
    outcome = outcome_of_reply(code, message)
    if code == 552 or outcome.enhanced_status == "5.3.4" or code // 100 != 5:
        return replace(outcome, unsent=True)
    return Outcome("deferred", outcome.smtp_code, outcome.enhanced_status, f"relay refused the sender: {outcome.detail}",
                   unsent=True, cause=Cause.RELAY_REFUSED)


def outcome_of_error(exc: BaseException, unsent: bool = False) -> Outcome:
    """Connection trouble is retried later: deferred, with no SMTP code."""
    text = _ADDRESS.sub("<address>", " ".join(str(exc).split()))[:300]
    return Outcome("deferred", None, None, f"{type(exc).__name__}: {text}", unsent=unsent)


class Transport(Protocol):
    """What the sender needs of a transport: send one envelope, close."""

    async def send(self, envelope: Envelope) -> Outcome: ...

    async def close(self) -> None: ...
