"""Amazon SNS messages: signature verification with the signing certificate (fetched only from Amazon's SNS hosts, cached)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import threading
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailflow.tasks.files.atomic import atomic_write

# The only hosts a certificate or a subscription URL is fetched from: what the AWS SDKs' message validators accept
SNS_HOST = re.compile(r"sns\.[a-z0-9-]{3,}\.amazonaws\.com(?:\.cn)?")
FETCH_SECONDS = 10.0
MAX_FETCH = 65536  # a PEM certificate, or the confirmation's XML answer
# Fields signed, in this order (those a message lacks are left out: Subject is optional)
SIGNED = {"Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
          "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
          "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")}
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}  # SignatureVersion: 1 = SHA1withRSA, 2 = SHA256withRSA

Fetch = Callable[[str], bytes]  # GET an https URL (already checked against SNS_HOST), its body


class SnsRefused(Exception):
    """Why a message is not believed; `cause` is a metrics label (a value, not a sentence)."""

    def __init__(self, cause: str, text: str):
        super().__init__(text)
        self.cause = cause


def sns_url(url) -> bool:
    """An https URL on an SNS host: the only kind fetched (a certificate, a subscription to confirm)."""
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        port = parts.port if parts else None
    except ValueError:
        return False
    return (parts is not None and parts.scheme == "https" and port in (None, 443) and parts.username is None
            and parts.password is None and SNS_HOST.fullmatch(parts.hostname or "") is not None)


def canonical(message: dict) -> bytes:
    """The string SNS signs: each signed field's name and value, one per line."""
    kind = message.get("Type")
    fields = SIGNED.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise SnsRefused("malformed", f"not an SNS message type: {str(message.get('Type'))[:40]!r}")
    out = []
    for name in fields:
        value = message.get(name)
        if value is None and name == "Subject":
            continue
        if not isinstance(value, str):
            raise SnsRefused("malformed", f"SNS message without {name}")
        out.append(f"{name}\n{value}\n")
    return "".join(out).encode()


def default_fetch(url: str) -> bytes:
    """GET over https with the system's trust store; never follows a redirect off the checked host."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    with opener.open(urllib.request.Request(url, headers={"User-Agent": "mailflow"}), timeout=FETCH_SECONDS) as answer:
        return answer.read(MAX_FETCH)


class SnsVerifier:
    """Checks SNS messages' signatures. Certificates are kept in memory and under `cache_dir` (one file per URL),
    so a restart fetches nothing; `fetch` is called (off the event loop) only for an SNS host's https URL."""

    def __init__(self, cache_dir: Path, fetch: Fetch | None = None):
        self.cache_dir, self.fetch = cache_dir, fetch or default_fetch
        self._certs: dict[str, x509.Certificate] = {}
        self._lock = threading.Lock()

    def verify(self, message: dict) -> None:
        """Return if the message is Amazon's, else raise SnsRefused. May fetch: call it off the event loop."""
        text = canonical(message)
        algorithm = HASHES.get(str(message.get("SignatureVersion")))
        if algorithm is None:
            raise SnsRefused("signature", f"unknown SignatureVersion {str(message.get('SignatureVersion'))[:8]!r}")
        url = message.get("SigningCertURL")
        if not sns_url(url):
            raise SnsRefused("cert_url", "SigningCertURL is not an https URL on an sns.<region>.amazonaws.com host")
        try:
            signature = base64.b64decode(str(message.get("Signature") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise SnsRefused("signature", "Signature is not base64") from None
        key = self.certificate(url).public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsRefused("signature", "the signing certificate's key is not RSA")
        try:
            key.verify(signature, text, padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise SnsRefused("signature", "bad SNS signature") from None

    def certificate(self, url: str) -> x509.Certificate:
        with self._lock:  # one fetch per certificate, however many requests wait for it
            cert = self._certs.get(url)
            if cert is None:
                cert = self._load(url)
                self._certs[url] = cert
        now = datetime.now(UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            with self._lock:
                self._certs.pop(url, None)
            raise SnsRefused("signature", "the signing certificate is not valid now")
        return cert

    def _load(self, url: str) -> x509.Certificate:
        path = self.cache_dir / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".pem")
        try:
            return x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            pass  # not cached yet (or damaged): fetched again
        try:
            pem = self.fetch(url)
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise SnsRefused("cert_fetch", "the signing certificate is not a PEM certificate") from None
        except OSError as exc:
            raise SnsRefused("cert_fetch", f"cannot fetch the signing certificate: {exc.__class__.__name__}") from None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: tmp.write_bytes(pem))
        except OSError:
            pass  # kept in memory; the next process fetches it again
        return cert

    def confirm(self, message: dict) -> None:
        """Confirm a verified SubscriptionConfirmation by fetching its SubscribeURL (an SNS host's, nothing else)."""
        url = message.get("SubscribeURL")
        if not sns_url(url):
            raise SnsRefused("subscribe_url", "SubscribeURL is not an https URL on an sns.<region>.amazonaws.com host")
        try:
            self.fetch(url)
        except OSError as exc:
            raise SnsRefused("confirm_failed", f"cannot confirm the subscription: {exc.__class__.__name__}") from None
