"""What makes an HTML report self-contained, checked on its text: nothing a browser would fetch, links aside."""

from __future__ import annotations

import re

ANCHOR = re.compile(r"<a\s[^>]*>.*?</a>", re.DOTALL | re.IGNORECASE)


def assert_self_contained(page: str) -> None:
    """No script, stylesheet link, frame, image, font or CSS url(); every http(s):// is a plain link someone may click."""
    lowered = page.lower()
    for fetching in ("<script", "<link", "<iframe", "<img", "<object", "<embed", "@import", "url(", " src=", "xlink:href",
                     "@font-face"):
        assert fetching not in lowered, fetching
    outside_links = ANCHOR.sub("", page)
    assert "http://" not in outside_links and "https://" not in outside_links
    assert re.search(r'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'', page)
