"""MX checks against a real DNS server on loopback, and their cache in the warehouse."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import dns.asyncresolver
import pytest

from mailflow.tasks.core.dns import DomainStatus, check_domains, lookup_domains, make_resolver, normalise_domain
from mailflow.tasks.core.warehouse import connect
from tests.support.dnsstub import DnsStub

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ZONE = {
    "example.com": {"MX": ["20 mx2.example.com.", "10 mx1.example.com."], "TTL": 3600},
    "nullmx.example": {"MX": ["0 ."], "TTL": 7200},
    "aonly.example": {"A": ["127.0.0.1"], "TTL": 600},
    "aaaaonly.example": {"AAAA": ["::1"], "TTL": 900},
    "nomail.example": {"TXT": ['"v=spf1 -all"'], "TTL": 120},
    "servfail.example": {"SERVFAIL": True},
    "bare.example": {"BARE_NXDOMAIN": True},
    "silent.example": {"DROP": True},
    "shortttl.example": {"MX": ["10 mx.shortttl.example."], "TTL": 5},
    "longttl.example": {"MX": ["10 mx.longttl.example."], "TTL": 7 * 86400},
    "xn--bcher-kva.example": {"MX": ["10 mx.xn--bcher-kva.example."]},
}


@pytest.fixture
def stub():
    with DnsStub(ZONE, negative_ttl=180) as server:
        yield server


@pytest.fixture
def resolver(stub: DnsStub) -> dns.asyncresolver.Resolver:
    return make_resolver(["127.0.0.1"], port=stub.port, timeout=0.5)


@pytest.fixture
def warehouse(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        yield con


def lookup(domains, resolver, **kwargs) -> dict[str, DomainStatus]:
    return asyncio.run(lookup_domains(domains, resolver, **kwargs))


def cached_rows(con) -> dict[str, tuple]:
    rows = con.execute("SELECT domain, status, detail, checked_at, expires_at FROM domain_checks").fetchall()
    return {row[0]: row[1:] for row in rows}


def test_make_resolver_uses_only_the_given_nameservers():
    resolver = make_resolver(["127.0.0.1"], port=5353, timeout=0.7)
    assert resolver.nameservers == ["127.0.0.1"]
    assert resolver.port == 5353
    assert resolver.lifetime == 0.7
    assert resolver.search == []  # configure=False: nothing read from /etc/resolv.conf


def test_mx_domain_is_ok_with_its_hosts_in_preference_order(stub, resolver):
    status = lookup(["example.com"], resolver)["example.com"]
    assert status == DomainStatus("example.com", "ok", "MX 10 mx1.example.com, 20 mx2.example.com", 3600)
    assert stub.count("example.com", "MX") == 1
    assert stub.count("example.com", "A") == stub.count("example.com", "AAAA") == 0


def test_unknown_domain_is_no_domain_for_the_soa_negative_ttl(stub, resolver):
    status = lookup(["missing.example"], resolver)["missing.example"]
    assert (status.status, status.detail, status.ttl) == ("no_domain", "NXDOMAIN", 180)
    assert stub.count("missing.example") == 1  # NXDOMAIN ends it: no A/AAAA fallback


def test_an_nxdomain_without_the_zones_soa_is_an_error_not_a_missing_domain(stub, resolver):
    status = lookup(["bare.example"], resolver)["bare.example"]
    assert (status.status, status.ttl) == ("error", 60) and "without the zone's SOA" in status.detail


def test_null_mx_is_recognised(resolver):
    status = lookup(["nullmx.example"], resolver)["nullmx.example"]
    assert (status.status, status.ttl) == ("null_mx", 7200)
    assert "RFC 7505" in status.detail


def test_no_mx_falls_back_to_a(stub, resolver):
    status = lookup(["aonly.example"], resolver)["aonly.example"]
    assert (status.status, status.ttl) == ("ok", 600)
    assert "implicit MX A 127.0.0.1" in status.detail
    assert stub.count("aonly.example", "MX") == stub.count("aonly.example", "A") == 1
    assert stub.count("aonly.example", "AAAA") == 0  # an A record is enough


def test_no_mx_and_no_a_falls_back_to_aaaa(stub, resolver):
    status = lookup(["aaaaonly.example"], resolver)["aaaaonly.example"]
    assert (status.status, status.ttl) == ("ok", 900)
    assert "implicit MX AAAA ::1" in status.detail
    assert [stub.count("aaaaonly.example", t) for t in ("MX", "A", "AAAA")] == [1, 1, 1]


def test_no_mx_a_or_aaaa_is_no_mail_host(stub, resolver):
    status = lookup(["nomail.example"], resolver)["nomail.example"]
    assert (status.status, status.ttl) == ("no_mail_host", 120)
    assert [stub.count("nomail.example", t) for t in ("MX", "A", "AAAA")] == [1, 1, 1]


def test_servfail_is_an_error_not_the_domains_fault(resolver):
    status = lookup(["servfail.example"], resolver)["servfail.example"]
    assert (status.status, status.ttl) == ("error", 60)
    assert "SERVFAIL" in status.detail


def test_a_silent_server_times_out_as_an_error(stub, resolver):
    status = lookup(["silent.example"], resolver)["silent.example"]
    assert (status.status, status.ttl) == ("error", 60)
    assert status.detail.startswith("timeout")
    assert stub.count("silent.example", "MX") >= 1  # it was asked, and never answered


def test_no_nameservers_is_an_error():
    resolver = make_resolver([], timeout=0.5)
    assert lookup(["example.com"], resolver)["example.com"].status == "error"


def test_domains_are_normalised_and_asked_once(stub, resolver):
    found = lookup(["Example.COM.", "example.com", "EXAMPLE.com"], resolver)
    assert set(found) == {"Example.COM.", "example.com", "EXAMPLE.com"}
    assert {s.domain for s in found.values()} == {"example.com"}
    assert {s.status for s in found.values()} == {"ok"}
    assert stub.count("example.com", "MX") == 1


def test_idna_domain_is_asked_as_given(stub, resolver):
    assert normalise_domain("XN--BCHER-KVA.example.") == "xn--bcher-kva.example"
    assert lookup(["xn--bcher-kva.example"], resolver)["xn--bcher-kva.example"].status == "ok"
    assert stub.count("xn--bcher-kva.example", "MX") == 1


def test_invalid_name_is_no_domain_without_asking(stub, resolver):
    too_long = "a" * 64 + ".example"
    found = lookup([too_long, ""], resolver)
    assert found[too_long].status == found[""].status == "no_domain"
    assert found[too_long].detail.startswith("invalid domain name")
    assert stub.count() == 0


class CountingResolver(dns.asyncresolver.Resolver):
    """Records how many queries are in flight at once."""

    def __init__(self) -> None:
        super().__init__(configure=False)
        self.in_flight = self.max_in_flight = 0

    async def resolve(self, *args, **kwargs):
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await super().resolve(*args, **kwargs)
        finally:
            self.in_flight -= 1


def test_many_domains_are_all_answered_within_the_concurrency_limit():
    names = [f"d{i:03}.example" for i in range(200)]
    zone = {name: {"MX": [f"10 mx.{name}."]} for name in names}
    with DnsStub(zone) as stub:
        resolver = CountingResolver()
        resolver.nameservers, resolver.port, resolver.lifetime = ["127.0.0.1"], stub.port, 5.0
        found = lookup(names, resolver, concurrency=16)
    assert {name: s.status for name, s in found.items()} == dict.fromkeys(names, "ok")
    assert found["d123.example"].detail == "MX 10 mx.d123.example"
    assert stub.count(rdtype="MX") == 200
    assert resolver.max_in_flight == 16  # never more than the limit, and the limit is used


def test_concurrency_must_be_positive(resolver):
    with pytest.raises(ValueError):
        lookup(["example.com"], resolver, concurrency=0)


def test_check_domains_caches_answers_for_their_ttl(stub, resolver, warehouse):
    domains = ["example.com", "missing.example", "nullmx.example", "aonly.example", "nomail.example"]
    first = check_domains(warehouse, domains, resolver, now=NOW)
    assert {d: s.status for d, s in first.items()} == {
        "example.com": "ok", "missing.example": "no_domain", "nullmx.example": "null_mx",
        "aonly.example": "ok", "nomail.example": "no_mail_host"}
    rows = cached_rows(warehouse)
    assert set(rows) == set(domains)
    assert rows["example.com"][3] == NOW + timedelta(seconds=3600)
    assert rows["missing.example"][3] == NOW + timedelta(seconds=180)
    asked = stub.count()

    second = check_domains(warehouse, domains, resolver, now=NOW + timedelta(seconds=100))
    assert stub.count() == asked  # all from the cache: not one query
    assert {d: s.status for d, s in second.items()} == {d: s.status for d, s in first.items()}
    assert second["example.com"].detail == first["example.com"].detail
    assert second["example.com"].ttl == 3500  # what is left of the hour


def test_check_domains_asks_only_for_what_is_not_cached(stub, resolver, warehouse):
    check_domains(warehouse, ["example.com"], resolver, now=NOW)
    found = check_domains(warehouse, ["example.com", "Aonly.Example"], resolver, now=NOW)
    assert found["Aonly.Example"].status == "ok"
    assert stub.count("example.com") == 1
    assert stub.count("aonly.example", "MX") == 1


def test_expired_entries_are_looked_up_again_and_replaced(stub, resolver, warehouse):
    check_domains(warehouse, ["example.com"], resolver, now=NOW)
    stub.zone["example.com"] = {"MX": ["0 ."]}  # the domain stopped taking mail meanwhile
    later = NOW + timedelta(days=2)
    found = check_domains(warehouse, ["example.com"], resolver, now=later)
    assert found["example.com"].status == "null_mx"
    assert stub.count("example.com", "MX") == 2
    status, _, checked_at, expires_at = cached_rows(warehouse)["example.com"]
    assert (status, checked_at, expires_at) == ("null_mx", later, later + timedelta(seconds=300))


def test_cache_time_is_the_ttl_within_a_minute_and_a_day(resolver, warehouse):
    check_domains(warehouse, ["shortttl.example", "longttl.example"], resolver, now=NOW)
    rows = cached_rows(warehouse)
    assert rows["shortttl.example"][3] == NOW + timedelta(seconds=60)
    assert rows["longttl.example"][3] == NOW + timedelta(days=1)


def test_errors_are_returned_but_not_cached(stub, resolver, warehouse):
    found = check_domains(warehouse, ["servfail.example", "example.com"], resolver, now=NOW)
    assert found["servfail.example"].status == "error"
    assert set(cached_rows(warehouse)) == {"example.com"}
    check_domains(warehouse, ["servfail.example"], resolver, now=NOW)
    assert stub.count("servfail.example", "MX") == 2  # asked again: a failure proves nothing


def test_naive_now_is_utc_and_empty_input_asks_nothing(stub, resolver, warehouse):
    assert check_domains(warehouse, [], resolver, now=NOW) == {}
    check_domains(warehouse, ["example.com"], resolver, now=NOW.replace(tzinfo=None))
    assert cached_rows(warehouse)["example.com"][3] == NOW + timedelta(hours=1)
    assert stub.count() == 1
