"""Direct-to-MX routing: each recipient domain's mail exchangers and their addresses, cached by TTL."""

from __future__ import annotations

import asyncio
import ipaddress
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from mailflow.tasks.core.dns import UNPROVEN_NXDOMAIN, normalise_domain, proven_negative_ttl
from mailflow.tasks.deliver.smtp import Outcome

NULL_MX, DOMAIN_UNKNOWN, TEMPORARY, POLICY = "null_mx", "domain_unknown", "temporary", "policy"
TEMPORARY_TTL = 60  # a failed lookup says nothing about the domain: ask again soon
MIN_TTL = 30  # a TTL of 0 must not mean one lookup per recipient of a big domain
MAX_TTL = 86400  # a send can run for days; a week-long TTL should not hide a moved MX
# What the caller does with each error (Outcome: status, SMTP code, enhanced status).
_ERROR_OUTCOMES = {
    NULL_MX: ("bounced", 556, "5.1.10"),  # RFC 7505 §4.1
    DOMAIN_UNKNOWN: ("bounced", 550, "5.1.2"),
    TEMPORARY: ("deferred", 451, "4.4.3"),
    # A deferral, not a bounce: a hard bounce suppresses the address for good, and a spoofed
    # DNS answer must not be able to do that to our subscribers. X.4.4 is "unable to route".
    POLICY: ("deferred", 451, "4.4.4"),
}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # wraps IPv4 addresses, loopback included


@dataclass(frozen=True)
class RouteError:
    kind: str  # null_mx | domain_unknown | temporary | policy
    detail: str

    def outcome(self) -> Outcome:
        """The ledger outcome for every recipient of a domain that cannot be routed."""
        status, code, enhanced = _ERROR_OUTCOMES[self.kind]
        return Outcome(status, code, enhanced, self.detail)


@dataclass(frozen=True)
class MxHost:
    name: str
    preference: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    domain: str
    hosts: tuple[MxHost, ...]  # by preference; equal preferences in random order (see MxRouter)
    error: RouteError | None
    expires: float  # in the router's clock
    port: int = 25

    def candidates(self) -> list[tuple[MxHost, str]]:
        """(host, address) to try in order: every address of the best MX, then the next MX.

        An address listed under two exchangers is tried once: it would fail the same way again.
        """
        seen: set[str] = set()
        pairs = []
        for host in self.hosts:
            for address in host.addresses:
                if address not in seen:
                    seen.add(address)
                    pairs.append((host, address))
        return pairs


class _Answer(NamedTuple):
    records: tuple
    ttl: float
    failure: str | None = None  # a lookup that failed: nothing is known about the name
    missing: bool = False  # an NXDOMAIN proved by the zone's SOA


