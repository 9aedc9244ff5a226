"""Deliver a chunk's recipients in per-provider lanes over relays or straight to MX, shaped.

Each recipient goes to the lane of its provider group (gmail, microsoft, yahoo, other; with
`transport: mx` every other domain is a lane of its own). A lane runs as many workers as
its provider may have connections; each worker takes the next recipient, checks it is not
suppressed, composes its message, waits for the global and the provider's rate, checks out
a connection to the chosen destination and sends. A lane whose provider answers 421/4.7.x
is suspended: its remaining recipients are deferred until the back-off ends, without
touching the wire, while the other lanes go on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from mailflow.providers import OTHER, ProviderLimits, provider_of
from mailflow.settings import Relay
from mailflow.tasks.compose.message import Envelope
from mailflow.tasks.deliver.shaping import GlobalGate, ProviderLane, RelayChooser, is_throttle
from mailflow.tasks.deliver.smtp import Cause, Outcome, Transport


def never_sent(outcome: Outcome) -> bool:
    """A deferral from a destination that was never reached, refused the session or refused the
    sender: the client says no byte of the message left, so another destination may be tried
    without risking a duplicate."""
    return outcome.status == "deferred" and outcome.unsent


@dataclass(frozen=True)
class Result:
    row: dict
    outcome: Outcome
    provider: str
    not_before: float | None = None  # epoch seconds a deferred recipient may be retried, when a suspension says
    destination: str = ""  # the relay or exchanger address last tried


class Routes(Protocol):
    """Where a domain's mail goes: destinations to try in order, or an outcome when there are none."""

    async def candidates(self, domain: str) -> list[Relay] | Outcome: ...

    def failed(self, relay: Relay) -> None: ...

    def worked(self, relay: Relay) -> None: ...


class RelayRoutes:
    """A relay pool: the chosen relay first, the others in rotation after it for fail-over."""

    def __init__(self, chooser: RelayChooser):
        self.chooser = chooser
        self._only = list(chooser.relays) if len(chooser.relays) == 1 else None

    async def candidates(self, domain: str) -> list[Relay]:
        if self._only is not None:  # one relay: nothing to choose (the hot path of most installations)
            return self._only
        first = self.chooser.pick(domain)
        return [first, *(r for r in self.chooser.in_rotation() if r != first)]

    def failed(self, relay: Relay) -> None:
        self.chooser.failed(relay)

    def worked(self, relay: Relay) -> None:
        self.chooser.worked(relay)


class Connections:
    """Persistent connections per destination, checked out one sender at a time: at most `cap` per
    destination and `total` open at once (idle ones included, the oldest idle closed to make room)."""

    def __init__(self, factory: Callable[..., Transport], cap: int, total: int | None = None):
        self.factory, self.cap = factory, cap
        self._idle: dict[Relay, list[Transport]] = {}
        self._slots: dict[Relay, asyncio.Semaphore] = {}
        self._total = asyncio.Semaphore(total) if total else None
        self._open = 0
        self._limit = total

    @asynccontextmanager
    async def checkout(self, relay: Relay, max_messages: int):
        async with self._slots.setdefault(relay, asyncio.Semaphore(self.cap)):
            if self._total is not None:
                await self._total.acquire()
            try:
                idle = self._idle.setdefault(relay, [])
                if idle:
                    conn = idle.pop()
                else:
                    await self._make_room()
                    conn = self.factory(relay, max_messages)
                    self._open += 1
                try:
                    yield conn
                finally:
                    idle.append(conn)
            finally:
                if self._total is not None:
                    self._total.release()

    async def _make_room(self) -> None:
        """Straight to MX a chunk meets many exchangers: close an idle session rather than exceed the total."""
        if self._limit is None or self._open < self._limit:
            return
        for idle in self._idle.values():
            if idle:
                self._open -= 1
                await idle.pop(0).close()
                return

    async def close(self) -> None:
        conns = [c for idle in self._idle.values() for c in idle]
        self._idle.clear()
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


