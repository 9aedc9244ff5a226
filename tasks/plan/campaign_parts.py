"""The campaign spec's parts as values: variants, the A/B rule, when to send, the frequency cap, the id."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class SendAt:
    """When to send: `at` an absolute time (ISO, with its zone), or `local_time` in each recipient's
    zone (attribute `timezone`, else `default_zone`); neither means now."""

    at: str | None = None
    local_time: str | None = None  # "HH:MM"
    default_zone: str = "UTC"


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float = 1.0
    subject: str | None = None  # None: the campaign's
    from_addr: str | None = None
    preheader: str | None = None
    template: str | None = None
    send_at: SendAt | None = None


@dataclass(frozen=True)
class AbTest:
    """The split and the rule the engagement stage decides the winner by (DESIGN.md "Campaign file")."""

    test_fraction: float = 1.0  # share of the audience split across the variants; the rest is `remainder`
    holdout_fraction: float = 0.0  # share mailed nothing, to measure lift
    metric: str = "unique_clicks"
    wait_seconds: int = 4 * 3600
    min_per_variant: int = 500
    confidence: float = 0.95
    fallback: str = "leader"


@dataclass(frozen=True)
class FrequencyCap:
    """At most `campaigns` campaigns per subscriber within `days` (0 campaigns: no cap)."""

    campaigns: int
    days: int


def campaign_id_for(name: str) -> str:
    """The id is the name made URL- and path-safe: `Spring Sale!` -> `spring-sale`."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:64]
