"""Logging in to the studio over real HTTP: password then TOTP, enrolment, recovery codes, lockout, logout, expiry."""

from __future__ import annotations

import re

import pyotp
import pytest

from mailflow.tasks.studio.audit import read_audit
from mailflow.tasks.studio.users import UserStore, revoked
from tests.support.studio import PASSWORD, StudioClient, add_user, csrf_of, logged_in, studio_running, studio_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path):
    return studio_settings(tmp_path, lockout_failures=3, lockout_minutes=15, idle_minutes=30, session_hours=12)


def test_password_then_totp_code_logs_in_and_shows_the_home_page(settings):
    secret = add_user(settings.home, "ann", "viewer")
    with studio_running(settings) as (url, clock):
        client = StudioClient(url, clock)
        assert client.http.get("/").headers["location"] == "/login"  # not logged in: to the login page
        half = client.password("ann")
        assert half.status_code == 303 and half.headers["location"] == "/totp"
        assert client.http.get("/").headers["location"] == "/login"  # the password alone opens nothing
        assert client.code(client.totp(secret)).headers["location"] == "/"
        home = client.http.get("/")
        assert home.status_code == 200 and "welcome.html.j2" in home.text and "ann (viewer)" in home.text
    actions = [(r["actor"], r["action"]) for r in read_audit(settings.home)]
    assert actions == [("ann", "login")]


def test_a_totp_code_works_once(settings):
    secret = add_user(settings.home, "ann", "viewer")
    with studio_running(settings) as (url, clock):
        first = StudioClient(url, clock)
        first.login("ann", secret)
        again = StudioClient(url, clock)
        assert again.password("ann").status_code == 303
        replay = again.code(first.totp(secret))  # the same code in the same 30 s: seen over a shoulder
        assert replay.status_code == 401 and "Wrong code" in replay.text


def test_first_login_enrols_totp_with_a_qr_code_and_recovery_codes_shown_once(settings):
    add_user(settings.home, "bo", "editor", enrolled=False)
    with studio_running(settings) as (url, clock):
        client = StudioClient(url, clock)
        assert client.password("bo").headers["location"] == "/enrol"
        page = client.http.get("/enrol")
        assert page.status_code == 200 and "<svg" in page.text  # the QR code, inline: no request leaves the page
        secret = re.search(r'<code id="secret">([A-Z2-7]+)</code>', page.text).group(1)
        codes = re.findall(r"<li><code>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</code></li>", page.text)
        assert len(codes) == 10 and client.http.get("/enrol").text.count(codes[0]) == 1  # a reload shows the same
        wrong = client.http.post("/enrol", data={"csrf": csrf_of(page), "code": "000000"})
        assert wrong.status_code == 401 and not UserStore(settings.home).get("bo").enrolled
        done = client.http.post("/enrol", data={"csrf": csrf_of(page), "code": pyotp.TOTP(secret).at(clock.now)})
        assert done.status_code == 303 and done.headers["location"] == "/"
        assert client.http.get("/").status_code == 200
        stored = UserStore(settings.home).get("bo")
        assert stored.totp_secret == secret and len(stored.recovery) == 10
        assert all(code not in (settings.home / "studio" / "users.json").read_text() for code in codes)  # hashed only
        later = StudioClient(url, clock)
        assert later.password("bo").headers["location"] == "/totp"  # enrolled: the codes are never shown again
        assert codes[0] not in later.http.get("/totp").text
    assert ("bo", "totp.enrolled") in [(r["actor"], r["action"]) for r in read_audit(settings.home)]


def test_a_recovery_code_logs_in_once(settings):
    add_user(settings.home, "bo", "editor", enrolled=False)
    with studio_running(settings) as (url, clock):
        client = StudioClient(url, clock)
        client.password("bo")
        page = client.http.get("/enrol")
        secret = re.search(r'<code id="secret">([A-Z2-7]+)</code>', page.text).group(1)
        codes = re.findall(r"<li><code>([a-z2-9-]{19})</code></li>", page.text)
        client.http.post("/enrol", data={"csrf": csrf_of(page), "code": pyotp.TOTP(secret).at(clock.now)})
        lost_phone = StudioClient(url, clock)
        lost_phone.password("bo")
        assert lost_phone.code(codes[3].upper()).headers["location"] == "/"  # case and dashes as typed
        again = StudioClient(url, clock)
        again.password("bo")
        assert again.code(codes[3]).status_code == 401
    assert UserStore(settings.home).get("bo").recovery.__len__() == 9
    used = [r for r in read_audit(settings.home) if r["action"] == "login.recovery_code"]
    assert len(used) == 1 and used[0]["left"] == 9


