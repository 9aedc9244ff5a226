"""MX checks for `ingest --check-mx`: can each domain receive mail, asked over DNS and cached in the warehouse."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
import duckdb

from mailflow.tasks.core.sqlfiles import q

OK, NO_DOMAIN, NULL_MX, NO_MAIL_HOST, ERROR = "ok", "no_domain", "null_mx", "no_mail_host", "error"
NEGATIVE_TTL = 300  # how long "not a domain name" holds: no DNS answer gives it a TTL
ERROR_TTL = 60  # a failure says nothing about the domain: worth asking again soon
MIN_CACHE = timedelta(seconds=60)  # a TTL of 0 must not turn every ingest into a full lookup
MAX_CACHE = timedelta(days=1)  # domains do come back to life; a week-long TTL should not hide it
UNPROVEN_NXDOMAIN = "NXDOMAIN without the zone's SOA (RFC 2308 §3), not trusted"


@dataclass(frozen=True)
class DomainStatus:
    domain: str
    status: str  # ok | no_domain | null_mx | no_mail_host | error
    detail: str
    ttl: int  # seconds this answer holds (for a cached answer: what is left of it)


def normalise_domain(domain: str) -> str:
    """The cache key and query name: lower-case, without the trailing root dot."""
    return domain.strip().lower().removesuffix(".")


def make_resolver(nameservers: list[str] | None = None, port: int = 53,
                  timeout: float = 5.0) -> dns.asyncresolver.Resolver:
    """The system resolver, or exactly the given nameservers (then /etc/resolv.conf is not read)."""
    resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
    if nameservers is not None:
        resolver.nameservers = list(nameservers)
        resolver.port = port
    resolver.timeout = timeout  # per try; lifetime bounds the whole query, retries included
    resolver.lifetime = timeout
    return resolver


async def lookup_domains(domains: Iterable[str], resolver: dns.asyncresolver.Resolver,
                         concurrency: int = 50) -> dict[str, DomainStatus]:
    """Status of each domain, keyed as given; one lookup per distinct normalised domain."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    given = {domain: normalise_domain(domain) for domain in domains}
    gate = asyncio.Semaphore(concurrency)

    async def one(domain: str) -> DomainStatus:
        async with gate:
            return await lookup_domain(domain, resolver)

    distinct = list(dict.fromkeys(given.values()))
    found = {status.domain: status for status in await asyncio.gather(*map(one, distinct))}
    return {domain: found[name] for domain, name in given.items()}


async def lookup_domain(domain: str, resolver: dns.asyncresolver.Resolver) -> DomainStatus:
    """MX, then A and AAAA when there is no MX (the implicit MX of RFC 5321 §5.1)."""
    try:
        if not domain:
            raise ValueError("empty")
        name = dns.name.from_text(domain)
    except (ValueError, dns.exception.DNSException) as exc:  # label too long, empty label, bad IDNA
        return DomainStatus(domain, NO_DOMAIN, f"invalid domain name: {exc}", NEGATIVE_TTL)
    try:
        mx = await resolver.resolve(name, "MX", raise_on_no_answer=False)
        if mx.rrset is not None:
            return _from_mx(domain, mx)
        ttls = [mx.chaining_result.minimum_ttl]
        for rdtype in ("A", "AAAA"):
            answer = await resolver.resolve(name, rdtype, raise_on_no_answer=False)
            if answer.rrset is not None:
                return DomainStatus(domain, OK, f"no MX; implicit MX {rdtype} {answer.rrset[0]}",
                                    answer.chaining_result.minimum_ttl)
            ttls.append(answer.chaining_result.minimum_ttl)
        return DomainStatus(domain, NO_MAIL_HOST, "no MX, A or AAAA records", min(ttls))
    except dns.resolver.NXDOMAIN as exc:
        ttl = proven_negative_ttl(exc)
        if ttl is None:  # quarantining on a broken resolver's word would drop good subscribers
            return DomainStatus(domain, ERROR, UNPROVEN_NXDOMAIN, ERROR_TTL)
        return DomainStatus(domain, NO_DOMAIN, "NXDOMAIN", ttl)
    except dns.resolver.LifetimeTimeout as exc:
        return DomainStatus(domain, ERROR, f"timeout: {exc}", ERROR_TTL)
    except dns.resolver.NoNameservers as exc:  # SERVFAIL, REFUSED, or none configured
        return DomainStatus(domain, ERROR, f"no nameserver answered: {exc}", ERROR_TTL)
    except dns.exception.DNSException as exc:
        return DomainStatus(domain, ERROR, f"{type(exc).__name__}: {exc}", ERROR_TTL)


