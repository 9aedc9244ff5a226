"""What proves a user: argon2id password hashes, TOTP (RFC 6238) secrets and codes, one-time recovery codes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import cache

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ISSUER = "mailflow studio"
MIN_PASSWORD = 12  # characters; no other composition rule (NIST SP 800-63B)
RECOVERY_CODES = 10
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper


@cache
def _hasher() -> PasswordHasher:
    # argon2id, RFC 9106's low-memory profile (3 passes, 64 MiB, 4 lanes): 0.19 s of CPU here, so callers
    # on the event loop run it on a thread (a second of wall time on these 2 busy cores)
    return PasswordHasher()


@cache
def _dummy() -> str:
    return _hasher().hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def check_password(stored: str | None, password: str) -> bool:
    """True when `password` matches; an unknown user (`stored` None) costs the same time as a known one."""
    try:
        return _hasher().verify(stored or _dummy(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"a password has at least {MIN_PASSWORD} characters"
    return None


def new_totp_secret() -> str:
    return pyotp.random_base32()  # 160 bits, as RFC 4226 recommends


def totp_uri(secret: str, user: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The enrolment QR code as an inline SVG element (no image request, no network, nothing for the CSP to allow)."""
    return segno.make(uri, error="m").svg_inline(scale=4, dark="#111", light="#fff", title="TOTP enrolment code")


def totp_step(secret: str, code: str, at: float, last_step: int) -> int | None:
    """The time step a 6-digit `code` is valid for at `at` (one step of clock drift either way), or None. A step at
    or before `last_step` (the last one accepted) is refused: a code seen over a shoulder cannot be used again."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not (code.isascii() and code.isdigit()):  # "١٢٣٤٥٦" is digits too, but no code
        return None
    totp = pyotp.TOTP(secret)
    now = int(at // totp.interval)
    for step in (now - 1, now, now + 1):
        if step > last_step and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten codes of 16 characters (~79 bits each), shown once as xxxx-xxxx-xxxx-xxxx."""
    codes = ["".join(secrets.choice(_CODE_ALPHABET) for _ in range(16)) for _ in range(RECOVERY_CODES)]
    return ["-".join(code[i:i + 4] for i in range(0, 16, 4)) for code in codes]


def recovery_hash(code: str) -> str:
    """SHA-256 of the code without dashes or case: random codes of ~79 bits need no slow hash to stay unguessable."""
    plain = code.strip().lower().replace("-", "").replace(" ", "")
    return hashlib.sha256(plain.encode()).hexdigest()
