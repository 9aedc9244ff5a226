"""Provider webhooks over real HTTP: signed payloads become events and suppressions on disk; anything else, nothing."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import replace
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest

from mailflow.tasks.track.server import running_service
from tests.support.campaign import SECRET_ENV
from tests.support.tracking import event_lines, send_campaign, suppression_lines, track_settings
from tests.support.webhooks import (
    CERT_URL,
    SUBSCRIBE_URL,
    TOPIC,
    RecordingFetcher,
    SendGridSigner,
    SnsSigner,
    mailgun_signed,
)

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent / "data" / "webhooks"
EMAILS = ["ann@example.com", "bob@example.org", "cy@example.net"]
MAILGUN_KEY = "mailgun-signing-key-for-tests"
POSTMARK = ("postmark", "pm-secret-4471")
SNS, SENDGRID = SnsSigner(), SendGridSigner()


def load(name: str):
    return json.loads((DATA / name).read_text())


def hook_settings(home: Path, relay_port: int = 2525, **env: str):
    environ = {**SECRET_ENV, "MAILFLOW_WEBHOOKS__SES_TOPIC_ARNS": json.dumps([TOPIC]),
               "MAILFLOW_WEBHOOKS__SENDGRID_PUBLIC_KEY": SENDGRID.public_key,
               "MAILFLOW_WEBHOOKS__POSTMARK_USERNAME": POSTMARK[0], "MAILFLOW_WEBHOOKS__POSTMARK_PASSWORD": POSTMARK[1],
               "MAILFLOW_WEBHOOKS__MAILGUN_SIGNING_KEY": MAILGUN_KEY, **env}
    return track_settings(home, relay_port, environ=environ)


@pytest.fixture
def sent(home, receiver):
    """(settings, service URL, send tokens by address, fetcher): a campaign sent through the service's links."""
    fetcher = RecordingFetcher(SNS.pem)
    settings = hook_settings(home, receiver.port)
    with running_service(settings, sns_fetch=fetcher) as url:
        sending = replace(settings, tracking=replace(settings.tracking, base_url=url))
        send_campaign(sending, receiver, EMAILS)
        tokens = {m.recipients[0]: message_from_bytes(m.data)["X-Mailflow-Send"] for m in receiver.received}
        yield settings, url, tokens, fetcher


@pytest.fixture
def bare(home):
    """(settings, URL, fetcher): the service with every provider configured and no campaign sent."""
    fetcher = RecordingFetcher(SNS.pem)
    settings = hook_settings(home)
    with running_service(settings, sns_fetch=fetcher) as url:
        yield settings, url, fetcher


def ses_bounce(email: str, token: str | None = None) -> dict:
    event = load("ses_bounce.json")
    event["bounce"]["bouncedRecipients"] = [{"emailAddress": email, "status": "5.1.1", "action": "failed",
                                             "diagnosticCode": f"smtp; 550 5.1.1 <{email}>: Recipient address rejected"}]
    event["mail"]["headers"] = [{"name": "X-Mailflow-Send", "value": token}] if token else []
    return event


def refusals(url: str) -> str:
    return "\n".join(line for line in httpx.get(f"{url}/metrics").text.splitlines()
                     if line.startswith("mailflow_track_webhook_refusals_total"))


def test_a_signed_ses_bounce_is_mapped_by_its_echoed_token_written_and_suppressed_before_the_answer(sent):
    settings, url, tokens, fetcher = sent
    answer = httpx.post(f"{url}/webhooks/ses", content=json.dumps(SNS.notification(ses_bounce(EMAILS[0], tokens[EMAILS[0]]))))
    assert answer.status_code == 200, answer.text
    (event,) = event_lines(settings.home)
    assert {k: event[k] for k in ("type", "campaign_id", "subscriber_id", "variant", "kind", "reason", "status",
                                  "smtp_code", "source", "unmapped")} == {
        "type": "bounce", "campaign_id": "news", "subscriber_id": 1, "variant": "A", "kind": "hard",
        "reason": "user_unknown", "status": "5.1.1", "smtp_code": 550, "source": "webhook:ses", "unmapped": False}
    assert EMAILS[0] not in json.dumps(event), "no address in the event log"
    assert [(s["email"], s["cause"], s["source"]) for s in suppression_lines(settings.home)] == [
        (EMAILS[0], "bounce:user_unknown", "news")]
    assert fetcher.urls == [CERT_URL]


