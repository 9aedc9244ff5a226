"""Sessions: a random id kept server-side (so logout and disable end it), in a signed HttpOnly SameSite=Strict
cookie; each session has its CSRF token. Absolute and idle lifetimes; a new id at every step of a login."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "mf_studio"
SECURE_COOKIE = "__Host-mf_studio"  # behind https: the browser keeps it to this host, Secure, path / (no Domain)
LOGIN_COOKIE = "mf_login"  # before a session: the nonce the login form's CSRF token is bound to
MAX_SESSIONS = 10_000  # beyond this the least recently used go: a bound on memory, not a limit people meet

# The steps of a login: the password was right ("password": the TOTP step or enrolment is next), then "full"
PASSWORD, FULL = "password", "full"


@dataclass
class Session:
    sid: str
    user: str
    epoch: int  # the user's epoch at login: a disable or reset-totp raises it, which ends this session
    stage: str
    created: float
    seen: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    pending: dict = field(default_factory=dict)  # enrolment in progress: the TOTP secret and recovery codes shown


class Sessions:
    """The table of live sessions (one studio process) and the cookie that names one."""

    def __init__(self, key: bytes, absolute_seconds: float, idle_seconds: float, clock: Callable[[], float] = time.time):
        self.key, self.absolute, self.idle, self.clock = key, absolute_seconds, idle_seconds, clock
        self._live: dict[str, Session] = {}

    def _sign(self, purpose: str, value: str) -> str:
        mac = hmac.new(self.key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def start(self, user: str, epoch: int, stage: str) -> Session:
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), user, epoch, stage, now, now)
        self._live[session.sid] = session
        while len(self._live) > MAX_SESSIONS:
            self._live.pop(min(self._live.values(), key=lambda s: s.seen).sid)
        return session

    def advance(self, session: Session, stage: str) -> Session:
        """The next step of a login under a new id and CSRF token (the old id, if it leaked, is worth nothing)."""
        self.end(session)
        fresh = Session(secrets.token_urlsafe(32), session.user, session.epoch, stage, session.created, self.clock())
        self._live[fresh.sid] = fresh
        return fresh

    def end(self, session: Session) -> None:
        self._live.pop(session.sid, None)

    def cookie_value(self, session: Session) -> str:
        return f"{session.sid}.{self._sign('session', session.sid)}"

    def find(self, cookie: str | None) -> Session | None:
        """The live session a cookie names; None for no cookie, a forged or ended one, or one past its lifetimes."""
        if not cookie or "." not in cookie:
            return None
        sid, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac.encode(), self._sign("session", sid).encode()):  # bytes: any text compares
            return None
        session = self._live.get(sid)
        if session is None:
            return None
        now = self.clock()
        if now - session.created >= self.absolute or now - session.seen >= self.idle:
            self.end(session)
            return None
        session.seen = now
        return session

    def login_token(self, nonce: str) -> str:
        """The login form's CSRF token: bound to the nonce in the visitor's login cookie (no session yet)."""
        return self._sign("login", nonce)

    def login_token_ok(self, nonce: str | None, token: str) -> bool:
        return bool(nonce) and bool(token) and hmac.compare_digest(token.encode(), self.login_token(nonce).encode())

    def end_user(self, user: str) -> None:
        for session in [s for s in self._live.values() if s.user == user]:
            self.end(session)


def csrf_ok(session: Session, token: str) -> bool:
    return bool(token) and hmac.compare_digest(token.encode(), session.csrf.encode())


def new_nonce() -> str:
    return secrets.token_urlsafe(24)
