"""The service's pages over real HTTP: unsubscribe (one-click and form), view in browser, preference centre."""

from __future__ import annotations

import html

import httpx
import polars as pl
import pytest

from mailflow.tasks.files.preferences import write_preferences
from mailflow.tasks.track.server import running_service
from tests.support.pages import EMAILS, HOSTILE, events, helpers, path_of, plan_campaign, signer, suppressions, with_tracking

ONE_CLICK = {"content": b"List-Unsubscribe=One-Click", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


@pytest.fixture
def client(settings, home):
    plan_campaign(home)
    with running_service(with_tracking(settings, public_lists=("events",))) as url, \
            httpx.Client(base_url=url, timeout=30, follow_redirects=False) as http:
        yield http


def page_url(settings, purpose: str, subscriber_id: int = 1, campaign_id: str = "spring") -> str:
    letter = {"unsubscribe": "u", "view": "v", "preferences": "p"}[purpose]
    return f"/{letter}/{signer(settings).sign(campaign_id, subscriber_id, purpose)}"


def assert_page_headers(response: httpx.Response) -> str:
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "script-src" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in response.headers
    return policy


def test_one_click_post_unsubscribes_at_once_without_cookies_or_a_redirect(client, settings, home):
    url = path_of(helpers(settings, 1).unsubscribe_url)  # the List-Unsubscribe URL of the sent message
    response = client.post(url, **ONE_CLICK)
    assert response.status_code == 200 and "location" not in response.headers
    assert "set-cookie" not in response.headers and "cookie" not in response.request.headers
    assert "You are unsubscribed" in response.text
    # effective before the answer: both lines are on disk as it arrives
    assert [(s["email"], s["cause"], s["source"]) for s in suppressions(home)] == [(EMAILS[0], "unsubscribe", "spring")]
    [event] = events(home, "unsubscribe")
    assert (event["campaign_id"], event["subscriber_id"], event["variant"], event["method"]) == ("spring", 1, "A", "one_click")
    again = client.post(url, **ONE_CLICK)  # mail clients retry: harmless
    assert again.status_code == 200
    assert len(suppressions(home)) == 1 and len(events(home, "unsubscribe")) == 1


def test_one_click_as_multipart_form_data_is_honoured(client, settings, home):
    boundary = "mfboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n"
            f"--{boundary}--\r\n").encode()
    response = client.post(page_url(settings, "unsubscribe", 3), content=body,
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 200
    assert [s["email"] for s in suppressions(home)] == [EMAILS[2]]


def test_the_unsubscribe_page_offers_the_campaigns_lists_with_all_as_the_default(client, settings, home):
    response = client.get(page_url(settings, "unsubscribe"))
    assert response.status_code == 200
    assert_page_headers(response)
    text = response.text
    assert '<input type="radio" name="scope" value="all" checked>' in text
    assert '<input type="checkbox" name="list" value="newsletter">' in text
    assert 'name="reason_text"' in text and '<option value="too_many">' in text
    assert "/p/" in text  # the preference centre is one link away
    assert events(home) == [] and suppressions(home) == []  # looking is not unsubscribing


def test_the_form_with_some_lists_logs_a_list_unsubscribe_and_suppresses_no_one(client, settings, home):
    response = client.post(page_url(settings, "unsubscribe"), data={
        "scope": "lists", "list": ["newsletter", "not-a-list-of-this-campaign"], "reason": "too_many",
        "reason_text": "x" * 2000})
    assert response.status_code == 200 and "newsletter" in response.text
    [event] = events(home, "list_unsubscribe")
    assert (event["lists"], event["reason"], len(event["reason_text"])) == (["newsletter"], "too_many", 500)
    assert suppressions(home) == [] and events(home, "unsubscribe") == []


def test_the_form_with_no_list_ticked_asks_again_and_writes_nothing(client, settings, home):
    response = client.post(page_url(settings, "unsubscribe"), data={"scope": "lists"})
    assert response.status_code == 400 and "Choose at least one list" in response.text
    assert events(home) == [] and suppressions(home) == []


def test_the_form_for_all_lists_suppresses_and_keeps_a_known_reason_only(client, settings, home):
    response = client.post(page_url(settings, "unsubscribe", 2), data={"scope": "all", "reason": "<b>", "reason_text": "bye"})
    assert response.status_code == 200
    assert [s["email"] for s in suppressions(home)] == [EMAILS[1]]
    [event] = events(home, "unsubscribe")
    assert (event["method"], event["reason"], event["reason_text"]) == ("form", None, "bye")


@pytest.mark.parametrize("path", [
    "/u/forged", "/v/forged", "/p/forged",
    "/u/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",  # a token's shape, not its MAC
])
def test_a_bad_token_gets_a_404_page_and_writes_nothing(client, home, path):
    for response in (client.get(path), client.post(path, **ONE_CLICK)):
        assert response.status_code in (404, 405)
    assert client.get(path).status_code == 404
    assert "not valid" in client.get(path).text
    assert events(home) == [] and suppressions(home) == []


def test_a_valid_token_of_another_purpose_campaign_or_recipient_is_not_found(client, settings, home):
    wrong = [
        "/u/" + signer(settings).sign("spring", 1, "view"),  # a view token on the unsubscribe page
        page_url(settings, "unsubscribe", 1, campaign_id="never-planned"),
    ]
    for path in wrong:
        assert client.post(path, **ONE_CLICK).status_code == 404
        assert client.get(path).status_code == 404
    assert events(home) == [] and suppressions(home) == []


def test_a_signed_unsubscribe_of_a_recipient_whose_row_is_gone_shows_no_page_but_one_click_still_counts(
        client, settings, home):
    path = page_url(settings, "unsubscribe", 99)  # signed by us, so sent by us: its chunk row is gone
    assert client.get(path).status_code == 404
    assert client.post(path, **ONE_CLICK).status_code == 200
    assert [(e["type"], e["subscriber_id"]) for e in events(home)] == [("unsubscribe", 99)]
    assert suppressions(home) == []  # no address known here; the aggregate suppresses by subscriber id


def test_every_page_escapes_hostile_subscriber_data_and_campaign_names(client, settings):
    for purpose, subscriber_id in (("unsubscribe", 1), ("unsubscribe", 2), ("preferences", 2), ("view", 1)):
        text = client.get(page_url(settings, purpose, subscriber_id)).text
        assert HOSTILE not in text and "<img src=x" not in text
    unsubscribe = client.get(page_url(settings, "unsubscribe", 2)).text
    assert html.escape(HOSTILE, quote=False) in unsubscribe or "&lt;script&gt;" in unsubscribe
    assert "&lt;img src=x onerror=alert(1)&gt;" in unsubscribe


def test_the_view_page_is_the_message_with_its_tracked_links_under_a_strict_policy_and_noindex(client, settings):
    response = client.get(page_url(settings, "view", 3))
    assert response.status_code == 200
    policy = assert_page_headers(response)
    assert "img-src" in policy and "style-src 'unsafe-inline'" in policy and "form-action 'none'" in policy
    assert response.headers["x-robots-tag"].startswith("noindex")
    text = response.text
    assert '<meta name="robots" content="noindex,nofollow">' in text
    assert "Hello Cy," in text  # the recipient's own row
    mine = helpers(settings, 3)
    assert mine.click_url(0) in text and mine.open_url in text  # the links as sent, tracked


def test_the_preference_centre_without_published_state_says_so_and_logs_the_choice(client, settings, home):
    url = page_url(settings, "preferences")
    page = client.get(url)
    assert page.status_code == 200 and "cannot show your current choices" in page.text
    assert_page_headers(page)
    assert 'value="events"' in page.text  # a public list is offered beside the campaign's
    saved = client.post(url, data={"list": ["events", "unknown"], "frequency": "weekly"})
    assert saved.status_code == 200 and "Your preferences are saved" in saved.text
    [event] = events(home, "preferences")
    assert event["lists"] == ["events"] and event["frequency"] == "weekly"
    assert event["offered"] == ["newsletter", f"offers{HOSTILE}", "events"]
    assert suppressions(home) == []


def test_the_preference_centre_shows_what_aggregate_published(client, settings, home):
    write_preferences(home, pl.DataFrame({"subscriber_id": [1, 3], "lists": [["newsletter", "club"], []],
                                          "frequency": ["monthly", None]}))
    text = client.get(page_url(settings, "preferences")).text
    assert "cannot show" not in text
    assert '<input type="checkbox" name="list" value="newsletter" checked>' in text
    assert '<input type="checkbox" name="list" value="club" checked>' in text  # a list of theirs from elsewhere
    assert '<input type="checkbox" name="list" value="events">' in text
    assert '<input type="radio" name="frequency" value="monthly" checked>' in text


def test_the_preference_centre_can_unsubscribe_from_everything(client, settings, home):
    response = client.post(page_url(settings, "preferences", 3), data={"unsubscribe_all": "yes", "list": "newsletter"})
    assert response.status_code == 200 and "You are unsubscribed" in response.text
    assert [s["email"] for s in suppressions(home)] == [EMAILS[2]]
    assert [e["method"] for e in events(home, "unsubscribe")] == ["preferences"] and events(home, "preferences") == []
