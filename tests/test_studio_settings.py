"""The `[studio]` settings: keys from the file and the environment, checked values, the secret from the environment only."""

from __future__ import annotations

import pytest

from mailflow.errors import MailflowError
from mailflow.settings import load_settings


def test_studio_keys_come_from_the_file_and_the_environment(tmp_path):
    config = tmp_path / "mailflow.toml"
    config.write_text('[studio]\npublic_url = "https://studio.example.com"\nidle_minutes = 10\n')
    studio = load_settings(config, environ={"MAILFLOW_STUDIO__LOCKOUT_FAILURES": "3", "MAILFLOW_STUDIO__SECRET": "1_000"}).studio
    assert (studio.idle_minutes, studio.lockout_failures, studio.secure_cookies) == (10, 3, True)
    assert studio.secret.reveal() == "1_000" and "1_000" not in repr(studio)  # verbatim, and never shown
    assert not load_settings(environ={}).studio.secure_cookies  # plain http on loopback by default


@pytest.mark.parametrize("key,value", [("idle_minutes", "0"), ("lockout_failures", "-1"), ("login_limit", "many"),
                                       ("public_url", "studio.example.com")])
def test_a_bad_studio_value_names_its_key(key, value):
    with pytest.raises(MailflowError, match=f"studio.{key}"):
        load_settings(environ={f"MAILFLOW_STUDIO__{key.upper()}": value})


def test_the_studio_secret_is_never_taken_from_a_file_or_overrides(tmp_path):
    config = tmp_path / "mailflow.toml"
    config.write_text('[studio]\nsecret = "0123456789012345678901234567890123456789"\n')
    with pytest.raises(MailflowError, match="studio.secret must not be in a file"):
        load_settings(config, environ={})
    with pytest.raises(MailflowError, match="MAILFLOW_STUDIO__SECRET"):
        load_settings(overrides={"studio": {"secret": "x" * 40}}, environ={})