def test_an_ses_complaint_without_headers_maps_by_recipient_and_a_retry_counts_once(sent):
    settings, url, _, fetcher = sent
    complaint = load("ses_complaint.json")
    complaint["complaint"]["complainedRecipients"] = [{"emailAddress": EMAILS[1].upper()}]
    first = SNS.notification(complaint, version="2")
    for body in (first, first, SNS.notification(complaint)):  # SNS retries; the same feedback in a new SNS message
        assert httpx.post(f"{url}/webhooks/ses", content=json.dumps(body)).status_code == 200
    (event,) = event_lines(settings.home)
    assert (event["type"], event["subscriber_id"], event["kind"]) == ("complaint", 2, "complaint")
    assert [(s["email"], s["cause"]) for s in suppression_lines(settings.home)] == [(EMAILS[1], "complaint")]
    assert fetcher.urls == [CERT_URL], "the certificate is fetched once"


def test_a_forged_or_altered_sns_message_gets_401_counted_and_writes_nothing(bare):
    settings, url, _ = bare
    good = SNS.notification(ses_bounce("x@example.com"))
    altered = good | {"Message": good["Message"].replace("x@example.com", "victim@example.com")}
    forged = SnsSigner().notification(ses_bounce("x@example.com"))  # signed by a key that is not the certificate's
    for body in (altered, forged, good | {"Signature": "not base64!"}, good | {"SignatureVersion": "3"}):
        answer = httpx.post(f"{url}/webhooks/ses", content=json.dumps(body))
        assert answer.status_code == 401, answer.text
    assert event_lines(settings.home) == [] and suppression_lines(settings.home) == []
    assert 'mailflow_track_webhook_refusals_total{provider="ses",cause="signature"} 4' in refusals(url)


@pytest.mark.parametrize("cert_url", [
    "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem", "http://sns.eu-west-1.amazonaws.com/cert.pem",
    "https://evil.example/sns.eu-west-1.amazonaws.com/cert.pem", "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
    "https://user@sns.eu-west-1.amazonaws.com/cert.pem", "https://sns.amazonaws.com/cert.pem", "file:///etc/passwd"])
def test_a_certificate_url_off_amazons_sns_hosts_is_refused_without_fetching(bare, cert_url):
    settings, url, fetcher = bare
    answer = httpx.post(f"{url}/webhooks/ses", content=json.dumps(SNS.notification(ses_bounce("x@example.com"),
                                                                                    cert_url=cert_url)))
    assert answer.status_code == 403 and fetcher.urls == []
    assert event_lines(settings.home) == []


def test_a_subscription_is_confirmed_only_when_verified_and_its_url_is_amazons(bare):
    settings, url, fetcher = bare
    assert httpx.post(f"{url}/webhooks/ses", content=json.dumps(SNS.message("SubscriptionConfirmation"))).status_code == 200
    assert fetcher.urls == [CERT_URL, SUBSCRIBE_URL]
    foreign = SNS.message("SubscriptionConfirmation", SubscribeURL="https://evil.example/?Action=ConfirmSubscription")
    assert httpx.post(f"{url}/webhooks/ses", content=json.dumps(foreign)).status_code == 403
    other_topic = SNS.message("SubscriptionConfirmation", topic="arn:aws:sns:eu-west-1:999999999999:theirs")
    assert httpx.post(f"{url}/webhooks/ses", content=json.dumps(other_topic)).status_code == 403
    assert fetcher.urls == [CERT_URL, SUBSCRIBE_URL], "nothing else was fetched"
    assert httpx.post(f"{url}/webhooks/ses", content=b"{not json").status_code == 400
    for odd in ({"Type": ["Notification"]}, {"Type": "Notification"}, []):  # JSON, but no SNS message
        assert httpx.post(f"{url}/webhooks/ses", content=json.dumps(odd)).status_code == 400


