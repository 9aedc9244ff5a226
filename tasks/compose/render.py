"""Render personalised messages: sandboxed Jinja2 templates, prepared and compiled once per campaign."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import Template, TemplateError, TemplateSyntaxError

from mailflow import TEMPLATES_DIR
from mailflow.errors import MailflowError
from mailflow.tasks.compose.sandbox import LINK_SIGNER, environment, plain_output_escape
from mailflow.tasks.compose.textify import html_to_text
from mailflow.tasks.compose.tracking import LinkTable, add_open_pixel, rewrite_links

_COMPOSED = re.compile(r"{%-?\s*(extends|include|import|from)\b")


_ADDRESS = re.compile(r"[^\s<>@'\"]+@[^\s<>@'\"]+")  # the ledger is a log: no addresses in it


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
    link_url: Callable[[str], str] | None = None  # a templated link's signed redirect; None leaves links as rendered


@dataclass(frozen=True)
class _Compiled:
    subject: Template
    html: Template | None
    text: Template
    inline_each: bool
    links: tuple[str, ...]


@lru_cache(maxsize=16)
def _compile(directories: tuple[Path, ...], name: str, subject: str, html_source: str | None, text_source: str | None,
             track_opens: bool, track_clicks: bool, known_links: tuple[str, ...] = ()) -> _Compiled:
    """Compiled once per process: every chunk task of a campaign in a worker reuses it (CSS inlining
    and compiling cost ~40 ms). The sources are part of the key, so an edited template recompiles.
    `known_links`: the links of the campaign's variants compiled before this one, so a link's index
    means one URL across the campaign (links.json)."""
    links = LinkTable(urls=list(known_links))
    html_env, text_env = environment(directories, True, links.origins), environment(directories, False)
    inline_each = False
    try:
        # The files as written first, so a syntax error names the line a user sees in them, not one of
        # the prepared (CSS-inlined) source compiled below.
        text_env.parse(subject, name="subject")
        for part, source in (("html", html_source), ("txt", text_source)):
            if source is not None:
                (html_env if part == "html" else text_env).parse(source, name=f"{name}.{part}.j2")
        html = None
        if html_source is not None:
            # CSS is inlined into the template source, once; a template built from others
            # ({% extends %} ...) can only be inlined after rendering, per recipient.
            inline_each = bool(_COMPOSED.search(html_source))
            prepared = html_source if inline_each else _inline(html_source)
            if track_clicks:
                prepared = rewrite_links(prepared, links)
            if track_opens:
                prepared = add_open_pixel(prepared)
            html = plain_output_escape(html_env.from_string(prepared))
        text = text_env.get_template(f"{name}.txt.j2") if text_source is not None else \
            text_env.from_string(html_to_text(html_source))
        return _Compiled(text_env.from_string(subject), html, text, inline_each, tuple(links.urls))
    except TemplateSyntaxError as exc:
        raise MailflowError(f"template {name!r}, {exc.name or 'subject'} line {exc.lineno}: "
                            f"{type(exc).__name__}: {exc.message}") from None
    except TemplateError as exc:
        raise MailflowError(f"template {name!r}: {type(exc).__name__}: {exc}") from None


class CampaignTemplates:
    """Subject, HTML and text of one campaign variant: CSS inlined, links rewritten, compiled — once."""

    def __init__(self, name: str, subject: str, campaign: Mapping[str, Any],
                 directory: Path | tuple[Path, ...] = TEMPLATES_DIR,
                 track_opens: bool = False, track_clicks: bool = False, preheader: str | None = None,
                 known_links: tuple[str, ...] = (), variant: str = "A"):
        # `directory`: one folder, or several searched in order (the user's, then the built-ins). The
        # first folder holding the campaign's template gives both its parts: a user's variant is never
        # mixed with a built-in text part.
        directories = (directory,) if isinstance(directory, Path) else tuple(directory)
        found = [(d / f"{name}.html.j2", d / f"{name}.txt.j2") for d in directories]
        html_path, text_path = next(((h, t) for h, t in found if h.exists() or t.exists()), found[0])
        if not html_path.exists() and not text_path.exists():
            looked = " nor ".join(str(p) for pair in found for p in pair)
            raise MailflowError(f"template {name!r}: neither {looked} exists")
        compiled = _compile(directories, name, subject, _read(html_path), _read(text_path), track_opens, track_clicks,
                            tuple(known_links))
        self.subject, self.html, self.text = compiled.subject, compiled.html, compiled.text
        self._inline_each = compiled.inline_each
        self._globals = {t: dict(t.globals) for t in (self.subject, self.html, self.text) if t is not None}
        self.links = LinkTable(list(compiled.links))
        self.campaign = dict(campaign)
        # Where a render error is reported: the part's file, and for a CSS-inlined HTML part the source as
        # written (its lines moved when the styles were inlined), rendered again only to find the line.
        self._parts = {self.subject: ("subject", None), self.text: (f"{name}.txt.j2", None)}
        if self.html is not None:
            self._parts[self.html] = (f"{name}.html.j2", None if self._inline_each else _read(html_path))
        self._directories = directories
        self.preheader = preheader or ""  # the inbox's preview text (the campaign's or its variant's)
        self.variant = variant  # the A/B variant's name, for templates that say which one a reader got

    def render(self, recipient: Mapping[str, Any], helpers: Helpers = Helpers()) -> Rendered:
        context = {"subscriber": subscriber_context(recipient), "campaign": self.campaign,
                   "unsubscribe_url": helpers.unsubscribe_url, "view_url": helpers.view_url,
                   "open_url": helpers.open_url, "click_url": helpers.click_url, "preheader": self.preheader,
                   "variant": self.variant}
        signer = LINK_SIGNER.set(helpers.link_url)
        part = self.subject
        try:
            subject = " ".join(_render(self.subject, context, self._globals).split())
            context["subject"] = subject
            html = None
            if self.html is not None:
                part = self.html
                html = _render(self.html, context, self._globals)
            if html is not None and self._inline_each:
                html = _inline(html)
            part = self.text
            return Rendered(subject, html, _render(self.text, context, self._globals))
        except TemplateError as exc:
            raise RenderError(f"{self._where(part, exc, context)}{type(exc).__name__}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - e.g. {{ visits + 1 }} with one recipient's "many": fails that one
            raise RenderError(f"{self._where(part, exc, context)}{type(exc).__name__}: "
                              f"{_ADDRESS.sub('<address>', str(exc))[:300]}") from None
        finally:
            LINK_SIGNER.reset(signer)

    def _where(self, template: Template, exc: BaseException, context: dict[str, Any]) -> str:
        """'newsletter.html.j2 line 12: ' — the part that failed and its line, as the file has it."""
        name, written = self._parts[template]
        if written is not None:  # the compiled source was CSS-inlined: find the line in the file as written
            template = environment(self._directories, True).from_string(written)
            try:
                _render(template, context, {template: dict(template.globals)})
                return f"{name}: "
            except Exception as again:  # noqa: BLE001 - the same failure, now with the file's lines
                exc = again
        line = _template_line(template, exc)
        return f"{name} line {line}: " if line else f"{name}: "



def _template_line(template: Template, exc: BaseException) -> int | None:
    """The template line the failure happened on: the deepest frame of its compiled code, mapped back."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__file__") == template.filename or \
                tb.tb_frame.f_code.co_filename == (template.filename or "<template>"):
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line


def _render(template: Template, variables: dict[str, Any], globals_: dict[Template, dict[str, Any]]) -> str:
    """Template.render, without copying the environment's globals out of a ChainMap each time
    (≈5 µs, three renders a message): a plain copy of them, made once, joins the variables."""
    context = template.new_context({**globals_[template], **variables}, shared=True)
    return "".join(template.root_render_func(context))


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


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