def test_wrong_passwords_lock_the_user_out_even_from_the_right_password(settings):
    secret = add_user(settings.home, "ann", "viewer")
    with studio_running(settings) as (url, clock):
        client = StudioClient(url, clock)
        for _ in range(3):
            assert client.password("ann", "not the password at all").status_code == 401
        assert client.password("ann").status_code == 401  # locked: the right password is refused too
        clock.now += 15 * 60 + 1  # the lockout is time-bounded
        client.login("ann", secret)
    records = read_audit(settings.home)
    assert [r["reason"] for r in records if r["action"] == "login.failed"] == ["password"] * 3 + ["locked"]
    assert [r["target"] for r in records if r["action"] == "login.lockout"] == ["ann"]
    text = (settings.home / "studio" / "audit").glob("*.ndjson")
    assert all(PASSWORD not in p.read_text() and "not the password" not in p.read_text() for p in text)


def test_wrong_totp_codes_lock_the_user_out_and_an_admin_reset_unlocks(settings, tmp_path):
    secret = add_user(settings.home, "ann", "viewer")
    with studio_running(settings) as (url, clock):
        client = StudioClient(url, clock)
        client.password("ann")
        assert client.code("000000").status_code == 401
        client = StudioClient(url, clock)
        assert client.password("ann").status_code == 303  # the right password again forgives no wrong code
        assert client.code("111111").status_code == 401
        form = client.http.get("/totp")
        third = client.http.post("/totp", data={"csrf": csrf_of(form), "code": "222222"})
        assert third.status_code == 303 and third.headers["location"] == "/login"  # locked: the half login ended
        fresh = StudioClient(url, clock)
        assert fresh.password("ann").status_code == 401
        UserStore(settings.home).update("ann", lambda u: revoked(u, failures=0, locked_until=0.0))  # what reset-totp does
        StudioClient(url, clock).login("ann", secret)
    assert [r["action"] for r in read_audit(settings.home)].count("login.lockout") == 1


def test_logins_per_client_address_are_limited(tmp_path):
    settings = studio_settings(tmp_path, login_limit=4, login_window=60, lockout_failures=100)
    with studio_running(settings) as (url, clock):
        client = StudioClient(url, clock)
        statuses = [client.password(f"nobody{i}", "whatever-password").status_code for i in range(5)]
        assert statuses == [401, 401, 401, 401, 429]
        clock.now += 61
        assert client.password("nobody", "whatever-password").status_code == 401


def test_a_session_cookie_after_logout_is_refused(settings):
    secret = add_user(settings.home, "ann", "viewer")
    with studio_running(settings) as (url, clock):
        client = logged_in(url, clock, "ann", secret)
        cookie = client.http.cookies.get("mf_studio")
        home = client.http.get("/")
        out = client.http.post("/logout", data={"csrf": csrf_of(home)})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        replayed = StudioClient(url, clock)
        replayed.http.cookies.set("mf_studio", cookie)  # kept by whoever copied it before the logout
        assert replayed.http.get("/").headers["location"] == "/login"
        assert replayed.http.post("/templates/welcome.html.j2", data={"csrf": csrf_of(home), "text": "x"}).status_code == 403
    assert [r["action"] for r in read_audit(settings.home)] == ["login", "logout"]


def test_an_idle_session_is_refused(settings):
    secret = add_user(settings.home, "ann", "viewer")
    with studio_running(settings) as (url, clock):
        client = logged_in(url, clock, "ann", secret)
        clock.now += 29 * 60
        assert client.http.get("/").status_code == 200  # a request within the idle time keeps it
        clock.now += 30 * 60
        assert client.http.get("/").headers.get("location") == "/login"


def test_a_busy_session_still_ends_after_its_absolute_lifetime(settings):
    secret = add_user(settings.home, "ann", "viewer")
    with studio_running(settings) as (url, clock):
        client = logged_in(url, clock, "ann", secret)
        started = clock.now
        while client.http.get("/").status_code == 200:  # a request every 20 minutes: never idle
            clock.now += 20 * 60
            assert clock.now - started <= 13 * 3600, "the session outlived its 12 hours"
        assert clock.now - started >= 12 * 3600


def test_disabling_a_user_ends_their_sessions(settings):
    secret = add_user(settings.home, "ann", "viewer")
    with studio_running(settings) as (url, clock):
        client = logged_in(url, clock, "ann", secret)
        assert client.http.get("/").status_code == 200
        UserStore(settings.home).update("ann", lambda u: revoked(u, disabled=True))  # `mailflow studio users disable`
        assert client.http.get("/").headers["location"] == "/login"
        assert StudioClient(url, clock).password("ann").status_code == 401
