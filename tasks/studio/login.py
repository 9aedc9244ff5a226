"""Logging in: password, then a TOTP code (or a recovery code), or TOTP enrolment on the first login; logging out."""

from __future__ import annotations

from dataclasses import replace

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mailflow.tasks.studio.context import StudioContext, forbidden, require, studio
from mailflow.tasks.studio.credentials import (
    check_password,
    new_recovery_codes,
    new_totp_secret,
    qr_svg,
    recovery_hash,
    totp_step,
    totp_uri,
)
from mailflow.tasks.studio.limits import failed, locked
from mailflow.tasks.studio.page import message, page, read_form
from mailflow.tasks.studio.sessions import FULL, LOGIN_COOKIE, PASSWORD, Session, csrf_ok, new_nonce
from mailflow.tasks.studio.users import User, UserError, check_name

WRONG_PASSWORD = "Wrong user name or password (or too many attempts: wait a while, or ask an admin)."
LOGIN_FORM_LIMIT = 4096  # bytes: a name, a password, a code and a token
WRONG_CODE = "Wrong code (or too many attempts: wait a while, or ask an admin)."


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def login_form(ctx: StudioContext, status: int = 200, error: str = "") -> Response:
    nonce = new_nonce()
    response = page("login.html.j2", status, csrf=ctx.sessions.login_token(nonce), error=error)
    response.set_cookie(LOGIN_COOKIE, nonce, path="/login", httponly=True, samesite="strict",
                        secure=ctx.settings.studio.secure_cookies)
    return response


async def login_page(request: Request) -> Response:
    ctx = studio(request)
    session, _ = ctx.current(request)
    if session is not None:
        return see_other("/" if session.stage == FULL else second_step(ctx, session))
    return login_form(ctx)


def second_step(ctx: StudioContext, session: Session) -> str:
    user = ctx.users.get(session.user)
    return "/totp" if user is not None and user.enrolled else "/enrol"


def _shown_name(name: str) -> str:
    """A typed name as the audit log may keep it: a valid user name, never what could be an email address."""
    try:
        return check_name(name)
    except UserError:
        return "(not a user name)"


async def login_post(request: Request) -> Response:
    ctx = studio(request)
    form = await read_form(request, LOGIN_FORM_LIMIT)
    if not ctx.sessions.login_token_ok(request.cookies.get(LOGIN_COOKIE), form.get("csrf", "")):
        return forbidden("This form has expired: reload the login page and try again.")
    name, password = form.get("name", "").strip().lower(), form.get("password", "")
    client = request.scope.get("client")
    # keyed by the name as the log shows it: a sprayed megabyte of a name costs no memory
    if not (ctx.attempts.allow(f"ip:{client[0] if client else ''}") and ctx.attempts.allow(f"user:{_shown_name(name)}")):
        await ctx.record(request, _shown_name(name), "login.refused", reason="rate_limited")
        return login_form(ctx, 429, "Too many attempts: wait a few minutes and try again.")
    user = ctx.users.get(name)
    # the same cost for unknown names; on a thread, so other people's requests go on meanwhile
    right = await run_in_threadpool(check_password, user.password if user else None, password)
    user, now = ctx.users.get(name), ctx.clock()  # as it is now: locked or disabled meanwhile counts
    if user is None or user.disabled or locked(user, now) or not right:
        why = ("unknown_user" if user is None else "disabled" if user.disabled else "locked" if locked(user, now)
               else "password")
        await ctx.record(request, _shown_name(name), "login.failed", reason=why)
        if why == "password":
            await _count_failure(request, ctx, user.name)
        return login_form(ctx, 401, WRONG_PASSWORD)
    # failures are not forgiven here: only a whole login (password and code) ends a run of wrong codes
    session = ctx.sessions.start(user.name, user.epoch, PASSWORD)
    response = see_other("/totp" if user.enrolled else "/enrol")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return ctx.set_cookie(response, session)


async def _count_failure(request: Request, ctx: StudioContext, name: str) -> User:
    studio_settings = ctx.settings.studio
    user = ctx.users.update(name, lambda u: failed(u, ctx.clock(), studio_settings.lockout_failures,
                                                   studio_settings.lockout_minutes * 60))
    if locked(user, ctx.clock()):
        ctx.sessions.end_user(name)  # a half-done login of theirs ends too
        await ctx.record(request, name, "login.lockout", name, until=user.locked_until)
    return user


async def _second_step(request: Request, want_enrolled: bool) -> tuple[StudioContext, Session, User, dict] | Response:
    """The session half-way through a login (password right), its user and form (POST); or the answer to give."""
    ctx = studio(request)
    session, user = ctx.current(request)
    if session is None:
        return see_other("/login") if request.method == "GET" else forbidden("Your login has expired: start again.")
    if session.stage == FULL:
        return see_other("/")
    if user.enrolled != want_enrolled:
        return see_other(second_step(ctx, session))
    form = {}
    if request.method == "POST":
        form = await read_form(request, LOGIN_FORM_LIMIT)
        if not csrf_ok(session, form.get("csrf", "")):
            return forbidden("This form has expired: reload the page and try again.")
        if not ctx.attempts.allow(f"user:{user.name}"):
            await ctx.record(request, user.name, "login.refused", reason="rate_limited")
            return message("Too many attempts", "Too many attempts: wait a few minutes and try again.", 429)
    return ctx, session, user, form


