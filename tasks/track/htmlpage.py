"""The service's human-facing pages: sandboxed, autoescaped templates and the headers every page carries."""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup
from starlette.responses import HTMLResponse

from mailflow import TEMPLATES_DIR

PAGES_DIR = TEMPLATES_DIR / "pages"
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
_NOINDEX = '<meta name="robots" content="noindex,nofollow"><meta name="referrer" content="no-referrer">'


@cache
def _environment() -> ImmutableSandboxedEnvironment:
    # Sandboxed and autoescaped although the templates are ours: what they show (an address, a
    # campaign's name, list names) is other people's text. A text template (the confirmation mail's
    # text part) is not HTML: escaping it would show "&amp;" to the reader
    return ImmutableSandboxedEnvironment(loader=FileSystemLoader(str(PAGES_DIR)), undefined=StrictUndefined,
                                         autoescape=lambda name: not (name or "").endswith(".txt.j2"))


@cache
def _style() -> tuple[Markup, str]:
    """The pages' one stylesheet, and its CSP hash: the pages' policy allows that style element and nothing else."""
    css = (PAGES_DIR / "page.css").read_text(encoding="utf-8").strip()
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return Markup(css), f"'sha256-{digest}'"


def _headers(policy: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
        "X-Robots-Tag": "noindex, nofollow",  # personal pages: no search engine keeps one
        "Cache-Control": "no-store",
    }


def page_headers() -> dict[str, str]:
    """No script, no plugin, no frame; the one stylesheet; forms post back to this service only."""
    _, style_hash = _style()
    return _headers(f"default-src 'none'; style-src {style_hash}; img-src 'self'; form-action 'self'; "
                    "base-uri 'none'; frame-ancestors 'none'")


def view_headers() -> dict[str, str]:
    """A message shown in the browser: its images and inline styles, nothing else (no script, no form)."""
    return _headers("default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
                    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'")


def render_text(name: str, **context: Any) -> str:
    """A template of templates/pages/ rendered to text (a page, or the confirmation mail's parts)."""
    return _environment().get_template(name).render(**context)


def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    style, _ = _style()
    return HTMLResponse(render_text(name, style=style, **context), status_code, headers=page_headers())


def message(title: str, text: str, status_code: int = 200) -> HTMLResponse:
    return page("message.html.j2", status_code, title=title, text=text)


def not_found() -> HTMLResponse:
    """One answer for a bad token, an unknown campaign or recipient, or an unknown list: nothing to tell apart."""
    return message("Not found", "This link is not valid. It may have been mistyped or cut short.", 404)


def unavailable() -> HTMLResponse:
    """What could not be written is not acknowledged: the person (or mail client) may try again."""
    response = message("Please try again", "We could not record that just now. Please try again in a moment.", 503)
    response.headers["Retry-After"] = "5"
    return response


def view_page(html: str) -> HTMLResponse:
    """A rendered message as a page: robots told off in the markup as in the headers."""
    head = _HEAD.search(html)
    marked = html[:head.end()] + _NOINDEX + html[head.end():] if head else _NOINDEX + html
    return HTMLResponse(marked, headers=view_headers())
