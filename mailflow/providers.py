"""Provider groups: receiving domains that share one infrastructure are shaped as one.

Gmail counts gmail.com and googlemail.com as one sender reputation, Microsoft its consumer
domains, Yahoo its own and AOL's. Everything else is `other`, shaped per destination.
The limits are per sending process; settings may override any of them ([shaping.NAME], and per
relay pool [smtp.pools.POOL.providers.NAME]). They are politeness toward receiving MXes: straight
to MX they apply by default, through a relay (which shapes for itself) only when the pool asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailflow.errors import MailflowError
from mailflow.setting_values import non_negative, positive_int

PROVIDER_DOMAINS: dict[str, tuple[str, ...]] = {
    "gmail": ("gmail.com", "googlemail.com"),
    "microsoft": ("outlook.com", "hotmail.com", "live.com", "msn.com", "hotmail.co.uk", "outlook.jp",
                  "hotmail.fr", "live.jp", "live.co.uk", "windowslive.com"),
    "yahoo": ("yahoo.com", "ymail.com", "rocketmail.com", "aol.com", "yahoo.co.jp", "yahoo.co.uk",
              "yahoo.fr", "aim.com"),
}
OTHER = "other"
SHAPING_MODES = ("providers", "none")
_BY_DOMAIN = {domain: name for name, domains in PROVIDER_DOMAINS.items() for domain in domains}


@dataclass(frozen=True)
class ProviderLimits:
    """How hard one sending process may push one provider."""

    connections: int  # concurrent connections to the provider
    messages_per_connection: int  # then the connection is closed and reopened
    rate: float  # messages per second (0 = no limit beyond the global rate)
    backoff: float  # seconds the provider is suspended after a 421 / 4.7.x rate or reputation reply


DEFAULT_LIMITS: dict[str, ProviderLimits] = {
    "gmail": ProviderLimits(connections=4, messages_per_connection=100, rate=50.0, backoff=600.0),
    "microsoft": ProviderLimits(connections=4, messages_per_connection=50, rate=30.0, backoff=900.0),
    "yahoo": ProviderLimits(connections=3, messages_per_connection=50, rate=20.0, backoff=900.0),
    OTHER: ProviderLimits(connections=8, messages_per_connection=1000, rate=0.0, backoff=300.0),
}


def provider_of(domain: str) -> str:
    """The provider group of a (lower-case, IDNA) domain."""
    return _BY_DOMAIN.get(domain, OTHER)


def provider_table(tree: dict[str, Any], base: dict[str, ProviderLimits], where: str) -> dict[str, ProviderLimits]:
    """The provider table: `base`, with the keys the settings give under `where` (e.g. [shaping.NAME]) on top."""
    unknown = set(tree) - set(base)
    if unknown:
        raise MailflowError(f"settings: unknown provider group(s) {sorted(unknown)} in [{where}] "
                            f"(known: {', '.join(base)})")
    table = {}
    for name, limits in base.items():
        spec, key = tree.get(name, {}), f"{where}.{name}"
        table[name] = ProviderLimits(
            connections=positive_int(spec.get("connections", limits.connections), f"{key}.connections"),
            messages_per_connection=positive_int(spec.get("messages_per_connection", limits.messages_per_connection),
                                                  f"{key}.messages_per_connection"),
            rate=non_negative(spec.get("rate", limits.rate), f"{key}.rate"),
            backoff=non_negative(spec.get("backoff", limits.backoff), f"{key}.backoff"),
        )
    return table
