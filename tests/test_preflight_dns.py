"""The DNS checks against a zone served on loopback: a correct setup passes, each misconfiguration FAILs or WARNs with its fix."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from mailflow.tasks.preflight.preflight import dns_checks
from tests.support.dnsstub import DnsStub, txt
from tests.support.preflight import SOURCE_IP, SPEC, TRACKING_HOST, good_zone, preflight_settings

pytestmark = pytest.mark.integration


def checks_for(tmp_path, private_key, zone, **sections) -> dict:
    with DnsStub(zone) as stub:
        settings = preflight_settings(tmp_path / "home", stub.port, private_key, **sections)
        return {c.check: c for c in asyncio.run(dns_checks(settings, SPEC))}


def test_a_correct_setup_passes_every_dns_check(tmp_path, rsa_private):
    found = checks_for(tmp_path, rsa_private, good_zone(rsa_private))
    assert {name: c.status for name, c in found.items()} == {
        "spf": "PASS", "dkim": "PASS", "dmarc": "PASS", "alignment": "PASS", "bounce_mx": "PASS", "tracking_host": "PASS"}
    assert SOURCE_IP in found["spf"].detail and "p=quarantine" in found["dmarc"].detail


def test_spf_without_the_source_ip_fails_with_the_term_to_add(tmp_path, rsa_private):
    zone = good_zone(rsa_private) | {"_spf.example.com": {"TXT": [txt("v=spf1 ip4:198.51.100.1 -all")]}}
    spf = checks_for(tmp_path, rsa_private, zone)["spf"]
    assert spf.status == "FAIL" and f"{SOURCE_IP} (fail)" in spf.detail
    assert spf.fix == f"add \"ip4:{SOURCE_IP}\" to bounces.example.com's SPF record"


def test_spf_over_ten_lookups_is_a_permerror(tmp_path, rsa_private):
    chain = {f"s{i}.example.com": {"TXT": [txt(f"v=spf1 include:s{i + 1}.example.com -all")]} for i in range(12)}
    zone = good_zone(rsa_private) | chain | {"bounces.example.com": {"TXT": [txt("v=spf1 include:s0.example.com -all")],
                                                                      "MX": ["10 mx.example.com."]}}
    spf = checks_for(tmp_path, rsa_private, zone)["spf"]
    assert spf.status == "FAIL" and "permerror" in spf.detail and "more than 10" in spf.detail


def test_no_spf_record_fails_with_the_record_to_publish(tmp_path, rsa_private):
    zone = good_zone(rsa_private) | {"bounces.example.com": {"MX": ["10 mx.example.com."]}}
    spf = checks_for(tmp_path, rsa_private, zone)["spf"]
    assert spf.status == "FAIL" and f'"v=spf1 ip4:{SOURCE_IP} -all"' in spf.fix


def test_a_published_key_that_is_not_the_configured_one_fails(tmp_path, rsa_private):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    zone = good_zone(rsa_private) | {"mf1._domainkey.example.com": good_zone(other)["mf1._domainkey.example.com"]}
    dkim = checks_for(tmp_path, rsa_private, zone)["dkim"]
    assert dkim.status == "FAIL" and "is not the configured key" in dkim.detail
    assert dkim.fix.startswith("replace the TXT record at mf1._domainkey.example.com with \"v=DKIM1; k=rsa; p=")


def test_a_missing_key_record_fails(tmp_path, rsa_private):
    zone = {k: v for k, v in good_zone(rsa_private).items() if "_domainkey" not in k}
    dkim = checks_for(tmp_path, rsa_private, zone)["dkim"]
    assert dkim.status == "FAIL" and dkim.fix.startswith("publish a TXT record at mf1._domainkey.example.com")


def test_no_dmarc_record_fails_and_p_none_warns(tmp_path, rsa_private):
    zone = {k: v for k, v in good_zone(rsa_private).items() if k != "_dmarc.example.com"}
    dmarc = checks_for(tmp_path, rsa_private, zone)["dmarc"]
    assert dmarc.status == "FAIL" and dmarc.fix.startswith('publish a TXT record at _dmarc.example.com: "v=DMARC1; p=none')
    zone["_dmarc.example.com"] = {"TXT": [txt("v=DMARC1; p=none")]}
    dmarc = checks_for(tmp_path, rsa_private, zone)["dmarc"]
    assert dmarc.status == "WARN" and "p=quarantine" in dmarc.fix


def test_a_return_path_off_the_from_domain_warns_and_fails_without_dkim(tmp_path, rsa_private):
    zone = good_zone(rsa_private) | {"bounces.other.net": good_zone(rsa_private)["bounces.example.com"]}
    found = checks_for(tmp_path, rsa_private, zone, smtp={"bounce_domain": "bounces.other.net"})
    assert found["alignment"].status == "WARN" and "DMARC rests on DKIM alone" in found["alignment"].detail
    assert found["alignment"].fix == "set smtp.bounce_domain to a subdomain of example.com"
    found = checks_for(tmp_path, rsa_private, zone, smtp={"bounce_domain": "bounces.other.net"}, dkim={"domain": ""})
    assert found["alignment"].status == "FAIL" and found["dkim"].status == "WARN"


def test_strict_alignment_refuses_a_subdomain(tmp_path, rsa_private):
    zone = good_zone(rsa_private) | {"_dmarc.example.com": {"TXT": [txt("v=DMARC1; p=reject; aspf=s")]}}
    alignment = checks_for(tmp_path, rsa_private, zone)["alignment"]
    assert alignment.status == "WARN" and "(strict)" in alignment.detail and alignment.fix == "set smtp.bounce_domain to example.com"


def test_a_bounce_domain_without_mx_fails(tmp_path, rsa_private):
    zone = good_zone(rsa_private) | {"bounces.example.com": {"TXT": [txt("v=spf1 include:_spf.example.com -all")]}}
    mx = checks_for(tmp_path, rsa_private, zone)["bounce_mx"]
    assert mx.status == "FAIL" and mx.fix.startswith("add an MX record for bounces.example.com")


def test_a_tracking_host_that_does_not_exist_fails(tmp_path, rsa_private):
    zone = {k: v for k, v in good_zone(rsa_private).items() if k != TRACKING_HOST}
    tracking = checks_for(tmp_path, rsa_private, zone)["tracking_host"]
    assert tracking.status == "FAIL" and f"{TRACKING_HOST} does not resolve" in tracking.detail


def test_a_resolver_that_fails_gives_warnings_never_a_pass(tmp_path, rsa_private):
    zone = {name: {"SERVFAIL": True} for name in good_zone(rsa_private)}
    found = checks_for(tmp_path, rsa_private, zone)
    assert {c.status for c in found.values()} == {"WARN"}
    assert all(c.detail.startswith("not checked") for name, c in found.items() if name != "alignment")


def test_a_relay_on_a_private_address_warns_that_its_source_is_unknown_but_a_missing_record_still_fails(tmp_path, rsa_private):
    found = checks_for(tmp_path, rsa_private, good_zone(rsa_private), preflight={"source_ips": []})
    assert found["spf"].status == "WARN" and "relay 127.0.0.1 is on the private address" in found["spf"].detail
    assert found["spf"].fix == "set preflight.source_ips to the public IPs your mail leaves from"
    zone = good_zone(rsa_private) | {"bounces.example.com": {"MX": ["10 mx.example.com."]}}
    assert checks_for(tmp_path, rsa_private, zone, preflight={"source_ips": []})["spf"].status == "FAIL"


def test_relay_host_names_are_resolved_to_the_addresses_spf_must_permit(tmp_path, rsa_private):
    zone = good_zone(rsa_private) | {"relay.example.net": {"A": ["93.184.215.25"]}}
    found = checks_for(tmp_path, rsa_private, zone, preflight={"source_ips": []},
                       smtp={"pools": {"default": {"relays": ["relay.example.net:587"]}}})
    assert found["spf"].status == "FAIL" and found["spf"].fix == "add \"ip4:93.184.215.25\" to bounces.example.com's SPF record"
    assert "from the relays of pool 'default'" in found["spf"].detail
