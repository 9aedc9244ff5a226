"""Direct-to-MX routing against a real DNS server on loopback, and delivery to the best reachable exchanger."""

from __future__ import annotations

import asyncio
import random

import pytest

from mailflow.providers import DEFAULT_LIMITS
from mailflow.tasks.compose.message import Envelope
from mailflow.tasks.core.dns import make_resolver
from mailflow.tasks.deliver.client import PipeliningConnection
from mailflow.tasks.deliver.dispatch import Connections, Dispatcher
from mailflow.tasks.deliver.mx import (
    DOMAIN_UNKNOWN,
    MAX_TTL,
    MIN_TTL,
    NULL_MX,
    POLICY,
    TEMPORARY,
    TEMPORARY_TTL,
    MxHost,
    MxRouter,
    Route,
    RouteError,
)
from mailflow.tasks.deliver.shaping import GlobalGate
from mailflow.tasks.deliver.smtp import Outcome
from mailflow.tasks.deliver.transport import MxRoutes
from mailflow.tasks.demo.receiver import USER_UNKNOWN, Fault, Receiver, free_port
from tests.support.dnsstub import DnsStub

pytestmark = pytest.mark.integration

ZONE = {
    "pref.example": {"MX": ["20 mx2.pref.example.", "10 mx1.pref.example.", "30 mx3.pref.example."], "TTL": 3600},
    "mx1.pref.example": {"A": ["127.0.0.11", "127.0.0.12"], "AAAA": ["::1"], "TTL": 300},
    "mx2.pref.example": {"A": ["127.0.0.21"], "TTL": 600},
    "mx3.pref.example": {"TXT": ['"no address here"'], "TTL": 900},
    "ties.example": {"MX": ["10 a.ties.example.", "10 b.ties.example.", "10 c.ties.example.",
                            "5 first.ties.example.", "20 last.ties.example."]},
    **{f"{h}.ties.example": {"A": [f"127.0.1.{i}"]} for i, h in enumerate(["a", "b", "c", "first", "last"])},
    "aonly.example": {"A": ["127.0.0.5"], "TTL": 400},
    "dual.example": {"AAAA": ["::1"], "A": ["127.0.0.6"], "TTL": 500},
    "nomail.example": {"TXT": ['"v=spf1 -all"'], "TTL": 120},
    "nullmx.example": {"MX": ["0 ."], "TTL": 7200},
    "servfail.example": {"SERVFAIL": True},
    "silent.example": {"DROP": True},
    "bare.example": {"BARE_NXDOMAIN": True},
    "halfbroken.example": {"MX": ["10 broken.halfbroken.example.", "20 mx2.pref.example."], "TTL": 3600},
    "broken.halfbroken.example": {"SERVFAIL": True},
    "dangling.example": {"MX": ["10 nowhere.dangling.example."], "TTL": 3600},
    "aliased.example": {"MX": ["10 mail.aliased.example."], "TTL": 3600},
    "mail.aliased.example": {"CNAME": ["mx2.pref.example."], "TTL": 200},
    "inward.example": {"MX": ["10 lo.inward.example.", "20 mapped.inward.example.", "30 nat64.inward.example."]},
    "lo.inward.example": {"A": ["127.0.0.1", "10.1.2.3"], "AAAA": ["::1"]},
    "mapped.inward.example": {"AAAA": ["::ffff:127.0.0.1"]},
    "nat64.inward.example": {"AAAA": ["64:ff9b::7f00:1"]},
    "mixed.example": {"MX": ["10 lo.inward.example.", "20 public.mixed.example."]},
    "public.mixed.example": {"A": ["10.0.0.7", "93.184.216.34"]},
    "zero.example": {"MX": ["10 mx2.pref.example."], "TTL": 0},
    "forever.example": {"MX": ["10 forever.example."], "A": ["127.0.0.9"], "TTL": 30 * 86400},
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stub():
    with DnsStub(ZONE, negative_ttl=180) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def router(stub, clock) -> MxRouter:
    return make_router(stub, clock)


def make_router(stub: DnsStub, clock: Clock | None = None, timeout: float = 2.0, **kwargs) -> MxRouter:
    """Generous timeout: a busy machine must not turn a SERVFAIL into a timeout. DROP tests pass less."""
    kwargs.setdefault("allow_private", True)
    return MxRouter(make_resolver(["127.0.0.1"], port=stub.port, timeout=timeout), clock=clock or Clock(), **kwargs)


def route(router: MxRouter, domain: str) -> Route:
    return asyncio.run(router.route(domain))


def triple(outcome: Outcome) -> tuple:
    return outcome.status, outcome.smtp_code, outcome.enhanced_status


def names(r: Route) -> list[str]:
    return [host.name for host in r.hosts]


def test_hosts_in_preference_order_ipv4_first_skipping_hosts_without_address(router, clock):
    r = route(router, "Pref.Example.")
    assert r.error is None and r.domain == "pref.example" and r.port == 25
    assert names(r) == ["mx1.pref.example", "mx2.pref.example"] and [h.preference for h in r.hosts] == [10, 20]
    best = r.hosts[0].addresses  # within a family, the order DNS gave (servers rotate it)
    assert sorted(best[:2]) == ["127.0.0.11", "127.0.0.12"] and best[2:] == ("::1",)
    assert [address for _, address in r.candidates()] == [*best, "127.0.0.21"]
    assert r.expires == clock.now + 300  # the shortest TTL of the records used: mx1's A and AAAA


def test_prefer_ipv6_puts_aaaa_first(stub):
    r = route(make_router(stub, prefer_ipv6=True), "pref.example")
    assert r.hosts[0].addresses[0] == "::1" and len(r.hosts[0].addresses) == 3


def test_equal_preferences_are_shuffled_and_the_rest_stays_in_order(stub):
    orders = set()
    for seed in range(12):
        hosts = names(route(make_router(stub, rng=random.Random(seed)), "ties.example"))
        assert hosts[0] == "first.ties.example" and hosts[-1] == "last.ties.example"
        assert sorted(hosts[1:4]) == ["a.ties.example", "b.ties.example", "c.ties.example"]
        orders.add(tuple(hosts))
    assert len(orders) > 1  # twelve seeds that all agree would mean no shuffle
    again = [names(route(make_router(stub, rng=random.Random(7)), "ties.example")) for _ in range(2)]
    assert again[0] == again[1]  # a given rng reproduces its order


def test_candidates_try_an_address_shared_by_two_exchangers_once():
    hosts = (MxHost("a", 10, ("127.0.0.2", "::1")), MxHost("b", 20, ("::1", "127.0.0.3")))
    shared = Route("d.example", hosts, None, 0.0)
    assert [(h.name, a) for h, a in shared.candidates()] == [("a", "127.0.0.2"), ("a", "::1"), ("b", "127.0.0.3")]


@pytest.mark.parametrize("domain, addresses, ttl", [
    ("aonly.example", ("127.0.0.5",), 400),
    ("dual.example", ("127.0.0.6", "::1"), 500),
])
def test_no_mx_falls_back_to_the_domains_own_addresses(router, stub, clock, domain, addresses, ttl):
    r = route(router, domain)
    assert r.error is None
    assert r.hosts == (MxHost(domain, 0, addresses),)  # RFC 5321 §5.1: the implicit MX
    assert r.expires == clock.now + ttl  # the MX NODATA's negative TTL and the A/AAAA TTL agree here
    assert stub.count(domain, "MX") == 1


def test_no_mx_and_no_address_is_temporary(router, clock):
    r = route(router, "nomail.example")
    assert r.error.kind == TEMPORARY and "no MX and no exchanger has an A or AAAA record" in r.error.detail
    assert r.hosts == () and r.expires == clock.now + TEMPORARY_TTL


def test_null_mx_is_a_hard_error_without_address_lookups(router, stub):
    r = route(router, "nullmx.example")
    assert r.error.kind == NULL_MX and r.hosts == ()
    assert triple(r.error.outcome()) == ("bounced", 556, "5.1.10")
    assert stub.count("nullmx.example", "A") == stub.count("nullmx.example", "AAAA") == 0


def test_nxdomain_with_the_zone_soa_is_domain_unknown_for_the_negative_ttl(router, clock):
    r = route(router, "missing.example")
    assert r.error == RouteError(DOMAIN_UNKNOWN, "missing.example: no such domain (NXDOMAIN)")
    assert triple(r.error.outcome()) == ("bounced", 550, "5.1.2")
    assert r.expires == clock.now + 180


def test_nxdomain_without_soa_is_not_trusted(router, clock):
    r = route(router, "bare.example")
    assert r.error.kind == TEMPORARY and "RFC 2308" in r.error.detail
    assert r.expires == clock.now + TEMPORARY_TTL


@pytest.mark.parametrize("domain, words", [("servfail.example", "SERVFAIL"), ("silent.example", "timed out")])
def test_servfail_and_timeout_are_temporary_and_cached_briefly(stub, clock, domain, words):
    router = make_router(stub, clock, timeout=0.3)
    r = route(router, domain)
    assert r.error.kind == TEMPORARY and words in r.error.detail
    assert triple(r.error.outcome()) == ("deferred", 451, "4.4.3")
    assert r.expires == clock.now + TEMPORARY_TTL
    asked = stub.count(domain)
    route(router, domain)
    assert stub.count(domain) == asked  # still cached
    clock.now += TEMPORARY_TTL
    route(router, domain)
    assert stub.count(domain) > asked


def test_invalid_domain_is_unknown_without_asking(router, stub):
    for domain in ("", "bad..example"):
        assert route(router, domain).error.kind == DOMAIN_UNKNOWN
    assert stub.count() == 0


def test_an_exchanger_that_fails_to_resolve_is_skipped_and_the_route_cached_briefly(router, clock):
    r = route(router, "halfbroken.example")
    assert r.error is None and names(r) == ["mx2.pref.example"]
    assert r.expires == clock.now + TEMPORARY_TTL  # the broken one may answer soon


def test_only_unresolvable_exchangers_is_temporary(router, clock):
    r = route(router, "dangling.example")
    assert r.error.kind == TEMPORARY and "no exchanger has an A or AAAA record" in r.error.detail
    assert r.expires == clock.now + TEMPORARY_TTL  # every temporary error is asked again soon


def test_an_exchanger_behind_a_cname_is_resolved_and_the_cname_ttl_counts(router, clock):
    r = route(router, "aliased.example")
    assert r.hosts == (MxHost("mail.aliased.example", 10, ("127.0.0.21",)),)
    assert r.expires == clock.now + 200


def test_ttl_is_clamped(router, clock):
    assert route(router, "zero.example").expires == clock.now + MIN_TTL
    assert route(router, "forever.example").expires == clock.now + MAX_TTL


def test_positive_answers_are_cached_for_their_ttl(router, stub, clock):
    first = route(router, "pref.example")
    clock.now += 299
    assert route(router, "PREF.example") is first
    assert stub.count("pref.example", "MX") == 1 and stub.count("mx1.pref.example", "A") == 1
    clock.now += 1
    assert route(router, "pref.example") is not first
    assert stub.count("pref.example", "MX") == 2


def test_negative_answers_are_cached_for_the_soa_negative_ttl(router, stub, clock):
    route(router, "missing.example")
    clock.now += 179
    route(router, "missing.example")
    assert stub.count("missing.example") == 1
    clock.now += 1
    route(router, "missing.example")
    assert stub.count("missing.example") == 2


def test_concurrent_requests_share_one_lookup(router, stub):
    async def many():
        return await asyncio.gather(*(router.route("pref.example") for _ in range(200)))

    routes = asyncio.run(many())
    assert all(r is routes[0] for r in routes) and routes[0].error is None
    assert stub.count("pref.example", "MX") == 1
    assert stub.count("mx1.pref.example", "A") == stub.count("mx2.pref.example", "AAAA") == 1


def test_a_cancelled_caller_does_not_cancel_the_shared_lookup(stub):
    router = make_router(stub, timeout=0.3)

    async def scenario():
        impatient = asyncio.ensure_future(router.route("silent.example"))
        patient = asyncio.ensure_future(router.route("silent.example"))
        await asyncio.sleep(0)  # both now wait on the lookup, which waits on a server that never answers
        impatient.cancel()
        return await patient, impatient.cancelled()

    outcome, cancelled = asyncio.run(scenario())
    assert cancelled and outcome.error.kind == TEMPORARY


def test_the_cache_is_bounded_least_recently_used_first(stub):
    router = make_router(stub, max_entries=2)
    for domain in ("aonly.example", "dual.example", "aonly.example", "pref.example"):
        route(router, domain)
    route(router, "aonly.example")
    route(router, "dual.example")  # the least recently used when pref.example came in
    assert stub.count("aonly.example", "MX") == 1
    assert stub.count("dual.example", "MX") == 2


def test_private_addresses_are_refused_unless_allowed(stub):
    guarded = make_router(stub, allow_private=False)
    r = route(guarded, "inward.example")
    assert r.error.kind == POLICY and r.hosts == ()
    assert triple(r.error.outcome()) == ("deferred", 451, "4.4.4")  # never a bounce on a DNS answer
    mixed = route(guarded, "mixed.example")
    assert mixed.error is None and mixed.hosts == (MxHost("public.mixed.example", 20, ("93.184.216.34",)),)
    allowed = route(make_router(stub), "inward.example")
    assert [h.name for h in allowed.hosts] == ["lo.inward.example", "mapped.inward.example", "nat64.inward.example"]


# Delivery: the routing layer gives candidates, the dispatcher (transport: mx) tries them in order.

MESSAGE = Envelope("news@sender.example", "someone@e2e.example", b"Subject: hi\r\n\r\nHello.\r\n")


@pytest.fixture
def mx_port() -> int:
    return free_port("127.0.0.2")


@pytest.fixture
def fake_smtp_address(mx_port) -> tuple[str, int]:
    """A misbehaving server here is the best exchanger of e2e.example (conftest.py)."""
    return "127.0.0.2", mx_port


@pytest.fixture
def mx_stub():
    zone = {"e2e.example": {"MX": ["20 mx2.e2e.example.", "10 mx1.e2e.example."]},
            "mx1.e2e.example": {"A": ["127.0.0.2"]}, "mx2.e2e.example": {"A": ["127.0.0.3"]}}
    with DnsStub(zone) as server:
        yield server


async def dispatch(router: MxRouter, port: int, envelope: Envelope = MESSAGE) -> Outcome:
    """One recipient through the production path of `transport: mx`."""
    def factory(relay, max_messages):
        return PipeliningConnection(relay, "mailer.sender.example", 5, max_messages)

    dispatcher = Dispatcher(MxRoutes(router, port), Connections(factory, 4), DEFAULT_LIMITS, GlobalGate(None, 1),
                            lane_per_domain=True)
    row = {"email": envelope.recipient}
    results = [r async for r in dispatcher.run([row], lambda _: envelope, lambda _: None, lambda _: None)]
    return results[0].outcome


def deliver(stub: DnsStub, port: int, envelope: Envelope = MESSAGE):
    return asyncio.run(dispatch(make_router(stub, port=port), port, envelope))


def test_the_best_exchanger_gets_the_message_while_it_is_up(mx_stub, mx_port):
    with Receiver(record=True, host="127.0.0.2", port=mx_port) as best, \
         Receiver(record=True, host="127.0.0.3", port=mx_port) as backup:
        outcome = deliver(mx_stub, mx_port)
    assert outcome.status == "delivered"
    assert len(best.received) == 1 and backup.received == []


def test_the_next_exchanger_gets_it_when_the_best_is_down(mx_stub, mx_port):
    best = Receiver(record=True, host="127.0.0.2", port=mx_port).start()
    with Receiver(record=True, host="127.0.0.3", port=mx_port) as backup:
        best.stop()  # nothing listens on 127.0.0.2 now: connection refused
        outcome = deliver(mx_stub, mx_port)
    assert outcome.status == "delivered" and outcome.smtp_code == 250
    assert [m.recipients for m in backup.received] == [["someone@e2e.example"]]
    assert best.received == []


def test_a_refused_greeting_moves_on_to_the_next_exchanger(mx_stub, mx_port, throttling_greeting_server):
    with Receiver(record=True, host="127.0.0.3", port=mx_port) as backup:
        outcome = deliver(mx_stub, mx_port)
    assert throttling_greeting_server.sessions == 1
    assert outcome.status == "delivered"
    assert len(backup.received) == 1


def test_an_smtp_reply_from_the_best_exchanger_is_final(mx_stub, mx_port):
    with Receiver(record=True, host="127.0.0.2", port=mx_port, replies={"e2e.example": USER_UNKNOWN}), \
         Receiver(record=True, host="127.0.0.3", port=mx_port) as backup:
        outcome = deliver(mx_stub, mx_port)
    assert (outcome.status, outcome.smtp_code, outcome.enhanced_status) == ("bounced", 550, "5.1.1")
    assert backup.received == []  # a backup MX must not be asked to overrule the primary


def test_a_connection_lost_during_the_transaction_is_final(mx_stub, mx_port):
    with Receiver(record=True, host="127.0.0.2", port=mx_port, faults={"e2e.example": Fault("DATA", drop=True)}), \
         Receiver(record=True, host="127.0.0.3", port=mx_port) as backup:
        outcome = deliver(mx_stub, mx_port)
    assert outcome.status == "deferred" and outcome.smtp_code is None
    assert backup.received == []  # the best exchanger may have the message already: no second copy


def test_no_exchanger_up_defers(mx_stub, mx_port):
    outcome = deliver(mx_stub, mx_port)
    assert (outcome.status, outcome.smtp_code, outcome.enhanced_status) == ("deferred", None, "4.4.1")
    assert "(2 tried)" in outcome.detail and "127.0.0.3" in outcome.detail


def test_a_route_error_is_the_outcome_without_sending():
    class NullRouter:
        async def route(self, domain):
            return Route(domain, (), RouteError(NULL_MX, f"{domain} accepts no mail"), 0.0)

    outcome = asyncio.run(dispatch(NullRouter(), free_port()))  # nothing listens there: nothing is tried
    assert triple(outcome) == ("bounced", 556, "5.1.10")
