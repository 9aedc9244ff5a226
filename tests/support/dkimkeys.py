"""DKIM test material: the signing domain, a header block, keys as PEM, and dkimpy's verdict without DNS."""

from __future__ import annotations

import base64
import re
import types

import dkim
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from dkim.util import parse_tag_value

from mailflow.tasks.compose.dkim import dns_record

DOMAIN, SELECTOR = "example.com", "mf2026"
HEADERS = (
    b"From: News <news@example.com>\r\n"
    b"To: Reader <reader@example.org>\r\n"
    b"Subject: Monthly news\r\n"
    b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <1.2@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
)


def nacl_shim() -> types.SimpleNamespace:
    """The three corners of PyNaCl that dkimpy uses for Ed25519 verification, over `cryptography`.

    dkimpy only verifies Ed25519 when PyNaCl is importable, and the project does not install it.
    Canonicalization and hashing stay dkimpy's own; only the final Ed25519 check is OpenSSL's.
    """
    class NaclValueError(ValueError):
        pass

    class BadSignatureError(Exception):
        pass

    class VerifyKey:
        def __init__(self, key: bytes, encoder: object = None):
            try:
                self._key = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(key))
            except ValueError as e:
                raise NaclValueError(str(e)) from e

        def verify(self, message: bytes, signature: bytes) -> bytes:
            try:
                self._key.verify(signature, message)
            except InvalidSignature as e:
                raise BadSignatureError("signature was forged or corrupt") from e
            return message

    return types.SimpleNamespace(
        signing=types.SimpleNamespace(VerifyKey=VerifyKey),
        encoding=types.SimpleNamespace(Base64Encoder=object),
        exceptions=types.SimpleNamespace(ValueError=NaclValueError, BadSignatureError=BadSignatureError),
    )


def pem(private_key, fmt=serialization.PrivateFormat.PKCS8) -> bytes:
    return private_key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def verify(signed: bytes, key) -> bool:
    """dkimpy's verdict, with the key's TXT record served instead of DNS."""
    name = f"{key.selector}._domainkey.{key.domain}."
    record = dns_record(key).encode()

    def dnsfunc(qname, timeout=5):
        return record if qname.decode() == name else None

    return dkim.verify(signed, dnsfunc=dnsfunc)


def signature_tags(signed: bytes) -> dict[bytes, bytes]:
    lines = re.split(rb"\r\n(?![ \t])", signed.split(b"\r\n\r\n")[0])
    header = next(line for line in lines if line.lower().startswith(b"dkim-signature:"))
    return parse_tag_value(header.split(b":", 1)[1].replace(b"\r\n", b""))