def _from_mx(domain: str, mx: dns.resolver.Answer) -> DomainStatus:
    records = sorted(mx.rrset, key=lambda r: (r.preference, r.exchange))
    ttl = mx.chaining_result.minimum_ttl
    hosts = [r for r in records if r.exchange != dns.name.root]
    if not hosts:  # RFC 7505: one MX, preference 0, exchange "." — "this domain takes no mail"
        rfc = len(records) == 1 and records[0].preference == 0
        return DomainStatus(domain, NULL_MX, "null MX (RFC 7505)" if rfc else
                            f"every MX points at '.': {_list(records)}", ttl)
    return DomainStatus(domain, OK, f"MX {_list(hosts)}", ttl)


def _list(records: list) -> str:
    shown = ", ".join(f"{r.preference} {r.exchange.to_text(omit_final_dot=True) or '.'}" for r in records[:3])
    return shown + (f" (+{len(records) - 3} more)" if len(records) > 3 else "")


def proven_negative_ttl(exc: dns.resolver.NXDOMAIN) -> int | None:
    """The RFC 2308 negative TTL if a response carries the SOA of a zone enclosing the name, else None.

    The one test of "this domain does not exist", for ingest's MX check and for MX routing alike.
    RFC 2308 §3: an authoritative server MUST put the zone's SOA in an NXDOMAIN, and recursive
    resolvers pass it on. A bare NXDOMAIN is what broken resolvers (this sandbox's, for one)
    give for every name.
    """
    for response in exc.responses().values():
        try:
            chain = response.resolve_chaining()
        except dns.exception.DNSException:
            continue
        if any(rrset.rdtype == dns.rdatatype.SOA and chain.canonical_name.is_subdomain(rrset.name)
               for rrset in response.authority):
            return chain.minimum_ttl
    return None


def check_domains(con: duckdb.DuckDBPyConnection, domains: Iterable[str],
                  resolver: dns.asyncresolver.Resolver, now: datetime | None = None,
                  concurrency: int = 50) -> dict[str, DomainStatus]:
    """Status of each domain (keyed as given): fresh cache rows first, DNS for the rest, then cache it.

    Errors are returned but not cached: they are not the domain's fault, so the next run asks again.
    Runs its own event loop (asyncio.run): call it from synchronous code.
    """
    now = datetime.now(UTC) if now is None else _utc(now)
    given = {domain: normalise_domain(domain) for domain in domains}
    distinct = list(dict.fromkeys(given.values()))
    if not distinct:
        return {}
    found = {
        domain: DomainStatus(domain, status, detail or "", max(0, int((expires_at - now).total_seconds())))
        for domain, status, detail, expires_at
        in con.execute(q("fresh_domain_checks"), {"domains": distinct, "now": now}).fetchall()
    }
    missing = [domain for domain in distinct if domain not in found]
    if missing:
        looked_up = asyncio.run(lookup_domains(missing, resolver, concurrency))
        store_domain_checks(con, looked_up.values(), now)
        found.update(looked_up)
    return {domain: found[name] for domain, name in given.items()}


def store_domain_checks(con: duckdb.DuckDBPyConnection, statuses: Iterable[DomainStatus],
                        now: datetime) -> int:
    """Upsert definitive answers, each kept for its TTL within [MIN_CACHE, MAX_CACHE]; return how many."""
    rows = [s for s in statuses if s.status != ERROR]
    if rows:
        con.execute(q("upsert_domain_checks"), {
            "domains": [s.domain for s in rows],
            "statuses": [s.status for s in rows],
            "details": [s.detail for s in rows],
            "expires": [now + cache_for(s.ttl) for s in rows],
            "now": now,
        })
    return len(rows)


def cache_for(ttl: int) -> timedelta:
    return min(max(timedelta(seconds=ttl), MIN_CACHE), MAX_CACHE)


def _utc(moment: datetime) -> datetime:
    """A naive datetime is taken to be UTC, as everything in the warehouse is."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
