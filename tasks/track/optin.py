"""Double opt-in: pending opt-ins stored under the home, their signed confirmation links, the confirmation mail, a rate limit."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import polars as pl

from mailflow.settings import Settings
from mailflow.tasks.compose.dkim import signer_for
from mailflow.tasks.compose.message import Envelope, build_message, envelope_sender
from mailflow.tasks.compose.tokens import BadToken, TokenSigner, campaign_digest
from mailflow.tasks.core.validate import SMTPUTF8, UnsendableAddress, sendable_address
from mailflow.tasks.deliver.client import PipeliningConnection
from mailflow.tasks.deliver.smtp import Outcome
from mailflow.tasks.files.atomic import fsync_dir
from mailflow.tasks.ingest.normalise import canonical_email, idna_domains, nfc
from mailflow.tasks.track.htmlpage import render_text

PURPOSE = "optin"
OPTINS = "optins"  # under the home: pending/, confirmed/, expired/ — one small JSON file per opt-in
EMAIL_LIMIT, NAME_LIMIT, VERSION_LIMIT = 254, 100, 64
# Confirmation mails per address per hour (per service process, in memory only): the form may be
# posted for anyone's address from many clients, and must not become a way to flood an inbox
ADDRESS_MAILS, ADDRESS_WINDOW = 3, 3600.0


class InvalidAddress(ValueError):
    """Not an address mail can be sent to."""


class Claim(StrEnum):
    CONFIRMED = "confirmed"  # confirmed now: record the consent
    ALREADY = "already"  # confirmed before: say thanks again, record nothing
    EXPIRED = "expired"  # expired now: say so and log it
    STALE = "stale"  # expired before: say so, log nothing
    UNKNOWN = "unknown"  # no such opt-in


@dataclass(frozen=True)
class PendingOptin:
    optin_id: int
    email: str
    first_name: str
    list: str
    form_version: str
    ip: str | None
    requested_at: str  # ISO, UTC
    expires_at: str


def canonical_address(raw: str) -> tuple[str, bool]:
    """(the address as ingest would store it, whether it needs SMTPUTF8); InvalidAddress otherwise."""
    text = raw.strip()
    if not text or len(text) > EMAIL_LIMIT or text.count("@") != 1:
        raise InvalidAddress("not an email address")
    # The same steps as ingest, so a subscriber who later turns up in an import is one row, not two
    frame = idna_domains(nfc(pl.DataFrame({"email": [text]}), ["email"]).with_columns(email=canonical_email(pl.col("email"))))
    email = frame["email"][0]
    try:
        return email, sendable_address(email) == SMTPUTF8
    except UnsendableAddress:
        raise InvalidAddress("not an email address") from None


def optin_campaign(list_name: str) -> str:
    """What an opt-in token's campaign digest hashes: the list, so a link confirms only the list it was sent for."""
    return f"optin:{list_name}"


def confirm_token(signer: TokenSigner, optin: PendingOptin) -> str:
    return signer.sign(optin_campaign(optin.list), optin.optin_id, PURPOSE)


