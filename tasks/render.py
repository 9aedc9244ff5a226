"""Render personalised messages: sandboxed Jinja2 templates, prepared and compiled once per campaign."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mailflow import TEMPLATES_DIR
from mailflow.errors import MailflowError
from tasks.textify import html_to_text
from tasks.tracking import LinkTable, add_open_pixel, rewrite_links

_COMPOSED = re.compile(r"{%-?\s*(extends|include|import|from)\b")


class RenderError(Exception):
    """A template failed for one recipient; the message is safe to log (no address)."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str | None
    text: str


@dataclass(frozen=True)
class Helpers:
    """Per-recipient URLs the templates may use; all signed, none carries the address."""

    unsubscribe_url: str = ""
    view_url: str = ""
    open_url: str = ""
    click_url: Callable[[int], str] = lambda n: ""


def _environment(directory: Path, html: bool) -> ImmutableSandboxedEnvironment:
    # Sandboxed and immutable: a template cannot reach Python internals or mutate data;
    # StrictUndefined: a misspelt field fails the dry run instead of sending blanks.
    return ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(str(directory)), undefined=StrictUndefined, autoescape=html, keep_trailing_newline=True,
    )


class CampaignTemplates:
    """Subject, HTML and text of one campaign variant: CSS inlined, links rewritten, compiled — once."""

    def __init__(self, name: str, subject: str, campaign: Mapping[str, Any], directory: Path = TEMPLATES_DIR,
                 track_opens: bool = False, track_clicks: bool = False):
        html_env, text_env = _environment(directory, True), _environment(directory, False)
        html_path, text_path = directory / f"{name}.html.j2", directory / f"{name}.txt.j2"
        if not html_path.exists() and not text_path.exists():
            raise MailflowError(f"template {name!r}: neither {html_path} nor {text_path} exists")
        self.links = LinkTable()
        self.campaign = dict(campaign)
        self._inline_each = False
        try:
            self.subject = text_env.from_string(subject)
            self.html = None
            if html_path.exists():
                source = html_path.read_text(encoding="utf-8")
                # CSS is inlined into the template source, once; a template built from others
                # ({% extends %} ...) can only be inlined after rendering, per recipient.
                self._inline_each = bool(_COMPOSED.search(source))
                prepared = source if self._inline_each else _inline(source)
                if track_clicks:
                    prepared = rewrite_links(prepared, self.links)
                if track_opens:
                    prepared = add_open_pixel(prepared)
                self.html = html_env.from_string(prepared)
            self.text = text_env.get_template(text_path.name) if text_path.exists() else \
                text_env.from_string(html_to_text(html_path.read_text(encoding="utf-8")))
        except TemplateError as exc:
            raise MailflowError(f"template {name!r}: {type(exc).__name__}: {exc}") from None

    def render(self, recipient: Mapping[str, Any], helpers: Helpers = Helpers()) -> Rendered:
        context = {"subscriber": subscriber_context(recipient), "campaign": self.campaign,
                   "unsubscribe_url": helpers.unsubscribe_url, "view_url": helpers.view_url,
                   "open_url": helpers.open_url, "click_url": helpers.click_url}
        try:
            subject = " ".join(self.subject.render(context).split())
            context["subject"] = subject
            html = self.html.render(context) if self.html is not None else None
            if html is not None and self._inline_each:
                html = _inline(html)
            return Rendered(subject, html, self.text.render(context))
        except TemplateError as exc:
            raise RenderError(f"{type(exc).__name__}: {exc}") from None


_JINJA_STATEMENT = re.compile(r"{%.*?%}|{#.*?#}", re.DOTALL)
_PLACEHOLDER = re.compile(r"<!--mf-jinja-(\d+)-->")


def _inline(source: str) -> str:
    """Inline <style> rules into style attributes, keeping Jinja statements where they were.

    An HTML parser moves stray text out of tables (HTML5 foster parenting), which would
    pull a `{% for %}` between table rows out of its loop; comments stay put, so statements
    travel through the inliner as comments.
    """
    statements: list[str] = []

    def hide(match: re.Match) -> str:
        statements.append(match.group(0))
        return f"<!--mf-jinja-{len(statements) - 1}-->"

    inlined = css_inline.CSSInliner(load_remote_stylesheets=False).inline(_JINJA_STATEMENT.sub(hide, source))
    return _PLACEHOLDER.sub(lambda m: statements[int(m.group(1))], inlined)


def subscriber_context(recipient: Mapping[str, Any]) -> dict[str, Any]:
    """Columns and attributes in one mapping, so `subscriber.country` works either way.

    Columns win over attributes of the same name; empty columns are left out so that
    `default(...)` applies to them as to a missing attribute.
    """
    attributes = recipient.get("attributes") or "{}"
    merged = dict(json.loads(attributes) if isinstance(attributes, str) else attributes)
    merged.update({k: v for k, v in recipient.items() if k != "attributes" and v is not None and v != ""})
    return merged
