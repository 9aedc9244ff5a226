"""Signed tokens naming one send (campaign, subscriber): VERP addresses, trace headers, tracking URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from dataclasses import dataclass

# A token is 8 bytes of subscriber id, 6 of campaign digest and 8 of HMAC-SHA256, in
# lower-case base32 (36 characters): short enough for a VERP local part (64 at most, RFC
# 5321) and safe where mail systems fold case. The campaign digest maps back to a campaign
# by hashing the known campaign ids; 64 bits of MAC make forged bounces and clicks useless.
_LAYOUT = struct.Struct(">Q6s")
_MAC_BYTES = 8


class BadToken(ValueError):
    """Not a token this secret signed."""


@dataclass(frozen=True)
class SendRef:
    campaign_digest: bytes
    subscriber_id: int
    purpose: str


def campaign_digest(campaign_id: str) -> bytes:
    return hashlib.sha256(campaign_id.encode()).digest()[:6]


class TokenSigner:
    """Signs and checks tokens; the purpose (bounce, unsubscribe, open, click:N ...) is part of the MAC."""

    def __init__(self, secret: str):
        if not secret:
            raise ValueError("a token secret is required (set MAILFLOW_TRACKING__SECRET)")
        self._key = hashlib.sha256(b"mailflow-token\0" + secret.encode()).digest()

    def _mac(self, payload: bytes, purpose: str) -> bytes:
        return hmac.new(self._key, purpose.encode() + b"\0" + payload, hashlib.sha256).digest()[:_MAC_BYTES]

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


def _encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode().lower().rstrip("=")