class OptinStore:
    """Pending opt-ins as files under home/optins: any worker process finds the one a link names,
    and a rename claims it, so two clicks on one link record one consent. Blocking: call it off the loop."""

    def __init__(self, home: Path):
        self.dir = home / OPTINS

    def create(self, email: str, first_name: str, list_name: str, form_version: str, ip: str | None,
               valid: timedelta, now: datetime | None = None) -> PendingOptin:
        now = now or datetime.now(UTC)
        optin = PendingOptin(secrets.randbits(63), email, first_name, list_name, form_version, ip,
                             now.isoformat(), (now + valid).isoformat())
        folder = self.dir / "pending"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{optin.optin_id:016x}.json"
        # Durable before the answer: fsync the file and its folder entry
        with open(path, "xb") as fh:
            fh.write(json.dumps(asdict(optin)).encode())
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(folder)
        return optin

    def claim(self, signer: TokenSigner, token: str, now: datetime | None = None) -> tuple[Claim, PendingOptin | None]:
        """Verify a confirmation token and move its opt-in to confirmed/ or expired/ (once)."""
        try:
            ref = signer.verify(token, PURPOSE)
        except BadToken:
            return Claim.UNKNOWN, None
        name = f"{ref.subscriber_id:016x}.json"
        now = now or datetime.now(UTC)
        for state, claim in (("pending", None), ("confirmed", Claim.ALREADY), ("expired", Claim.STALE)):
            optin = self._read(self.dir / state / name)
            if optin is None:
                continue
            if campaign_digest(optin_campaign(optin.list)) != ref.campaign_digest:
                return Claim.UNKNOWN, None
            if claim is not None:
                return claim, optin
            fresh = datetime.fromisoformat(optin.expires_at) > now
            target = self.dir / ("confirmed" if fresh else "expired")
            target.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(self.dir / "pending" / name, target / name)  # one process wins this
            except FileNotFoundError:
                return self.claim(signer, token, now)  # another click got there first: report what it did
            fsync_dir(target)
            return (Claim.CONFIRMED if fresh else Claim.EXPIRED), optin
        return Claim.UNKNOWN, None

    def unclaim(self, optin: PendingOptin) -> None:
        """Undo a confirming claim whose consent could not be recorded."""
        name = f"{optin.optin_id:016x}.json"
        os.rename(self.dir / "confirmed" / name, self.dir / "pending" / name)

    def _read(self, path: Path) -> PendingOptin | None:
        try:
            return PendingOptin(**json.loads(path.read_bytes()))
        except (FileNotFoundError, ValueError, TypeError):
            return None


class RateLimit:
    """At most `limit` requests per `window` seconds per key (a client IP), in fixed windows; at most
    `capacity` keys remembered, the least recently seen forgotten first, so memory stays bounded."""

    def __init__(self, limit: int, window: float, capacity: int = 10_000, clock=time.monotonic):
        self.limit, self.window, self.capacity, self.clock = limit, window, capacity, clock
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def allow(self, key: str) -> bool:
        now = self.clock()
        start, count = self._seen.pop(key, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        self._seen[key] = (start, count + 1)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return count < self.limit


def sender_address(settings: Settings) -> str:
    return settings.tracking.subscribe_from or f"no-reply@{settings.smtp.helo}"


def confirmation_envelope(settings: Settings, optin: PendingOptin, confirm_url: str, utf8: bool) -> Envelope:
    """The confirmation mail: text and HTML from templates/pages/confirm_email.*, DKIM-signed when DKIM is set.

    It shows nothing the form's sender typed but the address it goes to: anyone may post the form for
    any address, so a name shown here would let them mail their own text, signed as ours, to anyone."""
    context = {"list": optin.list, "confirm_url": confirm_url, "valid_hours": round(settings.tracking.optin_hours)}
    data = build_message(from_addr=sender_address(settings), to_email=optin.email, to_name=None,
                         subject=f"Please confirm your subscription to {optin.list}",
                         html=render_text("confirm_email.html.j2", **context), text=render_text("confirm_email.txt.j2", **context),
                         extra_headers={"Auto-Submitted": "auto-generated"})
    signer = signer_for(settings.dkim)
    if signer is not None:
        data = signer.sign(data)
    return Envelope(envelope_sender(sender_address(settings)), optin.email, data, utf8)


async def send_confirmation(settings: Settings, envelope: Envelope) -> Outcome:
    """One message over the default pool with the send stage's SMTP client (asyncio: the loop keeps
    serving); the next relay is tried when one could not take it before the message was under way."""
    pool = settings.pool("default")
    outcome = Outcome("failed", None, None, "the default pool has no relay")
    for relay in pool.relays:
        connection = PipeliningConnection(relay, settings.smtp.helo, settings.smtp.timeout)
        try:
            outcome = await connection.send(envelope)
        finally:
            await connection.close()
        if outcome.status == "delivered" or not outcome.unsent:
            break
    return outcome
