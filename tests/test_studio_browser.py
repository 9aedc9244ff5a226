"""The studio in a real browser (headless Debian chromium): first login enrols TOTP, the home page shows; screenshots taken.

`MAILFLOW_SCREENSHOTS=docs pytest tests/test_studio_browser.py` also writes the README's screenshots there."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pyotp
import pytest

from tests.support.browser import browser  # noqa: F401 - the fixture
from tests.support.pages import SPEC, plan_campaign
from tests.support.studio import PASSWORD, add_user, studio_running, studio_settings

pytestmark = pytest.mark.integration


def keep(shot: Path) -> None:
    folder = os.environ.get("MAILFLOW_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(folder) / shot.name)


def test_first_login_in_chromium_enrols_totp_and_shows_templates_and_campaigns(tmp_path, browser):  # noqa: F811
    settings = studio_settings(tmp_path)
    add_user(settings.home, "maria", "editor", enrolled=False)
    plan_campaign(settings.home, replace(SPEC, name="Spring sale", campaign_id="spring-sale", lists=("newsletter",)),
                  names=["Ann", "Bo", "Cy"])
    with studio_running(settings) as (url, clock):
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        refused, fetched = [], []
        page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("request", lambda r: fetched.append(r.url))
        assert page.goto(url + "/").status == 200 and page.url == url + "/login"  # redirected to log in
        page.fill("input[name=name]", "maria")
        page.fill("input[name=password]", PASSWORD)
        page.click("#login")
        page.wait_for_selector("#secret")
        assert page.locator(".qr svg").count() == 1 and page.locator("#recovery li").count() == 10
        page.screenshot(path=str(tmp_path / "studio-enrol.png"), full_page=True)
        page.fill("input[name=code]", pyotp.TOTP(page.text_content("#secret")).at(clock.now))
        page.click("#enrol")
        page.wait_for_selector("#campaigns")
        assert page.text_content("#who") == "maria (editor)"
        assert "welcome.html.j2" in page.text_content("#templates")
        assert "Spring sale" in page.text_content("#campaigns") and "planned" in page.text_content("#campaigns")
        assert page.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor") == "rgb(29, 36, 51)"
        page.screenshot(path=str(tmp_path / "studio-home.png"), full_page=True)
        assert refused == [] and all(u.startswith(url) for u in fetched)  # nothing blocked, nothing from elsewhere
        page.click("#logout")
        page.wait_for_selector("#login")
    for shot in ("studio-enrol.png", "studio-home.png"):
        assert (tmp_path / shot).stat().st_size > 10_000
        keep(tmp_path / shot)
