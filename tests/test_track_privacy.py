"""Client addresses in event logs: truncated, hashed, whole or none; X-Forwarded-For believed only from trusted proxies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailflow.errors import MailflowError
from mailflow.settings import load_settings
from mailflow.tasks.track.privacy import ClientIp


@pytest.mark.parametrize("peer,shown", [
    ("203.0.113.77", "203.0.113.0"),
    ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::"),
    ("::ffff:198.51.100.9", "198.51.100.0"),  # an IPv4 client on a dual-stack socket
    ("not-an-ip", None),
    (None, None),
])
def test_truncate_keeps_the_network_of_the_address_only(peer, shown):
    assert ClientIp("truncate")(peer) == shown


def test_hash_is_stable_per_secret_and_reveals_nothing_of_the_address():
    one, other = ClientIp("hash", secret="s1"), ClientIp("hash", secret="s2")
    first = one("203.0.113.77")
    assert first == one("203.0.113.77") != one("203.0.113.78")
    assert other("203.0.113.77") != first and "203" not in first and len(first) == 32


def test_full_keeps_the_address_and_none_keeps_nothing():
    assert ClientIp("full")("2001:db8::1") == "2001:db8::1"
    assert ClientIp("none")("203.0.113.77", "198.51.100.1") is None


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy():
    assert ClientIp("full")("203.0.113.77", "198.51.100.1") == "203.0.113.77"
    behind = ClientIp("full", ("10.0.0.0/8", "::1"))
    assert behind("203.0.113.77", "198.51.100.1") == "203.0.113.77", "an untrusted peer's header proves nothing"
    assert behind("10.1.2.3", "198.51.100.1") == "198.51.100.1"
    # read from the right: the client wrote the leftmost hops itself, our proxies appended the rest
    assert behind("10.1.2.3", "1.2.3.4, 198.51.100.1, 10.9.9.9") == "198.51.100.1"
    assert behind("::1", "garbage, 10.9.9.9") == "10.9.9.9", "nothing unparseable is believed"
    assert behind("10.1.2.3", "") == "10.1.2.3"


@given(st.ip_addresses(v=4))
def test_a_truncated_ipv4_address_always_ends_in_zero_and_keeps_its_first_three_octets(address):
    shown = ClientIp("truncate")(str(address))
    assert shown.split(".")[:3] == str(address).split(".")[:3] and shown.endswith(".0")


def test_the_settings_refuse_an_unknown_mode_and_a_proxy_that_is_no_address():
    with pytest.raises(MailflowError, match="tracking.ip must be one of"):
        load_settings(overrides={"tracking": {"ip": "mask"}})
    with pytest.raises(MailflowError, match="tracking.trusted_proxies must list IPs or CIDRs, not 'proxy.local'"):
        load_settings(overrides={"tracking": {"trusted_proxies": ["proxy.local"]}})
    with pytest.raises(MailflowError, match="tracking.log_sync_seconds must be more than 0 and at most 1"):
        load_settings(overrides={"tracking": {"log_sync_seconds": 5}})
    assert load_settings(overrides={"tracking": {"trusted_proxies": ["10.0.0.0/8"]}}).tracking.trusted_proxies == ("10.0.0.0/8",)
