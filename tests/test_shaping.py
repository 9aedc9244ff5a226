"""Shaping inside a sender: token buckets, the batched global gate, relay choice and rotation, the cap on open sessions."""

import asyncio
import random
from collections import Counter

import pytest

from mailflow.providers import DEFAULT_LIMITS, provider_of
from mailflow.settings import Relay
from mailflow.tasks.deliver.dispatch import Connections
from mailflow.tasks.deliver.shaping import GlobalGate, ProviderLane, RelayChooser, TokenBucket, is_throttle


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_token_bucket_spaces_messages_after_the_burst():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=2, clock=clock)
    assert [bucket.delay() for _ in range(2)] == [0.0, 0.0]
    assert bucket.delay() == pytest.approx(0.1)
    assert bucket.delay() == pytest.approx(0.2)
    clock.now += 1.0  # a second later the bucket has refilled to its burst
    assert bucket.delay() == 0.0


def test_token_bucket_rate_zero_is_unlimited():
    bucket = TokenBucket(rate=0, clock=FakeClock())
    assert {bucket.delay() for _ in range(1000)} == {0.0}


def test_global_gate_takes_slots_in_batches():
    calls = []

    async def acquire(n):
        calls.append(n)

    async def main():
        gate = GlobalGate(acquire, batch=50)
        await asyncio.gather(*(gate.take() for _ in range(120)))

    asyncio.run(main())
    assert calls == [50, 50, 50]  # 120 messages: three API calls, not 120


def test_provider_lane_suspends_and_recovers():
    clock = FakeClock()
    lane = ProviderLane("gmail", DEFAULT_LIMITS["gmail"], clock=clock)
    assert not lane.suspended()
    until = lane.suspend("421 4.7.0 try later")
    assert lane.suspended() and until == clock.now + DEFAULT_LIMITS["gmail"].backoff
    clock.now = until
    assert not lane.suspended()


@pytest.mark.parametrize("code,enhanced,reason,throttle", [
    (421, None, None, True), (451, "4.7.1", None, True), (450, "4.2.1", "rate_limited", True),
    (451, "4.3.0", None, False), (550, "5.7.1", None, False), (None, None, None, False), (250, "2.0.0", None, False),
])
def test_what_counts_as_a_throttle(code, enhanced, reason, throttle):
    assert is_throttle(code, enhanced, reason) is throttle


def test_provider_groups():
    assert provider_of("googlemail.com") == provider_of("gmail.com") == "gmail"
    assert provider_of("hotmail.com") == "microsoft" and provider_of("aol.com") == "yahoo"
    assert provider_of("example.org") == "other"


RELAYS = (Relay("10.0.0.1", 25, weight=3), Relay("10.0.0.2", 25, weight=1))


def test_weighted_choice_per_message_follows_the_weights():
    chooser = RelayChooser(RELAYS, rng=random.Random(7))
    picks = Counter(chooser.pick("example.com") for _ in range(8000))
    assert 2.6 < picks[RELAYS[0]] / picks[RELAYS[1]] < 3.4


def test_choice_per_domain_is_sticky_and_weighted():
    chooser = RelayChooser(RELAYS, choose="domain")
    domains = [f"d{i}.example" for i in range(4000)]
    first = {d: chooser.pick(d) for d in domains}
    assert all(chooser.pick(d) == first[d] for d in domains)
    share = Counter(first.values())
    assert 2.6 < share[RELAYS[0]] / share[RELAYS[1]] < 3.4


def test_a_failing_relay_leaves_the_rotation_and_returns_after_the_cooldown():
    clock = FakeClock()
    chooser = RelayChooser(RELAYS, choose="domain", max_failures=3, cooldown=60, clock=clock)
    sticky = [d for d in (f"d{i}.example" for i in range(200)) if chooser.pick(d) == RELAYS[0]]
    assert not chooser.failed(RELAYS[0]) and not chooser.failed(RELAYS[0])
    assert chooser.failed(RELAYS[0])  # the third failure in a row
    assert chooser.in_rotation() == [RELAYS[1]]
    assert {chooser.pick(d) for d in sticky} == {RELAYS[1]}
    clock.now += 60
    assert {chooser.pick(d) for d in sticky} == {RELAYS[0]}  # only its own domains move back


def test_success_resets_the_failure_count():
    chooser = RelayChooser(RELAYS, max_failures=2, clock=FakeClock())
    chooser.failed(RELAYS[0])
    chooser.worked(RELAYS[0])
    assert not chooser.failed(RELAYS[0])


def test_when_every_relay_is_out_the_one_back_soonest_is_used():
    clock = FakeClock()
    chooser = RelayChooser(RELAYS, max_failures=1, cooldown=60, clock=clock)
    chooser.failed(RELAYS[1])
    clock.now += 10
    chooser.failed(RELAYS[0])
    assert chooser.in_rotation() == [] and chooser.pick("x.example") == RELAYS[1]


def test_sessions_over_many_exchangers_stay_under_the_process_total_idle_ones_included():
    count = Counter()  # sessions open now, and the most ever open at once

    class Session:
        def __init__(self, relay, max_messages):
            count["open"] += 1
            count["peak"] = max(count["peak"], count["open"])

        async def send(self, envelope):
            await asyncio.sleep(0)

        async def close(self):
            count["open"] -= 1

    connections = Connections(Session, cap=4, total=4)

    async def one(i):
        async with connections.checkout(Relay(f"127.0.1.{i % 60 + 1}", 25), 100) as conn:
            await conn.send(None)

    async def main():
        await asyncio.gather(*(one(i) for i in range(300)))
        await connections.close()

    asyncio.run(main())
    assert count["peak"] == 4, "the oldest idle session is closed to make room"
    assert count["open"] == 0
