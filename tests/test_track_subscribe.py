"""Subscribing with double opt-in over real HTTP: the form, the confirmation mail through the pool, the confirm link."""

from __future__ import annotations

import email
import re
import time
from datetime import UTC, datetime, timedelta
from email.policy import default

import httpx
import pytest

from mailflow.tasks.track.htmlpage import render_text
from mailflow.tasks.track.optin import ADDRESS_MAILS, InvalidAddress, OptinStore, RateLimit, canonical_address, confirm_token
from mailflow.tasks.track.server import running_service
from tests.support.pages import events, path_of, signer, with_tracking

FORM = {"email": "New.Reader@Example.COM", "first_name": "Nia", "form_version": "2026-11-footer", "website": ""}
CHECK_INBOX = "Check your inbox"


@pytest.fixture
def subscribe_settings(settings):
    return with_tracking(settings, public_lists=("newsletter",), subscribe_limit=3)


@pytest.fixture
def client(subscribe_settings):
    with running_service(subscribe_settings) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http


def wait_for_mail(receiver, count: int = 1, bound: float = 30.0) -> list:
    deadline = time.monotonic() + bound
    while len(receiver.received) < count and time.monotonic() < deadline:
        time.sleep(0.02)  # polling the condition (the mail is sent after the answer), bounded
    assert len(receiver.received) >= count, "the confirmation mail did not arrive"
    return receiver.received


def confirm_link(received) -> str:
    message = email.message_from_bytes(received.data, policy=default)
    text = message.get_body(("plain",)).get_content()
    return re.search(r"https?://\S+/s/confirm/\S+", text).group(0)


def test_a_subscription_sends_a_confirmation_whose_link_records_the_consent(client, receiver, home):
    answer = client.post("/s/newsletter", data=FORM)
    assert answer.status_code == 200 and CHECK_INBOX in answer.text
    [pending] = events(home, "optin_pending")
    assert (pending["list"], pending["form_version"]) == ("newsletter", "2026-11-footer")
    assert "example" not in str(pending).lower()  # no address in the line
    [mail] = wait_for_mail(receiver)
    assert mail.recipients == ["New.Reader@example.com"]  # the domain lower-cased, as ingest stores it
    link = confirm_link(mail)
    assert "reader" not in link.lower() and "example" not in link.lower().split("/s/confirm/")[1]  # no address in the URL
    confirmed = client.get(path_of(link))
    assert confirmed.status_code == 200 and "Subscription confirmed" in confirmed.text
    [event] = events(home, "optin_confirmed")
    assert (event["email"], event["list"], event["first_name"], event["form_version"]) == \
        ("New.Reader@example.com", "newsletter", "Nia", "2026-11-footer")
    assert event["consented_at"] <= event["occurred_at"] and event["ip"] == "127.0.0.0"  # truncated, per the default
    again = client.get(path_of(link))  # a second click thanks again and records nothing more
    assert again.status_code == 200 and len(events(home, "optin_confirmed")) == 1


def test_the_confirmation_mail_shows_nothing_the_form_sender_typed(client, receiver, home):
    # Anyone may post the form for any address: a name field shown in the mail would carry their text to anyone
    typed = "Win at https://spam.example/now <b>today</b>"
    assert client.post("/s/newsletter", data={**FORM, "first_name": typed}).status_code == 200
    [mail] = wait_for_mail(receiver)
    message = email.message_from_bytes(mail.data, policy=default)
    shown = mail.data.decode("utf-8", "replace") + message.get_body(("plain",)).get_content() + \
        message.get_body(("html",)).get_content()
    assert "spam.example" not in shown and "Win at" not in shown and "today" not in shown
    assert "newsletter" in message.get_body(("plain",)).get_content()


def test_the_confirmation_mail_text_part_is_not_html_escaped():
    context = {"list": "Tips & <News>", "confirm_url": "http://t.example/s/confirm/x?a=1&b=2", "valid_hours": 48}
    text, html = render_text("confirm_email.txt.j2", **context), render_text("confirm_email.html.j2", **context)
    assert '"Tips & <News>"' in text and "http://t.example/s/confirm/x?a=1&b=2" in text and "&amp;" not in text
    assert "Tips &amp; &lt;News&gt;" in html  # the HTML part stays escaped


def test_a_head_request_on_the_confirmation_link_records_no_consent(client, receiver, home):
    assert client.post("/s/newsletter", data=FORM).status_code == 200
    link = path_of(confirm_link(wait_for_mail(receiver)[0]))
    assert client.head(link).status_code == 200  # link checkers ask HEAD: answered, nothing claimed
    assert events(home, "optin_confirmed") == []
    assert "Subscription confirmed" in client.get(link).text and len(events(home, "optin_confirmed")) == 1


def test_every_accepted_form_gets_the_same_answer(client, receiver, home):
    answers = [client.post("/s/newsletter", data={**FORM, "email": address}) for address in ("a@example.com", "a@example.com")]
    answers.append(client.post("/s/newsletter", data={**FORM, "email": "b@example.com", "website": "http://spam"}))
    assert {(a.status_code, a.text) for a in answers} == {(200, answers[0].text)}


