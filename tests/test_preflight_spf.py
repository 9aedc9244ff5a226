"""The SPF evaluator against RFC 7208's rules, over a zone served on loopback."""

from __future__ import annotations

import asyncio

import pytest

from mailflow.tasks.core.dns import make_resolver
from mailflow.tasks.preflight.lookup import Lookup
from mailflow.tasks.preflight.spf import check_host
from tests.support.dnsstub import DnsStub, txt

pytestmark = pytest.mark.integration


def spf(record: str) -> dict:
    return {"TXT": [txt(record)]}


ZONE = {
    "plain.example": spf("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all"),
    "inc.example": spf("v=spf1 include:relay.example -all"),
    "relay.example": spf("v=spf1 a:out.relay.example/28 mx -all"),
    "out.relay.example": {"A": ["198.51.100.1"]},
    "mx.relay.example": {"A": ["203.0.113.7"]},
    "loop.example": spf("v=spf1 include:loop.example -all"),
    "redirect.example": spf("v=spf1 ip4:192.0.2.1 redirect=plain.example"),
    "redirect-all.example": spf("v=spf1 redirect=plain.example -all"),
    "redirect-none.example": spf("v=spf1 redirect=nowhere.example"),
    "two.example": {"TXT": [txt("v=spf1 -all"), txt("v=spf1 +all")]},
    "bad.example": spf("v=spf1 ip4:192.0.2.1 foo:bar -all"),
    "macro.example": spf("v=spf1 exists:%{ir}.%{v}._spf.%{d2} -all"),
    "1.2.0.192.in-addr._spf.macro.example": {"A": ["127.0.0.2"]},
    "badmacro.example": spf("v=spf1 exists:%{x}.example -all"),
    "void.example": spf("v=spf1 a:n1.example a:n2.example a:n3.example -all"),
    "ptr.example": spf("v=spf1 ptr -all"),
    "10.2.0.192.in-addr.arpa": {"PTR": ["host.ptr.example."]},
    "host.ptr.example": {"A": ["192.0.2.10"]},
    "neutral.example": spf("v=spf1 ip4:192.0.2.1"),
    "text.example": {"TXT": [txt("google-site-verification=abc"), txt("v=spf1 ip4:192.0.2.9 -all")]},
}
ZONE["relay.example"]["MX"] = ["10 mx.relay.example."]
ZONE["include-nothing.example"] = spf("v=spf1 include:nowhere.example -all")


@pytest.fixture(scope="module")
def lookup():
    with DnsStub(ZONE) as stub:
        yield Lookup(make_resolver(["127.0.0.1"], port=stub.port, timeout=2))


def verdict(lookup, ip, domain):
    return asyncio.run(check_host(ip, domain, lookup, sender=f"bounce@{domain}"))


@pytest.mark.parametrize(("ip", "domain", "result"), [
    ("192.0.2.55", "plain.example", "pass"),
    ("2001:db8::1", "plain.example", "pass"),
    ("198.51.100.9", "plain.example", "softfail"),
    ("198.51.100.14", "inc.example", "pass"),  # a:out.relay.example/28 inside the include
    ("203.0.113.7", "inc.example", "pass"),  # mx of the included domain
    ("203.0.113.8", "inc.example", "fail"),  # the include's -all does not match: the outer -all does
    ("192.0.2.1", "redirect.example", "pass"),
    ("192.0.2.77", "redirect.example", "pass"),  # the redirect's record decides
    ("198.51.100.1", "redirect.example", "softfail"),
    ("192.0.2.77", "redirect-all.example", "fail"),  # with "all" present the redirect is ignored (§6.1)
    ("192.0.2.1", "neutral.example", "pass"),
    ("192.0.2.2", "neutral.example", "neutral"),  # no match, no redirect
    ("192.0.2.9", "text.example", "pass"),  # other TXT records are not SPF
    ("192.0.2.1", "unknown.example", "none"),
    ("192.0.2.10", "ptr.example", "pass"),
    ("192.0.2.11", "ptr.example", "fail"),
])
def test_check_host_verdicts(lookup, ip, domain, result):
    assert verdict(lookup, ip, domain).result == result


@pytest.mark.parametrize(("domain", "why"), [
    ("loop.example", "more than 10 DNS-querying terms"),  # an include loop ends at the lookup limit
    ("two.example", "publishes 2 SPF records"),
    ("bad.example", "'foo:bar' is not an SPF mechanism"),
    ("redirect-none.example", "publishes no SPF record"),
    ("include-nothing.example", "publishes no SPF record"),
    ("void.example", "more than 2 lookups found no records"),
    ("badmacro.example", "%{x}"),
])
def test_records_that_cannot_be_evaluated_are_permerrors(lookup, domain, why):
    found = verdict(lookup, "192.0.2.1", domain)
    assert found.result == "permerror" and why in found.detail


def test_the_lookup_limit_counts_every_querying_term(lookup):
    assert verdict(lookup, "198.51.100.14", "inc.example").lookups == 2  # include, a (the mx is not reached)
    assert verdict(lookup, "192.0.2.1", "loop.example").lookups == 11


def test_macros_expand_reversed_ip_version_and_domain_labels(lookup):
    assert verdict(lookup, "192.0.2.1", "macro.example").result == "pass"
    assert verdict(lookup, "192.0.2.3", "macro.example").result == "fail"


def test_ptr_passes_but_leaves_a_note_to_replace_it(lookup):
    found = verdict(lookup, "192.0.2.10", "ptr.example")
    assert found.result == "pass" and "ptr" in found.notes[0]
