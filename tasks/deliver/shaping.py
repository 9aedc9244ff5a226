"""Traffic shaping inside one sending process: rates, suspensions and relay rotation.

The global rate over all processes comes from a Prefect rate limit, taken in batches
(`GlobalGate`); each provider group gets a local token bucket and is suspended for a while
after it answers 421 or 4.7.x (`ProviderLane`); relays that keep failing leave the rotation
for a cool-down (`RelayChooser`). Clocks and sleeps are injected so tests never wait.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from mailflow.providers import ProviderLimits
from mailflow.settings import Relay

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """`rate` tokens per second with a burst of `burst`; rate 0 means unlimited."""

    def __init__(self, rate: float, burst: float | None = None, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep):
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens, self._at = self.burst, clock()
        self.waits, self.waited = 0, 0.0  # how often and how long take() held a message back (benches and tests read them)

    def delay(self) -> float:
        """Take one token; return how long the caller must wait before using it."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def take(self) -> None:
        wait = self.delay()
        if wait > 0:
            self.waits, self.waited = self.waits + 1, self.waited + wait
            await self.sleep(wait)


class GlobalGate:
    """Slots of the global rate limit, taken `batch` at a time and spent one per message.

    `acquire(n)` is the Prefect rate limit call (an API round trip) supplied by the task
    wrapper; None when no global rate is configured. Only one acquisition runs at a time,
    so concurrent senders share a batch instead of each taking one.
    """

    def __init__(self, acquire: Callable[[int], Awaitable[None]] | None, batch: int):
        self.acquire, self.batch = acquire, batch
        self._slots = 0
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        if self.acquire is None:
            return
        async with self._lock:
            if self._slots == 0:
                await self.acquire(self.batch)
                self._slots = self.batch
            self._slots -= 1


@dataclass
class ProviderLane:
    """One provider group's shaping state in this process."""

    name: str
    limits: ProviderLimits
    clock: Clock = time.time
    sleep: Sleep = asyncio.sleep
    suspended_until: float = 0.0
    reason: str = ""
    bucket: TokenBucket = field(init=False)

    def __post_init__(self) -> None:
        self.bucket = TokenBucket(self.limits.rate, clock=self.clock, sleep=self.sleep)

    def suspended(self) -> bool:
        return self.clock() < self.suspended_until

    def suspend(self, why: str, until: float | None = None) -> float:
        """Stop sending to this provider for its back-off (or until `until`); return the end time."""
        end = until if until is not None else self.clock() + self.limits.backoff
        if end > self.suspended_until:
            self.suspended_until, self.reason = end, why
        return self.suspended_until


def is_throttle(smtp_code: int | None, enhanced: str | None, reason: str | None = None) -> bool:
    """A reply that says "slow down" about the sender (421, 4.7.x, or classified rate/reputation)."""
    if smtp_code is None or not 400 <= smtp_code < 500:
        return False
    return smtp_code == 421 or (enhanced or "").startswith("4.7.") or reason in ("rate_limited", "reputation_blocked")


@dataclass
class RelayHealth:
    failures: int = 0
    out_until: float = 0.0


class RelayChooser:
    """Weighted choice of a pool's relays, per message or sticky per domain, skipping failed ones.

    A relay that fails `max_failures` times in a row (no connection, refused session) leaves
    the rotation for `cooldown` seconds. If every relay is out, the one back soonest is used,
    so the caller's error budget still sees the failures and pauses the send.
    """

    def __init__(self, relays: Sequence[Relay], choose: str = "message", max_failures: int = 3,
                 cooldown: float = 60.0, clock: Clock = time.monotonic, rng: random.Random | None = None):
        if not relays:
            raise ValueError("a pool needs at least one relay")
        self.relays, self.choose = tuple(relays), choose
        self.max_failures, self.cooldown, self.clock = max_failures, cooldown, clock
        self.rng = rng or random.Random()
        self.health = {relay: RelayHealth() for relay in self.relays}

    def in_rotation(self) -> list[Relay]:
        now = self.clock()
        return [r for r in self.relays if self.health[r].out_until <= now]

    def pick(self, domain: str) -> Relay:
        candidates = self.in_rotation()
        if not candidates:
            return min(self.relays, key=lambda r: self.health[r].out_until)
        if len(candidates) == 1:
            return candidates[0]
        if self.choose == "domain":
            return max(candidates, key=lambda r: rendezvous(domain, str(r), r.weight))
        return self.rng.choices(candidates, weights=[r.weight for r in candidates])[0]

    def failed(self, relay: Relay) -> bool:
        """Count a failure; True when it takes the relay out of rotation."""
        health = self.health[relay]
        health.failures += 1
        if health.failures >= self.max_failures:
            health.failures, health.out_until = 0, self.clock() + self.cooldown
            return True
        return False

    def worked(self, relay: Relay) -> None:
        self.health[relay].failures = 0


def rendezvous(domain: str, choice: str, weight: int = 1) -> float:
    """Weighted rendezvous hashing: each domain sticks to one choice (a relay, a sending IP), and
    only the domains of a choice that goes away move elsewhere."""
    digest = hashlib.blake2b(f"{domain}|{choice}".encode(), digest_size=8).digest()
    unit = (int.from_bytes(digest, "big") + 1) / (2**64 + 1)  # in (0, 1)
    return -weight / math.log(unit)
