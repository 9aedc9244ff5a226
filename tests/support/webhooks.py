"""Providers' side of the webhooks in tests: a throwaway SNS signing certificate, SNS/SendGrid/Mailgun signatures."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
SUBSCRIBE_URL = ("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:eu-west-1:"
                 "123456789012:ses-events&Token=2336412f37fb687f5d51e6e2425")
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-events"
# What SNS signs, written out from Amazon's documentation (not the service's code, so a mistake there shows)
SIGNED_FIELDS = {"Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
                 "SubscriptionConfirmation": ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]}


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


@dataclass
class SnsSigner:
    """A CA, and a certificate it issued for "sns.amazonaws.com" whose key signs messages, as Amazon's does."""

    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    pem: bytes = b""

    def __post_init__(self):
        ca_key = rsa.generate_private_key(65537, 2048)
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(_name("sns.amazonaws.com")).issuer_name(_name("Test CA"))
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
                .sign(ca_key, hashes.SHA256()))
        self.pem = cert.public_bytes(serialization.Encoding.PEM)

    def message(self, kind: str = "Notification", *, version: str = "1", cert_url: str = CERT_URL, topic: str = TOPIC,
                **fields) -> dict:
        message = {"Type": kind, "MessageId": str(uuid.uuid4()), "TopicArn": topic, "Message": "{}",
                   "Timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                   "SignatureVersion": version, "SigningCertURL": cert_url, **fields}
        if kind == "SubscriptionConfirmation":
            message.setdefault("SubscribeURL", SUBSCRIBE_URL)
            message.setdefault("Token", "2336412f37fb687f5d51e6e2425")
        text = "".join(f"{name}\n{message[name]}\n" for name in SIGNED_FIELDS[kind] if name in message)
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        message["Signature"] = base64.b64encode(self.key.sign(text.encode(), padding.PKCS1v15(), digest)).decode()
        return message

    def notification(self, ses_event: dict, **fields) -> dict:
        return self.message("Notification", Message=json.dumps(ses_event), **fields)


class RecordingFetcher:
    """The injected https GET: serves the certificate, records every URL asked for."""

    def __init__(self, pem: bytes, fail: bool = False):
        self.pem, self.fail, self.urls = pem, fail, []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        if self.fail:
            raise OSError("no network in tests")
        return self.pem if url.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"


@dataclass
class SendGridSigner:
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_key(self) -> str:
        """As SendGrid shows it: base64 of the DER SubjectPublicKeyInfo."""
        der = self.key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: str | None = None) -> dict:
        timestamp = timestamp or str(int(time.time()))
        signature = self.key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": timestamp, "Content-Type": "application/json"}


def mailgun_signed(key: str, event_data: dict, *, timestamp: float | None = None, token: str | None = None) -> dict:
    timestamp_text = str(int(time.time() if timestamp is None else timestamp))
    token = token or uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = hmac.new(key.encode(), (timestamp_text + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": timestamp_text, "token": token, "signature": signature}, "event-data": event_data}
