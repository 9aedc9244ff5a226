"""What the studio lets through over real HTTP: CSRF on every form, roles, template names, cookies and headers."""

from __future__ import annotations

import pytest
from starlette.routing import Route

from mailflow.tasks.studio.app import routes
from mailflow.tasks.studio.audit import read_audit
from mailflow.tasks.studio.catalogue import digest
from tests.support.studio import PASSWORD, StudioClient, add_user, csrf_of, loaded_of, logged_in, studio_running, studio_settings

pytestmark = pytest.mark.integration
OPEN = {"/login", "/totp", "/enrol", "/static/{name}", "/healthz"}  # before a login, or files: every other route needs a role


@pytest.fixture
def settings(tmp_path):
    return studio_settings(tmp_path)


@pytest.fixture
def studio(settings):
    users = {name: add_user(settings.home, name, role) for name, role in
             (("vic", "viewer"), ("eve", "editor"), ("ada", "admin"))}
    with studio_running(settings) as (url, clock):
        clients = {name: logged_in(url, clock, name, secret) for name, secret in users.items()}
        yield url, clock, clients
        for client in clients.values():
            client.close()


def test_every_route_after_login_requires_a_role():
    for route in routes():
        assert isinstance(route, Route)
        if route.path not in OPEN:
            assert getattr(route.endpoint, "role", None), f"{route.path} has no require(role)"


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused_with_403(studio, settings):
    _, _, clients = studio
    eve = clients["eve"].http
    before = (settings.templates_dir / "welcome.html.j2").read_text()
    page = eve.get("/templates/welcome.html.j2")
    loaded = loaded_of(page)
    assert eve.post("/templates/welcome.html.j2", data={"text": "x", "loaded": loaded}).status_code == 403
    assert eve.post("/templates/welcome.html.j2", data={"csrf": "forged", "text": "x", "loaded": loaded}).status_code == 403
    other = clients["vic"].http.get("/").text  # another session's token is wrong for this one
    assert eve.post("/templates/welcome.html.j2", data={"csrf": csrf_of_text(other), "text": "x", "loaded": loaded}).status_code == 403
    assert eve.post("/logout", data={}).status_code == 403 and eve.get("/").status_code == 200  # still logged in
    assert (settings.templates_dir / "welcome.html.j2").read_text() == before


def csrf_of_text(text: str) -> str:
    import re
    return re.search(r'name="csrf" value="([^"]+)"', text).group(1)


def test_the_login_form_checks_its_csrf_token_too(settings):
    add_user(settings.home, "ann", "viewer")
    with studio_running(settings) as (url, clock):
        client = StudioClient(url, clock)
        client.http.get("/login")
        refused = client.http.post("/login", data={"name": "ann", "password": "correct horse battery staple"})
        assert refused.status_code == 403 and "mf_studio" not in client.http.cookies
        stranger = StudioClient(url, clock)  # a token from another visitor's login page is bound to their cookie
        token = csrf_of(stranger.http.get("/login"))
        assert client.http.post("/login", data={"csrf": token, "name": "ann",
                                                "password": "correct horse battery staple"}).status_code == 403


def test_an_editor_saves_a_template_and_a_viewer_cannot(studio, settings):
    _, _, clients = studio
    path = settings.templates_dir / "welcome.html.j2"
    before = path.read_text()
    vic = clients["vic"]
    page = vic.http.get("/templates/welcome.html.j2")
    assert "readonly" in page.text and 'id="save"' not in page.text
    denied = vic.http.post("/templates/welcome.html.j2", data={"csrf": csrf_of(page), "loaded": loaded_of(page), "text": "<p>vic</p>"})
    assert denied.status_code == 403 and path.read_text() == before
    eve = clients["eve"]
    page = eve.http.get("/templates/welcome.html.j2")
    saved = eve.http.post("/templates/welcome.html.j2",
                          data={"csrf": csrf_of(page), "loaded": loaded_of(page), "text": "<p>Hi {{ subscriber.first_name }}</p>\r\n"})
    assert saved.status_code == 303 and saved.headers["location"] == "/templates/welcome.html.j2?saved=1"
    assert path.read_text() == "<p>Hi {{ subscriber.first_name }}</p>\n"  # the textarea's CRLF as the file's LF
    record = [r for r in read_audit(settings.home) if r["action"] == "template.saved"]
    assert [(r["actor"], r["target"], r["before"], r["after"]) for r in record] == [
        ("eve", "welcome.html.j2", digest(before), digest(path.read_text()))]


def test_saving_refuses_to_overwrite_a_file_changed_on_disk_since_it_was_loaded(studio, settings):
    _, _, clients = studio
    path = settings.templates_dir / "welcome.html.j2"
    eve = clients["eve"]
    page = eve.http.get("/templates/welcome.html.j2")
    path.write_text("<p>changed by git pull</p>\n")
    refused = eve.http.post("/templates/welcome.html.j2", data={"csrf": csrf_of(page), "loaded": loaded_of(page), "text": "<p>mine</p>"})
    assert refused.status_code == 409 and "changed on disk" in refused.text
    assert path.read_text() == "<p>changed by git pull</p>\n" and "changed by git pull" in refused.text


@pytest.mark.parametrize("name", ["..%2F..%2Fetc%2Fpasswd", "..%2Fsecret.html.j2", "%2Fetc%2Fpasswd.html.j2", ".hidden.html.j2",
                                  "a..b.html.j2", "we%20lcome.html.j2", "welcome.html", "link.html.j2"])
