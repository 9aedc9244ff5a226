"""The reference delivery pool the tests check mailflow against: N persistent connections of a
transport (SmtpConnection below, aiosmtplib, by default) over one relay, with none of the dispatcher's
shaping. Production sends through tasks/deliver/dispatch.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

import aiosmtplib

from mailflow.settings import Relay
from mailflow.tasks.compose.message import Envelope
from mailflow.tasks.deliver.smtp import (
    Outcome,
    Transport,
    outcome_of_error,
    outcome_of_mail_refusal,
    outcome_of_reply,
    outcome_of_session_refusal,
)


async def deliver_all(
    envelopes: Iterable[tuple[object, Envelope | Outcome]],
    relay: Relay,
    connections: int,
    helo: str,
    timeout: float,
    connection_factory: Callable[[Relay, str, float], Transport] | None = None,
    on_start: Callable[[object], None] | None = None,
) -> AsyncIterator[tuple[object, Outcome]]:
    """Send each (key, envelope) over `connections` persistent connections; yield (key, outcome).

    An item whose second element is already an Outcome (e.g. a refused header) is passed
    straight through, so callers log every recipient through one stream. `on_start(key)`
    runs just before a message goes on the wire: the caller logs it as in flight there.
    """
    queue: asyncio.Queue = asyncio.Queue(maxsize=connections * 4)
    results: asyncio.Queue = asyncio.Queue()
    done = object()

    async def worker() -> None:
        conn = (connection_factory or SmtpConnection)(relay, helo, timeout)
        try:
            while (item := await queue.get()) is not done:
                key, envelope = item
                if not isinstance(envelope, Outcome) and on_start is not None:
                    on_start(key)
                outcome = envelope if isinstance(envelope, Outcome) else await conn.send(envelope)
                await results.put((key, outcome))
        finally:
            await conn.close()
            await results.put(done)

    async def feed() -> None:
        try:
            for item in envelopes:
                await queue.put(item)
        finally:  # even when building an envelope raised: let the workers finish
            for _ in range(connections):
                await queue.put(done)

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    feeder = asyncio.create_task(feed())
    finished = 0
    try:
        while finished < connections:
            item = await results.get()
            if item is done:
                finished += 1
            else:
                yield item
        await feeder  # re-raises what stopped the feed, so the caller's task fails and retries
    finally:  # also when the caller stops early: no worker outlives the stream
        for t in [feeder, *workers]:
            t.cancel()
        await asyncio.gather(feeder, *workers, return_exceptions=True)


class SmtpConnection:
    """aiosmtplib over one persistent connection to a relay, opened on first use and reopened after
    trouble: the reference the pipelining client (mailflow.tasks.deliver.client) is checked against."""

    def __init__(self, relay: Relay, helo: str, timeout: float):
        self.relay, self.helo, self.timeout = relay, helo, timeout
        self._smtp: aiosmtplib.SMTP | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._smtp is None or not self._smtp.is_connected:
            smtp = aiosmtplib.SMTP(
                hostname=self.relay.host,
                port=self.relay.port,
                local_hostname=self.helo,
                timeout=self.timeout,
                use_tls=self.relay.tls == "implicit",
                start_tls=True if self.relay.tls == "starttls" else False,
                username=self.relay.username or None,
                password=self.relay.password.reveal() or None,
            )
            try:
                await smtp.connect()
            except BaseException:
                smtp.close()
                raise
            self._smtp = smtp
        return self._smtp

    async def send(self, envelope: Envelope) -> Outcome:
        try:
            smtp = await self._connected()
        except aiosmtplib.SMTPResponseException as exc:
            await self.close()
            return outcome_of_session_refusal(exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - connection trouble: deferred like any other
            await self.close()
            return outcome_of_error(exc, unsent=True)
        try:
            errors, message = await smtp.sendmail(envelope.sender, [envelope.recipient], envelope.data)
            return outcome_of_reply(250, message)
        except aiosmtplib.SMTPSenderRefused as exc:
            if exc.code == 421:
                await self.close()
            return outcome_of_mail_refusal(exc.code, exc.message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return outcome_of_reply(refused.code, refused.message)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code in (421,):  # the server is closing the connection
                await self.close()
            return outcome_of_reply(exc.code, exc.message)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            await self.close()
            return outcome_of_error(exc)
        except Exception as exc:  # noqa: BLE001 - any other failure must still give this recipient an outcome
            await self.close()
            return outcome_of_error(exc)

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            try:
                await smtp.quit()
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                smtp.close()
