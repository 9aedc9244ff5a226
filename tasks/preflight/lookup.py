"""DNS questions the preflight asks, with the three answers it tells apart: records, none (proven), trouble."""

from __future__ import annotations

import ipaddress

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver
import dns.reversename

from mailflow.tasks.core.dns import proven_negative_ttl


class DnsTrouble(Exception):
    """The question got no trustworthy answer (timeout, SERVFAIL, an NXDOMAIN without its SOA): nothing is proven."""


class Lookup:
    """One resolver's answers: lists of strings (A/AAAA addresses, MX exchanges, TXT texts, PTR names).

    An empty list means the name or the type does not exist, and the server proved it (an NXDOMAIN
    carrying its zone's SOA, or NOERROR without the type); anything less raises DnsTrouble.
    """

    def __init__(self, resolver: dns.asyncresolver.Resolver):
        self.resolver = resolver

    async def records(self, name: str, rdtype: str) -> list[str]:
        try:
            qname = dns.name.from_text(name)
        except (ValueError, dns.exception.DNSException) as exc:
            raise DnsTrouble(f"{name!r} is not a DNS name: {exc}") from None
        try:
            answer = await self.resolver.resolve(qname, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as exc:
            if proven_negative_ttl(exc) is None:
                raise DnsTrouble(f"{rdtype} {name}: NXDOMAIN without the zone's SOA (is the resolver answering?)") from None
            return []
        except dns.exception.Timeout:
            raise DnsTrouble(f"{rdtype} {name}: no answer in time") from None
        except dns.resolver.NoNameservers:
            raise DnsTrouble(f"{rdtype} {name}: no nameserver answered (SERVFAIL or refused)") from None
        except dns.exception.DNSException as exc:
            raise DnsTrouble(f"{rdtype} {name}: {type(exc).__name__}") from None
        if answer.rrset is None:
            return []
        if rdtype == "TXT":  # one record's strings are one text (RFC 7208 §3.3, RFC 6376 §3.6.2.2)
            return [b"".join(r.strings).decode("utf-8", "replace") for r in answer.rrset]
        if rdtype == "MX":
            return [r.exchange.to_text(omit_final_dot=True) for r in sorted(answer.rrset, key=lambda r: r.preference)]
        if rdtype == "PTR":
            return [r.target.to_text(omit_final_dot=True) for r in answer.rrset]
        return [r.to_text() for r in answer.rrset]

    async def addresses(self, host: str) -> list[str]:
        """A and AAAA of a host name (or the address itself, when given one)."""
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        return await self.records(host, "A") + await self.records(host, "AAAA")

    async def reverse(self, ip: str) -> list[str]:
        return await self.records(dns.reversename.from_address(ip).to_text(), "PTR")

