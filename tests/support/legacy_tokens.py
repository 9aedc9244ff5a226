"""Tokens of the first layout (36 characters, no key id or variant), made as mailflow made them before key rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

# Written from the old layout's description with the standard library's base32, not from the
# signer's code, so a shared mistake cannot make both sides agree.
# Made by that code for secret "s3cret", campaign "spring-sale", subscriber 12345:
OLD_SEND_TOKEN = "aaaaaaaaaaydtyrkxyv4p2res27dcbqkkpoa"
OLD_CLICK_TOKEN = "aaaaaaaaaaydtyrkxyv4p2tmguxr3dnqxklq"
OLD_LINK = ("https://shop.example/p/1?a=b", "d87e68346e3236997e36feb0")  # its URL and signature with that click token


def legacy_token(secret: str, campaign_id: str, subscriber_id: int, purpose: str) -> str:
    """subscriber id (8) | campaign digest (6) | HMAC-SHA256 (8), lower-case base32 without padding."""
    key = hashlib.sha256(b"mailflow-token\0" + secret.encode()).digest()
    payload = struct.pack(">Q", subscriber_id) + hashlib.sha256(campaign_id.encode()).digest()[:6]
    mac = hmac.new(key, purpose.encode() + b"\0" + payload, hashlib.sha256).digest()[:8]
    return base64.b32encode(payload + mac).decode().rstrip("=").lower()


def legacy_link_signature(secret: str, token: str, url: str) -> str:
    key = hashlib.sha256(b"mailflow-link\0" + secret.encode()).digest()
    return hmac.new(key, f"{token}\0{url}".encode(), hashlib.sha256).digest()[:12].hex()
