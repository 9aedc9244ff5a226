"""Previews over real HTTP: the send stage's compose path for a subscriber of a plan, served in a sandboxed frame."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from mailflow.tasks.studio.preview import Scratch, campaign_spec, render_preview, subscriber_row
from tests.support.campaign import SPEC, write_chunk, write_plan
from tests.support.studio import csrf_of, studio_settings, user_logged_in

pytestmark = pytest.mark.integration
EVIL = "<script>alert(1)</script>"


@pytest.fixture
def settings(tmp_path):
    settings = studio_settings(tmp_path)
    spec = replace(SPEC, template="welcome", subject="Hello {{ subscriber.first_name }}",
                   variants=())
    paths = write_plan(settings.home, spec, [(["ann@example.com", "bob@example.com"], "A", None, False)])
    write_chunk(paths[0], ["ann@example.com", "bob@example.com"], names=["Ann", EVIL])
    return settings


@pytest.fixture
def vic(settings):
    with user_logged_in(settings, "vic", "viewer") as client:
        yield client


def preview(client, **fields):
    csrf = csrf_of(client.http.get("/templates/welcome.html.j2"))
    return client.http.post("/preview", data={"csrf": csrf, "template": "welcome.html.j2", "format": "json", **fields})


def test_a_subscribers_script_in_a_first_name_previews_as_text_in_a_sandboxed_frame(vic):
    shown = preview(vic, campaign="news", subscriber_id="2")
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["subscriber_id"] == 2 and "&lt;script&gt;" in body["html"] and EVIL not in body["html"]
    frame = vic.http.get(body["frame"])
    assert frame.status_code == 200 and EVIL not in frame.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in frame.text
    assert "https://t.example/o/" in body["html"] and "https://t.example/o/" not in frame.text  # showing it is no open
    csp = frame.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "style-src 'unsafe-inline'" in csp
    page = vic.post_form("/preview", "/templates/welcome.html.j2", template="welcome.html.j2", campaign="news",
                         subscriber_id="2")
    frames = re.findall(r"<iframe [^>]*>", page.text)
    assert page.status_code == 200 and frames and all('sandbox=""' in f for f in frames)
    assert EVIL not in page.text and "frame-src 'self'" in page.headers["content-security-policy"]


def test_the_preview_is_the_composed_message_headers_text_size_and_tracking(vic):
    body = preview(vic, campaign="news", email="ANN@example.com", subject="Hi {{ subscriber.first_name }}!").json()
    fields = dict(body["headers"])
    assert body["subject"] == "Hi Ann!" and body["subscriber_id"] == 1
    assert "List-Unsubscribe" in fields and fields["From"].startswith("News") and "ann@example.com" in fields["To"]
    assert "Hello Ann" in body["text"] and "https://t.example/o/" in body["html"]  # the open pixel: tracked as sent
    assert body["size"] > 500 and body["size_check"]["status"] == "PASS"


def test_unsaved_text_previews_without_touching_the_file(vic, settings):
    before = (settings.templates_dir / "welcome.html.j2").read_text()
    body = preview(vic, campaign="news", subscriber_id="1", source="<p>Changed {{ subscriber.first_name }}</p>").json()
    assert "Changed Ann" in body["html"]
    assert (settings.templates_dir / "welcome.html.j2").read_text() == before


def test_a_frame_is_only_for_the_user_who_rendered_it_and_bad_input_is_one_line(vic, settings):
    assert vic.http.get("/preview/frame/not-a-key").status_code == 404
    bad = preview(vic, campaign="news", subscriber_id="99")
    assert bad.status_code == 400 and "no such subscriber" in bad.json()["error"]
    assert preview(vic, template="../x.html.j2").status_code == 400
    assert preview(vic, campaign="news", variant="Z").json()["error"].startswith("campaign 'news' has no variant 'Z'")


def test_size_warns_near_and_fails_over_gmails_clip(settings):
    spec = campaign_spec(settings, "news", "welcome", None)
    row = subscriber_row(settings, "news", 1)
    scratch = Scratch()
    try:
        for words, status in ((1_000, "PASS"), (9_000, "WARN"), (12_000, "FAIL")):
            folder = scratch.folder(settings, "welcome", {"welcome.html.j2": "<p>" + "word " * words * 2 + "</p>"})
            assert render_preview(settings, spec, "A", row, folder).size_check.status == status, words
    finally:
        scratch.close()


def test_scratch_keeps_the_latest_texts_only(settings):
    scratch = Scratch(kept=2)
    try:
        first = scratch.folder(settings, "welcome", {"welcome.html.j2": "one"})
        assert (first / "welcome.html.j2").read_text() == "one" and (first / "welcome.txt.j2").is_file()
        assert scratch.folder(settings, "welcome", {"welcome.html.j2": "one"}) == first  # same text, same folder
        scratch.folder(settings, "welcome", {"welcome.html.j2": "two"})
        scratch.folder(settings, "welcome", {"welcome.html.j2": "three"})
        assert not first.exists() and len(list(scratch.root.iterdir())) == 2
    finally:
        scratch.close()
