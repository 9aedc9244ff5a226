"""What every studio handler shares (settings, users, sessions, limits, audit), and `require(role)`, which every route uses."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailflow.settings import Settings
from mailflow.tasks.studio.audit import AuditLog
from mailflow.tasks.studio.limits import Window
from mailflow.tasks.studio.page import message, read_form
from mailflow.tasks.studio.sessions import COOKIE, FULL, SECURE_COOKIE, Session, Sessions, csrf_ok
from mailflow.tasks.studio.users import User, UserStore

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class StudioContext:
    """Kept at `request.app.state.studio`; one per studio process."""

    settings: Settings
    users: UserStore
    sessions: Sessions
    audit: AuditLog
    attempts: Window  # login attempts, keyed "ip:..." and "user:..."
    clock: Callable[[], float]

    @classmethod
    def create(cls, settings: Settings, clock: Callable[[], float] = time.time) -> StudioContext:
        studio = settings.studio
        sessions = Sessions(studio.secret.reveal().encode(), studio.session_hours * 3600, studio.idle_minutes * 60, clock)
        return cls(settings, UserStore(settings.home, clock), sessions, AuditLog(settings.home),
                   Window(studio.login_limit, studio.login_window, clock), clock)

    @property
    def templates_dir(self) -> Path:
        return self.settings.templates_dir

    @property
    def cookie_name(self) -> str:
        return SECURE_COOKIE if self.settings.studio.secure_cookies else COOKIE

    def current(self, request: Request) -> tuple[Session | None, User | None]:
        """The request's session and its user, as they are now: a user disabled or reset since (another
        epoch), or gone, ends the session here."""
        session = self.sessions.find(request.cookies.get(self.cookie_name))
        if session is None:
            return None, None
        user = self.users.get(session.user)
        if user is None or user.disabled or user.epoch != session.epoch:
            self.sessions.end(session)
            return None, None
        return session, user

    def set_cookie(self, response: Response, session: Session) -> Response:
        response.set_cookie(self.cookie_name, self.sessions.cookie_value(session), path="/", httponly=True,
                            samesite="strict", secure=self.settings.studio.secure_cookies)
        return response

    def clear_cookie(self, response: Response) -> Response:
        response.delete_cookie(self.cookie_name, path="/", httponly=True, samesite="strict",
                               secure=self.settings.studio.secure_cookies)
        return response

    async def record(self, request: Request, actor: str, action: str, target: str = "", **details) -> None:
        """One audit line, on disk before the answer (off the event loop: it fsyncs)."""
        client = request.scope.get("client")
        await run_in_threadpool(self.audit.write, actor, action, target, client[0] if client else None, **details)


def studio(request: Request) -> StudioContext:
    return request.app.state.studio


def forbidden(text: str = "You may not do that.") -> Response:
    return message("Forbidden", text, 403)


def require(role: str) -> Callable[[Handler], Handler]:
    """A route for users of `role` or above, fully logged in (password and TOTP). A POST must carry the
    session's CSRF token; its form is then at `request.state.form`. The user is `request.state.user`,
    the session `request.state.session`. Not logged in: GET goes to the login page, anything else is 403."""
    def wrap(handler: Handler) -> Handler:
        @wraps(handler)
        async def endpoint(request: Request) -> Response:
            ctx = studio(request)
            session, user = ctx.current(request)
            if session is None or session.stage != FULL:
                if request.method in ("GET", "HEAD"):
                    return RedirectResponse("/login", status_code=303)
                return forbidden("Your session has ended: log in again.")
            if request.method == "POST":
                form = await read_form(request)
                if not csrf_ok(session, form.get("csrf", "")):
                    return forbidden("This form has expired or did not come from the studio: reload the page and try again.")
                request.state.form = form
            if not user.may(role):
                return forbidden(f"This needs the {role} role; you are {user.role}.")
            request.state.session, request.state.user = session, user
            return await handler(request)
        endpoint.role = role  # the route table's test reads it: no route goes without
        return endpoint
    return wrap
