"""The studio's pages: sandboxed, autoescaped templates under templates/studio/, a strict CSP, forms read with a bound."""

from __future__ import annotations

import secrets
from functools import cache
from typing import Any
from urllib.parse import parse_qs

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from mailflow import TEMPLATES_DIR

STUDIO_DIR = TEMPLATES_DIR / "studio"
# Served at /static/NAME from templates/studio/: no CDN, ever (editor.js is built from web/editor/: `make editor`)
STATIC = {"studio.css": "text/css; charset=utf-8", "editor.js": "text/javascript; charset=utf-8"}
FORM_LIMIT = 1_048_576  # bytes: a template's text with room to spare (Gmail clips a message at 102 KB)

# Script only from /static (the code editor, bundled at build time: web/editor/); styles from /static only, so
# nothing a page shows (a template's text, a campaign's name) can run or restyle the studio. Images: the
# app's own and data: URLs. Forms post to the studio only; frames only
# of its own previews (served with their own CSP); no framing of the studio (clickjacking).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'{nonce}; img-src 'self' data:; frame-src 'self'; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


@cache
def _environment() -> ImmutableSandboxedEnvironment:
    # Sandboxed and autoescaped: what the pages show (template text, campaign names, user names) is others' text
    return ImmutableSandboxedEnvironment(loader=FileSystemLoader(str(STUDIO_DIR)), undefined=StrictUndefined,
                                         autoescape=True)


def headers(nonce: str = "") -> dict[str, str]:
    """`nonce`: the page's one style nonce (the code editor's <style> elements carry it; nothing else can)."""
    return {"Content-Security-Policy": CSP.format(nonce=f" 'nonce-{nonce}'" if nonce else ""),
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY", "Cache-Control": "no-store", "Cross-Origin-Opener-Policy": "same-origin"}


def page(template: str, status_code: int = 200, /, **context: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)  # new for every page: a page's text cannot guess it
    html = _environment().get_template(template).render(nonce=nonce, **context)
    return HTMLResponse(html, status_code, headers=headers(nonce))


def message(title: str, text: str, status_code: int = 200) -> HTMLResponse:
    return page("message.html.j2", status_code, title=title, text=text)


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC:  # a fixed table: no path from the request reaches the file system
        return message("Not found", "There is no such file.", 404)
    body = (STUDIO_DIR / name).read_bytes()
    return Response(body, media_type=STATIC[name], headers={**headers(), "Cache-Control": "max-age=300"})


class FormTooLarge(ValueError):
    """The body is larger than any form of the studio."""


async def read_form(request: Request, limit: int = FORM_LIMIT) -> dict[str, str]:
    """An url-encoded form's fields (the first value of each; text kept as sent). An unreadable body is an
    empty form, so its CSRF check fails; a larger one than `limit` raises FormTooLarge."""
    cached = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise FormTooLarge(f"a form body is at most {limit} bytes")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        fields = {}
    request.state.form = {name: values[0] for name, values in fields.items()}
    return request.state.form
