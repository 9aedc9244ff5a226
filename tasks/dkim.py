"""DKIM signing (RFC 6376; Ed25519 per RFC 8463), relaxed/relaxed, fast enough for the send hot path."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

RSA_SHA256 = "rsa-sha256"
ED25519_SHA256 = "ed25519-sha256"
DEFAULT_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post")
MIN_RSA_BITS = 1024  # RFC 8301: verifiers must reject shorter RSA keys, so signing with one is pointless
MAX_LINE = 78  # RFC 5322 §2.1.1 recommended line length, not counting CRLF

_WSP_RUN = re.compile(rb"[ \t]+")
_SPACE_RUN = re.compile(rb"  +")  # a two-byte literal prefix: sre skips ahead far faster than for [ \t]+
_FIELD_START = re.compile(rb"\r\n(?![ \t])")  # a CRLF not followed by WSP ends a header field
_DNS_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")  # RFC 5322 ftext


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: str  # "rsa-sha256" | "ed25519-sha256"
    private_key: Any = field(repr=False, compare=False)


def load_key(domain: str, selector: str, pem: bytes | str) -> DkimKey:
    """An RSA or Ed25519 signing key from an unencrypted PEM (PKCS#8, or traditional RSA)."""
    for what, name in (("domain", domain), ("selector", selector)):
        if not _DNS_NAME.fullmatch(name):
            raise ValueError(f"DKIM {what} {name!r} is not an ASCII DNS name (use the A-label form for IDNs)")
    if isinstance(pem, str):
        pem = pem.encode("ascii")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError as e:  # cryptography's way of saying "encrypted, and no password given"
        raise ValueError("DKIM key PEM is encrypted; supply it unencrypted (from a secret store)") from e
    except (ValueError, UnsupportedAlgorithm) as e:
        raise ValueError(f"DKIM key is not a PEM private key this signer can read: {e}") from e
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"DKIM RSA key has {key.key_size} bits; receivers reject fewer than {MIN_RSA_BITS}")
        return DkimKey(domain, selector, RSA_SHA256, key)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return DkimKey(domain, selector, ED25519_SHA256, key)
    raise ValueError(f"DKIM key type {type(key).__name__} is not supported: use RSA (2048 bits) or Ed25519")


