"""Tracking at compile time: rewrite an HTML template's links to click URLs and add an open pixel.

Rewriting happens once per campaign on the template source, not per recipient:

- a static http(s) link becomes `{{ click_url(N) }}` and its URL goes into the campaign's link
  table (links.json), which the tracking service reads, so it only ever redirects to URLs that
  were in the mail: `{base_url}/c/{click token}/{N}`;
- a templated link whose scheme and host are literal (`https://shop.example/u/{{ subscriber.id }}`)
  is rendered per recipient and then signed, since no table can list its values:

      {base_url}/r?t={click token}&s={signature}&u={URL, percent-encoded}

  `t` is the recipient's click token (mailflow.tasks.compose.tokens: key id, variant, subscriber id,
  campaign digest, MAC); `s` is TokenSigner.sign_link(t, URL): HMAC-SHA256 under a key derived
  from the tracking secret that signed `t`, over `t`, a NUL byte and the UTF-8 URL, its first 12
  bytes in lower-case hex (24 characters), checked under the key that verifies `t` (so it rotates
  with the token); `u` is the URL with every byte outside `A-Za-z0-9-._~:/` percent-encoded.
  The tracking service parses the query (`verify_redirect`) and redirects only when the
  signature holds, so it is no open redirect: it goes only to URLs mailflow rendered into
  that recipient's mail.

A link whose host is computed (`{{ subscriber.website }}`) stays untracked: signing whatever a
subscriber's data holds would hand out signed redirects to any host. For the same reason the
signer is out of the templates' reach: the rewritten href names the literal origin only by its
index in the table this compile recorded (`{% filter mf_track_link(0) %}`), and the filter signs
a rendered URL only when it starts with that origin; a template that calls the filter itself
can sign nothing but URLs on origins its own hrefs spell out. mailto:, anchors and the helper
URLs (`{{ unsubscribe_url }}` ...) stay as they are.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import parse_qs, quote

from mailflow.tasks.compose.tokens import BadToken, SendRef, TokenSigner

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
# Scheme and authority, literal, up to the first / ? or #: whatever Jinja adds after it cannot move the host
_LITERAL_ORIGIN = re.compile(r"""https?://[^/?#\s{}%"'<>\\]+(?=[/?#])""", re.IGNORECASE)
_JINJA = re.compile(r"{[{%#]")
PIXEL = '<img src="{{ open_url }}" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">'
TRACK_FILTER = "mf_track_link"  # the filter around a templated link; mailflow.tasks.compose.render defines it
REDIRECT_PATH = "/r"
_URL_SAFE = ":/"  # with quote()'s own A-Za-z0-9-._~: the URL stays readable in the query


@dataclass
class LinkTable:
    urls: list[str] = field(default_factory=list)  # static links, by index (links.json)
    origins: list[str] = field(default_factory=list)  # literal scheme://host of templated links, by index

    def index(self, url: str) -> int:
        if url not in self.urls:
            self.urls.append(url)
        return self.urls.index(url)

    def origin_index(self, origin: str) -> int:
        if origin not in self.origins:
            self.origins.append(origin)
        return self.origins.index(origin)


def rewrite_links(source: str, links: LinkTable) -> str:
    """Static http(s) hrefs -> `{{ click_url(N) }}`; templated ones with a literal origin -> signed
    per recipient (a filter block around the href); others, mailto: and anchors stay."""
    def replace(match: re.Match) -> str:
        prefix, quote_char, raw = match.groups()
        if _JINJA.search(raw):
            origin = _LITERAL_ORIGIN.match(raw.lstrip())
            first_tag = _JINJA.search(raw.lstrip()).start()
            if origin is None or origin.end() > first_tag:
                return match.group(0)
            return (f"{prefix}{quote_char}{{% filter {TRACK_FILTER}({links.origin_index(origin.group(0).lower())}) %}}"
                    f"{raw.strip()}{{% endfilter %}}{quote_char}")
        url = html.unescape(raw.strip())
        if not re.match(r"https?://", url, re.IGNORECASE):
            return match.group(0)
        return f"{prefix}{quote_char}{{{{ click_url({links.index(url)}) }}}}{quote_char}"

    return _HREF.sub(replace, source)


def add_open_pixel(source: str) -> str:
    ends = list(_BODY_END.finditer(source))
    if not ends:
        return source + PIXEL
    at = ends[-1].start()
    return source[:at] + PIXEL + source[at:]


class Redirects:
    """Signed redirect URLs for rendered links (the format is in the module docstring)."""

    def __init__(self, signer: TokenSigner, base_url: str):
        self.signer = signer
        self.prefix = base_url.rstrip("/") + REDIRECT_PATH + "?t="

    def url(self, token: str, url: str) -> str:
        return f"{self.prefix}{token}&s={self.signer.sign_link(token, url)}&u={_quoted(url)}"


@lru_cache(maxsize=4096)  # links often repeat across recipients (a story, a locale); quote() is slow Python
def _quoted(url: str) -> str:
    return quote(url, safe=_URL_SAFE)


@lru_cache(maxsize=4096)
def attribute_url(text: str, origin: str) -> str | None:
    """The URL a rendered href attribute holds, if it is an http(s) URL on the template's literal origin."""
    url = html.unescape(text).strip()
    if url[:len(origin)].lower() != origin or url[len(origin):len(origin) + 1] not in ("/", "?", "#"):
        return None
    return url


def verify_redirect(signer: TokenSigner, query: str) -> tuple[SendRef, str]:
    """(the send, the URL) of a redirect's query string; BadToken unless mailflow signed it."""
    fields = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    try:
        (token,), (signature,), (url,) = fields["t"], fields["s"], fields["u"]
    except (KeyError, ValueError):
        raise BadToken("a redirect needs exactly one t, s and u") from None
    if not re.match(r"https?://", url, re.IGNORECASE):
        raise BadToken("a redirect goes to http(s) URLs only")
    return signer.verify_link(token, url, signature), url