class MxRouter:
    """`route = await MxRouter(resolver).route("example.com")`; one lookup per domain per TTL.

    Equal MX preferences are shuffled at random (RFC 5321 §5.1 asks for random to spread the
    load) once per lookup, not per message: while cached, every message of the domain goes to
    the same exchanger first, so pooled connections to it get reused; the next lookup, and
    other senders, pick again. Pass `rng` to make the order reproducible.
    """

    def __init__(self, resolver: dns.asyncresolver.Resolver, port: int = 25,
                 clock: Callable[[], float] = time.monotonic, *, allow_private: bool = False,
                 prefer_ipv6: bool = False, max_entries: int = 10_000,
                 rng: random.Random | None = None):
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.resolver, self.port, self.clock = resolver, port, clock
        self.allow_private, self.prefer_ipv6, self.max_entries = allow_private, prefer_ipv6, max_entries
        self.rng = rng or random.Random()
        self._cache: OrderedDict[str, Route] = OrderedDict()  # least recently used first
        self._pending: dict[str, asyncio.Future[Route]] = {}

    async def route(self, domain: str) -> Route:
        """The domain's route, from the cache while its TTL lasts; concurrent callers share one lookup."""
        key = normalise_domain(domain)
        cached = self._cache.get(key)
        if cached is not None and self.clock() < cached.expires:
            self._cache.move_to_end(key)
            return cached
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(key))
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._settle(key, done))
        # Shielded: one recipient's cancelled send must not cancel the lookup the others await.
        return await asyncio.shield(pending)

    def _settle(self, key: str, done: asyncio.Future[Route]) -> None:
        self._pending.pop(key, None)
        if done.cancelled() or done.exception() is not None:
            return
        self._cache[key] = done.result()
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def _lookup(self, domain: str) -> Route:
        try:
            if not domain:
                raise ValueError("empty")
            name = dns.name.from_text(domain)
        except (ValueError, dns.exception.DNSException) as exc:  # empty label, too long, bad IDNA
            return self._route(domain, (), RouteError(DOMAIN_UNKNOWN, f"{domain!r} is not a domain name: {exc}"),
                               TEMPORARY_TTL)
        mx = await self._ask(name, "MX")
        if mx.failure:
            return self._route(domain, (), RouteError(TEMPORARY, f"{domain}: {mx.failure}"), mx.ttl)
        if mx.missing:
            return self._route(domain, (), RouteError(DOMAIN_UNKNOWN, f"{domain}: no such domain (NXDOMAIN)"),
                               mx.ttl)
        if not mx.records:  # RFC 5321 §5.1: no MX at all, so the domain is its own exchanger
            wanted = [(domain, 0)]
        else:
            # RFC 7505 says a null MX stands alone; if it does not, the real exchangers still count.
            wanted = [(r.exchange.to_text(omit_final_dot=True), r.preference)
                      for r in mx.records if r.exchange != dns.name.root]
            if not wanted:
                return self._route(domain, (), RouteError(NULL_MX, f"{domain} accepts no mail (null MX, RFC 7505)"),
                                   mx.ttl)
        resolved = await asyncio.gather(*(self._addresses(host) for host, _ in wanted))
        ttl = min([mx.ttl, *(answer_ttl for _, answer_ttl, _, _ in resolved)])
        failures = [failure for _, _, failure, _ in resolved if failure]
        refused = [note for _, _, _, note in resolved if note]
        hosts = [MxHost(host, preference, addresses)
                 for (host, preference), (addresses, _, _, _) in zip(wanted, resolved) if addresses]
        hosts.sort(key=lambda h: h.name)  # records come in any order: a seeded rng must reproduce its own
        self.rng.shuffle(hosts)  # then a stable sort: equal preferences keep the shuffled order
        hosts.sort(key=lambda h: h.preference)
        if hosts:
            return self._route(domain, tuple(hosts), None, ttl)
        implicit = "" if mx.records else "no MX and "
        if failures:
            error = RouteError(TEMPORARY, f"{domain}: {implicit}no exchanger resolved: {failures[0]}")
        elif refused:
            error = RouteError(POLICY, f"{domain}: {implicit}exchangers only at refused addresses: {refused[0]}")
        else:
            error = RouteError(TEMPORARY, f"{domain}: {implicit}no exchanger has an A or AAAA record")
        return self._route(domain, (), error, ttl)

    def _route(self, domain: str, hosts: tuple[MxHost, ...], error: RouteError | None, ttl: float) -> Route:
        if error is not None and error.kind == TEMPORARY:
            ttl = min(ttl, TEMPORARY_TTL)
        return Route(domain, hosts, error, self.clock() + min(max(ttl, MIN_TTL), MAX_TTL), self.port)

    async def _addresses(self, host: str) -> tuple[tuple[str, ...], float, str | None, str | None]:
        """The host's usable addresses, their TTL, a lookup failure, and a note on refused addresses."""
        name = dns.name.from_text(host)
        families = ("AAAA", "A") if self.prefer_ipv6 else ("A", "AAAA")
        answers = await asyncio.gather(*(self._ask(name, rdtype) for rdtype in families))
        found = [r.address for answer in answers for r in answer.records]
        usable = tuple(a for a in found if self.allow_private or _public(a))
        failure = next((f"{host}: {a.failure}" for a in answers if a.failure), None)
        note = next((f"{host} [{a}]" for a in found if a not in usable), None)
        # One failed family still leaves the other's addresses usable, but not for long.
        ttl = min(a.ttl for a in answers) if failure is None else TEMPORARY_TTL
        return usable, ttl, failure, note

    async def _ask(self, name: dns.name.Name, rdtype: str) -> _Answer:
        try:
            answer = await self.resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as exc:
            ttl = proven_negative_ttl(exc)
            if ttl is None:  # a broken resolver or middlebox: hard-bouncing on its word would be wrong
                return _Answer((), TEMPORARY_TTL, UNPROVEN_NXDOMAIN)
            return _Answer((), ttl, missing=True)
        except dns.resolver.LifetimeTimeout:
            return _Answer((), TEMPORARY_TTL, f"{rdtype} lookup timed out")
        except dns.resolver.NoNameservers:
            return _Answer((), TEMPORARY_TTL, f"no nameserver answered the {rdtype} lookup (SERVFAIL or REFUSED)")
        except dns.exception.DNSException as exc:
            return _Answer((), TEMPORARY_TTL, f"{rdtype} lookup failed: {type(exc).__name__}")
        return _Answer(tuple(answer.rrset or ()), answer.chaining_result.minimum_ttl)


def _public(address: str) -> bool:
    """Whether mail may go there: loopback, private, link-local and the like could hijack it inward."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.is_global
