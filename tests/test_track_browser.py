"""A person in a real browser: the unsubscribe page of a message the send stage sent, confirmed, takes effect."""

from __future__ import annotations

import asyncio
import email
import re
from concurrent.futures import ThreadPoolExecutor
from email.policy import default

from mailflow.tasks.send.chunk import send_chunk
from mailflow.tasks.track.server import running_service
from tests.support.browser import browser  # noqa: F401 - the fixture
from tests.support.pages import EMAILS, SPEC, plan_campaign, suppressions, with_tracking


def test_unsubscribing_in_chromium_from_a_sent_message_suppresses_the_address(settings, home, receiver, browser):  # noqa: F811
    chunk = plan_campaign(home)
    with running_service(settings) as url:
        sending = send_chunk(with_tracking(settings, base_url=url), SPEC, chunk)
        with ThreadPoolExecutor(1) as thread:  # Playwright's sync API keeps an event loop on this thread
            sent = thread.submit(asyncio.run, asyncio.wait_for(sending, 60)).result(90)
        assert sent.get("delivered", 0) >= 1
        message = email.message_from_bytes(receiver.received[0].data, policy=default)
        assert message["To"].addresses[0].addr_spec == EMAILS[0]
        unsubscribe = re.search(r"<(http[^>]+/u/[^>]+)>", str(message["List-Unsubscribe"])).group(1)
        assert unsubscribe.startswith(url)
        page = browser.new_page()
        blocked = []  # the page's own style must pass its policy: a violation is logged to the console
        page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
        assert page.goto(unsubscribe).status == 200
        assert page.is_checked("input[name=scope][value=all]")  # unsubscribe from all is the default
        page.click("#confirm")
        page.wait_for_selector("#done", timeout=30_000)
        assert page.text_content("#done") == "You are unsubscribed"
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(244, 244, 247)"  # styled
        assert blocked == []
    assert [(s["email"], s["cause"]) for s in suppressions(home)] == [(EMAILS[0], "unsubscribe")]