def test_template_names_that_leave_the_folder_or_are_odd_are_refused(studio, settings, tmp_path, name):
    _, _, clients = studio
    outside = tmp_path / "secret.html.j2"
    outside.write_text("top secret")
    (settings.templates_dir / "link.html.j2").symlink_to(outside)
    eve = clients["eve"]
    shown = eve.http.get(f"/templates/{name}")
    assert shown.status_code in (400, 404) and "top secret" not in shown.text
    csrf = csrf_of(eve.http.get("/"))
    saved = eve.http.post(f"/templates/{name}", data={"csrf": csrf, "loaded": digest("top secret"), "text": "owned"})
    assert saved.status_code in (400, 404) and outside.read_text() == "top secret"
    assert "link.html.j2" not in eve.http.get("/").text  # symlinks are not listed


def test_only_admins_see_the_users_page(studio):
    _, _, clients = studio
    assert clients["eve"].http.get("/admin/users").status_code == 403
    users = clients["ada"].http.get("/admin/users")
    assert users.status_code == 200 and all(name in users.text for name in ("vic", "eve", "ada"))
    assert "argon2" not in users.text


def test_pages_carry_a_strict_policy_and_cookies_are_httponly_and_strict(settings):
    secret = add_user(settings.home, "ann", "viewer")
    with studio_running(settings) as (url, clock):
        client = StudioClient(url, clock)
        login = client.http.get("/login")
        policy = login.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "style-src 'self'" in policy
        assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
        assert "<script" not in login.text and "<style" not in login.text and "http" not in login.text.split("<body>")[1]
        assert client.http.get("/static/studio.css").headers["content-type"].startswith("text/css")
        assert client.http.get("/static/..%2Fpages%2Fpage.css").status_code == 404
        client.password("ann")
        done = client.code(client.totp(secret))
        cookie = done.headers["set-cookie"].lower()
        assert cookie.startswith("mf_studio=") and "httponly" in cookie and "samesite=strict" in cookie
        assert "secure" not in cookie  # plain http on loopback: a Secure cookie would never come back


def test_behind_https_the_cookie_is_secure_and_host_only(tmp_path):
    settings = studio_settings(tmp_path, public_url="https://studio.example.com")
    add_user(settings.home, "ann", "viewer")
    with studio_running(settings) as (url, clock):
        client = StudioClient(url, clock)
        form = client.http.get("/login")
        login_cookie = form.headers["set-cookie"]
        assert login_cookie.startswith("mf_login=") and "Secure" in login_cookie
        # httpx keeps Secure cookies from plain http: sent by hand, as a browser does over https
        nonce = login_cookie.split(";")[0].split("=", 1)[1]
        first = client.http.post("/login", data={"csrf": csrf_of(form), "name": "ann", "password": PASSWORD},
                                 headers={"cookie": f"mf_login={nonce}"})
        assert first.status_code == 303
        cookie = [v for k, v in first.headers.multi_items() if k == "set-cookie" and v.startswith("__Host-")][0]
        assert "Secure" in cookie and "HttpOnly" in cookie and "Domain" not in cookie and "Path=/" in cookie


def test_the_studio_refuses_to_start_without_a_strong_secret(tmp_path):
    from mailflow.errors import MailflowError
    from mailflow.settings import load_settings
    from mailflow.tasks.studio.server import check

    with pytest.raises(MailflowError, match="MAILFLOW_STUDIO__SECRET"):
        check(load_settings(overrides={"home": str(tmp_path)}, environ={}))
    with pytest.raises(MailflowError, match="at least 32"):
        check(load_settings(overrides={"home": str(tmp_path)}, environ={"MAILFLOW_STUDIO__SECRET": "short"}))
    config = tmp_path / "mailflow.toml"
    config.write_text('[studio]\nsecret = "0123456789012345678901234567890123456789"\n')
    with pytest.raises(MailflowError, match="must not be in a file"):
        load_settings(config, environ={})


def test_odd_and_oversized_forms_are_refused_not_crashed_on(studio):
    url, clock, clients = studio
    stranger = StudioClient(url, clock)
    form = stranger.http.get("/login")
    big = stranger.http.post("/login", data={"csrf": csrf_of(form), "name": "x" * 10_000, "password": "y"})
    assert big.status_code == 413
    assert stranger.http.post("/login", data={"csrf": "é", "name": "ann", "password": "y"}).status_code == 403
    eve = clients["eve"].http
    assert eve.post("/logout", data={"csrf": "é"}).status_code == 403
    assert eve.post("/logout", content=b"\xff\xfe", headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 403
    assert eve.get("/").status_code == 200


def test_only_loopback_names_and_the_public_host_are_answered(tmp_path):
    plain = studio_settings(tmp_path / "a")
    with studio_running(plain) as (url, _):
        client = StudioClient(url, None)
        assert client.http.get("/login").status_code == 200
        assert client.http.get("/login", headers={"host": "localhost:1"}).status_code == 200
        assert client.http.get("/login", headers={"host": "rebound.example"}).status_code == 400  # DNS rebinding
    public = studio_settings(tmp_path / "b", public_url="https://studio.example.com")
    with studio_running(public) as (url, _):
        client = StudioClient(url, None)
        assert client.http.get("/login", headers={"host": "studio.example.com"}).status_code == 200
        assert client.http.get("/login", headers={"host": "other.example.com"}).status_code == 400
