"""Sessions, login limits and the audit log as plain objects: forged cookies, new ids per step, windows, no secrets logged."""

from __future__ import annotations

import json

import pytest

from mailflow.tasks.studio.audit import AuditLog, read_audit
from mailflow.tasks.studio.limits import Window
from mailflow.tasks.studio.sessions import FULL, PASSWORD, Sessions
from tests.support.clock import Clock


@pytest.fixture
def sessions():
    return Sessions(b"k" * 32, absolute_seconds=3600, idle_seconds=600, clock=Clock())


def test_a_cookie_names_its_session_only_with_the_right_signature(sessions):
    session = sessions.start("ann", 0, FULL)
    cookie = sessions.cookie_value(session)
    assert sessions.find(cookie) is session
    sid, _, mac = cookie.rpartition(".")
    assert sessions.find(f"{sid}.{mac[:-1]}A") is None and sessions.find(sid) is None and sessions.find("") is None
    assert sessions.find(f"{sid}.é") is None and sessions.find("é.é") is None  # any text, no error
    other = Sessions(b"x" * 32, 3600, 600)  # another secret signs other cookies
    assert other.find(cookie) is None


def test_each_step_of_a_login_gets_a_new_id_and_token(sessions):
    half = sessions.start("ann", 0, PASSWORD)
    old_cookie, old_csrf = sessions.cookie_value(half), half.csrf
    full = sessions.advance(half, FULL)
    assert sessions.find(old_cookie) is None and full.csrf != old_csrf and sessions.find(sessions.cookie_value(full)) is full


def test_the_login_form_token_is_bound_to_its_nonce(sessions):
    token = sessions.login_token("nonce-1")
    assert sessions.login_token_ok("nonce-1", token)
    assert not sessions.login_token_ok("nonce-2", token) and not sessions.login_token_ok(None, token)
    assert not sessions.login_token_ok("nonce-1", "") and not sessions.login_token_ok("nonce-1", "é")


def test_a_window_counts_attempts_per_key_and_forgets_old_ones():
    clock = Clock()
    window = Window(2, 60, clock)
    assert [window.allow("ip:a"), window.allow("ip:a"), window.allow("ip:a"), window.allow("ip:b")] == [True, True, False, True]
    clock.now += 60
    assert window.allow("ip:a")


def test_audit_lines_are_appended_to_a_private_file_and_never_carry_a_secret(tmp_path):
    log = AuditLog(tmp_path, writer="test")
    log.write("ann", "login", ip="127.0.0.1", method="totp")
    log.write("ann", "logout")
    for key in ("password", "code", "email"):
        with pytest.raises(ValueError, match="never carry"):
            log.write("ann", "login.failed", **{key: "x"})
    log.close()
    files = list((tmp_path / "studio" / "audit").glob("test-*.ndjson"))
    assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == "0o600"
    assert [json.loads(line)["action"] for line in files[0].read_text().splitlines()] == ["login", "logout"]
    assert [r["actor"] for r in read_audit(tmp_path)] == ["ann", "ann"]


def test_only_six_ascii_digits_can_be_a_totp_code():
    import pyotp

    from mailflow.tasks.studio.credentials import totp_step

    secret, now = pyotp.random_base32(), 1_800_000_000.0
    code = pyotp.TOTP(secret).at(now)
    assert totp_step(secret, code, now, 0) == int(now // 30)
    assert totp_step(secret, code, now, int(now // 30)) is None  # used once already
    assert totp_step(secret, "١٢٣٤٥٦", now, 0) is None and totp_step(secret, code[:5], now, 0) is None
