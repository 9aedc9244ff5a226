"""The checks of the rendered sample: RFC 8058 headers signed, links, size (Gmail's clipping) and images against text."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterable
from html.parser import HTMLParser
from urllib.parse import urlsplit

import dkim
import dkim.util

from mailflow.settings_preflight import PreflightSettings
from mailflow.tasks.compose.textify import html_to_text
from mailflow.tasks.preflight.checks import FAIL, PASS, WARN, Check

ONE_CLICK = "List-Unsubscribe=One-Click"
SAFE_SCHEMES = ("http", "https", "mailto", "tel")  # an untracked mailto: or tel: link is fine; javascript: and data: are not


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def html_of(data: bytes) -> str:
    body = parse(data).get_body(preferencelist=("html",))
    return body.get_content() if body is not None else ""


def unsubscribe_check(data: bytes, records: dict[str, str] | None = None) -> Check:
    """RFC 8058: an https List-Unsubscribe, `List-Unsubscribe-Post: List-Unsubscribe=One-Click`, and both covered
    by a DKIM signature that verifies (against `records`: '<selector>._domainkey.<domain>' -> TXT text)."""
    message = parse(data)
    targets = re.findall(r"<([^>]*)>", str(message.get("List-Unsubscribe", "")))
    if not targets:
        return Check("unsubscribe", FAIL, "no List-Unsubscribe header", "compose through mailflow's send path, which adds it")
    if not any(t.lower().startswith("https://") for t in targets):
        shown = "{0.scheme}://{0.netloc}/...".format(urlsplit(targets[0]))
        return Check("unsubscribe", FAIL, f"List-Unsubscribe has no https URL ({shown}): RFC 8058 one-click "
                     "needs https, so Gmail and Yahoo show no unsubscribe button", "set tracking.base_url to an https URL")
    if str(message.get("List-Unsubscribe-Post", "")).strip() != ONE_CLICK:
        return Check("unsubscribe", FAIL, "no `List-Unsubscribe-Post: List-Unsubscribe=One-Click` header",
                     "compose through mailflow's send path, which adds it")
    signatures = message.get_all("DKIM-Signature") or []
    if not signatures:
        return Check("unsubscribe", WARN, "RFC 8058 headers present but mailflow does not sign them (no [dkim])",
                     "set [dkim], or make sure your relay signs List-Unsubscribe and List-Unsubscribe-Post")
    covered = [s for s in signatures if {"list-unsubscribe", "list-unsubscribe-post"} <= _signed(str(s))]
    if not covered:
        return Check("unsubscribe", FAIL, "List-Unsubscribe and List-Unsubscribe-Post are not covered by the DKIM "
                     "signature's h=", "add List-Unsubscribe and List-Unsubscribe-Post to the signed header fields")
    if records is not None and not _verifies(data, records):
        return Check("unsubscribe", FAIL, "the DKIM signature covering the RFC 8058 headers does not verify against "
                     "the configured key", "check that the [dkim] key and selector are the ones published")
    return Check("unsubscribe", PASS, "https List-Unsubscribe and One-Click Post, both signed (DKIM h=)")


def _signed(signature: str) -> set[str]:
    tags = dkim.util.parse_tag_value("".join(signature.split()).encode())
    return {h.strip().lower() for h in tags.get(b"h", b"").decode().split(":")}


def _verifies(data: bytes, records: dict[str, str]) -> bool:
    def dnsfunc(name, timeout=5):
        text = records.get((name.decode() if isinstance(name, bytes) else name).removesuffix("."))
        return text.encode() if text else None

    try:
        return all(dkim.DKIM(data).verify(idx=i, dnsfunc=dnsfunc)
                   for i in range(len(parse(data).get_all("DKIM-Signature") or [])))
    except dkim.DKIMException:
        return False


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.images: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a" and dict(attrs).get("href"):
            self.hrefs.append(dict(attrs)["href"].strip())
        elif tag == "img":
            self.images.append(dict(attrs))


def _tags(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser


def hrefs(html: str) -> list[str]:
    """Every link target of the HTML, in order (the studio lists them with their tracked form)."""
    return _tags(html).hrefs


def images_without_alt(html: str) -> list[str]:
    """The `src` of each image with no `alt` attribute (an empty alt, for a spacer or the pixel, is fine)."""
    return [i.get("src") or "" for i in _tags(html).images if "alt" not in i]


def links_check(html: str, tracked: Iterable[str]) -> Check:
    """Every tracked URL is http(s); no link in the rendered HTML runs script or data (javascript:, data:, vbscript:)."""
    bad = [u for u in tracked if urlsplit(u).scheme.lower() not in ("http", "https")]
    bad += [h for h in _tags(html).hrefs if ":" in h.split("/")[0] and urlsplit(h).scheme.lower() not in SAFE_SCHEMES]
    if bad:
        return Check("links", FAIL, f"{len(bad)} link(s) are not http(s): {', '.join(b[:40] for b in bad[:3])}",
                     f"replace {bad[0][:40]!r} in the template with an https URL")
    return Check("links", PASS, "every link is http(s)" + (f" ({len(list(tracked))} tracked)" if tracked else ""))


def size_check(data: bytes, settings: PreflightSettings) -> Check:
    size, limit = len(data) / 1024, settings.size_limit_kb
    detail = f"message is {size:.0f} KB; Gmail clips messages over {limit:g} KB, hiding the rest and the unsubscribe footer"
    fix = "shorten the template, drop inlined CSS that repeats, link to the long version instead"
    if size > limit:
        return Check("size", FAIL, detail, fix)
    if size > limit * settings.size_margin:
        return Check("size", WARN, detail, fix)
    return Check("size", PASS, f"message is {size:.0f} KB (Gmail clips over {limit:g} KB)")


def images_check(html: str, settings: PreflightSettings, open_pixel: str = "/o/") -> Check:
    """Images against words of text: mail that is mostly pictures hides its text from filters, which mark it so."""
    if not html:
        return Check("images", PASS, "text-only message")
    images = [i for i in _tags(html).images if open_pixel not in (i.get("src") or "")]
    words = [w for w in html_to_text(html).split() if not re.match(r"\(?https?://", w)]
    if not images:
        return Check("images", PASS, f"no images; {len(words)} words of text")
    fix = "add text that says what the images say (and alt= text), or use fewer images"
    detail = f"{len(images)} image(s) and {len(words)} words of text"
    if not words:
        return Check("images", FAIL, f"{detail}: an image-only message reads as spam", fix)
    if len(words) / len(images) < settings.words_per_image:
        return Check("images", WARN, f"{detail}: fewer than {settings.words_per_image:g} words per image", fix)
    return Check("images", PASS, detail)