async def totp_page(request: Request) -> Response:
    found = await _second_step(request, want_enrolled=True)
    if isinstance(found, Response):
        return found
    _, session, _, _ = found
    return page("totp.html.j2", csrf=session.csrf, error="")


async def totp_post(request: Request) -> Response:
    found = await _second_step(request, want_enrolled=True)
    if isinstance(found, Response):
        return found
    ctx, session, user, form = found
    code, now = form.get("code", ""), ctx.clock()
    if locked(user, now):
        await ctx.record(request, user.name, "login.failed", reason="locked")
        ctx.sessions.end(session)
        return see_other("/login")
    step = totp_step(user.totp_secret, code, now, user.totp_step)
    digest = recovery_hash(code)
    used_recovery = step is None and digest in user.recovery
    if step is not None or used_recovery:
        user, taken = _take(ctx, user.name, step, digest)
        if taken:
            if used_recovery:
                await ctx.record(request, user.name, "login.recovery_code", user.name, left=len(user.recovery))
            return await _logged_in(request, ctx, session, "recovery_code" if used_recovery else "totp")
    await ctx.record(request, user.name, "login.failed", reason="code")
    if locked(await _count_failure(request, ctx, user.name), ctx.clock()):
        return see_other("/login")
    return page("totp.html.j2", 401, csrf=session.csrf, error=WRONG_CODE)


def _take(ctx: StudioContext, name: str, step: int | None, digest: str) -> tuple[User, bool]:
    """Use up the TOTP step or the recovery code, checked again under the store's lock: of two requests
    with one code (a replay racing the real one), one wins."""
    taken = []

    def take(user: User) -> User:
        if step is not None and step > user.totp_step:
            taken.append(True)
            return replace(user, failures=0, totp_step=step)
        if step is None and digest in user.recovery:
            taken.append(True)
            return replace(user, failures=0, recovery=tuple(h for h in user.recovery if h != digest))
        return user

    user = ctx.users.update(name, take)
    return user, bool(taken)


async def _logged_in(request: Request, ctx: StudioContext, session: Session, method: str) -> Response:
    full = ctx.sessions.advance(session, FULL)
    await ctx.record(request, full.user, "login", method=method)
    return ctx.set_cookie(see_other("/"), full)


async def enrol_page(request: Request) -> Response:
    found = await _second_step(request, want_enrolled=False)
    if isinstance(found, Response):
        return found
    _, session, user, _ = found
    if not session.pending:  # made once per half-done login: a reload shows the same secret and codes
        secret = new_totp_secret()
        session.pending = {"secret": secret, "codes": new_recovery_codes(), "qr": qr_svg(totp_uri(secret, user.name))}
    return page("enrol.html.j2", csrf=session.csrf, error="", **session.pending)


async def enrol_post(request: Request) -> Response:
    found = await _second_step(request, want_enrolled=False)
    if isinstance(found, Response):
        return found
    ctx, session, user, form = found
    if not session.pending:
        return see_other("/enrol")
    step = totp_step(session.pending["secret"], form.get("code", ""), ctx.clock(), 0)
    if step is None:
        await ctx.record(request, user.name, "login.failed", reason="enrolment_code")
        user = await _count_failure(request, ctx, user.name)
        if locked(user, ctx.clock()):
            return see_other("/login")
        return page("enrol.html.j2", 401, csrf=session.csrf, error=WRONG_CODE, **session.pending)
    pending = session.pending
    enrolled = ctx.users.update(user.name, lambda u: u if u.enrolled else replace(
        u, totp_secret=pending["secret"], totp_step=step, failures=0, recovery=tuple(recovery_hash(c) for c in pending["codes"])))
    if enrolled.totp_secret != pending["secret"]:  # enrolled meanwhile in another browser: that one stands
        return see_other("/totp")
    await ctx.record(request, user.name, "totp.enrolled", user.name, recovery_codes=len(pending["codes"]))
    return await _logged_in(request, ctx, session, "totp_enrolment")


@require("viewer")
async def logout(request: Request) -> Response:
    ctx = studio(request)
    ctx.sessions.end(request.state.session)
    await ctx.record(request, request.state.user.name, "logout")
    return ctx.clear_cookie(see_other("/login"))


def login_routes() -> list[Route]:
    return [Route("/login", login_page, methods=["GET"]), Route("/login", login_post, methods=["POST"]),
            Route("/totp", totp_page, methods=["GET"]), Route("/totp", totp_post, methods=["POST"]),
            Route("/enrol", enrol_page, methods=["GET"]), Route("/enrol", enrol_post, methods=["POST"]),
            Route("/logout", logout, methods=["POST"])]
