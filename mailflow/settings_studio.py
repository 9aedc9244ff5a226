"""The `[studio]` settings: its public URL (https: Secure cookies), session lifetimes, login limits and lockout."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailflow.errors import MailflowError
from mailflow.secret import Secret
from mailflow.setting_values import base_url, positive_int, positive_number

DEFAULTS: dict[str, Any] = {"public_url": "", "secret": "", "session_hours": 12, "idle_minutes": 30,
                            "login_limit": 20, "login_window": 300, "lockout_failures": 5, "lockout_minutes": 15}


@dataclass(frozen=True)
class StudioSettings:
    public_url: str = ""  # how people reach the studio; https://... marks its cookies Secure (behind a TLS proxy)
    secret: Secret = field(default_factory=Secret)  # MAILFLOW_STUDIO__SECRET only: signs session cookies, CSRF tokens
    session_hours: float = 12.0  # a session ends this long after its login, however busy ...
    idle_minutes: float = 30.0  # ... or after this long without a request
    login_limit: int = 20  # login attempts (password or code) per client IP, and per user name ...
    login_window: float = 300.0  # ... within this many seconds; more are answered 429
    lockout_failures: int = 5  # wrong passwords or codes in a row that lock a user out ...
    lockout_minutes: float = 15.0  # ... for this long (`mailflow studio users reset-totp` unlocks at once)

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.lower().startswith("https://")


def studio_settings(tree: dict[str, Any], secret) -> StudioSettings:
    """`[studio]` checked; `secret(value, *keys)` reads a secret as settings.py does for every section."""
    public = str(tree["public_url"]).strip()
    return StudioSettings(
        public_url=base_url(public, "studio.public_url") if public else "",
        secret=secret(tree["secret"], "studio", "secret"),
        session_hours=positive_number(tree["session_hours"], "studio.session_hours"),
        idle_minutes=positive_number(tree["idle_minutes"], "studio.idle_minutes"),
        login_limit=positive_int(tree["login_limit"], "studio.login_limit"),
        login_window=positive_number(tree["login_window"], "studio.login_window"),
        lockout_failures=positive_int(tree["lockout_failures"], "studio.lockout_failures"),
        lockout_minutes=positive_number(tree["lockout_minutes"], "studio.lockout_minutes"),
    )


def refuse_secret_in_file(file_tree: dict[str, Any]) -> None:
    """The session key signs every login: it lives in the environment only, never in a file that may be committed."""
    studio = file_tree.get("studio")
    if isinstance(studio, dict) and studio.get("secret"):
        raise MailflowError("settings: studio.secret must not be in a file: set MAILFLOW_STUDIO__SECRET in the environment")
