"""The preview routes: POST /preview renders a template for a subscriber and variant; the HTML is served alone, framed."""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from mailflow.tasks.studio.context import require, studio
from mailflow.tasks.studio.names import BadTemplateName, template_file
from mailflow.tasks.studio.page import headers, message, page
from mailflow.tasks.studio.preview import Preview, PreviewError, Scratch, base_name, campaign_spec, render_preview, subscriber_row

FRAMES_KEPT = 64  # rendered HTML kept for its frame's GET: the latest previews of this process
# The previewed message's own policy: no script, nothing fetched but images (as a mail client shows them once
# allowed), its inline styles. Served to an iframe with `sandbox` (no allow-scripts): a subscriber's
# `<script>` in a first name is escaped by the template, and would not run if it were not.
FRAME_CSP = "default-src 'none'; img-src data: http: https:; style-src 'unsafe-inline'; frame-ancestors 'self'"


BLANK_GIF = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def without_open_pixel(html: str, base_url: str) -> str:
    """The frame's HTML with the open pixel's URL made a blank data: image: a preview shown is no open
    (the tracking service would count it for the subscriber previewed)."""
    return re.sub(re.escape(base_url.rstrip("/")) + r"/o/[A-Za-z0-9_-]+\.gif", BLANK_GIF, html)


class Frames:
    """Rendered HTML by a random key, each for the user who rendered it; the oldest dropped past FRAMES_KEPT."""

    def __init__(self):
        self._kept: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self.scratch = Scratch()

    def put(self, user: str, html: str) -> str:
        key = secrets.token_urlsafe(16)
        self._kept[key] = (user, html)
        while len(self._kept) > FRAMES_KEPT:
            self._kept.popitem(last=False)
        return key

    def get(self, user: str, key: str) -> str | None:
        found = self._kept.get(key)
        return found[1] if found and found[0] == user else None


def frames(request: Request) -> Frames:
    state = request.app.state
    if getattr(state, "frames", None) is None:
        state.frames = Frames()
    return state.frames


def _int(value: str, field: str) -> int | None:
    if not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise PreviewError(f"{field} must be a whole number, not {value[:20]!r}") from None


def make_preview(request: Request) -> Preview:
    """The form's preview: `template` (a file name), `subject`, `campaign`, `variant`, `subscriber_id` or `email`
    (a POST field: an address never goes in a URL), and `source`, the template file's unsaved text."""
    ctx, form = studio(request), request.state.form
    name = form.get("template", "")
    template_file(ctx.templates_dir, name)  # BadTemplateName for a name outside the folder
    campaign = form.get("campaign", "").strip() or None
    spec = campaign_spec(ctx.settings, campaign, base_name(name), form.get("subject", "").strip() or None)
    row = subscriber_row(ctx.settings, campaign, _int(form.get("subscriber_id", ""), "subscriber_id"),
                         form.get("email", "").strip() or None)
    first = frames(request).scratch.folder(ctx.settings, base_name(name), {name: form["source"]}) \
        if "source" in form else None
    return render_preview(ctx.settings, spec, form.get("variant", "").strip() or spec.variant_names[0], row, first)


def as_json(preview: Preview, frame: str) -> dict:
    check = preview.size_check
    return {"subject": preview.subject, "html": preview.html, "text": preview.text, "frame": frame,
            "headers": preview.headers, "size": preview.size, "links": list(preview.links),
            "variant": preview.variant, "subscriber_id": preview.subscriber_id,
            "size_check": {"status": check.status, "detail": check.detail}}


@require("viewer")
async def preview(request: Request) -> Response:
    wants_json = request.state.form.get("format") == "json"
    try:
        made = await run_in_threadpool(make_preview, request)
    except (PreviewError, BadTemplateName) as exc:
        if wants_json:
            return JSONResponse({"error": str(exc)}, 400, headers=headers())
        return message("Cannot preview", str(exc), 400)
    shown = without_open_pixel(made.html or "", studio(request).settings.tracking.base_url)
    frame = f"/preview/frame/{frames(request).put(request.state.user.name, shown)}" if made.html else ""
    if wants_json:
        return JSONResponse(as_json(made, frame), headers=headers())
    return page("preview.html.j2", preview=made, frame=frame, name=request.state.form.get("template", ""),
                user=request.state.user, csrf=request.state.session.csrf)


@require("viewer")
async def preview_frame(request: Request) -> Response:
    html = frames(request).get(request.state.user.name, request.path_params["key"])
    if html is None:
        return message("Not found", "This preview has expired: preview again.", 404)
    own = {**headers(), "Content-Security-Policy": FRAME_CSP, "X-Frame-Options": "SAMEORIGIN"}
    return HTMLResponse(html, headers=own)


def preview_routes() -> list[Route]:
    return [Route("/preview", preview, methods=["POST"]),
            Route("/preview/frame/{key}", preview_frame, methods=["GET"])]
