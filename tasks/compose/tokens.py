"""Signed tokens naming one send (campaign, subscriber): VERP addresses, trace headers, tracking URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from dataclasses import dataclass
from functools import lru_cache

# A token is 8 bytes of subscriber id, 6 of campaign digest and 8 of HMAC-SHA256, in
# lower-case base32 (36 characters): short enough for a VERP local part (64 at most, RFC
# 5321) and safe where mail systems fold case. The campaign digest maps back to a campaign
# by hashing the known campaign ids; 64 bits of MAC make forged bounces and clicks useless.
_LAYOUT = struct.Struct(">Q6s")
_MAC_BYTES = 8
_LINK_MAC_BYTES = 12  # 96 bits: a forged redirect needs ~2^95 guesses against the tracking service
# base64.b32encode is a Python loop costing ~3 µs a token (5 tokens a message); 22 bytes are
# 176 bits, so shifting in 4 zero bits gives 18 ten-bit groups, two base32 letters each
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_SHIFTS = tuple(range(170, -1, -10))


class BadToken(ValueError):
    """Not a token this secret signed."""


@dataclass(frozen=True)
class SendRef:
    campaign_digest: bytes
    subscriber_id: int
    purpose: str


@lru_cache(maxsize=64)
def campaign_digest(campaign_id: str) -> bytes:
    return hashlib.sha256(campaign_id.encode()).digest()[:6]


class TokenSigner:
    """Signs and checks tokens; the purpose (bounce, unsubscribe, open, click:N ...) is part of the MAC."""

    def __init__(self, secret: str):
        if not secret:
            raise ValueError("a token secret is required (set MAILFLOW_TRACKING__SECRET)")
        self._key = hashlib.sha256(b"mailflow-token\0" + secret.encode()).digest()
        # A key of its own for redirect signatures, so no link MAC can ever pass as a token MAC
        self._link_mac = hmac.new(hashlib.sha256(b"mailflow-link\0" + secret.encode()).digest(), digestmod=hashlib.sha256)
        self._keyed: dict[str, hmac.HMAC] = {}

    def _mac(self, payload: bytes, purpose: str) -> bytes:
        # HMAC state after the key and "purpose\0" is kept per purpose; copying it skips the key setup
        keyed = self._keyed.get(purpose)
        if keyed is None:
            keyed = self._keyed[purpose] = hmac.new(self._key, purpose.encode() + b"\0", hashlib.sha256)
        mac = keyed.copy()
        mac.update(payload)
        return mac.digest()[:_MAC_BYTES]

    def sign(self, campaign_id: str, subscriber_id: int, purpose: str) -> str:
        payload = _LAYOUT.pack(subscriber_id, campaign_digest(campaign_id))
        return _encode(payload + self._mac(payload, purpose))

    def verify(self, token: str, purpose: str) -> SendRef:
        try:
            raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
        except (ValueError, TypeError):
            raise BadToken("not a token") from None
        if len(raw) != _LAYOUT.size + _MAC_BYTES or _encode(raw) != token.lower():
            raise BadToken("not a token")  # the second test refuses other spellings of the same bytes
        payload, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size:]
        if not hmac.compare_digest(mac, self._mac(payload, purpose)):
            raise BadToken("bad signature")
        subscriber_id, digest = _LAYOUT.unpack(payload)
        return SendRef(digest, subscriber_id, purpose)

    def sign_link(self, token: str, url: str) -> str:
        """A redirect's signature: HMAC-SHA256 over a click token (campaign and recipient), a NUL and
        the UTF-8 URL; its first 96 bits in lower-case hex (24 characters)."""
        mac = self._link_mac.copy()
        mac.update(f"{token}\0{url}".encode())
        return mac.digest()[:_LINK_MAC_BYTES].hex()

    def verify_link(self, token: str, url: str, signature: str) -> SendRef:
        """The send a signed redirect belongs to; BadToken unless this secret signed exactly this URL for it."""
        ref = self.verify(token, "click")
        # Compared as text, so no other spelling of the signature passes
        if not signature.isascii() or not hmac.compare_digest(signature, self.sign_link(token.lower(), url)):
            raise BadToken("bad link signature")
        return ref


def _encode(raw: bytes) -> str:
    number = int.from_bytes(raw, "big") << 4
    return "".join([_PAIRS[(number >> shift) & 1023] for shift in _SHIFTS])
