"""The users page over real HTTP: admins add users, disable them and reset their TOTP; every change audited and effective at once."""

from __future__ import annotations

import html

import pytest

from mailflow.tasks.studio.audit import read_audit
from mailflow.tasks.studio.users import UserStore
from tests.support.studio import PASSWORD, StudioClient, add_user, csrf_of, logged_in, studio_running, studio_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def studio(tmp_path):
    settings = studio_settings(tmp_path)
    secrets = {name: add_user(settings.home, name, role) for name, role in (("ada", "admin"), ("eve", "editor"))}
    with studio_running(settings) as (url, clock):
        yield settings, url, clock, secrets


def test_an_admin_adds_a_user_who_then_enrols_at_first_login(studio):
    settings, url, clock, secrets = studio
    ada = logged_in(url, clock, "ada", secrets["ada"])
    added = ada.post_form("/admin/users", name="newbie", role="viewer", password=PASSWORD)
    assert added.status_code == 303 and added.headers["location"] == "/admin/users?done=added"
    assert UserStore(settings.home).get("newbie").role == "viewer"
    assert StudioClient(url, clock).password("newbie").headers["location"] == "/enrol"
    for bad, why in ((dict(name="x@example.com", role="viewer", password=PASSWORD), "no '@'"),
                     (dict(name="other", role="owner", password=PASSWORD), "not one of"),
                     (dict(name="other", role="viewer", password="short"), "at least 12"),
                     (dict(name="newbie", role="admin", password=PASSWORD), "exists already")):
        refused = ada.post_form("/admin/users", page="/admin/users", **bad)
        assert refused.status_code == 400 and why in html.unescape(refused.text)
    assert UserStore(settings.home).get("newbie").role == "viewer" and UserStore(settings.home).get("other") is None
    assert [(r["actor"], r["action"], r["target"], r["role"]) for r in read_audit(settings.home) if r["action"] == "user.added"] == [
        ("ada", "user.added", "newbie", "viewer")]


def test_disabling_from_the_users_page_ends_the_users_session_at_once(studio):
    settings, url, clock, secrets = studio
    ada, eve = logged_in(url, clock, "ada", secrets["ada"]), logged_in(url, clock, "eve", secrets["eve"])
    assert eve.http.get("/").status_code == 200
    done = ada.post_form("/admin/users/eve/disable", page="/admin/users")
    assert done.status_code == 303 and UserStore(settings.home).get("eve").disabled
    assert eve.http.get("/").headers["location"] == "/login"
    assert ada.post_form("/admin/users/ada/disable", page="/admin/users").status_code == 400  # never yourself
    assert ada.post_form("/admin/users/nobody/disable", page="/admin/users").status_code == 404
    assert ada.post_form("/admin/users/eve/promote", page="/admin/users").status_code == 404
    assert ("ada", "user.disable", "eve") in [(r["actor"], r["action"], r["target"]) for r in read_audit(settings.home)]


def test_a_reset_makes_the_user_enrol_again_and_only_admins_may(studio):
    settings, url, clock, secrets = studio
    eve = logged_in(url, clock, "eve", secrets["eve"])
    home = eve.http.get("/")
    assert eve.http.post("/admin/users/ada/reset-totp", data={"csrf": csrf_of(home)}).status_code == 403  # editors may not
    ada = logged_in(url, clock, "ada", secrets["ada"])
    assert ada.post_form("/admin/users/eve/reset-totp", page="/admin/users").status_code == 303
    assert not UserStore(settings.home).get("eve").enrolled
    again = StudioClient(url, clock)
    assert again.password("eve").headers["location"] == "/enrol"
