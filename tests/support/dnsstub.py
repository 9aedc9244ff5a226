"""A real DNS server on loopback for tests: answers from a dict zone and counts what it is asked.

    zone = {
        "example.com": {"MX": ["10 mx1.example.com."], "TTL": 3600},
        "nullmx.example": {"MX": ["0 ."]},
        "aonly.example": {"A": ["127.0.0.1"]},
        "nomail.example": {"TXT": ['"v=spf1 -all"']},
        "servfail.example": {"SERVFAIL": True},   # answers SERVFAIL
        "silent.example": {"DROP": True},         # never answers: the client times out
        "bare.example": {"BARE_NXDOMAIN": True},  # NXDOMAIN without the SOA, as broken resolvers say
        "alias.example": {"CNAME": ["aonly.example."]},  # followed within the zone, as servers do
    }
    with DnsStub(zone) as stub:
        resolver = make_resolver(["127.0.0.1"], port=stub.port)

A name missing from the zone is NXDOMAIN; a known name without the asked type is NOERROR
with no answer (NODATA). Negative answers carry an SOA whose minimum is the entry's TTL
(or `negative_ttl`), so clients can compute the RFC 2308 negative TTL.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

SPECIAL_KEYS = {"TTL", "SERVFAIL", "DROP", "BARE_NXDOMAIN"}
MAX_CHAIN = 8


class DnsStub:
    def __init__(self, zone: dict[str, dict], ttl: int = 300, negative_ttl: int = 300,
                 host: str = "127.0.0.1") -> None:
        self.zone = {self._key(name): entry for name, entry in zone.items()}
        self.ttl, self.negative_ttl, self.host = ttl, negative_ttl, host
        self.port = 0
        self.queries: Counter[tuple[str, str]] = Counter()  # (name, type) -> queries received
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def _key(name: str) -> str:
        return name.lower().removesuffix(".")

    def start(self) -> DnsStub:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((self.host, 0))  # a free port chosen by the kernel
        self._sock.settimeout(0.05)  # so the loop notices stop() promptly
        self.port = self._sock.getsockname()[1]
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=f"dnsstub:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> DnsStub:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def count(self, name: str | None = None, rdtype: str | None = None) -> int:
        """Queries received, optionally only for one name and/or one type."""
        with self._lock:
            return sum(n for (qname, qtype), n in self.queries.items()
                       if (name is None or qname == self._key(name)) and (rdtype is None or qtype == rdtype))

    def reset(self) -> None:
        with self._lock:
            self.queries.clear()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                wire, peer = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self.answer(wire)
            if reply is not None:
                self._sock.sendto(reply, peer)

    def answer(self, wire: bytes) -> bytes | None:
        """The reply to one query in wire format, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if len(query.question) != 1:
            return None
        question = query.question[0]
        name = self._key(question.name.to_text())
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries[(name, rdtype)] += 1
        entry = self.zone.get(name)
        if entry is not None and entry.get("DROP"):
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        owner = question.name
        for _ in range(MAX_CHAIN):  # an authoritative server follows CNAMEs inside its own zone
            if entry is None or entry.get("BARE_NXDOMAIN"):
                response.set_rcode(dns.rcode.NXDOMAIN)
                if entry is None:
                    response.authority.append(self._soa(owner, self.negative_ttl))
            elif entry.get("SERVFAIL"):
                response.set_rcode(dns.rcode.SERVFAIL)
            elif rdtype in entry and rdtype not in SPECIAL_KEYS:
                response.answer.append(self._rrset(owner, entry, rdtype))
            elif "CNAME" in entry:
                response.answer.append(self._rrset(owner, entry, "CNAME"))
                owner = dns.name.from_text(entry["CNAME"][0])
                entry = self.zone.get(self._key(owner.to_text()))
                continue
            else:  # NODATA: the name exists, this type does not
                response.authority.append(self._soa(owner, entry.get("TTL", self.negative_ttl)))
            break
        return response.to_wire()

    def _rrset(self, owner: dns.name.Name, entry: dict, rdtype: str) -> dns.rrset.RRset:
        return dns.rrset.from_text(owner, entry.get("TTL", self.ttl), "IN", rdtype, *entry[rdtype])

    @staticmethod
    def _soa(qname: dns.name.Name, minimum: int) -> dns.rrset.RRset:
        apex = dns.name.Name(qname.labels[-2:])  # the stub claims to be authoritative for the TLD
        return dns.rrset.from_text(apex, minimum, "IN", "SOA",
                                   f"ns.stub. hostmaster.stub. 1 3600 600 86400 {minimum}")


def txt(text: str) -> str:
    """A TXT record's text as zone data: quoted, split into strings of at most 255 characters (a DKIM key needs it)."""
    return " ".join('"' + text[i:i + 255].replace('"', '\\"') + '"' for i in range(0, len(text), 255)) or '""'
