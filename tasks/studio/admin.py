"""The users page (admins): every user, adding one, disabling one or resetting their TOTP — as `mailflow studio users` does."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mailflow.tasks.studio.context import require, studio
from mailflow.tasks.studio.credentials import hash_password, password_problem
from mailflow.tasks.studio.page import page
from mailflow.tasks.studio.pages import common
from mailflow.tasks.studio.users import CHANGES, ROLES, User, UserError, check_name, check_role


def users_list(request: Request, status: int = 200, error: str = "", done: str = "") -> Response:
    ctx = studio(request)
    now = ctx.clock()
    return page("users.html.j2", status, users=[u.public(now) for u in ctx.users.all()], roles=ROLES, error=error,
                done=done, **common(request))


@require("admin")
async def users_page(request: Request) -> Response:
    done = request.query_params.get("done", "")
    return users_list(request, done=done if done in ("added", *CHANGES) else "")


@require("admin")
async def user_add(request: Request) -> Response:
    ctx, form = studio(request), request.state.form
    name, role, password = form.get("name", "").strip(), form.get("role", ""), form.get("password", "")
    try:
        check_name(name)
        check_role(role)
        problem = password_problem(password)
        if problem:
            raise UserError(problem)
        ctx.users.add(User(name=name, role=role, password=await run_in_threadpool(hash_password, password)))
    except UserError as exc:
        return users_list(request, 400, str(exc))
    await ctx.record(request, request.state.user.name, "user.added", name, role=role)
    return RedirectResponse("/admin/users?done=added", status_code=303)


@require("admin")
async def user_change(request: Request) -> Response:
    ctx, name, action = studio(request), request.path_params["name"], request.path_params["action"]
    if action not in CHANGES:
        return users_list(request, 404, f"no such change: {action}")
    if name == request.state.user.name:  # the last admin must not shut themselves out; another admin can
        return users_list(request, 400, "You cannot do that to yourself: ask another admin, or use the command line.")
    change, audited = CHANGES[action]
    try:
        ctx.users.update(name, change)
    except UserError as exc:
        return users_list(request, 404, str(exc))
    ctx.sessions.end_user(name)
    await ctx.record(request, request.state.user.name, audited, name)
    return RedirectResponse(f"/admin/users?done={action}", status_code=303)


def admin_routes() -> list[Route]:
    return [Route("/admin/users", users_page, methods=["GET"]), Route("/admin/users", user_add, methods=["POST"]),
            Route("/admin/users/{name}/{action}", user_change, methods=["POST"])]
