"""The campaign file: read and check a campaign YAML into a frozen spec."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import yaml

from mailflow.errors import MailflowError
from mailflow.tasks.plan.condition import condition_query

KNOWN_KEYS = {
    "name", "from", "reply_to", "lists", "segment", "where", "template", "subject",
    "tracking", "transport", "variants", "ab",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


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
    tracking: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["lists"] = list(self.lists)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CampaignSpec:
        return cls(**{**data, "lists": tuple(data.get("lists") or ())})


def campaign_id_for(name: str) -> str:
    """The id is the name made URL- and path-safe: `Spring Sale!` -> `spring-sale`."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:64]


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
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise MailflowError(f"{path}: unknown field {unknown[0]!r}")

    def text(key: str, required: bool = True) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                raise MailflowError(f"{path}: field {key!r} is required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise MailflowError(f"{path}: field {key!r} must be a non-empty string")
        if key != "where" and _CONTROL.search(value):
            raise MailflowError(f"{path}: field {key!r} contains a line break or control character")
        return value.strip()

    name = text("name")
    campaign_id = campaign_id_for(name)
    if not campaign_id:
        raise MailflowError(f"{path}: field 'name' needs at least one letter or digit")
    from_addr = text("from")
    if len(getaddresses([from_addr])) != 1 or "@" not in getaddresses([from_addr])[0][1]:
        raise MailflowError(f"{path}: field 'from' must be one address like 'News <news@example.com>'")
    template = text("template")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", template):
        raise MailflowError(f"{path}: field 'template' must be a template name like 'newsletter'")
    lists = data.get("lists") or []
    if not isinstance(lists, list) or not all(isinstance(x, str) and x for x in lists):
        raise MailflowError(f"{path}: field 'lists' must be a list of list names")
    for unsupported in ("segment", "variants", "ab"):
        if unsupported in data:
            raise MailflowError(f"{path}: field {unsupported!r} is not supported yet")
    where = text("where", required=False)
    if where:
        condition_query(where, f"{path}: field 'where'")  # its shape, before Prefect starts; columns bind at plan
    tracking = data.get("tracking") or {}
    if not isinstance(tracking, dict) or not all(isinstance(v, bool) for v in tracking.values()):
        raise MailflowError(f"{path}: field 'tracking' must map opens/clicks to true or false")
    if not set(tracking) <= {"opens", "clicks"}:
        raise MailflowError(f"{path}: field 'tracking' takes only opens and clicks")
    return CampaignSpec(
        name=name,
        campaign_id=campaign_id,
        from_addr=from_addr,
        subject=text("subject"),
        template=template,
        reply_to=text("reply_to", required=False),
        lists=tuple(lists),
        where=where,
        transport=text("transport", required=False) or "default",
        tracking=dict(tracking),
    )