def test_a_certificate_fetched_once_is_kept_under_the_home_for_the_next_process(home):
    settings = hook_settings(home)
    with running_service(settings, sns_fetch=RecordingFetcher(SNS.pem)) as url:
        assert httpx.post(f"{url}/webhooks/ses", content=json.dumps(SNS.notification(ses_bounce("a@example.com")))).status_code == 200
    offline = RecordingFetcher(SNS.pem, fail=True)
    with running_service(settings, sns_fetch=offline) as url:
        assert httpx.post(f"{url}/webhooks/ses", content=json.dumps(SNS.notification(ses_bounce("b@example.com")))).status_code == 200
    assert offline.urls == []
    assert {(e["kind"], e["unmapped"]) for e in event_lines(home)} == {("hard", True)}


def test_sendgrid_signed_batch_maps_by_custom_arg_and_recipient_and_unsubscribes(sent):
    settings, url, tokens, _ = sent
    events = [{"email": EMAILS[0], "event": "bounce", "sg_event_id": "e1", "timestamp": 1700000000, "type": "bounce",
               "status": "5.1.1", "reason": "550 5.1.1 user unknown", "mailflow_send": tokens[EMAILS[0]]},
              {"email": EMAILS[1], "event": "group_unsubscribe", "sg_event_id": "e2", "timestamp": 1700000001},
              {"email": EMAILS[2], "event": "deferred", "sg_event_id": "e3", "response": "421 4.7.0 try later"},
              {"email": EMAILS[2], "event": "open", "sg_event_id": "e4"}]
    body = json.dumps(events).encode() + b" " * 20000  # larger than a form post: the route allows batches
    for _ in range(2):  # SendGrid retries a batch it got no 2xx for
        answer = httpx.post(f"{url}/webhooks/sendgrid", content=body, headers=SENDGRID.headers(body))
        assert answer.status_code == 200, answer.text
    got = sorted((e["type"], e["subscriber_id"], e.get("kind"), e.get("method")) for e in event_lines(settings.home))
    assert got == [("bounce", 1, "hard", None), ("bounce", 3, "soft", None), ("unsubscribe", 2, None, "sendgrid")]
    assert sorted((s["email"], s["cause"]) for s in suppression_lines(settings.home)) == [
        (EMAILS[0], "bounce:user_unknown"), (EMAILS[1], "unsubscribe")]


def test_sendgrid_without_or_with_a_wrong_signature_gets_401_and_writes_nothing(bare):
    settings, url, _ = bare
    body = (DATA / "sendgrid_events.json").read_bytes()
    signed = SENDGRID.headers(body)
    cases = [{}, {**signed, "X-Twilio-Email-Event-Webhook-Timestamp": "1"}, SendGridSigner().headers(body),
             {**signed, "X-Twilio-Email-Event-Webhook-Signature": "AAAA"}]
    for headers in cases:
        assert httpx.post(f"{url}/webhooks/sendgrid", content=body, headers=headers).status_code == 401
    assert httpx.post(f"{url}/webhooks/sendgrid", content=body + b"]", headers=SENDGRID.headers(body)).status_code == 401
    assert event_lines(settings.home) == [] and suppression_lines(settings.home) == []
    assert httpx.post(f"{url}/webhooks/sendgrid", content=b"[{", headers=SENDGRID.headers(b"[{")).status_code == 400
    assert 'provider="sendgrid",cause="signature"} 4' in refusals(url)


def test_postmark_needs_its_basic_credentials(bare):
    settings, url, _ = bare
    body = (DATA / "postmark_bounce.json").read_bytes()
    for auth in (None, (POSTMARK[0], "wrong"), ("someone", POSTMARK[1])):
        answer = httpx.post(f"{url}/webhooks/postmark", content=body, auth=auth)
        assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Basic")
    assert event_lines(settings.home) == []
    assert httpx.post(f"{url}/webhooks/postmark", content=body, auth=POSTMARK).status_code == 200
    (event,) = event_lines(settings.home)
    assert (event["type"], event["kind"], event["reason"], event["unmapped"]) == ("bounce", "hard", "user_unknown", True)
    assert [(s["email"], s["cause"], s["source"]) for s in suppression_lines(settings.home)] == [
        ("john@example.com", "bounce:user_unknown", "webhooks")]
    assert httpx.post(f"{url}/webhooks/postmark", content=b"nope", auth=POSTMARK).status_code == 400


