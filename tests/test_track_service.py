"""The tracking service over real HTTP, answering the links of messages the send stage really sent."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

import httpx
import pytest

from mailflow.tasks.compose.tokens import TokenSigner
from mailflow.tasks.demo.receiver import free_port
from mailflow.tasks.plan.campaign import Variant
from mailflow.tasks.track.app import GIF
from mailflow.tasks.track.server import running_service
from tests.support.commands import wait_for
from tests.support.tracking import SPEC, USER_AGENT, event_lines, send_campaign, serve_process, service, stop_process, track_settings

pytestmark = pytest.mark.integration
EMAILS = ["ann@example.com", "bob@example.org", "cy@example.net"]


@pytest.fixture
def sent(home, receiver):
    """(settings, service URL, mails by address): a campaign sent with the service's links."""
    with service(track_settings(home, receiver.port)) as (settings, url):
        yield settings, url, send_campaign(settings, receiver, EMAILS)


def client() -> httpx.Client:
    return httpx.Client(headers={"User-Agent": USER_AGENT}, timeout=10)


def test_opens_clicks_and_signed_redirects_of_sent_mail_are_answered_and_each_logged_once(sent):
    settings, url, mails = sent
    with client() as http:
        for mail in mails.values():
            pixel = http.get(mail.open_url)
            assert (pixel.status_code, pixel.content, pixel.headers["content-type"]) == (200, GIF, "image/gif")
            assert len(pixel.content) == 43 and pixel.headers["cache-control"] == "no-store"
            first, second = (http.get(u) for u in mail.click_urls)
            assert first.status_code == 302 and first.headers["cache-control"] == "no-store"
            # the URL's own utm_source wins; the campaign's others are appended, {variant} and {campaign} filled in
            assert first.headers["location"] == ("https://shop.example/sale?ref=mail&utm_source=partner&utm_medium=email"
                                                 "&utm_campaign=news&utm_content=A")
            assert second.headers["location"] == ("https://shop.example/item?utm_source=newsletter&utm_medium=email"
                                                  "&utm_campaign=news&utm_content=A#top")
            (redirect,) = (http.get(u) for u in mail.redirect_urls)
            assert redirect.status_code == 302 and redirect.headers["location"].startswith(
                f"https://shop.example/u/{mail.subscriber_id}?x=1&utm_source=newsletter")
    events = event_lines(settings.home)
    assert len(events) == 4 * len(EMAILS) and len({e["event_id"] for e in events}) == len(events)
    for mail in mails.values():
        own = [e for e in events if e["subscriber_id"] == mail.subscriber_id]
        assert [(e["type"], e["link"], e["url"]) for e in own] == [
            ("open", None, None), ("click", 0, "https://shop.example/sale?ref=mail&utm_source=partner"),
            ("click", 1, "https://shop.example/item#top"),
            ("click", None, f"https://shop.example/u/{mail.subscriber_id}?x=1")]
        assert {(e["campaign_id"], e["variant"], e["ip"], e["user_agent"]) for e in own} == {
            ("news", "A", "127.0.0.0", USER_AGENT)}, "IPs are truncated to their /24 by default"
        assert all(e["occurred_at"].endswith("+00:00") for e in own)