def test_the_honeypot_stores_and_sends_nothing(client, receiver, home):
    assert client.post("/s/newsletter", data={**FORM, "website": "http://spam.example"}).status_code == 200
    assert events(home) == [] and not (home / "optins").exists()
    client.post("/s/newsletter", data=FORM)  # a person's form after it: its mail is the only one
    [mail] = wait_for_mail(receiver)
    assert mail.recipients == ["New.Reader@example.com"]


def test_requests_over_the_per_client_limit_are_refused_and_store_nothing(client, home):
    statuses = [client.post("/s/newsletter", data={**FORM, "email": f"r{n}@example.com"}).status_code for n in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert len(events(home, "optin_pending")) == 3
    assert len(list((home / "optins" / "pending").iterdir())) == 3


@pytest.mark.parametrize("ip", ["none", "truncate", "hash"])
def test_the_per_client_limit_counts_each_client_behind_a_trusted_proxy_whatever_the_logs_keep(settings, ip):
    # The logs may keep no address or only its network; the limit still tells clients apart, not the proxy
    proxied = with_tracking(settings, public_lists=("newsletter",), subscribe_limit=1, ip=ip, trusted_proxies=("127.0.0.1",))
    with running_service(proxied) as url, httpx.Client(base_url=url, timeout=30) as http:
        statuses = [http.post("/s/newsletter", data={**FORM, "email": f"p{n}@example.com"},
                              headers={"X-Forwarded-For": client}).status_code
                    for n, client in enumerate(["203.0.113.7", "203.0.113.8", "203.0.113.7"])]
    assert statuses == [200, 200, 429]


def test_one_address_gets_a_bounded_number_of_confirmation_mails_however_many_clients_post_it(settings, receiver,
                                                                                                 home):
    proxied = with_tracking(settings, public_lists=("newsletter",), trusted_proxies=("127.0.0.1",))
    with running_service(proxied) as url, httpx.Client(base_url=url, timeout=30) as http:
        answers = [http.post("/s/newsletter", data={**FORM, "email": "victim@example.com"},
                             headers={"X-Forwarded-For": f"198.51.100.{n}"}) for n in range(ADDRESS_MAILS + 2)]
        other = http.post("/s/newsletter", data={**FORM, "email": "other@example.com"}, headers={"X-Forwarded-For": "198.51.100.99"})
    assert {(a.status_code, a.text) for a in answers} == {(200, other.text)}  # nothing tells the posts apart
    assert len(wait_for_mail(receiver, ADDRESS_MAILS + 1)) == ADDRESS_MAILS + 1
    assert len(events(home, "optin_pending")) == ADDRESS_MAILS + 1  # a mail goes out only for a stored opt-in
    assert len(list((home / "optins" / "pending").iterdir())) == ADDRESS_MAILS + 1


def test_an_unknown_list_or_a_bad_address_stores_nothing(client, home):
    assert client.post("/s/internal", data=FORM).status_code == 404
    assert client.post("/s/newsletter", data={**FORM, "email": "not an address"}).status_code == 400
    assert events(home) == []


def test_an_expired_confirmation_link_says_so_once_and_logs_optin_expired(client, subscribe_settings, home):
    store = OptinStore(home)
    old = store.create("late@example.com", "", "newsletter", "v1", None, timedelta(hours=48),
                       now=datetime.now(UTC) - timedelta(hours=49))
    link = f"/s/confirm/{confirm_token(signer(subscribe_settings), old)}"
    first = client.get(link)
    assert first.status_code == 410 and "expired" in first.text
    assert client.get(link).status_code == 410
    [expired] = events(home, "optin_expired")
    assert expired["list"] == "newsletter" and events(home, "optin_confirmed") == []


def test_a_forged_or_foreign_confirmation_link_is_not_found(client, subscribe_settings, home):
    store = OptinStore(home)
    optin = store.create("x@example.com", "", "newsletter", "v1", None, timedelta(hours=1))
    wrong_purpose = signer(subscribe_settings).sign("optin:newsletter", optin.optin_id, "unsubscribe")
    other_list = signer(subscribe_settings).sign("optin:other", optin.optin_id, "optin")
    for token in ("forged", wrong_purpose, other_list):
        assert client.get(f"/s/confirm/{token}").status_code == 404
    assert events(home) == []


def test_the_rate_limit_forgets_old_windows_and_keeps_a_bounded_number_of_clients():
    now = [0.0]
    limit = RateLimit(2, 60, capacity=3, clock=lambda: now[0])
    assert [limit.allow("a") for _ in range(3)] == [True, True, False]
    now[0] = 61
    assert limit.allow("a")
    for key in "bcdef":
        limit.allow(key)
    assert len(limit._seen) == 3


@pytest.mark.parametrize("raw, stored", [
    (" Ann@Example.COM ", "Ann@example.com"),
    ("Ann@GMAIL.com", "ann@gmail.com"),  # a caseless provider: the local part too, as ingest does
    ("ann@bücher.example", "ann@xn--bcher-kva.example"),
])
def test_addresses_are_stored_as_ingest_stores_them(raw, stored):
    assert canonical_address(raw)[0] == stored


@pytest.mark.parametrize("raw", ["", "no-at-sign", "a@b@c", "a@", "x" * 300 + "@example.com", "a b@example.com"])
def test_addresses_mail_cannot_go_to_are_refused(raw):
    with pytest.raises(InvalidAddress):
        canonical_address(raw)