def test_mailgun_signature_age_and_token_replay(bare):
    settings, url, _ = bare
    event = load("mailgun_failed_permanent.json")["event-data"]
    signed = mailgun_signed(MAILGUN_KEY, event)
    assert httpx.post(f"{url}/webhooks/mailgun", json=signed).status_code == 200
    assert httpx.post(f"{url}/webhooks/mailgun", json=signed).status_code == 200, "a retry is acknowledged ..."
    assert len(event_lines(settings.home)) == 1, "... and written once"
    other = load("mailgun_complained.json")["event-data"]
    replayed = {"signature": signed["signature"], "event-data": other}  # a captured signature on another body
    assert httpx.post(f"{url}/webhooks/mailgun", json=replayed).status_code == 403
    stale = mailgun_signed(MAILGUN_KEY, other, timestamp=time.time() - 3600)
    assert httpx.post(f"{url}/webhooks/mailgun", json=stale).status_code == 403
    wrong = mailgun_signed("another key", other)
    assert httpx.post(f"{url}/webhooks/mailgun", json=wrong).status_code == 401
    assert httpx.post(f"{url}/webhooks/mailgun", json={"event-data": other}).status_code == 401
    assert [e["type"] for e in event_lines(settings.home)] == ["bounce"]
    assert [s["email"] for s in suppression_lines(settings.home)] == ["alice@example.com"]
    text = refusals(url)
    assert all(f'provider="mailgun",cause="{c}"}} 1' in text for c in ("replayed", "stale", "signature", "missing"))


def test_an_unconfigured_provider_is_404_and_bodies_are_bounded(home):
    with running_service(track_settings(home, 2525)) as url:
        for provider in ("ses", "sendgrid", "postmark", "mailgun"):
            assert httpx.post(f"{url}/webhooks/{provider}", content=b"{}").status_code == 404
    with running_service(hook_settings(home)) as url:
        assert httpx.post(f"{url}/webhooks/mailgun", content=b"x" * (2 * 2**20)).status_code == 413
        assert httpx.get(f"{url}/webhooks/mailgun").status_code == 405


def test_postmark_basic_credentials_in_the_url_as_postmark_sends_them(bare):
    settings, url, _ = bare
    token = base64.b64encode(f"{POSTMARK[0]}:{POSTMARK[1]}".encode()).decode()
    body = (DATA / "postmark_subscription_change.json").read_bytes()
    answer = httpx.post(f"{url}/webhooks/postmark", content=body, headers={"Authorization": f"Basic {token}"})
    assert answer.status_code == 200
    assert event_lines(settings.home) == [], "an unsubscribe that maps to no send is a suppression only"
    assert [(s["email"], s["cause"]) for s in suppression_lines(settings.home)] == [("bounced-address@wildbit.com", "unsubscribe")]


def test_mailgun_maps_by_a_token_in_the_echoed_message_id_and_postmark_by_its_metadata(sent):
    settings, url, tokens, _ = sent
    event = load("mailgun_failed_permanent.json")["event-data"]
    event["recipient"] = "someone-else@example.com"  # not what was sent: only the token can tell
    event["message"]["headers"]["message-id"] = f"{tokens[EMAILS[2]]}.5f3a9c@example.com"
    assert httpx.post(f"{url}/webhooks/mailgun", json=mailgun_signed(MAILGUN_KEY, event)).status_code == 200
    record = load("postmark_spam_complaint.json") | {"Email": "other@example.com", "Metadata": {"mailflow_send": tokens[EMAILS[1]]}}
    assert httpx.post(f"{url}/webhooks/postmark", json=record, auth=POSTMARK).status_code == 200
    got = [(e["type"], e["subscriber_id"], e["unmapped"]) for e in event_lines(settings.home)]
    assert got == [("bounce", 3, False), ("complaint", 2, False)]
