"""Provider webhook payloads to rows of DESIGN's bounce taxonomy: plain functions over recorded payload shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailflow.tasks.bounces.providers import event_id, mailgun_rows, postmark_rows, sendgrid_rows, ses_rows, verdict

DATA = Path(__file__).parent / "data" / "webhooks"


def load(name: str):
    return json.loads((DATA / name).read_text())


def summary(rows) -> list[tuple]:
    return [(r.type, r.recipient, r.kind, r.reason, r.status, r.smtp_code) for r in rows]


def test_ses_permanent_bounce_is_classified_per_recipient_by_the_rule_table():
    rows = ses_rows(load("ses_bounce.json"), "sns-1")
    # Permanent per SES, but a full mailbox is no proof the address is gone: the rule table says soft
    assert summary(rows) == [("bounce", "jane@example.com", "hard", "user_unknown", "5.1.1", 550),
                             ("bounce", "richard@example.com", "soft", "mailbox_full", "5.2.2", 552)]
    assert rows[0].diagnostic == "550 5.1.1 <address>... User unknown", "no address in what is logged"
    assert rows[0].occurred_at == "2016-01-27T14:59:38.237+00:00"
    assert "Message-ID: <custom-message-ID@example.com>" in rows[0].echoed


def test_ses_transient_bounce_stays_soft_and_takes_its_reason_from_the_subtype_when_the_text_is_generic():
    (row,) = ses_rows(load("ses_bounce_transient.json"), "sns-2")
    assert (row.kind, row.reason, row.custom) == ("soft", "mailbox_full", "none")


def test_ses_suppressed_bounce_without_a_dsn_is_hard():
    (row,) = ses_rows(load("ses_bounce_no_dsn.json"), "sns-3")
    assert (row.kind, row.reason, row.diagnostic) == ("hard", "user_unknown", None)


def test_ses_complaint_is_a_complaint_and_a_delivery_writes_nothing():
    assert summary(ses_rows(load("ses_complaint.json"), "x")) == [
        ("complaint", "richard@example.com", "complaint", "complaint", None, None)]
    assert ses_rows(load("ses_delivery.json"), "x") == []
    not_spam = load("ses_complaint.json")
    not_spam["complaint"]["complaintFeedbackType"] = "not-spam"
    assert ses_rows(not_spam, "x") == []


def test_sendgrid_events_map_to_bounces_complaints_and_unsubscribes():
    rows = sendgrid_rows(load("sendgrid_events.json"))
    assert summary(rows) == [
        ("bounce", "example@test.com", "soft", "unknown", None, 400),  # deferred: retried, soft
        ("bounce", "example@test.com", "hard", "user_unknown", "5.1.1", 550),
        ("bounce", "blocked@test.com", "soft", "reputation_blocked", "5.7.1", 550),  # blocked: never hard
        ("bounce", "dropped@test.com", "hard", "user_unknown", None, None),  # dropped: on SendGrid's bounce list
        ("complaint", "example@test.com", "complaint", "complaint", None, None),
        ("unsubscribe", "example@test.com", None, None, None, None),
        ("unsubscribe", "group@test.com", None, None, None, None)]
    assert rows[1].echoed == "<14c5d75ce93.dfd.64b469@ismtpd-555>" and rows[1].occurred_at.startswith("2017-12-15T")
    assert len({event_id("sendgrid", r) for r in rows}) == len(rows)


def test_sendgrid_custom_arg_names_the_send():
    (row,) = sendgrid_rows([{"event": "spamreport", "email": "a@b.example", "sg_event_id": "x", "mailflow_send": "tok"}])
    assert row.custom == "tok"


def test_postmark_records():
    assert summary(postmark_rows(load("postmark_bounce.json"))) == [
        ("bounce", "john@example.com", "hard", "user_unknown", "5.1.1", 550)]
    assert summary(postmark_rows(load("postmark_soft_bounce.json"))) == [
        ("bounce", "ann@example.com", "soft", "mailbox_full", "5.2.2", 552)]
    assert summary(postmark_rows(load("postmark_spam_complaint.json"))) == [
        ("complaint", "john@example.com", "complaint", "complaint", None, None)]
    assert summary(postmark_rows(load("postmark_subscription_change.json"))) == [
        ("unsubscribe", "bounced-address@wildbit.com", None, None, None, None)]


def test_postmark_hard_bounce_type_with_a_policy_text_is_soft_by_the_same_rules():
    record = load("postmark_bounce.json") | {"Details": "smtp;550 5.7.1 Message rejected due to local policy"}
    (row,) = postmark_rows(record)
    assert (row.kind, row.reason) == ("soft", "policy")


def test_postmark_suppression_for_a_bounce_is_left_to_the_bounce_record():
    change = load("postmark_subscription_change.json") | {"SuppressionReason": "HardBounce"}
    assert postmark_rows(change) == []
    assert postmark_rows(load("postmark_subscription_change.json") | {"SuppressSending": False}) == []


def test_mailgun_events():
    permanent = mailgun_rows(load("mailgun_failed_permanent.json")["event-data"])
    assert summary(permanent) == [("bounce", "alice@example.com", "hard", "user_unknown", "5.1.1", 550)]
    assert "message-id: 20130503192659.13651.20287@sandbox.mailgun.org" in permanent[0].echoed
    assert summary(mailgun_rows(load("mailgun_failed_temporary.json")["event-data"])) == [
        ("bounce", "alice@example.com", "soft", "mailbox_full", "4.2.2", 452)]
    assert summary(mailgun_rows(load("mailgun_complained.json")["event-data"])) == [
        ("complaint", "alice@example.com", "complaint", "complaint", None, None)]
    assert summary(mailgun_rows(load("mailgun_unsubscribed.json")["event-data"])) == [
        ("unsubscribe", "alice@example.com", None, None, None, None)]


def test_mailgun_previously_bounced_address_is_hard_even_with_mailguns_own_code():
    event = load("mailgun_failed_permanent.json")["event-data"]
    event = event | {"reason": "suppress-bounce",
                     "delivery-status": {"code": 605, "message": "", "description": "Not delivering to previously bounced address"}}
    (row,) = mailgun_rows(event)
    assert (row.kind, row.reason, row.smtp_code) == ("hard", "user_unknown", None)


@pytest.mark.parametrize("payload", [None, [], "x", 5, {"event": "failed"}, {"event": "failed", "recipient": 3, "id": []},
                                     {"notificationType": "Bounce", "bounce": {"bouncedRecipients": [None, 1, {"emailAddress": 2}]}},
                                     {"notificationType": "Bounce", "bounce": []}, {"RecordType": "Bounce", "Email": "a@b.c", "Type": 7}])
def test_odd_shapes_give_no_rows_or_sane_rows_never_an_exception(payload):
    for rows_of in (mailgun_rows, postmark_rows, sendgrid_rows):
        assert isinstance(rows_of(payload), list)
    assert isinstance(ses_rows(payload if isinstance(payload, dict) else {}, "id"), list)


def test_a_retried_event_keeps_its_id_and_another_recipient_does_not():
    a, b = ses_rows(load("ses_bounce.json"), "sns-1")
    (again, _) = ses_rows(load("ses_bounce.json"), "sns-2")  # the same feedback in another SNS delivery
    assert event_id("ses", a) == event_id("ses", again) != event_id("ses", b)
    assert event_id("ses", a) != event_id("sendgrid", a)


@pytest.mark.parametrize("text,status,temporary,expected", [
    ("550 5.1.1 user unknown", None, False, ("hard", "user_unknown")),
    ("550 5.1.1 user unknown", None, True, ("soft", "user_unknown")),
    ("451 4.1.1 user unknown, try later", None, False, ("soft", "user_unknown")),
    ("", None, False, ("soft", "unknown")),
    ("Mailbox full", "5.0.0", False, ("soft", "mailbox_full")),
])
def test_verdict_uses_the_shared_rule_table(text, status, temporary, expected):
    v = verdict(text, status, temporary=temporary)
    assert (v.kind, v.reason) == expected


def test_postmark_auto_responder_is_an_auto_reply_and_a_subscribe_record_is_nothing():
    (row,) = postmark_rows(load("postmark_soft_bounce.json") | {"Type": "AutoResponder", "TypeCode": 64})
    assert (row.type, row.kind, row.reason) == ("auto_reply", "auto_reply", "auto_reply")
    assert postmark_rows(load("postmark_soft_bounce.json") | {"Type": "Subscribe", "TypeCode": 32}) == []


def test_provider_retries_are_delay_notices_and_final_failures_are_not():
    sendgrid = [r for r in sendgrid_rows(load("sendgrid_events.json")) if r.type == "bounce"]
    deferred = [r for r in sendgrid if r.delayed]
    assert deferred and all(r.kind == "soft" for r in deferred) and len(deferred) < len(sendgrid)
    assert [r.delayed for r in mailgun_rows(load("mailgun_failed_temporary.json")["event-data"])] == [True]
    assert [r.delayed for r in mailgun_rows(load("mailgun_failed_permanent.json")["event-data"])] == [False]
    assert not any(r.delayed for r in ses_rows(load("ses_bounce_transient.json")))
