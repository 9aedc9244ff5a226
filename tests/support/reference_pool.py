"""The reference delivery pool the tests check mailflow against: N persistent connections of a
transport (aiosmtplib's SmtpConnection by default) over one relay, with none of the dispatcher's
shaping. Production sends through tasks/deliver/dispatch.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

from mailflow.settings import Relay
from mailflow.tasks.compose.message import Envelope
from mailflow.tasks.deliver.smtp import Outcome, SmtpConnection, Transport


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
