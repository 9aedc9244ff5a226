"""Client addresses as event logs keep them: truncated, hashed, whole or not at all; proxies believed only when trusted."""

from __future__ import annotations

import hashlib
import hmac
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

MODES = ("truncate", "hash", "full", "none")
_CACHE_SIZE = 65536  # distinct clients remembered: a burst from one address costs one conversion


class ClientIp:
    """`ClientIp(mode, trusted_proxies, secret)(peer, x_forwarded_for) -> str | None`.

    truncate keeps the network of the address (IPv4 /24, IPv6 /48): enough to tell a mail
    provider's image proxy from a home connection, too little to name a household. hash keys
    an HMAC with a key derived from the tracking secret, so equal addresses stay equal without
    a table of every IPv4 address reversing them. A peer's X-Forwarded-For is believed only when
    the peer is one of `trusted_proxies`, read from the right, past every trusted hop.
    """

    def __init__(self, mode: str, trusted_proxies: tuple[str, ...] = (), secret: str = ""):
        if mode not in MODES:
            raise ValueError(f"tracking.ip must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.trusted = tuple(ip_network(p, strict=False) for p in trusted_proxies)
        self._key = hashlib.sha256(b"mailflow-ip\0" + secret.encode()).digest()
        self._seen: dict[tuple[str | None, str | None], str | None] = {}

    def __call__(self, peer: str | None, forwarded: str | None = None) -> str | None:
        if self.mode == "none":
            return None
        key = (peer, forwarded if self.trusted else None)
        if key not in self._seen:
            if len(self._seen) >= _CACHE_SIZE:
                self._seen.clear()
            address = self.origin(peer, key[1])
            self._seen[key] = None if address is None else self.shown(address)
        return self._seen[key]

    def origin(self, peer: str | None, forwarded: str | None) -> IPv4Address | IPv6Address | None:
        """The client: the peer, or behind trusted proxies the first X-Forwarded-For hop, from the right, that is not one."""
        try:
            address = _plain(ip_address(peer or ""))
        except ValueError:
            return None
        if forwarded and self._is_trusted(address):
            for hop in reversed(forwarded.split(",")):
                try:
                    address = _plain(ip_address(hop.strip()))
                except ValueError:
                    break  # what a client wrote before our proxies' hops proves nothing
                if not self._is_trusted(address):
                    break
        return address

    def shown(self, address: IPv4Address | IPv6Address) -> str:
        if self.mode == "full":
            return str(address)
        if self.mode == "hash":
            return hmac.new(self._key, address.packed, hashlib.sha256).hexdigest()[:32]
        prefix = 24 if address.version == 4 else 48
        return str(ip_network(f"{address}/{prefix}", strict=False).network_address)

    def _is_trusted(self, address: IPv4Address | IPv6Address) -> bool:
        return any(address in network for network in self.trusted)


def _plain(address: IPv4Address | IPv6Address) -> IPv4Address | IPv6Address:
    """An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d: it is the IPv4 address."""
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address
