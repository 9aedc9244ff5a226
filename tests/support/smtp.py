"""Client-side helpers for SMTP tests: envelopes to send, outcomes as tuples, one connection run to the end."""

from __future__ import annotations

import asyncio

from mailflow.tasks.compose.message import Envelope
from mailflow.tasks.deliver.smtp import Outcome

HELO = "mailer.example.com"
SENDER = "news@example.com"
DELIVERED = ("delivered", 250, "2.0.0")


def message(subject: str, body: bytes = b"Hello.\r\n") -> bytes:
    return b"From: News <news@example.com>\r\nSubject: " + subject.encode() + b"\r\n\r\n" + body


def good(n: int) -> Envelope:
    """A message any server takes, to reader{n}@example.com."""
    return Envelope(SENDER, f"reader{n}@example.com", message(f"good {n}"))


def key(outcome: Outcome) -> tuple:
    return (outcome.status, outcome.smtp_code, outcome.enhanced_status)


def send_all(connection, envelopes) -> list[Outcome]:
    """Send each envelope over `connection` in turn, then close it; the outcomes in order."""
    async def run() -> list[Outcome]:
        try:
            return [await connection.send(e) for e in envelopes]
        finally:
            await connection.close()

    return asyncio.run(asyncio.wait_for(run(), 60))