def test_forged_truncated_altered_or_misused_tokens_and_unknown_links_get_404_and_write_nothing(sent):
    settings, url, mails = sent
    mail = mails[EMAILS[0]]
    click = mail.click_urls[0]
    token = click.split("/c/")[1].split("/")[0]
    altered = token[:10] + ("a" if token[10] != "a" else "b") + token[11:]
    redirect = mail.redirect_urls[0]
    bad = [
        click.replace(token, token[:-1]),  # truncated
        click.replace(token, altered),  # one letter changed
        click.replace(token, "a" * len(token)),  # forged
        click.rsplit("/", 1)[0] + "/2",  # a link the campaign does not have
        click.rsplit("/", 1)[0] + "/99999999999999999999",
        click.rsplit("/", 1)[0] + "/-1",
        mail.open_url.replace("/o/", "/c/").replace(".gif", "/0"),  # an open token used for a click
        mail.open_url.replace(mail.open_url.split("/o/")[1][:-4], token),  # a click token used for an open
        f"{url}/c/{TokenSigner('test-secret').sign('no-such-campaign', 1, 'click')}/0",  # signed, campaign unknown
        redirect.replace("shop.example", "evil.example"),  # the signed URL changed: no open redirect
        redirect.split("&u=")[0] + "&u=https%3A%2F%2Fevil.example%2F",
        redirect.replace("&s=", "&s=0"),
        redirect.split("&s=")[0] + "&u=https%3A%2F%2Fshop.example%2Fu%2F1%3Fx%3D1",  # no signature
        redirect + "&u=https%3A%2F%2Fevil.example%2F",  # two URLs
        mail.unsubscribe_url.replace("/u/", "/o/") + ".gif",  # an unsubscribe token used for an open
    ]
    with client() as http:
        answers = {u: http.get(u) for u in bad}
        answers[mail.unsubscribe_url[:-1]] = http.post(mail.unsubscribe_url[:-1])
    assert {u: a.status_code for u, a in answers.items() if a.status_code != 404} == {}
    assert all("location" not in a.headers for a in answers.values())
    assert event_lines(settings.home) == [], "nothing is written for a refused link"


def test_events_name_the_variant_each_message_was_sent_with(home, receiver):
    spec = replace(SPEC, variants=(Variant("A"), Variant("B", subject="Other")))
    with service(track_settings(home, receiver.port)) as (settings, url):
        mails = send_campaign(settings, receiver, EMAILS[:1], spec, variant="B")
        with client() as http:
            assert http.get(mails[EMAILS[0]].open_url).status_code == 200
            assert http.get(mails[EMAILS[0]].click_urls[0]).headers["location"].endswith("&utm_content=B")
    assert [(e["type"], e["variant"]) for e in event_lines(settings.home)] == [("open", "B"), ("click", "B")]


def test_links_signed_with_a_rotated_out_secret_work_until_its_end_and_then_get_404(home, receiver):
    old = track_settings(home, receiver.port)  # the tests' secret signs the mail
    with service(old) as (settings, url):
        mail = send_campaign(settings, receiver, EMAILS[:1])[EMAILS[0]]
    rotated = {"MAILFLOW_TRACKING__SECRET": "the-new-secret", "MAILFLOW_TRACKING__PREVIOUS_SECRET": "test-secret"}
    for until, status in (("2999-01-01", 200), ("2001-01-01", 404)):
        settings = track_settings(home, receiver.port, tracking={"previous_until": until}, environ=rotated)
        with running_service(settings) as url, client() as http:
            answer = http.get(url + urlsplit(mail.open_url).path)  # this service's port, the mail's token
            assert answer.status_code == status, until
    assert [e["type"] for e in event_lines(home)] == ["open"], "only the answered one is logged"


def test_bursts_of_the_same_link_are_all_answered_and_logged_and_a_head_only_answered(sent):
    settings, url, mails = sent
    mail = mails[EMAILS[1]]
    with client() as http:
        assert {http.get(mail.open_url).status_code for _ in range(25)} == {200}
        assert {http.get(mail.click_urls[1]).status_code for _ in range(25)} == {302}
        assert http.head(mail.open_url).status_code == 200 and http.head(mail.click_urls[0]).status_code == 302
    kinds = [(e["type"], e["subscriber_id"]) for e in event_lines(settings.home)]
    assert kinds == [("open", 2)] * 25 + [("click", 2)] * 25, "a scanner's burst is logged, never refused"


