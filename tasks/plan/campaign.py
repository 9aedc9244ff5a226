"""The campaign file: read and check a campaign YAML into a frozen spec (variants, A/B rule, schedule)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from mailflow.errors import MailflowError
from mailflow.tasks.plan.campaign_fields import FieldReader, zone_exists  # noqa: F401 - imported from here by the stages
from mailflow.tasks.plan.campaign_parts import (  # noqa: F401 - the spec's parts, imported from here by the stages
    AbTest,
    FrequencyCap,
    SendAt,
    Variant,
    campaign_id_for,
)


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    campaign_id: str
    from_addr: str
    subject: str
    template: str
    reply_to: str | None = None
    lists: tuple[str, ...] = ()
    where: str | None = None
    transport: str = "default"
    tracking: dict[str, Any] = field(default_factory=dict)  # opens, clicks: bool; utm: {source: ..., ...}
    segment_include: tuple[str, ...] = ()  # saved segments or lists (segment: NAME or {include: [...]})
    segment_exclude: tuple[str, ...] = ()
    params: dict[str, str] = field(default_factory=dict)  # segment parameters: since, campaign
    preheader: str | None = None
    variants: tuple[Variant, ...] = ()  # empty: one variant, "A", everything from the campaign
    ab: AbTest | None = None
    send_at: SendAt | None = None  # None: now
    frequency_cap: FrequencyCap | None = None  # None: the setting's

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants) or ("A",)

    def for_variant(self, name: str) -> CampaignSpec:
        """The spec one variant is composed with: its overrides on top of the campaign's fields."""
        if not self.variants and name == "A":
            return self
        variant = next((v for v in self.variants if v.name == name), None)
        if variant is None:
            raise MailflowError(f"campaign {self.campaign_id!r} has no variant {name!r}")
        overrides = {k: getattr(variant, k) for k in ("subject", "from_addr", "preheader", "template", "send_at")
                     if getattr(variant, k) is not None}
        return replace(self, **overrides)

    def as_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))  # as stored and read back: lists, not tuples

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CampaignSpec:
        def send_at(value: dict | None) -> SendAt | None:
            return SendAt(**value) if value else None

        return cls(**{
            **data,
            "lists": tuple(data.get("lists") or ()),
            "segment_include": tuple(data.get("segment_include") or ()),
            "segment_exclude": tuple(data.get("segment_exclude") or ()),
            "variants": tuple(Variant(**{**v, "send_at": send_at(v.get("send_at"))}) for v in data.get("variants") or ()),
            "ab": AbTest(**data["ab"]) if data.get("ab") else None,
            "send_at": send_at(data.get("send_at")),
            "frequency_cap": FrequencyCap(**data["frequency_cap"]) if data.get("frequency_cap") else None,
        })


def load_campaign(path: Path) -> CampaignSpec:
    """Parse and check a campaign file; every problem names the file and the field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MailflowError(f"{path}: no such campaign file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MailflowError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise MailflowError(f"{path}: a campaign file is a mapping of fields (name, from, subject, ...)")
    return CampaignSpec(**FieldReader(path).campaign(data))
