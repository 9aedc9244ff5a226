"""The `[tracking]` settings: token keys and their rotation, and the tracking service's logs, IPs and subscribe limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import ip_network
from typing import Any

from mailflow.errors import MailflowError
from mailflow.secret import Secret
from mailflow.setting_values import (
    as_list,
    base_url,
    list_names,
    moment,
    no_line_break,
    non_negative,
    one_of,
    positive_int,
    positive_number,
)

DEFAULTS: dict[str, Any] = {"base_url": "http://127.0.0.1:8080", "secret": "", "previous_secret": "", "previous_until": "",
            "ip": "truncate", "trusted_proxies": [], "log_rotate_seconds": 300, "log_rotate_bytes": 64 * 2**20,
            "log_sync_seconds": 0.5,
            "public_lists": [], "optin_hours": 48, "subscribe_limit": 5, "subscribe_window": 600, "subscribe_from": ""}


@dataclass(frozen=True)
class TrackingSettings:
    base_url: str
    secret: Secret  # HMAC key of every token and signed link
    previous_secret: Secret = field(default_factory=Secret)  # the key before a rotation: still verifies ...
    previous_until: datetime | None = None  # ... until this moment (UTC), then no more
    # The tracking service (mailflow track serve)
    ip: str = "truncate"  # client IPs in event logs: truncate (/24, /48) | hash (keyed by the secret) | full | none
    trusted_proxies: tuple[str, ...] = ()  # IPs or CIDRs whose X-Forwarded-For is believed
    log_rotate_seconds: float = 300.0  # an event log file is closed (fsynced) after this long ...
    log_rotate_bytes: int = 64 * 2**20  # ... or this size, and the next one begun
    log_sync_seconds: float = 0.5  # written events reach the disk (fsync) at most this late; unsubscribes at once
    # Subscribing (POST /s/<list>, double opt-in)
    public_lists: tuple[str, ...] = ()  # the lists anyone may subscribe to; any other name answers 404
    optin_hours: float = 48.0  # a confirmation link works this long
    subscribe_limit: int = 5  # subscription requests per client IP ...
    subscribe_window: float = 600.0  # ... in this many seconds (per service process)
    subscribe_from: str = ""  # From of the confirmation mail; empty: no-reply@<smtp.helo>


def tracking_settings(tracking: dict[str, Any], secret) -> TrackingSettings:
    """`[tracking]` checked: `secret(value, *keys)` reads a secret as settings.py does for every section."""
    previous = secret(tracking["previous_secret"], "tracking", "previous_secret")
    until = moment(tracking["previous_until"], "tracking.previous_until")
    if previous and until is None:
        raise MailflowError("settings: tracking.previous_until is required when tracking.previous_secret is set "
                            "(the date and time after which tokens signed with the previous secret stop verifying)")
    proxies = tuple(str(p) for p in as_list(tracking["trusted_proxies"], "tracking.trusted_proxies"))
    for proxy in proxies:
        try:
            ip_network(proxy, strict=False)
        except ValueError:
            raise MailflowError(f"settings: tracking.trusted_proxies must list IPs or CIDRs, not {proxy!r}") from None
    sync = non_negative(tracking["log_sync_seconds"], "tracking.log_sync_seconds")
    if not 0 < sync <= 1:
        raise MailflowError(f"settings: tracking.log_sync_seconds must be more than 0 and at most 1, not {sync:g}")
    return TrackingSettings(
        base_url=base_url(tracking["base_url"], "tracking.base_url"), secret=secret(tracking["secret"], "tracking", "secret"),
        previous_secret=previous, previous_until=until,
        ip=one_of(tracking["ip"], ("truncate", "hash", "full", "none"), "tracking.ip"), trusted_proxies=proxies,
        log_rotate_seconds=non_negative(tracking["log_rotate_seconds"], "tracking.log_rotate_seconds"),
        log_rotate_bytes=positive_int(tracking["log_rotate_bytes"], "tracking.log_rotate_bytes"),
        log_sync_seconds=sync,
        public_lists=list_names(tracking["public_lists"], "tracking.public_lists"),
        optin_hours=positive_number(tracking["optin_hours"], "tracking.optin_hours"),
        subscribe_limit=positive_int(tracking["subscribe_limit"], "tracking.subscribe_limit"),
        subscribe_window=positive_number(tracking["subscribe_window"], "tracking.subscribe_window"),
        subscribe_from=no_line_break("tracking.subscribe_from", str(tracking["subscribe_from"])),
    )
