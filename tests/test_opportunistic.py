"""Direct-to-MX connections: opportunistic STARTTLS (RFC 7435) and a chosen sending IP."""

import asyncio
import ssl
from dataclasses import replace

import pytest

from mailflow.settings import Relay
from mailflow.tasks.deliver.client import PipeliningConnection
from mailflow.tasks.deliver.transport import MxRoutes
from mailflow.tasks.demo.receiver import Receiver, free_port
from mailflow.tasks.send.chunk import send_chunk
from tests.support.campaign import SPEC, mx_settings, write_chunk
from tests.support.dnsstub import DnsStub
from tests.support.smtp import DELIVERED, HELO, good, key, send_all

pytestmark = pytest.mark.integration


def test_opportunistic_tls_encrypts_when_offered_without_checking_the_certificate(server_tls):
    # The certificate is self-signed and names 127.0.0.1, not the MX: a verifying client would refuse it.
    with Receiver(record=True, tls_context=server_tls) as rx:
        outcomes = send_all(PipeliningConnection(Relay("127.0.0.1", rx.port, tls="opportunistic"), HELO, 5),
                            [good(0), good(1)])
    assert [key(o) for o in outcomes] == [DELIVERED] * 2
    assert [m.tls for m in rx.received] == [True, True]


def test_opportunistic_tls_sends_in_the_clear_when_not_offered():
    with Receiver(record=True) as rx:
        outcomes = send_all(PipeliningConnection(Relay("127.0.0.1", rx.port, tls="opportunistic"), HELO, 5), [good(0)])
    assert [key(o) for o in outcomes] == [DELIVERED] and rx.received[0].tls is False


def test_a_failed_opportunistic_handshake_goes_on_in_the_clear_at_once(server_tls):
    broken = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # offers STARTTLS but has no certificate: handshakes fail
    with Receiver(record=True, tls_context=broken) as rx:
        outcomes = send_all(PipeliningConnection(Relay("127.0.0.1", rx.port, tls="opportunistic"), HELO, 5),
                            [good(0), good(1)])
    assert [key(o) for o in outcomes] == [DELIVERED] * 2  # a new session in the clear, in the same send
    assert [(m.recipients, m.tls) for m in rx.received] == [(["reader0@example.com"], False),
                                                            (["reader1@example.com"], False)]


def test_straight_to_mx_a_lone_recipient_whose_exchanger_fails_starttls_is_delivered_in_the_clear_at_once(tmp_path):
    port = free_port("127.0.0.2")
    zone = {"one.example": {"MX": ["10 mx.one.example."]}, "mx.one.example": {"A": ["127.0.0.2"]}}
    broken = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # offers STARTTLS, no certificate
    with DnsStub(zone) as dns, Receiver(record=True, host="127.0.0.2", port=port, tls_context=broken) as rx:
        settings = mx_settings(tmp_path / "h", dns.port, port)
        chunk = write_chunk(tmp_path / "c.parquet", ["a@one.example"])
        counts = asyncio.run(send_chunk(settings, replace(SPEC, transport="mx"), chunk, lanes={}))
    # Not deferred to a retry that would meet the same failed handshake with a new connection.
    assert counts["delivered"] == 1
    assert [(m.recipients, m.tls) for m in rx.received] == [(["a@one.example"], False)]


def test_a_password_is_not_sent_where_tls_is_only_opportunistic():
    outcome = send_all(PipeliningConnection(Relay("192.0.2.1", 25, "u", "p", tls="opportunistic"), HELO, 1), [good(0)])
    assert outcome[0].status == "failed" and "without TLS" in outcome[0].detail


def test_the_connection_leaves_from_the_chosen_source_address():
    with Receiver(record=True) as rx:
        send_all(PipeliningConnection(Relay("127.0.0.1", rx.port, source="127.0.0.7"), HELO, 5), [good(0)])
    assert rx.received[0].peer[0] == "127.0.0.7"


def test_each_domain_keeps_one_sending_ip_and_the_ips_share_the_domains():
    routes = MxRoutes(router=None, port=25, sources=("192.0.2.10", "192.0.2.11"))
    domains = [f"d{i}.example" for i in range(400)]
    first = {d: routes.source_for(d) for d in domains}
    assert all(routes.source_for(d) == first[d] for d in domains)
    assert 120 < list(first.values()).count("192.0.2.10") < 280
    assert MxRoutes(router=None, port=25).source_for("x.example") == ""
