"""Signed tokens naming one send (campaign, subscriber, variant): VERP addresses, trace headers, tracking URLs."""

from __future__ import annotations

import hashlib
import hmac
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from mailflow.errors import MailflowError

if TYPE_CHECKING:
    from mailflow.settings import TrackingSettings

# A token is 25 bytes in lower-case base32, exactly 40 characters:
#
#   key id (1) | variant index (1; 255 = none) | subscriber id (8) | campaign digest (6) | MAC (9)
#
# The MAC is HMAC-SHA256 under the key over the purpose, a NUL and the first 16 bytes, cut to 9 bytes
# (72 bits: a forged bounce or click needs ~2^71 guesses against the tracking service). Base32 keeps
# it safe where mail systems fold case (the whole token in capitals verifies too; mixed case does
# not), and short enough for a VERP local part (64 at most, RFC 5321): "unsubscribe+" and 40
# characters are 52. The key id is the first byte of SHA-256 over a label and
# the secret, so users rotate secrets without managing ids; it only picks which keys to try (two
# keys may share an id: both are tried). The campaign digest maps back to a campaign by hashing the
# known campaign ids. The variant index is the variant's position in the campaign's variants
# (`CampaignSpec.variant_names`: 0 for a campaign without variants, whose one variant is "A").
#
# The first layout (36 characters: subscriber id | campaign digest | 8-byte MAC, no key id and no
# variant) is still accepted under every valid key, so mail sent before key ids keeps working.
_LAYOUT = struct.Struct(">BBQ6s")
_MAC_BYTES = 9
_LEGACY_LAYOUT = struct.Struct(">Q6s")
_LEGACY_MAC_BYTES = 8
NO_VARIANT = 255
_LINK_MAC_BYTES = 12  # 96 bits: a forged redirect needs ~2^95 guesses against the tracking service
# base64.b32encode is a Python loop costing ~3 µs a token (5 tokens a message); 25 bytes are 200
# bits, 20 ten-bit groups of two base32 letters each. Decoding maps the letters onto int()'s base-32
# digits; re-encoding what was decoded refuses every other spelling of the same number.
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_SHIFTS = tuple(range(190, -1, -10))
_LEGACY_SHIFTS = tuple(range(170, -1, -10))  # 176 bits shifted left by 4: 18 groups
_TO_INT_DIGITS = str.maketrans(_ALPHABET, "0123456789abcdefghijklmnopqrstuv")


class BadToken(ValueError):
    """Not a token a valid key signed."""


@dataclass(frozen=True)
class SendRef:
    campaign_digest: bytes
    subscriber_id: int
    purpose: str
    variant: int | None = None  # index in the campaign's variant_names; None: a token without one
    key_id: int | None = None  # the signing key's id; None: a token of the first layout


@lru_cache(maxsize=64)
def campaign_digest(campaign_id: str) -> bytes:
    return hashlib.sha256(campaign_id.encode()).digest()[:6]


def key_id(secret: str) -> int:
    return hashlib.sha256(b"mailflow-key-id\0" + secret.encode()).digest()[0]


class _Key:
    """One secret's derived keys, and until when it verifies (None: always, the current key)."""

    def __init__(self, secret: str, until: float | None):
        self.id, self.until = key_id(secret), until
        self.token_key = hashlib.sha256(b"mailflow-token\0" + secret.encode()).digest()
        # A key of its own for redirect signatures, so no link MAC can ever pass as a token MAC
        self.link_mac = hmac.new(hashlib.sha256(b"mailflow-link\0" + secret.encode()).digest(), digestmod=hashlib.sha256)
        self.states: dict[str, hmac.HMAC] = {}  # per purpose

    def keyed(self, purpose: str) -> hmac.HMAC:
        # HMAC state after the key and "purpose\0" is kept per purpose; copying it skips the key setup.
        # Both layouts share the key: their payloads differ in length, so no input of one is one of the other
        keyed = self.states.get(purpose)
        if keyed is None:
            keyed = self.states[purpose] = hmac.new(self.token_key, purpose.encode() + b"\0", hashlib.sha256)
        return keyed

    def mac(self, payload: bytes, purpose: str) -> bytes:
        mac = self.keyed(purpose).copy()
        mac.update(payload)
        return mac.digest()

    def link(self, token: str, url: str) -> str:
        mac = self.link_mac.copy()
        mac.update(f"{token}\0{url}".encode())
        return mac.digest()[:_LINK_MAC_BYTES].hex()


