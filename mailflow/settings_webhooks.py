"""The [webhooks] settings: which providers' event webhooks the tracking service answers, and their keys."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from mailflow.errors import MailflowError
from mailflow.secret import Secret
from mailflow.setting_values import as_list, positive_int

DEFAULTS: dict[str, Any] = {"ses_topic_arns": [], "sendgrid_public_key": "", "postmark_username": "",
                            "postmark_password": "", "mailgun_signing_key": "", "mailgun_max_age": 300}


@dataclass(frozen=True)
class WebhookSettings:
    """An endpoint answers 404 until its provider is configured here."""

    # POST /webhooks/ses: the SNS topics whose notifications are believed. Any AWS account can point a topic of
    # its own at the URL and sign with Amazon's key, so the endpoint is off until topics are listed ("*": any).
    ses_topic_arns: tuple[str, ...] = ()
    sendgrid_public_key: str = ""  # POST /webhooks/sendgrid: the Signed Event Webhook's verification key (base64)
    postmark_username: str = ""  # POST /webhooks/postmark: HTTP Basic credentials put in the webhook's URL
    postmark_password: Secret = field(default_factory=Secret)  # MAILFLOW_WEBHOOKS__POSTMARK_PASSWORD
    mailgun_signing_key: Secret = field(default_factory=Secret)  # MAILFLOW_WEBHOOKS__MAILGUN_SIGNING_KEY
    mailgun_max_age: int = 300  # seconds: an older (or future) Mailgun signature timestamp is refused

    @property
    def ses(self) -> bool:
        return bool(self.ses_topic_arns)

    @property
    def sendgrid(self) -> bool:
        return bool(self.sendgrid_public_key)

    @property
    def postmark(self) -> bool:
        return bool(self.postmark_username) and bool(self.postmark_password)

    @property
    def mailgun(self) -> bool:
        return bool(self.mailgun_signing_key)

    def ses_topic_allowed(self, arn: str) -> bool:
        return "*" in self.ses_topic_arns or arn in self.ses_topic_arns


def webhook_settings(tree: dict[str, Any], secret) -> WebhookSettings:
    """`secret(value, *keys)` makes a Secret that re-reads itself from its source after pickling."""
    unknown = set(tree) - set(DEFAULTS)
    if unknown:
        raise MailflowError(f"settings: unknown key(s) {sorted(unknown)} in [webhooks] (known: {', '.join(DEFAULTS)})")
    key = str(tree["sendgrid_public_key"]).strip()
    if key and not _ec_key(key):
        raise MailflowError("settings: webhooks.sendgrid_public_key is not an elliptic-curve public key in base64 "
                            "(paste the verification key SendGrid shows)")
    topics = tuple(str(t).strip() for t in as_list(tree["ses_topic_arns"], "webhooks.ses_topic_arns"))
    for arn in topics:
        if arn != "*" and not arn.startswith("arn:aws"):
            raise MailflowError(f"settings: webhooks.ses_topic_arns must list SNS topic ARNs (arn:aws:sns:...) or \"*\", not {arn!r}")
    return WebhookSettings(
        ses_topic_arns=topics, sendgrid_public_key=key, postmark_username=str(tree["postmark_username"]),
        postmark_password=secret(tree["postmark_password"], "webhooks", "postmark_password"),
        mailgun_signing_key=secret(tree["mailgun_signing_key"], "webhooks", "mailgun_signing_key"),
        mailgun_max_age=positive_int(tree["mailgun_max_age"], "webhooks.mailgun_max_age"))


def _ec_key(text: str) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ec  # only when SendGrid is configured
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    try:
        return isinstance(load_der_public_key(base64.b64decode(text, validate=True)), ec.EllipticCurvePublicKey)
    except (binascii.Error, ValueError, TypeError):
        return False
