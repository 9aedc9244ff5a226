"""What the demo needs that a real installation configures itself: a receiver's address and a secret."""

from __future__ import annotations

import secrets
from pathlib import Path

REJECTED_DOMAIN = "gone.example"  # the demo receiver answers 550 5.1.1 for this domain


def demo_secret(home: Path) -> str:
    """A token secret kept under the demo's home, so links in demo mail stay valid across runs.

    Real installations set MAILFLOW_TRACKING__SECRET; the demo must run with nothing configured.
    """
    path = home / "demo-secret"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def demo_overrides(overrides: dict | None, home: Path, port: int, secret: str) -> dict:
    tracking = {"secret": secret, **(overrides or {}).get("tracking", {})}
    return {**(overrides or {}), "tracking": tracking,
            "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{port}"]}}}}