class TokenSigner:
    """Signs with the current secret and checks under it and, until `previous_until`, the previous one.
    The purpose (send, unsubscribe, open, click ...) is part of the MAC."""

    def __init__(self, secret: str, previous_secret: str = "", previous_until: datetime | None = None,
                 now: Callable[[], datetime] | None = None):
        if not secret:
            raise ValueError("a token secret is required (set MAILFLOW_TRACKING__SECRET)")
        self._current = _Key(secret, None)
        self._keys = [self._current]
        if previous_secret and previous_secret != secret:
            if previous_until is None:
                raise ValueError("a previous token secret needs the time it stops verifying (previous_until)")
            self._keys.append(_Key(previous_secret, _epoch(previous_until)))
        self._by_id: dict[int, list[_Key]] = {}
        for key in self._keys:
            self._by_id.setdefault(key.id, []).append(key)
        self._clock: Callable[[], float] = (lambda: _epoch(now())) if now else time.time
        self._signing = self._current.states  # sign()'s fast path to the current key's per-purpose states

    @property
    def key_id(self) -> int:
        """The id new tokens carry."""
        return self._current.id

    def sign(self, campaign_id: str, subscriber_id: int, purpose: str, variant: int | None = None) -> str:
        if variant is None:
            variant = NO_VARIANT
        elif not 0 <= variant < NO_VARIANT:
            raise ValueError(f"a variant index is 0 to {NO_VARIANT - 1}, not {variant}")
        payload = _LAYOUT.pack(self._current.id, variant, subscriber_id, campaign_digest(campaign_id))
        mac = (self._signing.get(purpose) or self._current.keyed(purpose)).copy()
        mac.update(payload)
        return _encode(payload + mac.digest()[:_MAC_BYTES])

    def verify(self, token: str, purpose: str) -> SendRef:
        return self._verify(token, purpose)[0]

    def _verify(self, token: str, purpose: str) -> tuple[SendRef, _Key]:
        raw = _decode(token)
        if len(raw) == _LAYOUT.size + _MAC_BYTES:
            payload, mac = raw[:_LAYOUT.size], raw[_LAYOUT.size:]
            candidates = self._by_id.get(raw[0], ())
        else:
            payload, mac = raw[:_LEGACY_LAYOUT.size], raw[_LEGACY_LAYOUT.size:]
            candidates = self._keys
        key = next((k for k in candidates if hmac.compare_digest(mac, k.mac(payload, purpose)[:len(mac)])), None)
        if key is None:
            raise BadToken("bad signature")
        if key.until is not None and self._clock() > key.until:
            raise BadToken("signed with a key that no longer verifies")
        if len(payload) == _LAYOUT.size:
            kid, variant, subscriber_id, digest = _LAYOUT.unpack(payload)
            return SendRef(digest, subscriber_id, purpose, None if variant == NO_VARIANT else variant, kid), key
        subscriber_id, digest = _LEGACY_LAYOUT.unpack(payload)
        return SendRef(digest, subscriber_id, purpose), key

    def sign_link(self, token: str, url: str) -> str:
        """A redirect's signature: HMAC-SHA256 over a click token (campaign and recipient), a NUL and
        the UTF-8 URL; its first 96 bits in lower-case hex (24 characters). It is made with the key
        that signs new tokens, and checked with the key that verified its click token: it rotates
        with the token, needing no key id of its own."""
        return self._current.link(token, url)

    def verify_link(self, token: str, url: str, signature: str) -> SendRef:
        """The send a signed redirect belongs to; BadToken unless a valid key signed exactly this URL for it."""
        ref, key = self._verify(token, "click")
        # Compared as text, so no other spelling of the signature passes
        if not signature.isascii() or not hmac.compare_digest(signature, key.link(token.lower(), url)):
            raise BadToken("bad link signature")
        return ref


def signer_from_settings(tracking: TrackingSettings, now: Callable[[], datetime] | None = None) -> TokenSigner:
    """The signer of the settings: the current secret signs; the previous one verifies until previous_until.
    `now` is the clock that decides that (tests pass a fixed one)."""
    if not tracking.secret:
        raise MailflowError("set MAILFLOW_TRACKING__SECRET: List-Unsubscribe links and bounce addresses are signed with it")
    return TokenSigner(tracking.secret.reveal(), tracking.previous_secret.reveal(), tracking.previous_until, now)


def _epoch(moment: datetime) -> float:
    """Seconds since the epoch; a time without a zone is UTC (as the settings read one)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _encode(raw: bytes) -> str:
    number = int.from_bytes(raw, "big")
    return "".join([_PAIRS[(number >> shift) & 1023] for shift in _SHIFTS])


def _encode_legacy(raw: bytes) -> str:
    number = int.from_bytes(raw, "big") << 4
    return "".join([_PAIRS[(number >> shift) & 1023] for shift in _LEGACY_SHIFTS])


def _decode(token: str) -> bytes:
    """The bytes of a token of either layout, spelled in lower case or folded to upper case as a whole."""
    if len(token) == 40:
        size, shift, encode = _LAYOUT.size + _MAC_BYTES, 0, _encode
    elif len(token) == 36:
        size, shift, encode = _LEGACY_LAYOUT.size + _LEGACY_MAC_BYTES, 4, _encode_legacy
    else:
        raise BadToken("not a token")
    lower = token.lower()
    if token != lower and token != lower.upper():
        raise BadToken("not a token")  # mixed case: no mail system folds that way
    try:
        raw = (int(lower.translate(_TO_INT_DIGITS), 32) >> shift).to_bytes(size, "big")
    except (ValueError, OverflowError):
        raise BadToken("not a token") from None
    # int() also takes signs, underscores, spaces and digits outside the alphabet: only the canonical spelling passes
    if encode(raw) != lower:
        raise BadToken("not a token")
    return raw