def dns_record(key: DkimKey) -> str:
    """The TXT record value to publish at <selector>._domainkey.<domain>.

    An RSA-2048 record is ~400 characters: zone files must split it into strings of at most 255.
    """
    public = key.private_key.public_key()
    if key.algorithm == ED25519_SHA256:
        # RFC 8463 §4.2: the bare 32-byte key, not an ASN.1 structure
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()
    # SubjectPublicKeyInfo, as opendkim-genkey and every verifier in practice expect
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 §3.4.4 relaxed body canonicalization of a CRLF body."""
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    # Tabs become spaces first so that only runs of spaces are left to compress: a regex over
    # every WSP byte of a 23 KB body costs ~600 us, this costs ~50 us, and the `in` tests skip
    # the work entirely for bodies (base64 parts) that have no runs
    if b"\t" in body:
        body = body.replace(b"\t", b" ")
    if b"  " in body:
        body = _SPACE_RUN.sub(b" ", body)
    if b" \r\n" in body:  # after compressing, trailing WSP is exactly one space
        body = body.replace(b" \r\n", b"\r\n")
    end = len(body)
    while end >= 4 and body[end - 4:end] == b"\r\n\r\n":
        end -= 2
    if end == 2:
        return b""  # only empty lines: relaxed hashes nothing (simple would hash one CRLF)
    return body[:end] if end != len(body) else body


def relaxed_value(value: bytes) -> bytes:
    """RFC 6376 §3.4.2 relaxed form of a header field value (everything after the colon)."""
    if b"\r\n" in value:
        value = value.replace(b"\r\n", b"")
    if b"\t" in value or b"  " in value:
        value = _WSP_RUN.sub(b" ", value)
    return value.strip(b" \t")


class DkimSigner:
    """Signs messages with one key; whatever does not depend on the message is worked out here."""

    def __init__(self, key: DkimKey, headers: tuple[str, ...] = DEFAULT_HEADERS):
        names: list[bytes] = []
        for header in headers:
            if not _FIELD_NAME.fullmatch(header):
                raise ValueError(f"{header!r} is not a header field name")
            name = header.lower().encode("ascii")
            if name not in names:
                names.append(name)
        if b"from" not in names:
            raise ValueError("RFC 6376 §5.4: the From header field must be signed")
        self.key = key
        self._names = tuple(names)
        self._wanted = frozenset(names)
        self._rsa = key.algorithm == RSA_SHA256
        self._pkcs1, self._sha256 = padding.PKCS1v15(), hashes.SHA256()
        self._prefix = [b"v=1;", b"a=" + key.algorithm.encode() + b";", b"c=relaxed/relaxed;",
                        b"d=" + key.domain.encode() + b";", b"s=" + key.selector.encode() + b";"]
        self._h_tags: dict[tuple[bytes, ...], list[tuple[bytes, bytes]]] = {}

    def sign(self, message: bytes) -> bytes:
        """The message with a DKIM-Signature header field prepended."""
        if message.count(b"\n") != message.count(b"\r\n"):
            # MTAs and verifiers turn a bare LF into CRLF, so a signature over it would never verify
            raise ValueError("message has a bare LF; DKIM signing needs CRLF line endings throughout")
        if message.startswith(b"\r\n"):
            raise ValueError("message has no header fields")
        end = message.find(b"\r\n\r\n")
        if end < 0:  # header fields only, no body (RFC 5322 allows it)
            body = b""
            head = message if message.endswith(b"\r\n") else message + b"\r\n"
            message = head
        else:
            head, body = message[:end + 2], message[end + 4:]
            if body and not body.endswith(b"\r\n"):
                # SMTP DATA appends this CRLF in transit anyway; adding it here keeps the signed bytes
                # and the delivered bytes identical (dkimpy would otherwise hash a trailing space
                # on that last line that every verifier strips once the CRLF is there)
                body += b"\r\n"
                message += b"\r\n"

        # Top to bottom, so a repeated field keeps its last (bottom-most) value: §5.4.2 signs that one
        found: dict[bytes, bytes] = {}
        for raw in _FIELD_START.split(head[:-2]):
            colon = raw.find(b":")
            if colon <= 0:
                raise ValueError(f"malformed header line {raw[:60]!r}")
            name = raw[:colon].rstrip(b" \t").lower()
            if name in self._wanted:
                if name == b"from" and name in found:
                    # dkimpy (and DMARC) treat a second From as an attack: such a signature never verifies
                    raise ValueError("message has more than one From header field")
                found[name] = raw[colon + 1:]
        if b"from" not in found:
            raise ValueError("message has no From header field")
        signed = tuple(name for name in self._names if name in found)
        data = [name + b":" + relaxed_value(found[name]) + b"\r\n" for name in signed]

        bh = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
        tags = self._prefix + [b"t=%d;" % int(time.time())]
        unsigned = _fold(tags, self._h_tag(signed), b"bh=" + bh + b";")
        # The signature header itself is hashed last, relaxed, with an empty b= and no CRLF (§3.7)
        data.append(b"dkim-signature:" + relaxed_value(unsigned[len(b"DKIM-Signature:"):]))
        blob = b"".join(data)
        if self._rsa:
            signature = self.key.private_key.sign(blob, self._pkcs1, self._sha256)
        else:
            # RFC 8463 §3: Ed25519 signs the SHA-256 digest of the header data, not the data itself
            signature = self.key.private_key.sign(hashlib.sha256(blob).digest())
        return unsigned + _fold_b(base64.b64encode(signature), unsigned) + message

    def _h_tag(self, signed: tuple[bytes, ...]) -> list[tuple[bytes, bytes]]:
        """h= as (separator, piece) pairs that may fold after any colon; cached per header set."""
        pieces = self._h_tags.get(signed)
        if pieces is None:
            parts = [name + b":" for name in signed]
            parts[0] = b"h=" + parts[0]
            parts[-1] = parts[-1][:-1] + b";"
            pieces = [(b" ", parts[0])] + [(b"", part) for part in parts[1:]]
            self._h_tags[signed] = pieces
        return pieces


def _fold(tags: list[bytes], h_tag: list[tuple[bytes, bytes]], bh_tag: bytes) -> bytes:
    """`DKIM-Signature: ...; b=` folded at tag boundaries (and inside h=) to keep lines within 78."""
    out = [b"DKIM-Signature:"]
    column = len(out[0])
    for separator, piece in [(b" ", tag) for tag in tags] + h_tag + [(b" ", bh_tag), (b" ", b"b=")]:
        if column + len(separator) + len(piece) > MAX_LINE:
            out.append(b"\r\n ")
            column = 1
        else:
            out.append(separator)
            column += len(separator)
        out.append(piece)
        column += len(piece)
    return b"".join(out)


def _fold_b(b64: bytes, unsigned: bytes) -> bytes:
    """The b= value split with FWS (allowed anywhere in it) to fill the lines, then the closing CRLF."""
    column = len(unsigned) - unsigned.rfind(b"\n") - 1
    first = max(MAX_LINE - column, 0)  # 0: no room left after "b=", the value starts on the next line
    chunks = [b64[:first]] + [b64[i:i + MAX_LINE - 1] for i in range(first, len(b64), MAX_LINE - 1)]
    return b"\r\n ".join(chunks) + b"\r\n"
