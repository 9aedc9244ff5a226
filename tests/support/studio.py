"""The studio under test: settings with its secret, users put straight in the store, a client that logs in over HTTP."""

from __future__ import annotations

import html
import re
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pyotp

from mailflow.settings import Settings, load_settings
from mailflow.tasks.studio.credentials import hash_password
from mailflow.tasks.studio.server import running_studio
from mailflow.tasks.studio.users import User, UserStore
from tests.support.clock import Clock

SECRET = "studio-test-secret-0123456789abcdefghijklmnop"
PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_LOADED = re.compile(r'name="loaded" value="([^"]+)"')


def studio_settings(tmp_path: Path, **studio) -> Settings:
    """Settings with a home and a templates folder (a copy of two small templates) of the test's own."""
    templates = tmp_path / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    (templates / "welcome.html.j2").write_text("<p>Hello {{ subscriber.first_name }}</p>\n", encoding="utf-8")
    (templates / "welcome.txt.j2").write_text("Hello {{ subscriber.first_name }}\n", encoding="utf-8")
    # tracking: previews compose through the send path, which signs its links
    return load_settings(overrides={"home": str(tmp_path / "home"), "templates_dir": str(templates), "studio": studio,
                                    "tracking": {"base_url": "https://t.example"}},
                         environ={"MAILFLOW_STUDIO__SECRET": SECRET, "MAILFLOW_TRACKING__SECRET": "studio-tracking-secret"})


def add_user(home: Path, name: str, role: str, enrolled: bool = True, password: str = PASSWORD) -> str:
    """A user in the store (enrolled: with a TOTP secret and no recovery codes); their TOTP secret, or ""."""
    secret = pyotp.random_base32() if enrolled else ""
    UserStore(home).add(User(name=name, role=role, password=hash_password(password), totp_secret=secret))
    return secret


def csrf_of(response: httpx.Response) -> str:
    found = _CSRF.search(response.text)
    assert found, f"no CSRF field in {response.request.url}: {response.text[:300]}"
    return html.unescape(found.group(1))


def loaded_of(response: httpx.Response) -> str:
    return _LOADED.search(response.text).group(1)


class StudioClient:
    """One browser's worth of cookies; `clock` is the studio's, so codes are computed for its time."""

    def __init__(self, url: str, clock: Clock):
        self.http = httpx.Client(base_url=url, timeout=30, follow_redirects=False)
        self.clock = clock

    def password(self, name: str, password: str = PASSWORD) -> httpx.Response:
        form = self.http.get("/login")
        assert form.status_code == 200
        return self.http.post("/login", data={"csrf": csrf_of(form), "name": name, "password": password})

    def code(self, code: str, path: str = "/totp") -> httpx.Response:
        form = self.http.get(path)
        assert form.status_code == 200, (path, form.status_code, form.headers.get("location"))
        return self.http.post(path, data={"csrf": csrf_of(form), "code": code})

    def totp(self, secret: str) -> str:
        return pyotp.TOTP(secret).at(self.clock.now)

    def login(self, name: str, secret: str, password: str = PASSWORD) -> httpx.Response:
        step = self.password(name, password)
        assert step.status_code == 303 and step.headers["location"] == "/totp", (step.status_code, step.text[:300])
        done = self.code(self.totp(secret))
        assert done.status_code == 303 and done.headers["location"] == "/", (done.status_code, done.text[:300])
        return done

    def post_form(self, path: str, page: str | None = None, **fields) -> httpx.Response:
        """A form of `page` (default: `path`) posted with that page's CSRF token."""
        shown = self.http.get(page or path)
        return self.http.post(path, data={"csrf": csrf_of(shown), **fields})

    def close(self) -> None:
        self.http.close()


@contextmanager
def studio_running(settings: Settings, clock: Clock | None = None):
    """The studio on a loopback port: yields (url, clock); the clock starts at the real time (TOTP apps' time)."""
    clock = clock or Clock(time.time())
    with running_studio(settings, clock=clock) as url:
        yield url, clock


def logged_in(url: str, clock: Clock, name: str, secret: str) -> StudioClient:
    client = StudioClient(url, clock)
    client.login(name, secret)
    return client


@contextmanager
def user_logged_in(settings: Settings, name: str, role: str):
    """The studio running with one user of `role`, logged in: yields their client."""
    secret = add_user(settings.home, name, role)
    with studio_running(settings) as (url, clock):
        client = logged_in(url, clock, name, secret)
        try:
            yield client
        finally:
            client.close()
