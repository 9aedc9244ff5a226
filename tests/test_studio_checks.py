"""Checks on save over real HTTP: a compile error refuses the save with its line; the rest report PASS / WARN / FAIL."""

from __future__ import annotations

import html
import re

import pytest

from mailflow.tasks.studio.checks import subscriber_variables, tracked_links
from tests.support.campaign import SPEC, write_plan
from tests.support.studio import loaded_of, studio_settings, user_logged_in

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path):
    settings = studio_settings(tmp_path)
    write_plan(settings.home, SPEC, [(["ann@example.com"], "A", None, False)])  # its subscribers have a "plan" attribute
    return settings


@pytest.fixture
def eve(settings):
    with user_logged_in(settings, "eve", "editor") as client:
        yield client


def save(client, text: str):
    page = client.http.get("/templates/welcome.html.j2")
    return client.post_form("/templates/welcome.html.j2", text=text, loaded=loaded_of(page))


def checks_of(text: str) -> dict[str, tuple[str, str]]:
    rows = re.findall(r'<tr class="\w+"><th>(\w+)</th><td>(\w+)</td><td>(.*?)</td></tr>', text)
    return {name: (status, html.unescape(detail)) for status, name, detail in rows}


def test_a_template_that_does_not_compile_is_refused_with_its_line(eve, settings):
    before = (settings.templates_dir / "welcome.html.j2").read_text()
    refused = save(eve, "<p>one</p>\n<p>two</p>\n{% if subscriber.plan %}<p>three</p>\n")
    assert refused.status_code == 422
    assert "Not saved" in refused.text and "welcome.html.j2 line 3" in html.unescape(refused.text)
    assert "{% if subscriber.plan %}" in html.unescape(refused.text)  # the text stays in the editor to fix
    assert (settings.templates_dir / "welcome.html.j2").read_text() == before


def test_a_saved_template_reports_variables_links_images_and_size(eve, settings):
    text = ('<p>Hi {{ subscriber.first_name }} on {{ subscriber.plan }}, size {{ subscriber.shoe_size }}, '
            '{{ subscriber.pet | default("no pet") }}</p>\n<a href="https://shop.example/sale">Sale</a>\n'
            '<img src="https://shop.example/a.png">\n')
    saved = save(eve, text)
    assert saved.status_code == 303
    page = eve.http.get(saved.headers["location"])
    checks = checks_of(page.text)
    assert checks["variables"][0] == "WARN" and "shoe_size" in checks["variables"][1]
    assert "plan" not in checks["variables"][1] and "pet" not in checks["variables"][1]
    assert checks["alt"][0] == "WARN" and "a.png" in checks["alt"][1]
    assert checks["links"][0] == "PASS" and checks["size"][0] == "PASS"
    assert re.search(r"https://shop.example/sale → <code>https://t.example/c/[^<]+/0</code>", page.text)
    assert (settings.templates_dir / "welcome.html.j2").read_text() == text


def test_a_clean_template_passes_every_check(eve):
    page = eve.http.get(save(eve, '<p>Hi {{ subscriber.first_name }}</p><img src="x.png" alt="x">\n').headers["location"])
    assert {status for status, _ in checks_of(page.text).values()} == {"PASS"}


def test_variables_under_a_default_and_subscript_access_are_found(tmp_path):
    used, defaulted = subscriber_variables(tmp_path, '{{ subscriber["a"] }}{{ subscriber.b | d("x") }}{{ other.c }}', True)
    assert used == {"a", "b"} and defaulted == {"b"}


def test_a_tracked_link_maps_back_to_what_was_written():
    rendered = ('<a href="https://t.example/c/TOKEN/1">x</a><a href="https://t.example/r?t=T&amp;s=S&amp;u=https%3A//a.example/p">'
                'y</a><a href="mailto:help@example.com">z</a>')
    assert tracked_links(rendered, ("https://zero.example", "https://one.example"), "https://t.example") == [
        ("https://one.example", "https://t.example/c/TOKEN/1"),
        ("https://a.example/p", "https://t.example/r?t=T&s=S&u=https%3A//a.example/p"),
        ("mailto:help@example.com", "mailto:help@example.com")]
