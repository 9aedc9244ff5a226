"""The code editor in a real browser (headless Debian chromium): edit a template, see the preview change, save it.

`MAILFLOW_SCREENSHOTS=docs pytest tests/test_studio_editor.py` also writes the README's screenshot there."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pyotp
import pytest

from tests.support.browser import browser  # noqa: F401 - the fixture
from tests.support.campaign import SPEC, write_chunk, write_plan
from tests.support.studio import PASSWORD, add_user, studio_running, studio_settings

pytestmark = pytest.mark.integration


def test_editing_a_template_in_codemirror_changes_its_preview_and_saves_it(tmp_path, browser):  # noqa: F811
    settings = studio_settings(tmp_path)
    (settings.templates_dir / "welcome.html.j2").write_text(
        '<style>p { color: #1a5fb4; }</style>\n<p>Hello {{ subscriber.first_name }}</p>\n', encoding="utf-8")
    paths = write_plan(settings.home, replace(SPEC, template="welcome"), [(["ann@example.com"], "A", None, False)])
    write_chunk(paths[0], ["ann@example.com"], names=["Ann"])
    secret = add_user(settings.home, "eve", "editor")
    with studio_running(settings) as (url, clock):
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        refused, fetched = [], []
        page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("request", lambda r: fetched.append(r.url))
        page.goto(url + "/login")
        page.fill("input[name=name]", "eve")
        page.fill("input[name=password]", PASSWORD)
        page.click("#login")
        page.fill("input[name=code]", pyotp.TOTP(secret).at(clock.now))
        page.click("#verify")
        page.wait_for_selector("#templates")
        page.goto(url + "/templates/welcome.html.j2")
        page.wait_for_selector("#code .cm-content")  # CodeMirror replaced the textarea
        page.fill("#preview-form input[name=campaign]", "news")
        page.fill("#preview-form input[name=subscriber_id]", "1")
        page.click("#preview")
        shown = page.frame_locator("#live-html").locator("p")
        shown.filter(has_text="Hello Ann").wait_for()
        assert "color: #1a5fb4" in shown.get_attribute("style")  # CSS inlined: the send stage's compose path
        page.click("#code .cm-content")
        page.keyboard.press("Control+End")
        page.keyboard.type("<p>Bonjour {{ subscriber.first_name }}!</p>")
        page.frame_locator("#live-html").locator("p", has_text="Bonjour Ann!").wait_for()
        assert "Hello Ann" in page.text_content("#live-text")  # the text part is its own file, unchanged
        assert "PASS" in page.text_content("#preview-status")
        page.screenshot(path=str(tmp_path / "studio-editor.png"), full_page=True)
        page.click("#save")
        page.wait_for_selector("#saved")
        assert "Bonjour {{ subscriber.first_name }}!" in (settings.templates_dir / "welcome.html.j2").read_text()
        assert refused == [] and [u for u in fetched if not u.startswith(url)] == []  # nothing blocked, nothing from elsewhere
    assert (tmp_path / "studio-editor.png").stat().st_size > 10_000
    if os.environ.get("MAILFLOW_SCREENSHOTS"):
        Path(os.environ["MAILFLOW_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "studio-editor.png", Path(os.environ["MAILFLOW_SCREENSHOTS"]) / "studio-editor.png")
