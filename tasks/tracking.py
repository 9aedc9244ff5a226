"""Tracking at compile time: rewrite an HTML template's links to signed click URLs and add an open pixel.

Rewriting happens once per campaign on the template source, not per recipient: each static
http(s) link becomes `{{ click_url(N) }}` and its URL goes into the campaign's link table,
which the tracking service reads, so it can only ever redirect to URLs that were in the mail.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
PIXEL = '<img src="{{ open_url }}" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">'


@dataclass
class LinkTable:
    urls: list[str] = field(default_factory=list)

    def index(self, url: str) -> int:
        if url not in self.urls:
            self.urls.append(url)
        return self.urls.index(url)


def rewrite_links(source: str, links: LinkTable) -> str:
    """Static http(s) hrefs -> `{{ click_url(N) }}`; dynamic ({{ }}), mailto: and anchors stay."""
    def replace(match: re.Match) -> str:
        prefix, quote, raw = match.groups()
        url = html.unescape(raw.strip())
        if "{{" in raw or "{%" in raw or not re.match(r"https?://", url, re.IGNORECASE):
            return match.group(0)
        return f"{prefix}{quote}{{{{ click_url({links.index(url)}) }}}}{quote}"

    return _HREF.sub(replace, source)


def add_open_pixel(source: str) -> str:
    ends = list(_BODY_END.finditer(source))
    if not ends:
        return source + PIXEL
    at = ends[-1].start()
    return source[:at] + PIXEL + source[at:]
