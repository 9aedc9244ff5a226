"""The `[engagement]` settings: when an open or click counts as a machine's (tasks/aggregate/machine.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailflow.setting_values import non_negative, positive_int

DEFAULTS: dict[str, Any] = {"fast_open_seconds": 2.0, "fast_click_seconds": 2.0, "burst_seconds": 2.0,
                            "burst_links": 3}


@dataclass(frozen=True)
class EngagementSettings:
    # An open this soon after the delivery was logged is a machine's: a security gateway or a
    # prefetching client fetches images within a second of accepting the message, while a person
    # needs the notification, a tap and a render (several seconds at the quickest). 2 s is short
    # enough that a person watching the inbox is not flagged, long enough to cover the ledger's
    # write after the 250 reply and the tracking service's clock.
    fast_open_seconds: float = 2.0
    fast_click_seconds: float = 2.0  # a click this soon after delivery, before any human open
    # Link scanners follow the links of a message all at once: clicks of one message with gaps of at
    # most burst_seconds form a burst; a burst over burst_links distinct links (or every link of a
    # message that has fewer, two at least) before any human open is a scanner's.
    burst_seconds: float = 2.0
    burst_links: int = 3


def engagement_settings(tree: dict[str, Any]) -> EngagementSettings:
    return EngagementSettings(
        fast_open_seconds=non_negative(tree["fast_open_seconds"], "engagement.fast_open_seconds"),
        fast_click_seconds=non_negative(tree["fast_click_seconds"], "engagement.fast_click_seconds"),
        burst_seconds=non_negative(tree["burst_seconds"], "engagement.burst_seconds"),
        burst_links=max(2, positive_int(tree["burst_links"], "engagement.burst_links")),
    )
