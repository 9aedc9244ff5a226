"""Render personalised messages: sandboxed Jinja2 templates, compiled once per campaign."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mailflow import TEMPLATES_DIR
from mailflow.errors import MailflowError


class RenderError(Exception):
    """A template failed for one recipient; the message is safe to log (no address)."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def _environment(directory: Path, html: bool) -> ImmutableSandboxedEnvironment:
    # Sandboxed and immutable: a template cannot reach Python internals or mutate data;
    # StrictUndefined: a misspelt field fails the dry-run instead of sending blanks.
    return ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(str(directory)),
        undefined=StrictUndefined,
        autoescape=html,
        keep_trailing_newline=True,
    )


class CampaignTemplates:
    """The subject, HTML and text templates of one campaign, compiled once."""

    def __init__(self, name: str, subject: str, campaign: Mapping[str, Any], directory: Path = TEMPLATES_DIR):
        html_env, text_env = _environment(directory, True), _environment(directory, False)
        try:
            self.html = html_env.get_template(f"{name}.html.j2")
            self.text = text_env.get_template(f"{name}.txt.j2")
            self.subject = text_env.from_string(subject)
        except TemplateNotFound as exc:
            raise MailflowError(f"template {name!r}: {directory / exc.name} not found") from None
        except TemplateError as exc:
            raise MailflowError(f"template {name!r}: {exc}") from None
        self.campaign = dict(campaign)

    def render(self, recipient: Mapping[str, Any]) -> Rendered:
        context = {"subscriber": subscriber_context(recipient), "campaign": self.campaign}
        try:
            subject = " ".join(self.subject.render(context).split())
            context["subject"] = subject
            return Rendered(subject, self.html.render(context), self.text.render(context))
        except TemplateError as exc:
            raise RenderError(f"{type(exc).__name__}: {exc}") from None


def subscriber_context(recipient: Mapping[str, Any]) -> dict[str, Any]:
    """Columns and attributes in one mapping, so `subscriber.country` works either way.

    Columns win over attributes of the same name; empty columns are left out so that
    `default(...)` applies to them as to a missing attribute.
    """
    attributes = recipient.get("attributes") or "{}"
    merged = dict(json.loads(attributes) if isinstance(attributes, str) else attributes)
    merged.update({k: v for k, v in recipient.items() if k != "attributes" and v is not None and v != ""})
    return merged
