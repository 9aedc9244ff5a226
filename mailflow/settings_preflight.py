"""The `[preflight]` settings: the thresholds of the checks `mailflow preflight` (and every send) runs first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailflow.errors import MailflowError
from mailflow.setting_values import as_list, ip, non_negative, positive_number

CHECKS = ("spf", "dkim", "dmarc", "alignment", "bounce_mx", "tracking_host", "unsubscribe", "links", "spam", "size", "images")
DEFAULTS: dict[str, Any] = {"spam_threshold": 5.0, "spam_margin": 1.0, "size_limit_kb": 102.0, "size_margin": 0.8,
                            "words_per_image": 60, "tracking_domain": "", "source_ips": [], "skip": [], "warn_only": [],
                            "spamassassin": "spamassassin", "spam_timeout": 120.0}


@dataclass(frozen=True)
class PreflightSettings:
    spam_threshold: float = 5.0  # SpamAssassin's own default "required" score: at or over it FAILs
    spam_margin: float = 1.0  # within this of the threshold WARNs
    size_limit_kb: float = 102.0  # Gmail clips the HTML of larger messages ("[Message clipped]"), hiding the footer
    size_margin: float = 0.8  # over this share of the limit WARNs
    words_per_image: float = 60.0  # fewer words of text per image in the HTML WARN (an image-only message FAILs):
                                   # filters read mostly-image mail as spam hiding its text from them
    tracking_domain: str = ""  # the host the links point at; empty: the host of tracking.base_url
    source_ips: tuple[str, ...] = ()  # the public IPs mail leaves from, for the SPF check; empty: the relays'
                                      # addresses (transport "mx": smtp.mx_sources, else the helo host's)
    skip: tuple[str, ...] = ()  # checks not run at all (say why in your config)
    warn_only: tuple[str, ...] = ()  # checks whose FAIL is reported as WARN and does not stop a send
    spamassassin: str = "spamassassin"  # the command; not found: the spam check WARNs "not installed"
    spam_timeout: float = 120.0  # seconds SpamAssassin may take (it compiles its rules on every run)


def preflight_settings(tree: dict[str, Any]) -> PreflightSettings:
    names = {}
    for key in ("skip", "warn_only"):
        names[key] = tuple(str(n) for n in as_list(tree[key], f"preflight.{key}"))
        unknown = sorted(set(names[key]) - set(CHECKS))
        if unknown:
            raise MailflowError(f"settings: preflight.{key} names unknown check(s) {unknown} (known: {', '.join(CHECKS)})")
    margin = non_negative(tree["size_margin"], "preflight.size_margin")
    if margin > 1:
        raise MailflowError(f"settings: preflight.size_margin is a share of the limit, at most 1, not {margin:g}")
    return PreflightSettings(
        spam_threshold=positive_number(tree["spam_threshold"], "preflight.spam_threshold"),
        spam_margin=non_negative(tree["spam_margin"], "preflight.spam_margin"),
        size_limit_kb=positive_number(tree["size_limit_kb"], "preflight.size_limit_kb"),
        size_margin=margin,
        words_per_image=positive_number(tree["words_per_image"], "preflight.words_per_image"),
        tracking_domain=str(tree["tracking_domain"]).strip().lower().removesuffix("."),
        source_ips=tuple(ip(str(a), "preflight.source_ips") for a in as_list(tree["source_ips"], "preflight.source_ips")),
        skip=names["skip"], warn_only=names["warn_only"],
        spamassassin=str(tree["spamassassin"]),
        spam_timeout=positive_number(tree["spam_timeout"], "preflight.spam_timeout"),
    )