class Dispatcher:
    def __init__(self, routes: Routes, connections: Connections, limits: dict[str, ProviderLimits],
                 gate: GlobalGate, *, lane_per_domain: bool = False, capacity: int = 8,
                 max_messages: int | None = None, lanes: dict[str, ProviderLane] | None = None):
        self.routes, self.connections, self.limits, self.gate = routes, connections, limits, gate
        self.lane_per_domain, self.capacity = lane_per_domain, capacity
        # Through a relay, connections carry every provider's mail: the pool's recycling applies;
        # straight to MX, each provider's messages_per_connection does.
        self.max_messages = max_messages
        # Lanes outlive a chunk when the caller passes its own dict: a suspension holds for the process.
        self.lanes = lanes if lanes is not None else {}
        self._stopping = False
        self._stopped: Callable[[], bool] = lambda: False

    def stop(self) -> None:
        """Take no new recipients; those on the wire finish and their outcomes still come out of run()."""
        self._stopping = True

    def stopping(self) -> bool:
        if not self._stopping and self._stopped():
            self._stopping = True
        return self._stopping

    def lane_key(self, domain: str) -> tuple[str, str]:
        provider = provider_of(domain)
        if provider == OTHER and self.lane_per_domain:
            return provider, f"{OTHER}:{domain}"
        return provider, provider

    def lane(self, provider: str, key: str) -> ProviderLane:
        if key not in self.lanes:
            self.lanes[key] = ProviderLane(provider, self.limits[provider])
        return self.lanes[key]

    def workers_for(self, provider: str, queued: int) -> int:
        limit = self.limits[provider].connections
        if provider == OTHER and not self.lane_per_domain:
            limit = self.capacity  # through a relay, "other" is bounded by the relay's connections
        return max(1, min(limit, self.capacity, queued))

    async def run(self, rows: Iterable[dict], compose: Callable[[dict], Envelope | Outcome],
                  precheck: Callable[[dict], Outcome | None], on_start: Callable[[dict], None],
                  stopped: Callable[[], bool] = lambda: False) -> AsyncIterator[Result]:
        """Yield one Result per row taken, in completion order. Once `stopped()` says so (a stop
        request), no further row is taken and none that waited for its rate goes on the wire."""
        self._stopped = stopped
        queues: dict[str, tuple[str, deque]] = {}
        for row in rows:
            provider, key = self.lane_key(row["email"].rpartition("@")[2])
            queues.setdefault(key, (provider, deque()))[1].append(row)
        results: asyncio.Queue[Result | BaseException | None] = asyncio.Queue()

        async def worker(key: str, provider: str, queue: deque) -> None:
            lane = self.lane(provider, key)
            try:
                while queue and not self.stopping():
                    result = await self._one(lane, queue.popleft(), compose, precheck, on_start)
                    if result is not None:  # None: left untouched for the next run
                        await results.put(result)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
                await results.put(exc)
                raise
            await results.put(None)  # this worker is done

        tasks = [asyncio.create_task(worker(key, provider, queue))
                 for key, (provider, queue) in queues.items()
                 for _ in range(self.workers_for(provider, len(queue)))]
        try:
            running = len(tasks)
            while running:
                item = await results.get()
                if item is None:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:  # also when the caller stops early: no worker outlives the stream
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.connections.close()
            self._forget_idle_lanes()

    def _forget_idle_lanes(self) -> None:
        """Per-domain lanes are many (one per domain straight to MX): keep only the suspended ones,
        so lanes passed from chunk to chunk hold what matters and stay small."""
        for key in [k for k, lane in self.lanes.items() if ":" in k and not lane.suspended()]:
            del self.lanes[key]

    async def _one(self, lane: ProviderLane, row: dict, compose, precheck, on_start) -> Result | None:
        provider = lane.name
        outcome = precheck(row)
        if outcome is not None:
            return Result(row, outcome, provider)
        if lane.suspended():
            return Result(row, Outcome("deferred", None, None, f"not sent: provider {provider} suspended ({lane.reason})",
                                          cause=Cause.SUSPENDED),
                          provider, lane.suspended_until)
        envelope = compose(row)
        if isinstance(envelope, Outcome):
            return Result(row, envelope, provider)
        destinations = await self.routes.candidates(row["email"].rpartition("@")[2])
        if isinstance(destinations, Outcome):
            return Result(row, destinations, provider)
        if self.gate.acquire is not None:
            await self.gate.take()
        if lane.limits.rate > 0:
            await lane.bucket.take()
        if self.stopping():  # stopped while it waited for its rate: it never reached the wire
            return None
        outcome, tried = Outcome("deferred", None, None, "no destination"), ""
        on_start(row)
        for relay in destinations:
            tried = str(relay)
            async with self.connections.checkout(relay, self.max_messages or lane.limits.messages_per_connection) as conn:
                outcome = await conn.send(envelope)
            if not never_sent(outcome):
                self.routes.worked(relay)
                break
            self.routes.failed(relay)
        else:
            if len(destinations) > 1:
                outcome = Outcome("deferred", outcome.smtp_code, "4.4.1", f"no destination answered "
                                  f"({len(destinations)} tried), last {tried}: {outcome.detail}", unsent=True)
        # Through a relay, "other" is no one provider, and a session the relay refuses is the relay's
        # trouble: such throttles defer just that recipient. Straight to MX, the exchanger is the provider.
        suspends = (provider != OTHER or self.lane_per_domain) and (self.lane_per_domain or not never_sent(outcome))
        if suspends and is_throttle(outcome.smtp_code, outcome.enhanced_status):
            lane.suspend(f"{outcome.smtp_code} {outcome.enhanced_status or ''} {outcome.detail[:120]}".strip())
            return Result(row, outcome, provider, lane.suspended_until, tried)
        return Result(row, outcome, provider, destination=tried)
