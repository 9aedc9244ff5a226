"""The campaign file's field checks: each field read into its value (tasks/plan/campaign_parts.py) or refused in one line."""

from __future__ import annotations

import re
from datetime import date, datetime
from email.utils import getaddresses
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailflow.errors import MailflowError
from mailflow.tasks.plan.campaign_parts import AbTest, FrequencyCap, SendAt, Variant, campaign_id_for
from mailflow.tasks.plan.condition import condition_query

KNOWN_KEYS = {
    "name", "from", "reply_to", "lists", "segment", "where", "params", "template", "subject", "preheader",
    "tracking", "transport", "variants", "send_at", "ab", "frequency_cap",
}
VARIANT_KEYS = {"name", "weight", "subject", "from", "preheader", "template", "send_at"}
# UTM parameters (utm_source ...) the tracking service appends to clicked links; {campaign} and
# {variant} in a value stand for the campaign id and the recipient's variant
UTM_KEYS = {"source", "medium", "campaign", "term", "content"}
AB_KEYS = {"test_fraction", "holdout_fraction", "metric", "wait", "min_per_variant", "confidence", "fallback"}
RESERVED_VARIANTS = {"holdout", "remainder"}  # campaign_recipients.variant of those mailed nothing (yet)
METRICS = ("unique_clicks", "unique_opens", "click_to_open")
FALLBACKS = ("leader", "control", "wait")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class FieldReader:
    """Field checks of one campaign file; each failure is one line naming the file and field."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, problem: str) -> MailflowError:
        return MailflowError(f"{self.path}: field {where!r} {problem}")

    def known(self, data: dict, keys: set[str], where: str) -> None:
        unknown = sorted(set(data) - keys, key=str)
        if unknown:
            raise MailflowError(f"{self.path}: unknown field {where + str(unknown[0])!r}")

    def text(self, data: dict, key: str, where: str = "", required: bool = False) -> str | None:
        value, name = data.get(key), where + key
        if value is None:
            if required:
                raise MailflowError(f"{self.path}: field {name!r} is required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(name, "must be a non-empty string")
        if key != "where" and _CONTROL.search(value):
            raise self.fail(name, "contains a line break or control character")
        return value.strip()

    def address(self, data: dict, key: str, where: str = "", required: bool = False) -> str | None:
        value = self.text(data, key, where, required)
        if value is not None and (len(getaddresses([value])) != 1 or "@" not in getaddresses([value])[0][1]):
            raise self.fail(where + key, "must be one address like 'News <news@example.com>'")
        return value

    def template(self, data: dict, where: str = "", required: bool = False) -> str | None:
        value = self.text(data, "template", where, required)
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", value):
            raise self.fail(where + "template", "must be a template name like 'newsletter'")
        return value

    def names(self, value: Any, where: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(x, str) and x.strip() for x in value):
            raise self.fail(where, "must be a name or a list of names")
        return tuple(x.strip() for x in value)

    def number(self, data: dict, key: str, where: str, low: float, high: float, default: float) -> float:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise self.fail(where + key, f"must be a number from {low:g} to {high:g}, not {value!r}")
        return float(value)

    def campaign(self, data: dict) -> dict[str, Any]:
        """The CampaignSpec's fields, each checked."""
        self.known(data, KNOWN_KEYS, "")
        name = self.text(data, "name", required=True)
        campaign_id = campaign_id_for(name)
        if not campaign_id:
            raise self.fail("name", "needs at least one letter or digit")
        lists = data.get("lists") or []
        if not isinstance(lists, list) or not all(isinstance(x, str) and x for x in lists):
            raise self.fail("lists", "must be a list of list names")
        include, exclude = self.segment(data.get("segment"))
        where = self.text(data, "where")
        if where:
            condition_query(where, f"{self.path}: field 'where'")  # its shape, before Prefect starts; columns bind at plan
        tracking = self.tracking(data.get("tracking"))
        variants = self.variants(data.get("variants"))
        ab = self.ab(data.get("ab"), variants)
        return dict(
            name=name, campaign_id=campaign_id,
            from_addr=self.address(data, "from", required=True),
            subject=self.text(data, "subject", required=True),
            template=self.template(data, required=True),
            reply_to=self.address(data, "reply_to"),
            lists=tuple(lists), where=where,
            transport=self.text(data, "transport") or "default",
            tracking=dict(tracking),
            segment_include=include, segment_exclude=exclude,
            params=self.params(data.get("params")),
            preheader=self.text(data, "preheader"),
            variants=variants, ab=ab,
            send_at=self.send_at(data.get("send_at"), "send_at"),
            frequency_cap=self.frequency_cap(data.get("frequency_cap")),
        )

    def tracking(self, value: Any) -> dict[str, Any]:
        """opens/clicks on or off, and the UTM parameters the tracking service adds to clicked links."""
        tracking = value or {}
        if not isinstance(tracking, dict) or not all(isinstance(v, bool) for k, v in tracking.items() if k != "utm"):
            raise self.fail("tracking", "must map opens/clicks to true or false")
        if not set(tracking) <= {"opens", "clicks", "utm"}:
            raise self.fail("tracking", "takes only opens, clicks and utm")
        if "utm" in tracking:
            utm = tracking["utm"]
            if not isinstance(utm, dict) or not utm:
                raise self.fail("tracking.utm", "must map source/medium/campaign/term/content to text")
            self.known(utm, UTM_KEYS, "tracking.utm.")
            tracking["utm"] = {key: self.text(utm, key, "tracking.utm.", required=True) for key in utm}
            for key, text in tracking["utm"].items():  # a misspelt {campaing} would reach analytics as it is
                if set(_PLACEHOLDER.findall(text)) - {"{campaign}", "{variant}"}:
                    raise self.fail(f"tracking.utm.{key}", "may use only {campaign} and {variant} in braces")
        return dict(tracking)

    def segment(self, value: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if value is None:
            return (), ()
        if isinstance(value, str):
            return self.names(value, "segment"), ()
        if not isinstance(value, dict):
            raise self.fail("segment", "must be a segment name or {include: [...], exclude: [...]}")
        self.known(value, {"include", "exclude"}, "segment.")
        include = self.names(value["include"], "segment.include") if value.get("include") is not None else ()
        exclude = self.names(value["exclude"], "segment.exclude") if value.get("exclude") is not None else ()
        return include, exclude

    def params(self, value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail("params", "must map since/campaign to values")
        self.known(value, {"since", "campaign"}, "params.")
        out = {}
        for key, item in value.items():
            if isinstance(item, bool) or not isinstance(item, str | int | float | date) or str(item).strip() == "":
                raise self.fail(f"params.{key}", "must be a string")
            out[key] = item.isoformat() if isinstance(item, date) else str(item).strip()  # YAML reads 2026-01-02 as a date
        return out

    def variants(self, value: Any) -> tuple[Variant, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not 2 <= len(value) <= 8:
            raise self.fail("variants", "must list 2 to 8 variants")
        seen: set[str] = set()
        out = []
        for i, item in enumerate(value):
            where = f"variants[{i}]."
            if not isinstance(item, dict):
                raise self.fail(f"variants[{i}]", "must be a mapping like {name: B, subject: ...}")
            self.known(item, VARIANT_KEYS, where)
            name = item.get("name")
            name = str(name) if isinstance(name, str | int) and not isinstance(name, bool) else None
            if name is None or not _NAME.fullmatch(name):
                raise self.fail(where + "name", "must be a short name of letters, digits, - or _")
            if name.lower() in RESERVED_VARIANTS:
                raise self.fail(where + "name", f"{name!r} is reserved (it marks recipients mailed nothing yet)")
            if name in seen:
                raise self.fail(where + "name", f"{name!r} is used by two variants")
            seen.add(name)
            weight = item.get("weight", 1)
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < float("inf"):
                raise self.fail(where + "weight", f"must be a positive number, not {weight!r}")
            out.append(Variant(name=name, weight=float(weight), subject=self.text(item, "subject", where),
                               from_addr=self.address(item, "from", where),
                               preheader=self.text(item, "preheader", where),
                               template=self.template(item, where),
                               send_at=self.send_at(item.get("send_at"), where + "send_at")))
        return tuple(out)

    def ab(self, value: Any, variants: tuple[Variant, ...]) -> AbTest | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail("ab", "must be a mapping (test_fraction, holdout_fraction, metric, wait, ...)")
        if not variants:
            raise self.fail("ab", "needs `variants` to test")
        self.known(value, AB_KEYS, "ab.")
        test = self.number(value, "test_fraction", "ab.", 0.0, 1.0, 0.2)
        holdout = self.number(value, "holdout_fraction", "ab.", 0.0, 1.0, 0.0)
        if test <= 0:
            raise self.fail("ab.test_fraction", "must be more than 0")
        if test + holdout > 1 + 1e-9:
            raise self.fail("ab.holdout_fraction", f"and test_fraction sum to {test + holdout:g}, more than 1")
        metric = value.get("metric", "unique_clicks")
        if metric not in METRICS:
            raise self.fail("ab.metric", f"must be one of {', '.join(METRICS)}, not {metric!r}")
        fallback = value.get("fallback", "leader")
        if fallback not in FALLBACKS:
            raise self.fail("ab.fallback", f"must be one of {', '.join(FALLBACKS)}, not {fallback!r}")
        minimum = value.get("min_per_variant", 500)
        if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
            raise self.fail("ab.min_per_variant", f"must be a whole number >= 0, not {minimum!r}")
        confidence = self.number(value, "confidence", "ab.", 0.5, 0.9999, 0.95)
        return AbTest(test_fraction=test, holdout_fraction=holdout, metric=metric,
                      wait_seconds=self.duration(value.get("wait", "4h"), "ab.wait"), min_per_variant=minimum,
                      confidence=confidence, fallback=fallback)

    def duration(self, value: Any, where: str) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        parts = _DURATION.findall(value) if isinstance(value, str) else []
        if not parts or _DURATION.sub("", value).strip():
            raise self.fail(where, f"must be a duration like 4h, 90m or 1d, not {value!r}")
        return int(sum(float(n) * _SECONDS[unit] for n, unit in parts))

    def send_at(self, value: Any, where: str) -> SendAt | None:
        if value is None or value == "now":
            return None
        if isinstance(value, datetime | str):
            return SendAt(at=self.instant(value, where))
        if not isinstance(value, dict):
            raise self.fail(where, "must be now, an ISO time with its zone, or {local_time: '09:00', default_zone: ...}")
        self.known(value, {"local_time", "default_zone", "at"}, where + ".")
        if "at" in value:
            if len(value) > 1:
                raise self.fail(where, "takes either `at` or `local_time`, not both")
            return SendAt(at=self.instant(value["at"], where + ".at"))
        local = value.get("local_time")
        if not isinstance(local, str) or not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", local.strip()):
            raise self.fail(where + ".local_time", f"must be a time of day like '09:00', not {local!r}")
        zone = value.get("default_zone", "UTC")
        if not isinstance(zone, str) or not zone_exists(zone):
            raise self.fail(where + ".default_zone", f"is not a known time zone: {zone!r}")
        hours, minutes = local.strip().split(":")
        return SendAt(local_time=f"{int(hours):02d}:{minutes}", default_zone=zone)

    def instant(self, value: Any, where: str) -> str:
        try:
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise self.fail(where, f"is not an ISO time like 2026-12-24T09:00:00+09:00: {value!r}") from None
        if moment.tzinfo is None:
            raise self.fail(where, f"needs a time zone (e.g. +09:00 or Z): {value!r}")
        return moment.isoformat()

    def frequency_cap(self, value: Any) -> FrequencyCap | None:
        if value is None:
            return None
        if value is False:
            return FrequencyCap(campaigns=0, days=0)
        if not isinstance(value, dict):
            raise self.fail("frequency_cap", "must be {campaigns: N, days: D} or false")
        self.known(value, {"campaigns", "days"}, "frequency_cap.")
        numbers = {k: value.get(k) for k in ("campaigns", "days")}
        for key, number in numbers.items():
            if isinstance(number, bool) or not isinstance(number, int) or number < (0 if key == "campaigns" else 1):
                raise self.fail(f"frequency_cap.{key}", f"must be a whole number{' >= 1' if key == 'days' else ''}, "
                                f"not {number!r}")
        return FrequencyCap(**numbers)


def zone_exists(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
