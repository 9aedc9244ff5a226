"""What the demo needs that a real installation configures itself: a receiver's address and a secret."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REJECTED_DOMAIN = "gone.example"  # the demo receiver answers 550 5.1.1 for this domain
BOUNCE_MAILDIR = "bounce-maildir"  # under the home: where the receiver delivers the DSNs and auto-replies it sends back
SECRET_VARIABLE = "MAILFLOW_TRACKING__SECRET"


def demo_secret(home: Path) -> str:
    """A token secret kept under the demo's home, so links in demo mail stay valid across runs.

    Real installations set MAILFLOW_TRACKING__SECRET; the demo must run with nothing configured.
    """
    path = home / "demo-secret"
    if not path.exists():
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, not even briefly
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


@contextmanager
def secret_in_environment(configured: bool, home: Path) -> Iterator[None]:
    """Unless a secret is configured, the demo's own in this process's environment while its subflows run.

    The subflows and their worker processes (which inherit the environment) read it there: passed
    as a parameter, it would be stored in Prefect's database and shown in the UI.
    """
    if configured:
        yield
        return
    before = os.environ.get(SECRET_VARIABLE)
    os.environ[SECRET_VARIABLE] = demo_secret(home)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SECRET_VARIABLE, None)
        else:
            os.environ[SECRET_VARIABLE] = before


def demo_overrides(overrides: dict | None, port: int) -> dict:
    """Send to the embedded receiver; read bounce mail from the demo's own Maildir only (never a configured IMAP box)."""
    bounces = {**(overrides or {}).get("bounces", {}), "maildir": BOUNCE_MAILDIR, "imap": {"url": ""}}
    # The simulated readers open and click within a second of delivery, as only machines do: the timing rules would
    # flag them all (and only the variant sent last, skewing the A/B test). Their user agents still tell proxies apart.
    engagement = {**(overrides or {}).get("engagement", {}), "fast_open_seconds": 0, "fast_click_seconds": 0}
    return {**(overrides or {}), "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{port}"]}}}, "bounces": bounces,
            "engagement": engagement, "preflight": demo_preflight(overrides)}


# The demo has no domain of its own: example.com's DNS is not the demo's to publish, and an embedded zone made to
# match its settings would only show the demo agreeing with itself. So the DNS checks are skipped (the table says
# so), and the RFC 8058 check, which needs https links the loopback tracking service cannot have, only warns.
# The message checks (links, size, images, SpamAssassin) run as they do for any campaign.
DEMO_SKIPS = ("spf", "dkim", "dmarc", "alignment", "bounce_mx", "tracking_host")


def demo_preflight(overrides: dict | None) -> dict:
    given = (overrides or {}).get("preflight", {})
    return {**given, "skip": list(given.get("skip", DEMO_SKIPS)), "warn_only": list(given.get("warn_only", ["unsubscribe"]))}


def tracked_at(overrides: dict, base_url: str) -> dict:
    """The overrides with the links in the mail pointing at the demo's own tracking service."""
    return {**overrides, "tracking": {**overrides.get("tracking", {}), "base_url": base_url}}
