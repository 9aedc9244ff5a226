"""The studio's pages after login: home (templates and campaigns) and a template's text, which editors save."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mailflow.tasks.aggregate.overview import campaign_list
from mailflow.tasks.studio.catalogue import ChangedOnDisk, read_template, save_template
from mailflow.tasks.studio.checks import CompileError, compile_template, save_checks
from mailflow.tasks.studio.context import require, studio
from mailflow.tasks.studio.names import BadTemplateName, template_file, template_names
from mailflow.tasks.studio.page import message, page
from mailflow.tasks.studio.preview import base_name
from mailflow.tasks.studio.preview_page import frames


def common(request: Request) -> dict:
    """What every page after login shows: who is logged in, the CSRF token of its forms (logout, save)."""
    return {"user": request.state.user, "csrf": request.state.session.csrf}


@require("viewer")
async def home(request: Request) -> Response:
    ctx = studio(request)
    # campaigns from their files (manifest, state), as `mailflow campaigns list` shows them: never the warehouse
    rows = campaign_list(ctx.settings.home, datetime.now(UTC))
    return page("home.html.j2", templates=template_names(ctx.templates_dir), campaigns=rows,
                templates_dir=str(ctx.templates_dir), **common(request))


def _template(request: Request) -> tuple[str, Response | None]:
    """The path's template name, or the page refusing it (400 for a bad name, 404 for no such file)."""
    name = request.path_params["name"]
    folder = studio(request).templates_dir
    try:
        if not template_file(folder, name).is_file():
            return name, message("Not found", "There is no template of that name.", 404)
    except BadTemplateName as exc:
        return name, message("Bad template name", str(exc), 400)
    return name, None


@require("viewer")
async def template_page(request: Request) -> Response:
    name, refused = _template(request)
    if refused is not None:
        return refused
    ctx = studio(request)
    text, loaded = read_template(ctx.templates_dir, name)
    saved = request.query_params.get("saved") == "1"
    # Just saved: the checks of the file as saved (its compile error refused the save before it got here)
    checks = await run_in_threadpool(save_checks, ctx.settings, ctx.templates_dir, base_name(name), text,
                                     name.endswith(".html.j2")) if saved else None
    return page("template.html.j2", name=name, text=text, loaded=loaded, saved=saved, error="", checks=checks,
                **common(request))


@require("editor")
async def template_save(request: Request) -> Response:
    """A minimal save of one template file's text (the code editor builds on it): refused when the file
    changed on disk since the page was loaded, so nobody's edit is lost without a word."""
    name, refused = _template(request)
    if refused is not None:
        return refused
    ctx, form = studio(request), request.state.form
    folder = frames(request).scratch.folder(ctx.settings, base_name(name), {name: form.get("text", "")})
    try:
        await run_in_threadpool(compile_template, ctx.settings, folder, base_name(name))
    except CompileError as exc:  # refused, the text kept in the editor to fix
        return page("template.html.j2", 422, name=name, text=form.get("text", ""), loaded=form.get("loaded", ""),
                    saved=False, checks=None, error=f"Not saved: {exc}", **common(request))
    try:
        before, after = save_template(ctx.templates_dir, name, form.get("text", ""), form.get("loaded", ""))
    except ChangedOnDisk:
        text, loaded = read_template(ctx.templates_dir, name)
        return page("template.html.j2", 409, name=name, text=text, loaded=loaded, saved=False, checks=None,
                    error="This file changed on disk since you opened it; it is shown as it is now. "
                          "Your text was not saved: copy it from your last edit and apply it again.", **common(request))
    await ctx.record(request, request.state.user.name, "template.saved", name, before=before, after=after)
    return RedirectResponse(f"/templates/{name}?saved=1", status_code=303)


def page_routes() -> list[Route]:
    return [Route("/", home, methods=["GET"]),
            Route("/templates/{name}", template_page, methods=["GET"]),
            Route("/templates/{name}", template_save, methods=["POST"])]
