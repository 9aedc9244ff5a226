"""The [webhooks] settings: off by default, secrets from the environment only, bad values one clear line."""

from __future__ import annotations

import pytest

from mailflow.errors import MailflowError
from mailflow.settings import load_settings
from tests.support.webhooks import SendGridSigner


def test_every_provider_is_off_until_configured():
    hooks = load_settings(environ={}).webhooks
    assert not (hooks.ses or hooks.sendgrid or hooks.postmark or hooks.mailgun)


def test_secrets_come_from_the_environment_and_are_never_shown():
    hooks = load_settings(environ={"MAILFLOW_WEBHOOKS__MAILGUN_SIGNING_KEY": "1_000",
                                   "MAILFLOW_WEBHOOKS__POSTMARK_PASSWORD": "pw-91f",
                                   "MAILFLOW_WEBHOOKS__POSTMARK_USERNAME": "pm"}).webhooks
    assert hooks.mailgun_signing_key.reveal() == "1_000", "taken verbatim, not read as a TOML number"
    assert hooks.postmark and "pw-91f" not in repr(hooks)


def test_a_secret_in_overrides_is_refused():
    with pytest.raises(MailflowError, match="MAILFLOW_WEBHOOKS__MAILGUN_SIGNING_KEY"):
        load_settings(overrides={"webhooks": {"mailgun_signing_key": "k"}}, environ={})


def test_ses_topics_are_an_allow_list():
    hooks = load_settings(overrides={"webhooks": {"ses_topic_arns": ["arn:aws:sns:eu-west-1:1:a"]}}, environ={}).webhooks
    assert hooks.ses and hooks.ses_topic_allowed("arn:aws:sns:eu-west-1:1:a") and not hooks.ses_topic_allowed("arn:aws:sns:eu-west-1:1:b")
    assert load_settings(overrides={"webhooks": {"ses_topic_arns": ["*"]}}, environ={}).webhooks.ses_topic_allowed("x")


@pytest.mark.parametrize("webhooks,needle", [
    ({"ses_topic_arns": ["ses-events"]}, "webhooks.ses_topic_arns"),
    ({"sendgrid_public_key": "not a key"}, "webhooks.sendgrid_public_key"),
    ({"sendgrid_public_key": "AAAA"}, "webhooks.sendgrid_public_key"),
    ({"mailgun_max_age": 0}, "webhooks.mailgun_max_age"),
    ({"mailgun_key": "x"}, "unknown key"),
])
def test_bad_webhook_settings_are_one_line(webhooks, needle):
    with pytest.raises(MailflowError, match=needle):
        load_settings(overrides={"webhooks": webhooks}, environ={})


def test_sendgrids_verification_key_is_accepted():
    key = SendGridSigner().public_key
    assert load_settings(overrides={"webhooks": {"sendgrid_public_key": key}}, environ={}).webhooks.sendgrid