def test_metrics_count_requests_by_route_and_status_events_by_type_and_log_lag(sent):
    settings, url, mails = sent
    mail = mails[EMAILS[2]]
    with client() as http:
        for _ in range(3):
            http.get(mail.open_url)
        http.get(mail.click_urls[0])
        http.get(mail.click_urls[0].rsplit("/", 1)[0] + "/7")
        http.get(f"{url}/nowhere")
        assert http.get(f"{url}/healthz").text == "ok\n"
        text = http.get(f"{url}/metrics").text
    assert 'mailflow_track_requests_total{route="/o",status="200"} 3\n' in text
    assert 'mailflow_track_requests_total{route="/c",status="302"} 1\n' in text
    assert 'mailflow_track_requests_total{route="/c",status="404"} 1\n' in text
    assert 'mailflow_track_requests_total{route="other",status="404"} 1\n' in text
    assert 'mailflow_track_requests_total{route="/healthz",status="200"} 1\n' in text
    assert 'mailflow_track_events_total{type="open"} 3\n' in text and 'mailflow_track_events_total{type="click"} 1\n' in text
    assert "mailflow_track_errors_total 0\n" in text and "mailflow_track_workers 1\n" in text
    assert "mailflow_track_log_lag_seconds " in text and "# TYPE mailflow_track_log_lag_seconds gauge" in text


@pytest.mark.parametrize("method,path,headers,body,status", [
    ("PUT", "/healthz", {}, b"", 405),
    ("DELETE", "/healthz", {}, b"", 405),
    ("GET", "/r?u=" + "x" * 5000, {}, b"", 414),
    ("GET", "/healthz", {"X-Big": "y" * 9000}, b"", 431),
    ("POST", "/u/abc", {}, b"reason=" + b"z" * 17000, 413),
], ids=["put", "delete", "long-url", "big-headers", "big-body"])
def test_requests_over_the_limits_or_of_other_methods_are_refused_before_any_handler(home, method, path, headers, body,
                                                                                      status):
    settings = track_settings(home, 2525)
    with service(settings) as (_, url), client() as http:
        answer = http.request(method, url + path, headers=headers, content=body)
        assert answer.status_code == status
        chunked = http.post(url + "/u/abc", content=iter([b"z" * 9000, b"z" * 9000]))  # no length to refuse up front
        assert chunked.status_code == 413
        assert http.get(f"{url}/healthz").status_code == 200
    assert event_lines(settings.home) == []


def test_metrics_sum_the_counters_of_every_worker_process(home, receiver):
    port = free_port()
    settings = track_settings(home, receiver.port, tracking={"base_url": f"http://127.0.0.1:{port}"})
    mails = send_campaign(settings, receiver, EMAILS)
    proc = serve_process(home, port, workers=2)
    try:
        for _ in range(10):
            for mail in mails.values():
                with client() as http:  # a connection each: the kernel deals them to both workers
                    assert http.get(mail.open_url).status_code == 200

        def summed():
            """/metrics counts all 30 opens, from both workers"""
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            return ('mailflow_track_requests_total{route="/o",status="200"} 30\n' in text
                    and 'mailflow_track_events_total{type="open"} 30\n' in text and "mailflow_track_workers 2\n" in text)
        wait_for(summed, "every worker's counters", 30)  # the others' are at most a second old
    finally:
        stop_process(proc)
    assert len([e for e in event_lines(home) if e["type"] == "open"]) == 30
    assert not list((home / "track" / "metrics").glob("*.json")), "stopped workers withdraw their counters"


def test_prometheus_text_sums_counters_over_workers_and_shows_the_worst_lag():
    from mailflow.tasks.track.metrics import prometheus

    one = {"pid": 1, "requests": [["/o", 200, 5], ["/c", 302, 1]], "events": {"open": 5, "click": 1}, "errors": 1,
           "log_lag_seconds": 0.2, "log_unsynced_events": 3}
    two = {"pid": 2, "requests": [["/o", 200, 7]], "events": {"open": 7}, "errors": 0, "log_lag_seconds": 0.7,
           "log_unsynced_events": 1}
    text = prometheus([one, two])
    assert 'mailflow_track_requests_total{route="/o",status="200"} 12\n' in text
    assert 'mailflow_track_requests_total{route="/c",status="302"} 1\n' in text
    assert 'mailflow_track_events_total{type="open"} 12\n' in text and "mailflow_track_errors_total 1\n" in text
    assert "mailflow_track_log_lag_seconds 0.7\n" in text and "mailflow_track_log_unsynced_events 4\n" in text
    assert "mailflow_track_workers 2\n" in text
