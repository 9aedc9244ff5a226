"""`mailflow studio users add | list | reset-totp | disable` as a user runs them, and `mailflow studio` refusing to start."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from mailflow.tasks.studio.audit import read_audit
from mailflow.tasks.studio.credentials import check_password
from mailflow.tasks.studio.users import UserStore

PASSWORD = "a long enough password"


def run(home, *args, stdin=None, env=None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_LOGGING", "MAILFLOW_"))} | (env or {})
    return subprocess.run([sys.executable, "-m", "mailflow.cli", "--home", str(home), *args], capture_output=True, text=True,
                          input=stdin, timeout=180, env=environ, umask=0o022)


def test_users_add_list_reset_totp_and_disable(tmp_path):
    home = tmp_path / "home"
    added = run(home, "studio", "users", "add", "ann", "--role", "editor", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "ann added as editor" in added.stdout
    path = home / "studio" / "users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and PASSWORD not in path.read_text()
    user = UserStore(home).get("ann")
    assert user.role == "editor" and check_password(user.password, PASSWORD) and user.password.startswith("$argon2id$")
    UserStore(home).update("ann", lambda u: u.__class__(**{**u.__dict__, "totp_secret": "JBSWY3DPEHPK3PXP",
                                                             "recovery": ("x",), "locked_until": 9e9}))

    listed = run(home, "--json", "studio", "users", "list")
    assert listed.returncode == 0
    assert [(r["name"], r["role"], r["enrolled"], r["locked"]) for r in json.loads(listed.stdout)] == [("ann", "editor", True, True)]
    assert "argon2" not in listed.stdout and "JBSWY3DPEHPK3PXP" not in listed.stdout

    reset = run(home, "studio", "users", "reset-totp", "ann")
    assert reset.returncode == 0, reset.stderr
    after = UserStore(home).get("ann")
    assert (after.totp_secret, after.recovery, after.locked_until, after.epoch) == ("", (), 0.0, user.epoch + 1)

    assert run(home, "studio", "users", "disable", "ann").returncode == 0
    assert UserStore(home).get("ann").disabled and UserStore(home).get("ann").epoch == user.epoch + 2
    assert [r["action"] for r in read_audit(home)] == ["user.added", "user.reset_totp", "user.disable"]
    assert all(r["actor"].startswith("mailflow studio users") for r in read_audit(home))


def test_bad_users_commands_say_why_in_one_line_and_exit_2(tmp_path):
    home = tmp_path / "home"
    cases = [(("studio", "users", "add", "ann@example.com", "--role", "viewer", "--password-stdin"), PASSWORD, "no '@'"),
             (("studio", "users", "add", "ann", "--role", "viewer", "--password-stdin"), "short", "at least 12"),
             (("studio", "users", "disable", "nobody"), None, "no user 'nobody'"),
             (("studio", "users", "reset-totp", "nobody"), None, "no user 'nobody'")]
    for args, stdin, why in cases:
        out = run(home, *args, stdin=stdin)
        assert out.returncode == 2 and why in out.stderr and len(out.stderr.strip().splitlines()) == 1, (args, out.stderr)
    usage = run(home, "studio", "users", "add", "ann", "--role", "owner", "--password-stdin", stdin=PASSWORD)
    assert usage.returncode == 2 and "'owner' is not one of 'viewer', 'editor', 'sender', 'admin'" in usage.stderr  # click's usage error
    assert run(home, "studio", "users", "add", "ann", "--role", "viewer", "--password-stdin", stdin=PASSWORD).returncode == 0
    again = run(home, "studio", "users", "add", "ann", "--role", "admin", "--password-stdin", stdin=PASSWORD)
    assert again.returncode == 2 and "exists already" in again.stderr


def test_the_studio_does_not_start_without_its_secret(tmp_path):
    out = run(tmp_path / "home", "studio", "--port", "1")
    assert out.returncode == 2 and "MAILFLOW_STUDIO__SECRET" in out.stderr and "Traceback" not in out.stderr
